# Face parsing on LaPa with the FLIP-80M (FaceCLIP) ViT-B/32 image tower, under FaRL's protocol.
#
# Needs the Hugging Face model directory checkpoints/FLIP-base-32/ (config.json +
# model.safetensors or pytorch_model.bin) from https://huggingface.co/FLIP-dataset/FLIP-base-32.
#
# Deviation: FaRL's feature pyramid exists for patch 16/14 (and 8) only. At 448 a patch-32 ViT gives
# 14x14 tokens; the same Feature2Pyramid(rescales=[4, 2, 1, 0.5]) then gives strides 8/16/32/64
# (56, 28, 14, 7) instead of 4/8/16/32, and the UPerHead logits are 56x56 before the upsampling
# to the 512 canvas.
_base_ = ['./lapa_farl.py']

paper_reference = dict(dataset='lapa', recipe='flip80m-b32')

model = dict(backbone=dict(type='FLIP80M', arch='base', patch_size=32,
                           init_cfg=dict(checkpoint='checkpoints/FLIP-base-32')))
