# FaRL's `freeze_backbone` recipe on LaPa (shared/docs/farl_protocol.md §5.5): the FaRL-B/16
# backbone is never updated; the neck (FaRL's fpns) and the UPerHead train with lr 1e-3, same
# schedule, EMA and evaluation as lapa_farl.py. FaRL leaves the backbone out of the optimizer
# while still back-propagating through it; `freeze_backbone=True` sets requires_grad=False
# instead: the same weights, without computing the backbone's gradients.
# Any other config: --cfg-options model.freeze_backbone=True
_base_ = ['./lapa_farl.py']

model = dict(freeze_backbone=True)
