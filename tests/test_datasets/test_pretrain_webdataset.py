"""WebDatasetImageText: tar reading, per-epoch coverage over ranks/workers, skip counting,
resampling, exact resume, sizes.json.

The shards are written here in img2dataset's layout (``{key}.jpg``, ``{key}.txt``,
``{key}.json``) with tiny 32x32 JPEGs; DataLoaders use 2 workers at most.
"""
from __future__ import annotations

import io
import itertools
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from faceanalysis.datasets.pretrain import webdataset as wds_module
from faceanalysis.datasets.pretrain.webdataset import (WebDatasetImageText, iter_tar_samples,
                                                       shuffle_buffered)

SAMPLES_PER_SHARD = 3


def _jpeg(seed: int, size: int = 32) -> bytes:
    colour = tuple(int(c) for c in np.random.default_rng(seed).integers(0, 255, 3))
    img = np.zeros((size, size, 3), np.uint8)
    img[4:size - 4, 4:size - 4] = colour
    return cv2.imencode('.jpg', img)[1].tobytes()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, samples: Sequence[Dict[str, bytes]]) -> None:
    """Write ``samples`` (each ``{'__key__': key, ext: bytes}``) as one tar, in order."""
    with tarfile.open(path, 'w') as tar:
        for sample in samples:
            for extension, data in sample.items():
                if extension != '__key__':
                    _add(tar, f'{sample["__key__"]}.{extension}', data)


def sample(key: str, caption: Optional[str] = None, **members: bytes) -> Dict[str, bytes]:
    """A well-formed sample unless members override it (``jpg=None`` removes the jpg)."""
    record = {'__key__': key, 'jpg': _jpeg(sum(key.encode())),
              'txt': (f'a face {key}' if caption is None else caption).encode(),
              'json': json.dumps({'key': key, 'caption_aux': f'aux {key}'}).encode()}
    record.update(members)
    return {k: v for k, v in record.items() if v is not None}


def write_corpus(root: Path, num_shards: int, per_shard: Sequence[int] = (),
                 sizes: bool = True, special: Optional[Dict[str, Dict]] = None) -> List[str]:
    """``num_shards`` shards ``{00000..}.tar`` of valid samples; ``special[key]`` replaces the
    members of a sample. Returns all keys in file order."""
    root.mkdir(parents=True, exist_ok=True)
    special = special or {}
    keys, table = [], {}
    for shard in range(num_shards):
        count = per_shard[shard] if per_shard else SAMPLES_PER_SHARD
        records = []
        for index in range(count):
            key = f'{shard:05d}{index:04d}'
            records.append(sample(key, **special.get(key, {})))
            keys.append(key)
        write_shard(root / f'{shard:05d}.tar', records)
        table[f'{shard:05d}.tar'] = count
    if sizes:
        (root / 'sizes.json').write_text(json.dumps(table))
    return keys


def _collatable(results: Dict) -> Dict:
    return {name: results[name] for name in ('img', 'text', 'key')}


def batch_keys(loader: DataLoader, num_batches: Optional[int] = None) -> List[List[str]]:
    return [list(batch['key']) for batch in itertools.islice(loader, num_batches)]


def test_iter_tar_samples_groups_members_by_key(tmp_path):
    write_shard(tmp_path / 'a.tar', [
        sample('k1'),
        {'__key__': 'k2', 'png': b'P', 'ofa.txt': b'second', 'TXT': b'upper'},
        {'__key__': 'dir/k3', 'jpg': b'J', 'txt': b'c'},
        {'__key__': 'k4', 'jpg': b'A'}, {'__key__': 'k4', 'jpg': b'B'},  # repeated extension
    ])
    groups = list(iter_tar_samples(str(tmp_path / 'a.tar'), {'jpg', 'png', 'txt', 'ofa.txt'}))
    assert [key for key, _ in groups] == ['k1', 'k2', 'dir/k3', 'k4', 'k4']
    assert groups[0][1]['json'] is None  # listed, not read
    assert groups[1][1] == {'png': b'P', 'ofa.txt': b'second', 'txt': b'upper'}
    assert [g[1]['jpg'] for g in groups[3:]] == [b'A', b'B']


def test_shuffle_buffer_is_a_deterministic_permutation():
    import random
    out = list(shuffle_buffered(range(100), 10, 4, random.Random(1)))
    assert sorted(out) == list(range(100)) and out != list(range(100))
    assert out == list(shuffle_buffered(range(100), 10, 4, random.Random(1)))
    assert list(shuffle_buffered(range(5), 1, 1, random.Random(1))) == list(range(5))


@pytest.mark.parametrize('split_mode', ['strided', 'contiguous'])
def test_one_epoch_two_ranks_two_workers_each_sample_once(tmp_path, split_mode):
    """Union over 2 ranks x 2 workers of one epoch = every valid sample once; invalid samples
    are skipped and counted in the workers, and the counts reach the main process."""
    special = {
        '000010001': dict(jpg=b'\xff\xd8 this is not a jpeg'),  # corrupt image
        '000020000': dict(caption='  \n '),                     # empty caption
        '000030002': dict(txt=None),                            # no caption member
        '000040001': dict(jpg=None, png=cv2.imencode('.png', np.zeros((32, 32), np.uint8))[
            1].tobytes()),                                       # grey PNG instead of JPEG
        '000050000': dict(jpg=None),                            # no image member
    }
    keys = write_corpus(tmp_path, 8, special=special)
    valid = set(keys) - {'000010001', '000020000', '000030002', '000050000'}
    # flip first: mmcv's flip gives a negative-stride view, which the crop copies. The last
    # step keeps what default_collate can batch (PackImageText would need tokenized text).
    pipeline = [dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='RandomResizedCropImage', size=16), _collatable]
    seen, counts = [], {}
    for rank in range(2):
        dataset = WebDatasetImageText(str(tmp_path / '{00000..00007}.tar'), pipeline, rank=rank,
                                      world_size=2, epochs=1, shuffle_buffer=4,
                                      shuffle_initial=2, split_mode=split_mode)
        loader = DataLoader(dataset, batch_size=2, num_workers=2)
        for batch in loader:
            assert batch['img'].dtype == torch.uint8 and batch['img'].shape[1:] == (16, 16, 3)
            assert batch['text'] == [f'a face {key}' for key in batch['key']]
            seen.extend(batch['key'])
        for reason, count in dataset.skip_counts().items():
            counts[reason] = counts.get(reason, 0) + count
    assert sorted(seen) == sorted(valid)
    assert counts == dict(missing_image=1, missing_text=1, empty_text=1, missing_aux_text=0,
                          empty_aux_text=0, corrupt_image=1, corrupt_tar=0, filtered=0)


def test_infinite_stream_reshuffles_each_epoch(tmp_path):
    keys = write_corpus(tmp_path, 4)
    dataset = WebDatasetImageText(str(tmp_path), shuffle_buffer=4, shuffle_initial=2, seed=3,
                                  rank=0, world_size=1)
    stream = [s['key'] for s in itertools.islice(dataset, 3 * len(keys))]
    epochs = [stream[i:i + len(keys)] for i in range(0, len(stream), len(keys))]
    assert all(sorted(epoch) == keys for epoch in epochs)  # each epoch is a permutation
    assert epochs[0] != epochs[1]
    again = WebDatasetImageText(str(tmp_path), shuffle_buffer=4, shuffle_initial=2, seed=3,
                                rank=0, world_size=1)
    assert [s['key'] for s in itertools.islice(again, len(stream))] == stream
    other_seed = WebDatasetImageText(str(tmp_path), shuffle_buffer=4, shuffle_initial=2,
                                     seed=4, rank=0, world_size=1)
    assert [s['key'] for s in itertools.islice(other_seed, len(keys))] != epochs[0]


def test_sample_contract_and_aux_captions(tmp_path):
    special = {'000000001': {'ofa.txt': b''}, '000000002': {'ofa.txt': None}}
    keys = write_corpus(tmp_path, 1)
    records = []
    for key in keys:
        members = {'ofa.txt': f'ofa {key}'.encode(), **special.get(key, {})}
        records.append(sample(key, **members))
    write_shard(tmp_path / '00000.tar', records)
    dataset = WebDatasetImageText(str(tmp_path / '00000.tar'), aux_text_key='ofa.txt',
                                  epochs=1, rank=0, world_size=1)
    samples = list(dataset)
    assert [s['key'] for s in samples] == ['000000000']
    first = samples[0]
    assert first['img'].dtype == np.uint8 and first['img'].shape == (32, 32, 3)
    assert first['text'] == 'a face 000000000' and first['text_aux'] == 'ofa 000000000'
    assert first['source'] == str(tmp_path / '00000.tar')
    assert dataset.skip_counts()['empty_aux_text'] == 1
    assert dataset.skip_counts()['missing_aux_text'] == 1
    from_json = WebDatasetImageText(str(tmp_path / '00000.tar'), aux_text_key='json:caption_aux',
                                    epochs=1, rank=0, world_size=1, shuffle_buffer=0)
    assert [s['text_aux'] for s in from_json] == [f'aux {k}' for k in keys]


def test_image_colours_are_rgb(tmp_path):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255  # RGB red
    png = cv2.imencode('.png', cv2.cvtColor(red, cv2.COLOR_RGB2BGR))[1].tobytes()
    write_shard(tmp_path / 'a.tar', [{'__key__': 'red', 'png': png, 'txt': b'red'}])
    (only,) = list(WebDatasetImageText(str(tmp_path / 'a.tar'), epochs=1, world_size=1, rank=0))
    assert np.array_equal(only['img'], red)


def test_truncated_and_garbage_tars_are_counted(tmp_path):
    keys = write_corpus(tmp_path, 4, sizes=False)
    data = (tmp_path / '00001.tar').read_bytes()
    (tmp_path / '00001.tar').write_bytes(data[:len(data) // 2])  # cut inside a member
    (tmp_path / '00002.tar').write_bytes(b'not a tar at all' * 64)
    data = (tmp_path / '00003.tar').read_bytes()
    (tmp_path / '00003.tar').write_bytes(data[:3000])  # cut inside a header block
    dataset = WebDatasetImageText(str(tmp_path), epochs=1, rank=0, world_size=1)
    got = [s['key'] for s in dataset]
    assert dataset.skip_counts()['corrupt_tar'] == 3
    assert set(keys[:3]) <= set(got) and set(got) <= set(keys[:6])  # shard 0 + part of 1


def test_transform_errors_propagate(tmp_path):
    write_corpus(tmp_path, 1)

    def broken(results):
        raise RuntimeError('bug in a transform')

    dataset = WebDatasetImageText(str(tmp_path), [broken], rank=0, world_size=1)
    with pytest.raises(RuntimeError, match='bug in a transform'):
        next(iter(dataset))


def test_skips_are_logged_with_shard_and_key(tmp_path, monkeypatch):
    warnings = []

    class Recorder:
        def warning(self, message):
            warnings.append(message)

    from faceanalysis.datasets.pretrain import decoding
    monkeypatch.setattr(decoding.MMLogger, 'get_current_instance', lambda: Recorder())
    write_corpus(tmp_path, 1, special={f'000000{i:03d}': dict(jpg=b'junk') for i in range(3)})
    dataset = WebDatasetImageText(str(tmp_path), epochs=1, rank=0, world_size=1, log_first=2)
    assert list(dataset) == []
    assert dataset.skip_counts()['corrupt_image'] == 3
    assert len(warnings) == 2  # the first two only
    assert '00000.tar' in warnings[0] and 'corrupt_image' in warnings[0]
    assert any('000000000' in w for w in warnings)


def test_resampled_stream_is_endless_and_feeds_more_slots_than_shards(tmp_path):
    keys = write_corpus(tmp_path, 2)
    with pytest.raises(ValueError, match='2 shards cannot feed 4 ranks'):
        WebDatasetImageText(str(tmp_path), rank=0, world_size=4)
    dataset = WebDatasetImageText(str(tmp_path), resampled=True, rank=3, world_size=4,
                                  shuffle_buffer=2, shuffle_initial=1)
    stream = [s['key'] for s in itertools.islice(dataset, 50)]
    assert len(stream) == 50 and set(stream) <= set(keys)
    loader = DataLoader(dataset, batch_size=2, num_workers=2)
    assert len(batch_keys(loader, 12)) == 12


def test_too_few_shards_for_workers_is_a_clear_error(tmp_path, monkeypatch):
    write_corpus(tmp_path, 3)
    dataset = WebDatasetImageText(str(tmp_path), rank=1, world_size=2)
    # As in DataLoader worker 0 of 2, without real workers: PyTorch shuts workers that raised
    # down only after a garbage collection and a 5 s wait each.
    monkeypatch.setattr(wds_module, 'get_worker_info',
                        lambda: SimpleNamespace(id=0, num_workers=2))
    with pytest.raises(ValueError, match=r'^3 shards cannot feed 2 ranks x 2 workers; write '
                                         r'more shards or set resampled=True$'):
        next(iter(dataset))


@pytest.mark.parametrize('with_sizes', [True, False], ids=['sizes_json', 'read_through'])
def test_resume_mid_stream_gives_the_uninterrupted_batches(tmp_path, with_sizes):
    """Two workers with epochs of unequal length (shards of 2-4 samples): after k batches a
    fresh dataset with resume point k continues with exactly the same batches (by key)."""
    write_corpus(tmp_path, 6, per_shard=(3, 4, 2, 3, 4, 2), sizes=with_sizes)
    kwargs = dict(urls=str(tmp_path), shuffle_buffer=4, shuffle_initial=2, seed=5, rank=0,
                  world_size=1)
    consumed, following = 9, 6  # 9 batches of 2 = 18 samples: past the first 18-sample epoch
    uninterrupted = batch_keys(DataLoader(WebDatasetImageText(**kwargs), batch_size=2,
                                          num_workers=2), consumed + following)
    resumed_dataset = WebDatasetImageText(**kwargs)
    resumed_dataset.set_resume_point(consumed, batch_size=2, num_workers=2)
    resumed = batch_keys(DataLoader(resumed_dataset, batch_size=2, num_workers=2), following)
    assert resumed == uninterrupted[consumed:]

    # read in the main process (0 workers) with a point set for 2 workers
    with pytest.raises(RuntimeError, match='num_workers=2, but this one has 0'):
        next(iter(resumed_dataset))


def test_resume_in_the_main_process(tmp_path):
    write_corpus(tmp_path, 3)
    kwargs = dict(urls=str(tmp_path), shuffle_buffer=3, shuffle_initial=1, rank=0, world_size=1)
    uninterrupted = batch_keys(DataLoader(WebDatasetImageText(**kwargs), batch_size=2), 8)
    dataset = WebDatasetImageText(**kwargs)
    dataset.set_resume_point(5, batch_size=2, num_workers=0)
    assert batch_keys(DataLoader(dataset, batch_size=2), 3) == uninterrupted[5:]
    dataset.clear_resume_point()
    assert batch_keys(DataLoader(dataset, batch_size=2), 2) == uninterrupted[:2]


def test_num_samples_from_sizes_json_or_argument(tmp_path):
    write_corpus(tmp_path / 'a', 2)
    write_corpus(tmp_path / 'b', 1, sizes=False)
    assert WebDatasetImageText(str(tmp_path / 'a'), world_size=1, rank=0).num_samples == 6
    mixed = WebDatasetImageText(f'{tmp_path}/a::{tmp_path}/b', world_size=1, rank=0)
    with pytest.raises(ValueError, match=r'1 of 3 shard\(s\) are listed in no sizes.json'):
        mixed.num_samples
    explicit = WebDatasetImageText([str(tmp_path / 'a'), str(tmp_path / 'b')], num_samples=9,
                                   world_size=1, rank=0)
    assert explicit.num_samples == 9


def test_bad_arguments(tmp_path):
    write_corpus(tmp_path, 2)
    with pytest.raises(FileNotFoundError, match='00002.tar'):
        WebDatasetImageText(str(tmp_path / '{00000..00002}.tar'), world_size=1, rank=0)
    with pytest.raises(ValueError, match='listed twice'):
        WebDatasetImageText([str(tmp_path), str(tmp_path / '00000.tar')], world_size=1, rank=0)
    with pytest.raises(ValueError, match='text key'):
        WebDatasetImageText(str(tmp_path), text_key='', world_size=1, rank=0)


def test_registered_and_empty_corpus_does_not_hang(tmp_path):
    from faceanalysis.registry import DATASETS
    assert DATASETS.get('WebDatasetImageText') is WebDatasetImageText
    write_shard(tmp_path / '0.tar', [{'__key__': 'k', 'txt': b'no image'}])
    dataset = WebDatasetImageText(str(tmp_path / '0.tar'), world_size=1, rank=0)
    with pytest.raises(RuntimeError, match=f'{wds_module.MAX_EMPTY_EPOCHS} epochs without'):
        next(iter(dataset))
