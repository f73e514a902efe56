# The parsing quickstart with its backbone initialised from the toy pre-training run: the
# pre-train -> export -> fine-tune pipeline end to end on CPU.
#
#   python tools/train.py configs/pretrain/farl-tiny_toy-shapes_flip-mask50_cpu.py
#   python tools/export_backbone.py \
#       work_dirs/farl-tiny_toy-shapes_flip-mask50_cpu/iter_300.pth checkpoints/toy_clip.pth
#   python tools/train.py configs/quickstart/lapa-synthetic_farl-tiny_toy-pretrained.py
#
# The exported file is FaRL's released layout ({'state_dict': OpenAI CLIP keys}), loaded by the
# FaRL backbone exactly as the real recipes load FaRL-Base-Patch16-LAIONFace20M-ep64.pth.
_base_ = ['./lapa-synthetic_farl-tiny.py']

model = dict(backbone=dict(
    init_cfg=dict(_delete_=True, type='Pretrained', checkpoint='checkpoints/toy_clip.pth')))
