"""FLIP's unmasked tuning phase as a schedule switch inside one run (pretrain.md §4.1).

FLIP pre-trains with a fraction of the image tokens removed and ends with a short phase on
whole images, so the model sees at test time the token statistics it is trained on. The
original runs that phase as a second job (same config, ``mask_ratio=0``); here the switch is a
hook with a begin iteration, so one config describes both phases and a resumed run lands in the
right phase (the ratio is recomputed from ``runner.iter`` before every iteration).
"""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from faceanalysis.registry import HOOKS

__all__ = ['UnmaskedTuningHook']


@HOOKS.register_module()
class UnmaskedTuningHook(Hook):
    """Set the model's ``token_drop_ratio`` to ``ratio`` from iteration ``begin`` on.

    Args:
        begin: first (0-based) training iteration of the unmasked phase.
        ratio: token drop ratio of that phase (0: whole images).
        attribute: model attribute holding the ratio.
    """

    priority = 'NORMAL'

    def __init__(self, begin: int, ratio: float = 0., attribute: str = 'token_drop_ratio'
                 ) -> None:
        if begin < 0:
            raise ValueError(f'begin must be >= 0, got {begin}')
        self.begin = int(begin)
        self.ratio = float(ratio)
        self.attribute = attribute
        self._masked_ratio: Optional[float] = None
        self._announced = False

    def _model(self, runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = self._model(runner)
        if not hasattr(model, self.attribute):
            raise AttributeError(f'UnmaskedTuningHook: {type(model).__name__} has no '
                                 f'{self.attribute!r}')
        if self._masked_ratio is None:
            self._masked_ratio = getattr(model, self.attribute)
        in_tuning = runner.iter >= self.begin
        setattr(model, self.attribute, self.ratio if in_tuning else self._masked_ratio)
        if in_tuning and not self._announced:
            runner.logger.info(f'UnmaskedTuningHook: iteration {runner.iter}: '
                               f'{self.attribute} {self._masked_ratio} -> {self.ratio} '
                               '(unmasked tuning phase)')
            self._announced = True
