# Face parsing on LaPa with the FLIP-80M (FaceCLIP) ViT-L/14 image tower, under FaRL's protocol.
#
# Needs the Hugging Face model directory checkpoints/FLIP-large-14/ (config.json +
# model.safetensors or pytorch_model.bin) from https://huggingface.co/FLIP-dataset/FLIP-large-14.
#
# ViT-L/14 at 448: 32x32 tokens, 1024 wide, taps of blocks 7/11/15/23 (FaRL's default for
# "large"); the pyramid (FaRL's patch-14 fpns) gives 128/64/32/16 maps of 1024 channels; the
# UPerHead keeps 768 channels as FaRL's head_channel.
_base_ = ['./lapa_farl.py']

paper_reference = dict(dataset='lapa', recipe='flip80m-l14')

embed_dims = 1024
model = dict(
    backbone=dict(type='FLIP80M', arch='large', patch_size=14, out_indices=(7, 11, 15, 23),
                  init_cfg=dict(checkpoint='checkpoints/FLIP-large-14')),
    neck=dict(embed_dim=embed_dims),
    decode_head=dict(in_channels=[embed_dims] * 4, channels=768),
)
