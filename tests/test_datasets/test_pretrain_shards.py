"""Shard specs (brace expansion, ``::``, directories, globs), shard splitting, sizes.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from faceanalysis.datasets.pretrain.shards import (count_samples, expand_braces, expand_urls,
                                                   load_shard_sizes, split_shards)


def touch_shards(root: Path, names) -> list:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_bytes(b'')
    return [str(root / name) for name in names]


@pytest.mark.parametrize('pattern, expected', [
    ('data/{00000..00002}.tar', ['data/00000.tar', 'data/00001.tar', 'data/00002.tar']),
    ('{8..11}', ['8', '9', '10', '11']),
    ('{08..10}', ['08', '09', '10']),
    ('{3..1}', ['3', '2', '1']),
    ('{a,b}-{0..1}', ['a-0', 'a-1', 'b-0', 'b-1']),
    ('{x,y{1..2}}.tar', ['x.tar', 'y1.tar', 'y2.tar']),
    ('plain.tar', ['plain.tar']),
])
def test_expand_braces(pattern, expected):
    assert expand_braces(pattern) == expected


@pytest.mark.parametrize('pattern', ['a{b', 'a}b', '{single}', '{1..x}'])
def test_expand_braces_rejects_bad_groups(pattern):
    with pytest.raises(ValueError, match='brace|unbalanced'):
        expand_braces(pattern)


def test_expand_urls_forms(tmp_path):
    first = touch_shards(tmp_path / 'a', [f'{i:05d}.tar' for i in range(13)])
    second = touch_shards(tmp_path / 'b', ['000.tar', '001.tar', 'notes.txt'])
    assert expand_urls(f'{tmp_path}/a/{{00000..00012}}.tar') == first
    joined = expand_urls(f'{tmp_path}/a/{{00000..00001}}.tar::{tmp_path}/b/{{000,001}}.tar')
    assert joined == first[:2] + second[:2]
    assert expand_urls([str(tmp_path / 'b'), str(tmp_path / 'a' / '00003.tar')]) == \
        second[:2] + [first[3]]
    assert expand_urls(str(tmp_path / 'a' / '0001*.tar')) == first[10:]


def test_expand_urls_errors_name_the_missing_shards(tmp_path):
    touch_shards(tmp_path, ['00000.tar', '00001.tar'])
    with pytest.raises(FileNotFoundError, match=r'2 of 4 shard\(s\).*00002.tar, .*00003.tar'):
        expand_urls(f'{tmp_path}/{{00000..00003}}.tar')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='holds no'):
        expand_urls(str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match='matches no file'):
        expand_urls(f'{tmp_path}/*.tgz')
    with pytest.raises(ValueError, match='remote'):
        expand_urls('s3://bucket/{000..001}.tar')
    with pytest.raises(ValueError, match='empty'):
        expand_urls(' :: ')


@pytest.mark.parametrize('mode', ['strided', 'contiguous'])
def test_split_shards_partitions_among_all_slots(mode):
    shards = [f'{i}.tar' for i in range(11)]
    parts = [split_shards(shards, rank, 2, worker, 3, mode) for rank in range(2)
             for worker in range(3)]
    assert sorted(s for part in parts for s in part) == sorted(shards)
    assert {len(part) for part in parts} == {1, 2}
    if mode == 'strided':
        assert parts[0] == ['0.tar', '6.tar'] and parts[4] == ['4.tar', '10.tar']
    else:
        assert parts[0] == ['0.tar', '1.tar'] and parts[5] == ['10.tar']


def test_split_shards_errors():
    with pytest.raises(ValueError, match='^5 shards cannot feed 2 ranks x 3 workers; write more '
                                         'shards or set resampled=True$'):
        split_shards([f'{i}.tar' for i in range(5)], 0, 2, 0, 3)
    with pytest.raises(ValueError, match='rank 2'):
        split_shards(['a'], 2, 2)
    with pytest.raises(ValueError, match='split mode'):
        split_shards(['a'], 0, 1, mode='random')


def test_sizes_json_and_num_samples(tmp_path):
    shards = touch_shards(tmp_path / 'a', ['0.tar', '1.tar'])
    other = touch_shards(tmp_path / 'b', ['2.tar'])
    (tmp_path / 'a' / 'sizes.json').write_text(json.dumps({'0.tar': 5, '1.tar': 7, 'x.tar': 1}))
    assert load_shard_sizes(shards + other) == {shards[0]: 5, shards[1]: 7}
    assert count_samples(shards) == 12
    assert count_samples(shards + other, num_samples=100) == 100
    with pytest.raises(ValueError, match=r'1 of 3 shard\(s\).*2.tar.*num_samples='):
        count_samples(shards + other)
    (tmp_path / 'b' / 'sizes.json').write_text('{"2.tar": -1}')
    with pytest.raises(ValueError, match='non-negative integer'):
        load_shard_sizes(other)
    (tmp_path / 'b' / 'sizes.json').write_text('[1, 2')
    with pytest.raises(ValueError, match='not readable JSON'):
        load_shard_sizes(other)
