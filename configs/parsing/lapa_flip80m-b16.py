# Face parsing on LaPa with the FLIP-80M (FaceCLIP) ViT-B/16 image tower, under FaRL's protocol.
# FaRL has no FLIP-80M run (and the FLIP-80M paper's numbers could not be retrieved), so
# report.md has no reference column.
#
# Needs the Hugging Face model directory checkpoints/FLIP-base-16/ (config.json +
# model.safetensors or pytorch_model.bin) from https://huggingface.co/FLIP-dataset/FLIP-base-16.
# Run as released (QuickGELU, as Hugging Face runs it; `act='gelu_tanh'` for TencentPretrain's
# training activation). CLIP mean/std as FaRL.
_base_ = ['./lapa_farl.py']

paper_reference = dict(dataset='lapa', recipe='flip80m-b16')

model = dict(backbone=dict(type='FLIP80M', arch='base', patch_size=16,
                           init_cfg=dict(checkpoint='checkpoints/FLIP-base-16')))
