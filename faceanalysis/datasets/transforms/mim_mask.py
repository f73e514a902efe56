"""Blockwise patch masks for masked image modelling (BEiT's scheme, used by FaRL).

FaRL corrupts ~40% of the 14 x 14 patches of a 224 input (about 75 of 196) by replacing them with
a learned mask token; the masked patches form rectangular blocks rather than independent cells,
so a masked patch cannot be predicted from an unmasked neighbour alone (pretrain.md §2.1; BEiT's
blockwise masking, [paper, unverified] for FaRL's exact numbers).

Why new code: BEiT's generator uses Python's global ``random`` and hides the blocks it drew;
here the draws come from a ``numpy.random.Generator`` (reproducible per seed, per dataloader
worker) and the blocks can be returned, so tests can check their shapes.

The rule implemented by :func:`blockwise_mask`, on an ``h x w`` grid with target T masked patches,
``lo = min_num_patches``, ``cap = max_num_patches`` (default T) and aspect bounds [a, b]:

1. ``count = 0``. While ``count < T``: ``budget = min(T - count, cap)`` and try to place one
   block, making at most ``max_attempts`` attempts:

   a. area ``A = lo + (budget - lo) * U`` with ``U ~ U[0, 1)`` (uniform between ``lo`` and
      ``budget``, whichever is larger, as BEiT does when the budget drops below ``lo``);
   b. aspect ratio ``r = exp(V)`` with ``V ~ U[ln a, ln b)`` (log-uniform);
   c. block height ``bh = round(sqrt(A * r))``, width ``bw = round(sqrt(A / r))`` (Python's
      ``round``: half to even); the attempt fails unless ``1 <= bh < h`` and ``1 <= bw < w``
      (strictly smaller than the grid, as in BEiT);
   d. top-left corner uniform over the positions that keep the block inside the grid;
   e. ``new`` = cells of the block not masked yet; the block is accepted (all its cells masked)
      iff ``0 < new <= budget``, so the total never exceeds T.

   If no attempt was accepted, stop; else ``count += new``.

2. The result is masked in ``count <= T`` cells (close to T on average: blocks overlapping
   earlier ones only add their new cells, and the loop gives up once small leftovers cannot be
   placed).

Mask convention: a flat ``(h * w,)`` bool array in row-major order, index ``n = row * w + col``,
True = masked. This is :class:`~faceanalysis.models.backbones.FaceViT`'s token order (the patch
embedding is flattened over (row, col)), so ``mim_mask`` feeds ``prepare_tokens(mask=...)`` as is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from faceanalysis.registry import TRANSFORMS

__all__ = ['MaskBlock', 'blockwise_mask', 'BlockwiseMaskGenerator']


@dataclass(frozen=True)
class MaskBlock:
    """One accepted block of :func:`blockwise_mask`, in patch-grid units.

    ``top``/``left`` is the first row/column, ``height``/``width`` the size; ``target_area`` and
    ``aspect_ratio`` are the drawn values the size was rounded from; ``new_cells`` is how many of
    its cells were not masked before.
    """

    top: int
    left: int
    height: int
    width: int
    target_area: float
    aspect_ratio: float
    new_cells: int


def _grid(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'grid_size must be an int or (h, w), got {size}')
    return size


def blockwise_mask(grid_size: Union[int, Sequence[int]], num_masking_patches: int,
                   rng: Optional[np.random.Generator] = None, min_num_patches: int = 16,
                   max_num_patches: Optional[int] = None, min_aspect: float = 0.3,
                   max_aspect: Optional[float] = None, max_attempts: int = 10,
                   return_blocks: bool = False
                   ) -> Union[np.ndarray, Tuple[np.ndarray, List[MaskBlock]]]:
    """Draw a BEiT-style blockwise mask (the rule is in the module docstring).

    Args:
        grid_size: patch grid ``h`` (int, square) or ``(h, w)``.
        num_masking_patches: target number T of masked patches (FaRL / BEiT: 75 of 196).
        rng: source of randomness; default a fresh unseeded ``np.random.default_rng()``.
        min_num_patches: smallest block area drawn (BEiT: 16).
        max_num_patches: largest number of new cells one block may add (default T).
        min_aspect: smallest height/width ratio drawn (BEiT: 0.3).
        max_aspect: largest ratio (default ``1 / min_aspect``).
        max_attempts: attempts to place one block before giving up.
        return_blocks: also return the accepted blocks, in drawing order.

    Returns:
        ``mask`` np.bool_ (h * w,), row-major (``n = row * w + col``), True = masked, with at
        most T True entries; and, if ``return_blocks``, the list of :class:`MaskBlock`.
    """
    height, width = _grid(grid_size)
    num_patches = height * width
    if not 0 <= num_masking_patches <= num_patches:
        raise ValueError(f'num_masking_patches={num_masking_patches} must be in '
                         f'[0, {num_patches}] for a {height}x{width} grid')
    if min_num_patches < 1:
        raise ValueError(f'min_num_patches must be >= 1, got {min_num_patches}')
    if max_num_patches is not None and max_num_patches < 1:
        raise ValueError(f'max_num_patches must be >= 1, got {max_num_patches}')
    cap = num_masking_patches if max_num_patches is None else int(max_num_patches)
    if not min_aspect > 0:
        raise ValueError(f'min_aspect must be > 0, got {min_aspect}')
    max_aspect = 1. / min_aspect if max_aspect is None else max_aspect
    if not min_aspect <= max_aspect:
        raise ValueError(f'need 0 < min_aspect <= max_aspect, got {min_aspect}, {max_aspect}')
    rng = np.random.default_rng() if rng is None else rng
    log_lo, log_hi = math.log(min_aspect), math.log(max_aspect)

    grid = np.zeros((height, width), dtype=bool)
    blocks: List[MaskBlock] = []
    count = 0
    while count < num_masking_patches:
        budget = min(num_masking_patches - count, cap)
        accepted = None
        for _ in range(max_attempts):
            area = min_num_patches + (budget - min_num_patches) * rng.random()
            aspect = math.exp(log_lo + (log_hi - log_lo) * rng.random())
            block_h = int(round(math.sqrt(area * aspect)))
            block_w = int(round(math.sqrt(area / aspect)))
            if not (1 <= block_h < height and 1 <= block_w < width):
                continue
            top = int(rng.integers(0, height - block_h + 1))
            left = int(rng.integers(0, width - block_w + 1))
            window = grid[top:top + block_h, left:left + block_w]
            new_cells = block_h * block_w - int(window.sum())
            if 0 < new_cells <= budget:
                window[...] = True  # a view: marks the block in ``grid``
                accepted = MaskBlock(top, left, block_h, block_w, area, aspect, new_cells)
                break
        if accepted is None:
            break
        blocks.append(accepted)
        count += accepted.new_cells
    mask = grid.reshape(-1)  # C order: n = row * width + col
    return (mask, blocks) if return_blocks else mask


@TRANSFORMS.register_module()
class BlockwiseMaskGenerator(BaseTransform):
    """Add a blockwise MIM mask ``mim_mask`` (np.bool_ (h*w,), row-major) to a sample.

    Put it anywhere in a FaRL pre-training pipeline before ``PackImageText``, which turns the
    mask into a torch.bool tensor; the mask does not depend on the image content.

    Args:
        grid_size: patch grid of the student's input (FaRL: 14 for 224 / 16).
        num_masking_patches: target masked patches per sample (FaRL / BEiT: 75 of 196).
        min_num_patches, max_num_patches, min_aspect, max_aspect, max_attempts: see
            :func:`blockwise_mask`.
        patch_size: if given, each sample's ``img`` must be exactly ``grid_size * patch_size``
            pixels (checked, so a crop-size / mask-size mismatch fails here, by name).
        seed: ``None`` (default) draws each mask from a generator seeded by the global numpy
            state, which MMEngine seeds per dataloader worker and rank. An int makes the stream
            reproducible: the generator is seeded with ``(seed, rank, worker id)``, so workers
            and ranks still draw different masks.
        key: output key.
    """

    def __init__(self, grid_size: Union[int, Sequence[int]] = 14, num_masking_patches: int = 75,
                 min_num_patches: int = 16, max_num_patches: Optional[int] = None,
                 min_aspect: float = 0.3, max_aspect: Optional[float] = None,
                 max_attempts: int = 10, patch_size: Optional[int] = None,
                 seed: Optional[int] = None, key: str = 'mim_mask') -> None:
        self.grid_size = _grid(grid_size)
        self.options = dict(num_masking_patches=int(num_masking_patches),
                            min_num_patches=int(min_num_patches), max_num_patches=max_num_patches,
                            min_aspect=float(min_aspect), max_aspect=max_aspect,
                            max_attempts=int(max_attempts))
        # Validate the arguments now rather than on the first sample of a worker.
        blockwise_mask(self.grid_size, rng=np.random.default_rng(0), **self.options)
        self.patch_size = patch_size
        self.seed = seed
        self.key = key
        self._rng: Optional[np.random.Generator] = None

    def _generator(self) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng(np.random.randint(0, 2**31 - 1))
        if self._rng is None:  # created lazily, i.e. inside the dataloader worker
            import torch.utils.data
            from mmengine.dist import get_rank
            info = torch.utils.data.get_worker_info()
            worker = info.id if info is not None else 0
            self._rng = np.random.default_rng([int(self.seed), get_rank(), worker])
        return self._rng

    def transform(self, results: Dict) -> Dict:
        if self.patch_size is not None and 'img' in results:
            img_h, img_w = np.asarray(results['img']).shape[:2]
            want = (self.grid_size[0] * self.patch_size, self.grid_size[1] * self.patch_size)
            if (img_h, img_w) != want:
                where = results.get('key') or results.get('source') or 'sample'
                raise ValueError(f'BlockwiseMaskGenerator: {where}: image is {img_h}x{img_w} but '
                                 f'the mask grid {self.grid_size} x patch {self.patch_size} needs '
                                 f'{want[0]}x{want[1]}; put the transform after the final crop')
        results[self.key] = blockwise_mask(self.grid_size, rng=self._generator(), **self.options)
        return results

    def __repr__(self) -> str:
        options = ', '.join(f'{name}={value}' for name, value in self.options.items())
        return (f'{self.__class__.__name__}(grid_size={self.grid_size}, {options}, '
                f'patch_size={self.patch_size}, seed={self.seed})')
