# Face alignment on WFLW with the FLIP-80M (FaceCLIP) ViT-B/16 image tower, under FaRL's
# alignment protocol (recipe unchanged; FaRL has no FLIP-80M run, so no paper column).
#
# Needs the Hugging Face model directory checkpoints/FLIP-base-16/ (config.json +
# model.safetensors or pytorch_model.bin) from https://huggingface.co/FLIP-dataset/FLIP-base-16.
_base_ = ['./wflw_farl.py']

paper_reference = dict(dataset='wflw', recipe='flip80m-b16')

model = dict(backbone=dict(type='FLIP80M', arch='base', patch_size=16,
                           init_cfg=dict(checkpoint='checkpoints/FLIP-base-16')))
