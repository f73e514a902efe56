"""StreamingIterBasedTrainLoop + WebDatasetImageText: a resumed run continues the stream exactly."""
import copy

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

import faceanalysis.datasets  # noqa: F401  (registers the datasets and transforms)
import faceanalysis.engine  # noqa: F401
from faceanalysis.datasets import write_image_text_shards
from faceanalysis.registry import HOOKS, MODELS


@MODELS.register_module(force=True)
class _MeanPixelModel(BaseModel):
    """Smallest trainable model on the pre-training batch contract."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, img, mode='loss', **batch):
        return dict(loss=(self.scale * img.float().mean() / 255.)**2)


@HOOKS.register_module(force=True)
class _KeyRecorder(Hook):
    record = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        type(self).record[runner.iter] = list(data_batch['key'])


def _config(work_dir, urls, max_iters):
    return dict(
        default_scope='faceanalysis',
        experiment_name=f'{work_dir.name}_{max_iters}',
        model=dict(type='_MeanPixelModel'),
        work_dir=str(work_dir),
        train_dataloader=dict(
            batch_size=4, num_workers=2, persistent_workers=True, sampler=None,
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='WebDatasetImageText', urls=urls, shuffle_buffer=8,
                         shuffle_initial=4, seed=3,
                         pipeline=[dict(type='TokenizeText', context_length=8),
                                   dict(type='PackImageText')])),
        train_cfg=dict(type='StreamingIterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0,
                              end=max_iters)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='_KeyRecorder'),
                      dict(type='PretrainLoggingHook', skip_interval=1)],
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0))


def test_resumed_stream_continues_where_it_stopped(tmp_path):
    # 4 shards x 6 samples = 24 samples: 2 workers x 4 per batch -> an epoch ends within 8 iters
    write_image_text_shards(str(tmp_path / 'shards'), num_samples=24, samples_per_shard=6,
                            seed=0, image_size=16)
    urls = str(tmp_path / 'shards')

    _KeyRecorder.record = {}
    runner = Runner(**_config(tmp_path / 'full', urls, max_iters=9))
    runner.train()
    full = dict(_KeyRecorder.record)
    assert len(runner.train_dataloader) == 6  # one epoch = 24 samples / batch 4 (one rank)
    hub = runner.message_hub  # PretrainLoggingHook: throughput from IterTimerHook's time
    time_per_iter = hub.get_scalar('train/time').current()
    assert hub.get_scalar('train/samples_per_s').current() == pytest.approx(4 / time_per_iter)
    assert hub.get_scalar('train/skipped').current() == 0
    del runner

    _KeyRecorder.record = {}
    cfg = _config(tmp_path / 'resumed', urls, max_iters=9)
    Runner(**copy.deepcopy(dict(cfg, train_cfg=dict(cfg['train_cfg'], max_iters=3)))).train()
    first = dict(_KeyRecorder.record)
    _KeyRecorder.record = {}
    resumed = Runner(**dict(cfg, resume=True, load_from=str(tmp_path / 'resumed' /
                                                             'iter_3.pth')))
    resumed.train()
    second = dict(_KeyRecorder.record)

    assert sorted(second) == list(range(3, 9))
    assert first == {i: full[i] for i in range(3)}
    assert second == {i: full[i] for i in range(3, 9)}
    # the uninterrupted stream crossed into the second epoch and saw every sample of the first
    seen = [key for i in range(6) for key in full[i]]
    assert len(seen) == len(set(seen)) == 24


def test_map_style_resume_skips_sampler_indices_without_loading(tmp_path):
    from faceanalysis.datasets import write_image_text_tsv
    write_image_text_tsv(str(tmp_path / 'tsv'), num_samples=12, seed=0, image_size=16)

    def config(work_dir, max_iters):
        cfg = _config(work_dir, None, max_iters)
        cfg['train_dataloader'] = dict(
            batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='ImageTextTsvDataset', data_root=str(tmp_path / 'tsv'),
                         ann_file='captions.tsv',
                         pipeline=[dict(type='TokenizeText', context_length=8),
                                   dict(type='PackImageText')]))
        return cfg

    _KeyRecorder.record = {}
    Runner(**config(tmp_path / 'map_full', 9)).train()
    full = dict(_KeyRecorder.record)
    Runner(**config(tmp_path / 'map_part', 3)).train()
    _KeyRecorder.record = {}
    cfg = config(tmp_path / 'map_part', 9)
    resumed = Runner(**dict(cfg, experiment_name='map_resumed', resume=True,
                            load_from=str(tmp_path / 'map_part' / 'iter_3.pth')))
    loaded = []
    dataset = resumed.train_dataloader.dataset
    original = type(dataset).__getitem__
    type(dataset).__getitem__ = lambda self, idx: loaded.append(idx) or original(self, idx)
    try:
        resumed.train()
    finally:
        type(dataset).__getitem__ = original
    assert dict(_KeyRecorder.record) == {i: full[i] for i in range(3, 9)}
    assert len(loaded) == 6 * 2  # only the batches trained after the resume were loaded
