# Face alignment on AFLW-19 with the FLIP-80M (FaceCLIP) ViT-B/32 image tower, under FaRL's
# alignment protocol (recipe unchanged; FaRL has no FLIP-80M run, so no paper column).
#
# Needs checkpoints/FLIP-base-32/ from https://huggingface.co/FLIP-dataset/FLIP-base-32.
#
# Deviation forced by the patch size: at 448 a /32 tower gives 14x14 tokens, so the pyramid
# (same rescales 4/2/1/0.5) gives 56/28/14/7 maps and the heatmaps come out at 56x56 instead of
# 112x112 (soft-argmax still decodes sub-pixel positions; the targets follow the heatmap size).
_base_ = ['./aflw19_farl.py']

paper_reference = dict(dataset='aflw19', recipe='flip80m-b32')

model = dict(backbone=dict(type='FLIP80M', arch='base', patch_size=32,
                           init_cfg=dict(checkpoint='checkpoints/FLIP-base-32')))
