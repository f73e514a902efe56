"""Shard lists of tar corpora: expanding specs, splitting shards over ranks/workers, sample counts.

img2dataset writes a corpus as numbered tar shards (``00000.tar``, ``00001.tar`` ...), and
webdataset/open_clip name them with brace specs such as ``laion-face/{00000..00012}.tar``. We do
not depend on the ``webdataset`` package (it is not in our fixed stack), so this module gives
the few pieces of it that a streaming dataset needs, written for local files:

* :func:`expand_urls`: brace expansion (numeric ranges keep their zero padding, comma lists),
  several specs joined by ``::`` or given as a list, a directory (its ``*.tar``) or a glob;
  every shard must exist.
* :func:`split_shards`: the shards one (rank, worker) slot reads in an epoch.
* :func:`load_shard_sizes` / :func:`count_samples`: sample counts from ``sizes.json`` files next
  to the shards (open_clip's convention: ``{"00000.tar": 9876, ...}``) or an explicit number.
"""
from __future__ import annotations

import glob
import json
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Union

__all__ = [
    'expand_braces', 'expand_urls', 'split_shards', 'load_shard_sizes', 'count_samples',
    'SIZES_FILE'
]

#: Per-directory file with ``{shard_basename: number_of_samples}``.
SIZES_FILE = 'sizes.json'
SHARD_SUFFIX = '.tar'
_RANGE = re.compile(r'^(-?\d+)\.\.(-?\d+)$')
_GLOB_CHARS = frozenset('*?[')
_SHOW = 5  # paths listed in an error before "... and N more"


def _listing(items: Sequence[str]) -> str:
    shown = ', '.join(items[:_SHOW])
    return shown + (f' ... and {len(items) - _SHOW} more' if len(items) > _SHOW else '')


def _matching_brace(text: str, start: int) -> int:
    depth = 0
    for pos in range(start, len(text)):
        if text[pos] == '{':
            depth += 1
        elif text[pos] == '}':
            depth -= 1
            if depth == 0:
                return pos
    raise ValueError(f'unbalanced "{{" at position {start} in {text!r}')


def _split_top_level_commas(body: str) -> List[str]:
    parts, depth, begin = [], 0, 0
    for pos, char in enumerate(body):
        if char == '{':
            depth += 1
        elif char == '}':
            depth -= 1
        elif char == ',' and depth == 0:
            parts.append(body[begin:pos])
            begin = pos + 1
    parts.append(body[begin:])
    return parts


def _numeric_range(first: str, last: str) -> List[str]:
    """Bash-style ``first..last`` (either direction). Zero padding is kept: if a bound is
    written with a leading zero, every number is padded to the longer bound's width."""

    def padded(bound: str) -> bool:
        digits = bound.lstrip('-')
        return len(digits) > 1 and digits.startswith('0')

    width = max(len(first), len(last)) if padded(first) or padded(last) else 0
    start, stop = int(first), int(last)
    step = 1 if stop >= start else -1
    return [str(n).zfill(width) for n in range(start, stop + step, step)]


def expand_braces(pattern: str) -> List[str]:
    """Expand every ``{...}`` group of ``pattern``, left to right.

    A group is a numeric range ``{00000..00012}`` (zero padding kept) or a comma list
    ``{a,b,c}`` whose items may hold groups themselves. Anything else in braces is an error,
    since a shard spec never means literal braces.

    Example:
        >>> expand_braces('data/{00..02}.tar')
        ['data/00.tar', 'data/01.tar', 'data/02.tar']
        >>> expand_braces('{a,b}/{1..2}')
        ['a/1', 'a/2', 'b/1', 'b/2']
    """
    start = pattern.find('{')
    if start < 0:
        if '}' in pattern:
            raise ValueError(f'unbalanced "}}" in {pattern!r}')
        return [pattern]
    end = _matching_brace(pattern, start)
    head, body, tail = pattern[:start], pattern[start + 1:end], pattern[end + 1:]
    if '}' in head:
        raise ValueError(f'unbalanced "}}" in {pattern!r}')
    numeric = _RANGE.match(body)
    if numeric:
        options = _numeric_range(*numeric.groups())
    else:
        options = _split_top_level_commas(body)
        if len(options) < 2:
            raise ValueError(f'unsupported brace group {{{body}}} in {pattern!r}: expected a '
                             'numeric range {first..last} or a comma list {a,b}')
    tails = expand_braces(tail)
    return [head + option + rest for alternative in options
            for option in expand_braces(alternative) for rest in tails]


def _expand_one(item: str) -> List[str]:
    """One spec (no ``::``) to existing shard paths; missing literal paths are kept (reported
    together by the caller)."""
    paths = []
    for path in expand_braces(osp.expanduser(item)):
        if osp.isdir(path):
            found = sorted(glob.glob(osp.join(glob.escape(path), '*' + SHARD_SUFFIX)))
            if not found:
                raise FileNotFoundError(f'shard directory {path} holds no *{SHARD_SUFFIX} file')
            paths.extend(found)
        elif _GLOB_CHARS & set(path):
            found = sorted(p for p in glob.glob(path) if osp.isfile(p))
            if not found:
                raise FileNotFoundError(f'shard pattern {path} matches no file')
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def expand_urls(spec: Union[str, Sequence[str]]) -> List[str]:
    """Shard paths of a spec, in order.

    Args:
        spec: a string or a list of strings. A string may join several specs with ``::``
            (open_clip's separator). Each spec is brace-expanded (:func:`expand_braces`); an
            expanded path that is a directory stands for its ``*.tar`` files (sorted, not
            recursive), one with ``* ? [`` is a glob (sorted matches).

    Returns:
        Local file paths, in spec order (duplicates kept: the caller decides).

    Raises:
        FileNotFoundError: naming the shards that do not exist, an empty directory, or a glob
            without matches.
        ValueError: an empty spec, a remote URL (only local files are read) or a bad brace.

    Example:
        >>> expand_urls('laion_face/{00000..00012}.tar::extra/{000..003}.tar')  # doctest: +SKIP
    """
    if isinstance(spec, str):
        items = spec.split('::')
    elif isinstance(spec, Sequence) and all(isinstance(s, str) for s in spec):
        items = [part for s in spec for part in s.split('::')]
    else:
        raise TypeError(f'shard spec must be a string or a list of strings, got {spec!r}')
    items = [item.strip() for item in items if item.strip()]
    if not items:
        raise ValueError(f'empty shard spec {spec!r}')
    for item in items:
        if '://' in item or item.startswith('pipe:'):
            raise ValueError(f'shard spec {item!r} is remote; only local files are read '
                             '(mount the bucket, or copy the shards)')
    paths = [path for item in items for path in _expand_one(item)]
    missing = [path for path in paths if not osp.isfile(path)]
    if missing:
        raise FileNotFoundError(f'{len(missing)} of {len(paths)} shard(s) of {spec!r} do not '
                                f'exist: {_listing(missing)}')
    return paths


def split_shards(shards: Sequence[str], rank: int, world_size: int, worker_id: int = 0,
                 num_workers: int = 1, mode: str = 'strided') -> List[str]:
    """The shards that one (rank, worker) slot reads.

    The ``world_size * num_workers`` slots are numbered ``slot = rank * num_workers +
    worker_id``. Every shard goes to exactly one slot, so one pass of all slots over their
    shards reads each sample once.

    Args:
        shards: the (already shuffled, if wanted) shard list; the same on every rank.
        rank, world_size: this process's rank and the number of ranks.
        worker_id, num_workers: the DataLoader worker and the number of workers (a loader
            without workers is one worker: ``worker_id=0, num_workers=1``).
        mode: ``'strided'``: slot ``s`` gets ``shards[s::slots]``; ``'contiguous'``: slot ``s``
            gets the ``s``-th of ``slots`` consecutive chunks whose lengths differ by at most
            one (FLIP's per-host split). Both give every slot ``floor`` or ``ceil`` of
            ``len(shards) / slots`` shards.

    Raises:
        ValueError: fewer shards than slots (some slot would read nothing, and a rank whose
            workers have no data stalls the others), or bad indices/mode.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f'rank {rank} is not in [0, world_size={world_size})')
    if num_workers < 1 or not 0 <= worker_id < num_workers:
        raise ValueError(f'worker_id {worker_id} is not in [0, num_workers={num_workers})')
    slots = world_size * num_workers
    if len(shards) < slots:
        raise ValueError(f'{len(shards)} shards cannot feed {world_size} ranks x {num_workers} '
                         'workers; write more shards or set resampled=True')
    slot = rank * num_workers + worker_id
    if mode == 'strided':
        return list(shards[slot::slots])
    if mode == 'contiguous':
        base, extra = divmod(len(shards), slots)
        start = slot * base + min(slot, extra)
        return list(shards[start:start + base + (slot < extra)])
    raise ValueError(f"split mode must be 'strided' or 'contiguous', got {mode!r}")


def load_shard_sizes(shards: Sequence[str]) -> Dict[str, int]:
    """Sample counts of the shards that a ``sizes.json`` next to them lists.

    Each shard's directory may hold ``sizes.json`` = ``{shard_basename: count}`` (open_clip's
    convention; img2dataset's per-shard ``*_stats.json`` can be summarised into it). Shards that
    no file lists are absent from the result.

    Returns:
        ``{shard_path: count}`` for the listed shards.

    Raises:
        ValueError: a ``sizes.json`` that is not a JSON object of non-negative integers.
    """
    by_dir: Dict[str, Optional[dict]] = {}
    sizes = {}
    for shard in shards:
        directory = osp.dirname(osp.abspath(shard))
        if directory not in by_dir:
            by_dir[directory] = _read_sizes_file(osp.join(directory, SIZES_FILE))
        table = by_dir[directory]
        if table is not None and osp.basename(shard) in table:
            sizes[shard] = table[osp.basename(shard)]
    return sizes


def _read_sizes_file(path: str) -> Optional[Dict[str, int]]:
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as file:
            table = json.load(file)
    except (OSError, ValueError) as error:
        raise ValueError(f'{path} is not readable JSON: {error}') from error
    if not isinstance(table, dict):
        raise ValueError(f'{path} must hold a JSON object {{shard_name: count}}, got '
                         f'{type(table).__name__}')
    for name, count in table.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f'{path}: the count of {name!r} must be a non-negative integer, '
                             f'got {count!r}')
    return table


def count_samples(shards: Sequence[str], num_samples: Optional[int] = None,
                  sizes: Optional[Dict[str, int]] = None) -> int:
    """Number of samples in ``shards``: ``num_samples`` if given, else the ``sizes.json`` sum.

    Args:
        shards: shard paths.
        num_samples: an explicit count (wins over ``sizes.json``).
        sizes: the result of :func:`load_shard_sizes` if already read.

    Raises:
        ValueError: no explicit count and some shards are in no ``sizes.json``.
    """
    if num_samples is not None:
        if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f'num_samples must be a positive integer, got {num_samples!r}')
        return int(num_samples)
    sizes = load_shard_sizes(shards) if sizes is None else sizes
    unlisted = [shard for shard in shards if shard not in sizes]
    if unlisted:
        raise ValueError(f'the number of samples is unknown: {len(unlisted)} of {len(shards)} '
                         f'shard(s) are listed in no {SIZES_FILE} next to them '
                         f'({_listing(unlisted)}); pass num_samples= or write {SIZES_FILE} '
                         '({"<shard>.tar": count, ...})')
    return sum(sizes[shard] for shard in shards)

