# FaRL's alignment recipe for WFLW and AFLW-19 (shared/docs/farl_protocol.md §5.1): as
# farl_alignment_250e.py but 150 epochs and the learning rate never decays (FaRL's
# MultiStepLR milestone 200 lies beyond the last epoch; kept as a constant schedule).
_base_ = ['./farl_alignment_250e.py']

max_epochs = 150
param_scheduler = [
    dict(type='ConstantLR', by_epoch=True, factor=1.0, begin=0, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
