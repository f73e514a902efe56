"""Iteration-based training on a streaming (``IterableDataset``) source, resumable mid-stream.

MMEngine's ``IterBasedTrainLoop`` starts its data iterator when the loop is built, before the
checkpoint is resumed, and on resume replays ``iter`` batches through the loader (decoding
every image again). For a web-scale stream that is hours of wasted decoding, and with
persistent workers the dataset copies in the workers never learn where to start. This loop
creates the iterator in :meth:`run`, after resuming, and first tells a streaming dataset how
many batches this rank has consumed (``set_resume_point``), so the workers skip raw samples
without decoding and the next batch is the one an uninterrupted run would have drawn. With
map-style data and MMEngine's ``InfiniteSampler`` the consumed indices are drawn from the
sampler without loading them; other samplers keep MMEngine's behaviour (replaying batches).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple, Union

from mmengine.dataset import InfiniteSampler
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.base_loop import BaseLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from mmengine.runner.utils import calc_dynamic_intervals
from torch.utils.data import DataLoader, IterableDataset

from faceanalysis.registry import LOOPS

__all__ = ['StreamingIterBasedTrainLoop']


@LOOPS.register_module()
class StreamingIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` with a lazily created, resume-aware data iterator.

    Arguments as MMEngine's ``IterBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader: Union[DataLoader, Dict], max_iters: int,
                 val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None) -> None:
        # Same state as IterBasedTrainLoop.__init__, minus the eager iterator it creates.
        BaseLoop.__init__(self, runner, dataloader)
        self._max_iters = int(max_iters)
        if self._max_iters != max_iters:
            raise ValueError(f'max_iters must be an integer, got {max_iters}')
        self._max_epochs = 1
        self._epoch = 0
        self._iter = 0
        self.val_begin = val_begin
        self.val_interval = val_interval
        self.stop_training = False
        self.dataloader_iterator = None
        self.dynamic_milestones, self.dynamic_intervals = calc_dynamic_intervals(
            self.val_interval, dynamic_intervals)

    @property
    def is_streaming(self) -> bool:
        return isinstance(self.dataloader.dataset, IterableDataset)

    def _start_iterator(self) -> None:
        dataset = self.dataloader.dataset
        # An infinite stream reports an epoch as its length (MMEngine sizes schedules with it);
        # PyTorch would warn on every batch past that length, so its check is switched off.
        if self.is_streaming:
            self.dataloader._IterableDataset_len_called = None
        if self.is_streaming and hasattr(dataset, 'set_resume_point'):
            dataset.set_resume_point(consumed_batches=self._iter,
                                     batch_size=self.dataloader.batch_size,
                                     num_workers=self.dataloader.num_workers)
            self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
            if self._iter:
                print_log(f'Resumed the data stream after {self._iter} batches of this rank '
                          '(raw samples skipped without decoding)', logger='current')
            return
        sampler = getattr(self.dataloader, 'sampler', None)
        if isinstance(sampler, InfiniteSampler) and self._iter:
            # Map-style data with MMEngine's InfiniteSampler (MCF's image folders / LMDB): its
            # index stream is one generator, so the consumed indices are drawn without loading
            # a single image, and the DataLoader continues with the next ones.
            for _ in range(self._iter * self.dataloader.batch_size):
                next(sampler.indices)
            self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
            print_log(f'Resumed the sampler after {self._iter} batches of this rank '
                      '(indices skipped without loading)', logger='current')
            return
        self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
        if self._iter:
            print_log(f'Advance dataloader {self._iter} steps to skip data that has already '
                      'been trained', logger='current', level=logging.WARNING)
            for _ in range(self._iter):
                next(self.dataloader_iterator)

    def run(self):
        """Launch training (MMEngine's loop body, with the iterator started after resume)."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        self._start_iterator()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
