"""Test-only hook for the distributed tests of ``test_quickstart.py``.

Imported by the training processes through
``--cfg-options custom_imports.imports=[...,dist_probe] default_hooks.probe.type=DistProbeHook``
(the test puts this folder on ``PYTHONPATH``). Each rank writes to ``<work_dir>/probe/``:

* ``rank<r>.json``: rank, world size, the sampler's type/rank/world size and, per training
  iteration, the file names of the images that rank consumed;
* ``rank<r>.pth``: the rank's (unwrapped) model state dict after training.
"""
import json
import os
import os.path as osp

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from faceanalysis.registry import HOOKS


@HOOKS.register_module()
class DistProbeHook(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.batches = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        samples = data_batch['data_samples']
        self.batches.append([osp.basename(sample.img_path) for sample in samples])

    def after_train(self, runner):
        out_dir = osp.join(runner.work_dir, 'probe')
        os.makedirs(out_dir, exist_ok=True)
        rank = get_rank()
        sampler = runner.train_dataloader.sampler
        record = dict(rank=rank, world_size=get_world_size(),
                      sampler=dict(type=type(sampler).__name__,
                                   rank=getattr(sampler, 'rank', None),
                                   world_size=getattr(sampler, 'world_size', None)),
                      dataset_size=len(runner.train_dataloader.dataset),
                      batches=self.batches)
        with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(record, f)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                   osp.join(out_dir, f'rank{rank}.pth'))
