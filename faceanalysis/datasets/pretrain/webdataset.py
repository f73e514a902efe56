"""Streaming image-text pairs from img2dataset / webdataset tar shards (LAION-Face, LAION-400M).

Why our own reader: the ``webdataset`` package is not in our fixed stack, and what pre-training
needs from it is small: read tars as a stream, group members into samples, shuffle, split over
ranks and workers. This module does that with :mod:`tarfile` and adds two things open_clip's
loader lacks: an exact mid-stream resume (:meth:`WebDatasetImageText.set_resume_point`) and
skip counters visible in the main process (:meth:`WebDatasetImageText.skip_counts`).

On-disk format (img2dataset ``--output_format webdataset``, shared/docs/pretrain.md §2.3): each
tar holds members ``{key}.jpg``, ``{key}.txt`` and often ``{key}.json``, the members of a sample
next to each other. A member's key is its path up to the first dot of its base name, the rest is
its extension (lower-cased): ``dir/000123.ofa.txt`` has key ``dir/000123`` and extension
``ofa.txt``. Consecutive members with the same key form one sample; a repeated extension starts
a new sample. Members that are not needed (``.json`` unless a text comes from it) are not read.

The stream of one DataLoader worker (``slot = rank * num_workers + worker``)::

    epoch e = 0, 1, 2, ... (forever, or ``epochs`` times)
      shards = all shards shuffled with a seed of (seed, e)  (the same order on every rank)
               -> split_shards(...)[slot]                    (each shard in exactly one slot)
      samples of these shards, in file order, without the invalid ones (no image member, no or
               an empty caption: skipped and counted)
      -> shuffle buffer seeded by (seed, e, rank, worker)    (holds raw bytes, as open_clip)
      -> [resume: drop the first samples already trained on]
      -> decode the image (cv2; undecodable ones are skipped and counted) -> pipeline -> yield

So in epoch ``e`` every sample of the corpus is given once over all ranks and workers. With
``resampled=True`` each slot instead draws ``ceil(num_shards / slots)`` shards per epoch with
replacement, from an RNG seeded by (seed, e, rank, worker) (open_clip's ``ResampledShards``);
any number of shards then feeds any number of slots. Workers advance through epochs
independently (their shards hold different numbers of samples), which keeps a worker's stream a
function of its slot alone; that is what makes the resume exact.

Resuming a run: MMEngine's ``IterBasedTrainLoop`` creates its DataLoader iterator when the loop
is built (before the checkpoint is loaded) and then skips by fetching, i.e. decoding and
transforming, every trained batch again. To resume exactly and cheaply, a loop must call
:meth:`~WebDatasetImageText.set_resume_point` before it creates the iterator.

A raw sample given to the pipeline follows the pre-training data contract: ``img`` np.uint8
(H, W, 3) RGB, ``text`` str, optional ``text_aux`` str, ``key`` str, ``source`` (shard path).

Config example (LAION-Face 20M subset; batches of 256 per GPU)::

    train_dataloader = dict(
        batch_size=256, num_workers=8, persistent_workers=True, sampler=None,
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='WebDatasetImageText', urls='data/laion_face/{00000..01999}.tar',
                     pipeline=[dict(type='RandomResizedCropImage', size=224),
                               dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                               dict(type='TokenizeText'), dict(type='PackImageText')]))
"""
from __future__ import annotations

import collections
import json
import lzma
import math
import os
import posixpath
import random
import tarfile
import zlib
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence
from typing import Tuple, TypeVar, Union

from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger
from torch.utils.data import IterableDataset, get_worker_info

from faceanalysis.registry import DATASETS

from .decoding import ImageDecodeError, SkipCounter, decode_caption, decode_image_rgb
from .shards import count_samples, expand_urls, load_shard_sizes, split_shards
from .transforms import build_pipeline

__all__ = [
    'WebDatasetImageText', 'iter_tar_samples', 'shuffle_buffered', 'CorruptShardError',
    'IMAGE_KEYS', 'WDS_SKIP_REASONS'
]

#: Image member extensions tried in this order (img2dataset writes ``jpg``).
IMAGE_KEYS = ('jpg', 'png', 'jpeg', 'webp')
#: Reasons a sample is skipped; :meth:`WebDatasetImageText.skip_counts` has one count each.
WDS_SKIP_REASONS = ('missing_image', 'missing_text', 'empty_text', 'missing_aux_text',
                    'empty_aux_text', 'corrupt_image', 'corrupt_tar', 'filtered')
#: A worker that reads this many epochs in a row without one valid sample raises instead of
#: hanging the DataLoader forever.
MAX_EMPTY_EPOCHS = 10
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)

T = TypeVar('T')


class CorruptShardError(RuntimeError):
    """A tar shard could not be read to its end (truncated, not a tar, unreadable)."""


def _split_member_name(name: str) -> Optional[Tuple[str, str]]:
    """``'dir/000123.ofa.txt'`` -> ``('dir/000123', 'ofa.txt')``; ``None`` for names that are
    no sample member (no extension, hidden files such as macOS ``._*``)."""
    directory, base = posixpath.split(name)
    if not base or base.startswith('.') or '.' not in base:
        return None
    stem, extension = base.split('.', 1)
    key = posixpath.join(directory, stem) if directory else stem
    return key, extension.lower()


_COMPRESSION_MAGIC = (b'\x1f\x8b', b'BZh', b'\xfd7zXZ\x00')


def _is_compressed(path: str) -> bool:
    """Whether the file starts with a gzip, bzip2 or xz signature."""
    with open(path, 'rb') as file:
        head = file.read(6)
    return any(head.startswith(magic) for magic in _COMPRESSION_MAGIC)


def iter_tar_samples(path: str, wanted: Iterable[str]) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Stream the samples of one tar (plain or compressed), in file order.

    Args:
        path: the tar file.
        wanted: member extensions whose bytes are read; other members are recorded (their
            extension maps to ``None``) but not read.

    Yields:
        ``(key, {extension: bytes or None})`` per group of consecutive members with one key.

    Raises:
        CorruptShardError: the file cannot be read to its end. Samples completed before the
            damage have been yielded; the one being read when it happened is dropped.
    """
    wanted = frozenset(wanted)
    key: Optional[str] = None
    members: Dict[str, Any] = {}
    try:
        with open(path, 'rb') as file, tarfile.open(fileobj=file, mode='r|*') as tar:
            compressed = _is_compressed(path)
            members_end = 0  # byte after the last member's (block-padded) data
            for info in tar:
                padded_size = -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                members_end = info.offset_data + padded_size
                if not info.isfile():
                    continue
                parsed = _split_member_name(info.name)
                if parsed is None:
                    continue
                member_key, extension = parsed
                if key is not None and (member_key != key or extension in members):
                    yield key, members
                    members = {}
                key = member_key
                members[extension] = (tar.extractfile(info).read()
                                      if extension in wanted else None)
            # tarfile takes a file cut inside a member header for a normal end. An
            # uncompressed tar ends with two zero blocks after its last member; a file too
            # short to hold them was cut (compressed streams detect this themselves).
            if not compressed and os.path.getsize(path) < members_end + 2 * tarfile.BLOCKSIZE:
                raise tarfile.ReadError(f'file ends at byte {os.path.getsize(path)} without '
                                        'the end-of-archive blocks (truncated)')
    except _TAR_ERRORS as error:
        raise CorruptShardError(f'{path}: {type(error).__name__}: {error}') from error
    if key is not None:
        yield key, members


def _take_random(buffer: List[T], rng: random.Random) -> T:
    index = rng.randrange(len(buffer))
    buffer[index], buffer[-1] = buffer[-1], buffer[index]
    return buffer.pop()


def shuffle_buffered(samples: Iterable[T], capacity: int, initial: int,
                     rng: random.Random) -> Iterator[T]:
    """Approximate shuffle of a stream through a buffer of at most ``capacity`` items.

    Nothing leaves until ``initial`` items are in (warm-up). Then the buffer grows by one item
    every second arrival until it holds ``capacity``, and from then on each arrival lets one
    random item out. At the end of the stream the rest leaves in random order. Every item is
    given exactly once; ``capacity <= 1`` passes the stream through unchanged.
    """
    if capacity <= 1:
        yield from samples
        return
    initial = max(1, min(initial, capacity))
    buffer: List[T] = []
    hold_back = False
    for sample in samples:
        buffer.append(sample)
        if len(buffer) < initial:
            continue
        if len(buffer) < capacity:
            hold_back = not hold_back
            if hold_back:
                continue
        yield _take_random(buffer, rng)
    while buffer:
        yield _take_random(buffer, rng)


class _TextSource(NamedTuple):
    """Where a caption comes from: a member (``'txt'``, ``'ofa.txt'``) or a JSON field of a
    member (``'json:caption'`` reads field ``caption`` of the ``.json`` member)."""
    spec: str
    extension: str
    field: Optional[str]

    @classmethod
    def parse(cls, spec: str) -> '_TextSource':
        if not isinstance(spec, str) or not spec.strip('.: '):
            raise ValueError(f'a text key must be a member extension such as "txt" or '
                             f'"json:<field>", got {spec!r}')
        if spec.startswith('json:'):
            field = spec[len('json:'):]
            if not field:
                raise ValueError(f'text key {spec!r} names no JSON field ("json:<field>")')
            return cls(spec, 'json', field)
        return cls(spec, spec.lower().lstrip('.'), None)

    def read(self, members: Dict[str, Any]) -> Optional[str]:
        """The caption, or ``None`` if the member (or JSON field) is absent."""
        data = members.get(self.extension)
        if data is None:
            return None
        if self.field is None:
            return decode_caption(data)
        try:
            value = json.loads(data.decode('utf-8', errors='replace'))
        except ValueError:
            return None
        value = value.get(self.field) if isinstance(value, dict) else None
        return value.strip() if isinstance(value, str) else None


class _RawSample(NamedTuple):
    """A valid sample in the shuffle buffer: the image still encoded."""
    key: str
    source: str
    image: bytes
    text: str
    text_aux: Optional[str]


def _worker_slot() -> Tuple[int, int]:
    """``(worker_id, num_workers)`` of this DataLoader worker; ``(0, 0)`` in the main process."""
    info = get_worker_info()
    return (0, 0) if info is None else (info.id, info.num_workers)


@DATASETS.register_module()
class WebDatasetImageText(IterableDataset):
    """Infinite, deterministic stream of image-text pairs from tar shards (see module doc).

    Args:
        urls: shard spec for :func:`~faceanalysis.datasets.pretrain.shards.expand_urls`
            (brace pattern, ``::``-joined specs, list, directory or glob).
        pipeline: transform configs (or callables), built from our ``TRANSFORMS`` registry.
        num_samples: samples in the corpus (all ranks together); default: the ``sizes.json``
            sum. Only needed to turn epochs into iterations (:attr:`num_samples`).
        resampled: draw shards with replacement (see module doc); also lifts the need for at
            least ``world_size * num_workers`` shards.
        shuffle_shards: shuffle the shard order every epoch (else the spec order is split).
        shuffle_buffer: sample shuffle buffer capacity per worker (open_clip: 5000); ``0``
            or ``1`` turns it off. It holds encoded images: budget about ``shuffle_buffer``
            times the mean image file size of memory per worker.
        shuffle_initial: samples buffered before the first one leaves (open_clip: 1000).
        seed: seed of shard order, resampling and sample shuffle.
        text_key: the caption: a member extension (``'txt'``) or ``'json:<field>'``.
        image_keys: image member extensions, tried in order.
        aux_text_key: optional second caption (ALIP's synthetic one), e.g. ``'ofa.txt'`` or
            ``'json:ofa_caption'``; it becomes ``text_aux``. Samples without it are skipped.
        rank, world_size: default from :func:`mmengine.dist.get_dist_info` (at construction;
            MMEngine builds dataloaders after initialising distributed training).
        epochs: number of passes before the stream ends; ``None`` (default) is infinite, as an
            ``IterBasedTrainLoop`` wants. A finite value is for evaluation or inspection.
        split_mode: ``'strided'`` or ``'contiguous'`` shard split (:func:`split_shards`).
        apply_exif_orientation: passed to
            :func:`~faceanalysis.datasets.pretrain.decoding.decode_image_rgb`.
        log_first: skipped samples logged per reason before only counting.
    """

    def __init__(self,
                 urls: Union[str, Sequence[str]],
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 num_samples: Optional[int] = None,
                 resampled: bool = False,
                 shuffle_shards: bool = True,
                 shuffle_buffer: int = 5000,
                 shuffle_initial: int = 1000,
                 seed: int = 0,
                 text_key: str = 'txt',
                 image_keys: Sequence[str] = IMAGE_KEYS,
                 aux_text_key: Optional[str] = None,
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None,
                 epochs: Optional[int] = None,
                 split_mode: str = 'strided',
                 apply_exif_orientation: bool = True,
                 log_first: int = 5) -> None:
        super().__init__()
        self.shards = expand_urls(urls)
        self.resampled = bool(resampled)
        if not self.resampled:
            counts = collections.Counter(self.shards)
            duplicates = sorted(shard for shard, count in counts.items() if count > 1)
            if duplicates:
                raise ValueError(f'shards listed twice would be read twice per epoch: '
                                 f'{duplicates[:5]}; remove them (or set resampled=True)')
        self.pipeline = build_pipeline(pipeline)
        self.shuffle_shards = bool(shuffle_shards)
        if shuffle_buffer < 0 or shuffle_initial < 0:
            raise ValueError(f'shuffle_buffer ({shuffle_buffer}) and shuffle_initial '
                             f'({shuffle_initial}) must be >= 0')
        self.shuffle_buffer = int(shuffle_buffer)
        self.shuffle_initial = int(shuffle_initial)
        self.seed = int(seed)
        self.text_source = _TextSource.parse(text_key)
        self.aux_text_source = (None if aux_text_key is None
                                else _TextSource.parse(aux_text_key))
        if isinstance(image_keys, str):
            image_keys = image_keys.replace(';', ',').split(',')
        self.image_keys = tuple(k.lower().lstrip('.') for k in image_keys if k)
        if not self.image_keys:
            raise ValueError('image_keys must name at least one image member extension')
        self._wanted = set(self.image_keys) | {self.text_source.extension}
        if self.aux_text_source is not None:
            self._wanted.add(self.aux_text_source.extension)
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else int(rank)
        self.world_size = dist_world if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f'rank {self.rank} is not in [0, world_size={self.world_size})')
        if not self.resampled and len(self.shards) < self.world_size:
            raise ValueError(f'{len(self.shards)} shards cannot feed {self.world_size} ranks; '
                             'write more shards or set resampled=True')
        if epochs is not None and epochs < 1:
            raise ValueError(f'epochs must be None (infinite) or >= 1, got {epochs}')
        self.epochs = epochs
        if split_mode not in ('strided', 'contiguous'):
            raise ValueError(f"split_mode must be 'strided' or 'contiguous', got {split_mode!r}")
        self.split_mode = split_mode
        self.apply_exif_orientation = bool(apply_exif_orientation)
        self.shard_sizes = load_shard_sizes(self.shards)
        self._num_samples = num_samples
        if num_samples is not None:
            count_samples(self.shards, num_samples)  # validates the value now
        self._skips = SkipCounter(WDS_SKIP_REASONS, type(self).__name__, log_first)
        self._resume_point: Optional[Tuple[int, int, int]] = None

    # ----------------------------------------------------------------------- public API
    @property
    def num_samples(self) -> int:
        """Samples of the corpus over all ranks: the ``num_samples`` argument, else the
        ``sizes.json`` sum; raises ``ValueError`` if neither is available. An epoch of a run
        with global batch ``B * world_size`` is ``num_samples // (B * world_size)``
        iterations."""
        return count_samples(self.shards, self._num_samples, self.shard_sizes)

    def __len__(self) -> int:
        """Samples of one epoch on this rank, ``num_samples // world_size``.

        The stream itself is infinite; the length is what MMEngine needs to size epoch-based
        schedules (``Runner.build_param_scheduler`` and ``LoggerHook`` call ``len`` on the
        loader). PyTorch warns when an iterable dataset yields more than its length:
        :class:`~faceanalysis.engine.StreamingIterBasedTrainLoop` switches that check off.
        """
        try:
            return self.num_samples // self.world_size
        except ValueError as error:
            raise TypeError(f'{type(self).__name__} has no length: {error}') from error

    def skip_counts(self) -> Dict[str, int]:
        """``{reason: count}`` of skipped samples of this rank, over all its workers so far
        (reasons: :data:`WDS_SKIP_REASONS`; ``corrupt_tar`` counts damaged shard reads)."""
        return self._skips.counts()

    def set_resume_point(self, consumed_batches: int, batch_size: int, num_workers: int) -> None:
        """Make the next iterators continue after ``consumed_batches`` batches of this rank.

        Call it in the main process *before* the DataLoader iterator (its workers) is created,
        with the DataLoader's ``batch_size`` and ``num_workers``. A DataLoader over an iterable
        dataset lets each worker batch its own stream and hands out batch ``i`` from worker
        ``i % num_workers``. So the old run's worker ``w`` had given ``len(range(w,
        consumed_batches, num_workers))`` batches, and its stream continues after that many
        times ``batch_size`` samples, which are dropped before decoding. The next batch,
        number ``consumed_batches``, was due from worker ``consumed_batches % num_workers``,
        while a new DataLoader starts with worker 0: so new worker ``w'`` continues the stream
        of old worker ``(w' + consumed_batches) % num_workers``. The batches are then those an
        uninterrupted run would give (same keys; random augmentations are drawn anew).

        Cost: the dropped samples are read from the tars but not decoded. Whole epochs are
        skipped without reading when a ``sizes.json`` lists every shard.

        Exactness: the drop counts samples after the checks that need no decoding (image
        member present, caption non-empty). Samples whose image fails to decode (or that a
        transform filtered out) were consumed by the old run without filling a batch; each one
        in the dropped part makes the resumed stream repeat one sample. Likewise, when whole
        epochs are skipped by ``sizes.json``, a count that differs from the valid samples of
        those shards moves the resume point by the difference. Both are a few samples in
        millions for scraped corpora.

        The point stays set for later iterators (a DataLoader re-created at the end of a finite
        stream would resume again): call :meth:`clear_resume_point` if that is not wanted.

        Args:
            consumed_batches: batches this rank has taken from the DataLoader (MMEngine's
                iteration counter, which counts batches also under gradient accumulation).
            batch_size: the DataLoader's batch size (per rank).
            num_workers: the DataLoader's ``num_workers`` (0: the main process reads).
        """
        for name, value, low in (('consumed_batches', consumed_batches, 0),
                                 ('batch_size', batch_size, 1), ('num_workers', num_workers, 0)):
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f'{name} must be an integer >= {low}, got {value!r}')
        self._resume_point = (int(consumed_batches), int(batch_size), int(num_workers))

    def clear_resume_point(self) -> None:
        """Start later iterators from the beginning of the stream again."""
        self._resume_point = None

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        worker_id, num_workers = _worker_slot()
        stream_worker, to_skip = self._resume_slot(worker_id, num_workers)
        for raw in self._raw_samples(stream_worker, max(num_workers, 1), to_skip):
            try:
                image = decode_image_rgb(raw.image, self.apply_exif_orientation)
            except ImageDecodeError as error:
                self._skips.add('corrupt_image', f'{raw.source}: sample {raw.key}: {error}')
                continue
            results = dict(img=image, text=raw.text, key=raw.key, source=raw.source)
            if raw.text_aux is not None:
                results['text_aux'] = raw.text_aux
            output = self.pipeline(results)  # transform errors are bugs: they propagate
            if output is None:
                self._skips.add('filtered', f'{raw.source}: sample {raw.key}: a pipeline '
                                'transform returned None')
                continue
            yield output

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({len(self.shards)} shards, resampled={self.resampled}, '
                f'rank={self.rank}/{self.world_size}, shuffle_buffer={self.shuffle_buffer}, '
                f'seed={self.seed}, epochs={self.epochs})')

    # ------------------------------------------------------------------------- the stream
    def _resume_slot(self, worker_id: int, num_workers: int) -> Tuple[int, int]:
        """``(stream worker, samples to drop)`` for this DataLoader worker (see
        :meth:`set_resume_point`)."""
        if self._resume_point is None:
            return worker_id, 0
        consumed_batches, batch_size, expected_workers = self._resume_point
        if expected_workers != num_workers:
            raise RuntimeError(
                f'the resume point was set for a DataLoader with num_workers='
                f'{expected_workers}, but this one has {num_workers}; the samples a worker '
                'consumed depend on it: use the same num_workers or a consistent resume point')
        num_workers = max(num_workers, 1)
        stream_worker = (worker_id + consumed_batches) % num_workers
        return stream_worker, len(range(stream_worker, consumed_batches, num_workers)) * batch_size

    def _epoch_shards(self, epoch: int, worker_id: int, num_workers: int) -> List[str]:
        """The shards that this rank's worker reads in ``epoch``, in reading order."""
        if self.resampled:
            rng = random.Random(f'{self.seed}/resample/{epoch}/{self.rank}/{worker_id}')
            draws = max(1, math.ceil(len(self.shards) / (self.world_size * num_workers)))
            return [rng.choice(self.shards) for _ in range(draws)]
        order = list(self.shards)
        if self.shuffle_shards:
            random.Random(f'{self.seed}/shards/{epoch}').shuffle(order)
        return split_shards(order, self.rank, self.world_size, worker_id, num_workers,
                            self.split_mode)

    def _skip_whole_epochs(self, to_skip: int, worker_id: int,
                           num_workers: int) -> Tuple[int, int]:
        """Use ``sizes.json`` to jump over the epochs that the skip covers entirely.

        Returns:
            ``(first epoch to read, samples still to drop in it)``.
        """
        epoch = 0
        if to_skip == 0 or len(self.shard_sizes) < len(set(self.shards)):
            return epoch, to_skip
        while self.epochs is None or epoch < self.epochs:
            epoch_size = sum(self.shard_sizes[s]
                             for s in self._epoch_shards(epoch, worker_id, num_workers))
            if epoch_size == 0 or to_skip < epoch_size:
                break
            to_skip -= epoch_size
            epoch += 1
        return epoch, to_skip

    def _raw_samples(self, worker_id: int, num_workers: int,
                     to_skip: int) -> Iterator[_RawSample]:
        """Valid, still-encoded samples of this worker's stream, shuffled, after the skip."""
        epoch, to_drop = self._skip_whole_epochs(to_skip, worker_id, num_workers)
        if to_skip:
            MMLogger.get_current_instance().info(
                f'{type(self).__name__}: rank {self.rank} worker {worker_id} resumes after '
                f'{to_skip} samples: {epoch} epoch(s) skipped by sizes.json, then '
                f'{to_drop} samples read without decoding')
        empty_epochs = 0
        while self.epochs is None or epoch < self.epochs:
            shards = self._epoch_shards(epoch, worker_id, num_workers)
            rng = random.Random(f'{self.seed}/buffer/{epoch}/{self.rank}/{worker_id}')
            stream = (sample for shard in shards for sample in self._read_shard(shard))
            given = 0
            for sample in shuffle_buffered(stream, self.shuffle_buffer, self.shuffle_initial,
                                           rng):
                given += 1
                if to_drop:
                    to_drop -= 1
                    continue
                yield sample
            empty_epochs = empty_epochs + 1 if given == 0 else 0
            if empty_epochs >= MAX_EMPTY_EPOCHS:
                raise RuntimeError(
                    f'{type(self).__name__}: rank {self.rank} worker {worker_id} read '
                    f'{empty_epochs} epochs without a valid sample (last shards: '
                    f'{shards[:5]}); skip counts so far: {self.skip_counts()}')
            epoch += 1

    def _read_shard(self, shard: str) -> Iterator[_RawSample]:
        """The valid samples of one shard; invalid ones and a damaged tar are counted."""
        try:
            for key, members in iter_tar_samples(shard, self._wanted):
                sample = self._validate(shard, key, members)
                if sample is not None:
                    yield sample
        except CorruptShardError as error:
            self._skips.add('corrupt_tar', f'{error}; continuing with the next shard')

    def _validate(self, shard: str, key: str, members: Dict[str, Any]) -> Optional[_RawSample]:
        image = next((members[k] for k in self.image_keys if members.get(k) is not None), None)
        where = f'{shard}: sample {key}'
        if image is None:
            self._skips.add('missing_image', f'{where} has no member of {self.image_keys} '
                            f'(members: {sorted(members)})')
            return None
        text = self.text_source.read(members)
        if text is None:
            self._skips.add('missing_text', f'{where} has no caption {self.text_source.spec!r} '
                            f'(members: {sorted(members)})')
            return None
        if not text:
            self._skips.add('empty_text', f'{where} has an empty caption')
            return None
        text_aux = None
        if self.aux_text_source is not None:
            text_aux = self.aux_text_source.read(members)
            if text_aux is None:
                self._skips.add('missing_aux_text', f'{where} has no second caption '
                                f'{self.aux_text_source.spec!r} (members: {sorted(members)})')
                return None
            if not text_aux:
                self._skips.add('empty_aux_text', f'{where} has an empty second caption')
                return None
        return _RawSample(key, shard, image, text, text_aux)
