"""Throughput and data-health figures for pre-training logs.

MMEngine logs losses and time per iteration; a pre-training run is judged in samples per second
(over all ranks) and must say how many samples its stream skipped (corrupt images, empty
captions). This hook puts both into the message hub as ``train/*`` scalars, so the
``LoggerHook`` prints them with the losses and every visualisation backend records them.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

from faceanalysis.registry import HOOKS

__all__ = ['PretrainLoggingHook']


def _batch_size(data_batch: Any) -> int:
    if isinstance(data_batch, dict):
        for value in data_batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return value.shape[0]
    raise ValueError('PretrainLoggingHook: cannot read the batch size of this batch')


@HOOKS.register_module()
class PretrainLoggingHook(Hook):
    """Log ``train/samples_per_s`` (global) and the data stream's skip counts.

    Args:
        skip_interval: read the dataset's ``skip_counts()`` every this many iterations:
            ``train/skipped`` (total) and ``train/skipped_<reason>`` for every reason seen,
            cumulative over this rank's data workers.
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, skip_interval: int = 50) -> None:
        self.skip_interval = skip_interval

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        hub = runner.message_hub
        # IterTimerHook (priority NORMAL, before this hook) has logged this iteration's wall time,
        # data loading included, as 'train/time'.
        if data_batch is not None and 'train/time' in hub.log_scalars:
            elapsed = hub.get_scalar('train/time').current()
            samples = _batch_size(data_batch) * get_world_size()
            hub.update_scalar('train/samples_per_s', samples / max(elapsed, 1e-9))
        if self.every_n_train_iters(runner, self.skip_interval) or runner.iter == 0:
            counts = self.skip_counts(runner)
            if counts:
                hub.update_scalar('train/skipped', sum(counts.values()))
            for reason, count in counts.items():
                if count:  # a reason appears in the log once it has happened
                    hub.update_scalar(f'train/skipped_{reason}', count)

    @staticmethod
    def skip_counts(runner) -> Dict[str, int]:
        """The train dataset's ``skip_counts()`` (empty for datasets that never skip)."""
        loop = runner.train_loop
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        if dataset is None or not hasattr(dataset, 'skip_counts'):
            return {}
        return dict(dataset.skip_counts())
