"""BEiT-style blockwise MIM masks: counts, block shapes, determinism, FaceViT's patch order."""
import math

import numpy as np
import pytest
import torch

from faceanalysis.datasets.transforms.mim_mask import (BlockwiseMaskGenerator, MaskBlock,
                                                        blockwise_mask)
from faceanalysis.models.backbones.vit import FaceViT
from faceanalysis.registry import TRANSFORMS


def _block_cells(block: MaskBlock, width: int) -> set:
    return {(block.top + r) * width + block.left + c
            for r in range(block.height) for c in range(block.width)}


def test_counts_never_exceed_the_target_and_average_close_to_it():
    rng = np.random.default_rng(0)
    counts = np.array([blockwise_mask(14, 75, rng).sum() for _ in range(400)])
    assert counts.max() <= 75
    assert counts.mean() >= 0.95 * 75
    tiny = np.array([blockwise_mask(4, 6, rng, min_num_patches=2).sum() for _ in range(200)])
    assert tiny.max() <= 6 and tiny.mean() >= 0.95 * 6
    assert not blockwise_mask(14, 0, rng).any()


@pytest.mark.parametrize('grid,target,cap', [((14, 14), 75, None), ((14, 14), 75, 30),
                                             ((6, 10), 24, None)])
def test_blocks_are_axis_aligned_rectangles_within_aspect_bounds(grid, target, cap):
    rng = np.random.default_rng(1)
    height, width = grid
    lo, hi = 0.3, 1 / 0.3
    min_patches = 16 if grid == (14, 14) else 4
    for _ in range(100):
        mask, blocks = blockwise_mask(grid, target, rng, min_num_patches=min_patches,
                                      max_num_patches=cap, return_blocks=True)
        assert mask.dtype == np.bool_ and mask.shape == (height * width, )
        covered, count = set(), 0
        for block in blocks:
            # the drawn aspect ratio is within the bounds, the size is its rounding
            assert lo <= block.aspect_ratio <= hi
            assert block.height == round(math.sqrt(block.target_area * block.aspect_ratio))
            assert block.width == round(math.sqrt(block.target_area / block.aspect_ratio))
            # strictly inside the grid, every cell masked
            assert 1 <= block.height < height and 1 <= block.width < width
            assert block.top + block.height <= height and block.left + block.width <= width
            cells = _block_cells(block, width)
            assert mask[sorted(cells)].all()
            assert block.new_cells == len(cells - covered) > 0
            assert block.new_cells <= (cap or target)
            covered |= cells
            count += block.new_cells
        # the mask is exactly the union of the blocks
        assert covered == set(np.flatnonzero(mask).tolist())
        assert count == mask.sum() <= target


def test_deterministic_given_a_seed():
    first = blockwise_mask(14, 75, np.random.default_rng(123))
    second = blockwise_mask(14, 75, np.random.default_rng(123))
    other = blockwise_mask(14, 75, np.random.default_rng(124))
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_row_major_index_is_facevit_token_order():
    """Mask index n = row * w + col is the patch FaceViT embeds as token 1 + n."""
    height, width, patch = 3, 5, 8  # non-square grid: a transposition would show
    vit = FaceViT(arch=dict(embed_dims=16, num_layers=1, num_heads=2, feedforward_channels=32),
                  img_size=(height * patch, width * patch), patch_size=patch, ln_pre=False,
                  mask_token=True).eval()
    zeros = torch.zeros(1, 3, height * patch, width * patch)
    base, grid = vit.prepare_tokens(zeros)
    assert grid == (height, width)
    row, col = 2, 1
    image = zeros.clone()
    image[..., row * patch:(row + 1) * patch, col * patch:(col + 1) * patch] = 1.
    tokens, _ = vit.prepare_tokens(image)
    changed = (tokens - base).abs().sum(-1)[0].nonzero().flatten().tolist()
    assert changed == [1 + row * width + col]

    # a drawn mask, reshaped row-major, selects exactly the tokens prepare_tokens replaces
    mask, blocks = blockwise_mask((height, width), 6, np.random.default_rng(0),
                                  min_num_patches=2, return_blocks=True)
    assert np.array_equal(mask.reshape(height, width).reshape(-1), mask)
    for index in np.flatnonzero(mask):
        r, c = divmod(int(index), width)
        assert any(b.top <= r < b.top + b.height and b.left <= c < b.left + b.width
                   for b in blocks)
    masked, _ = vit.prepare_tokens(image, mask=torch.from_numpy(mask)[None])
    replaced = (masked - tokens).abs().sum(-1)[0, 1:] > 0
    assert torch.equal(replaced, torch.from_numpy(mask))
    expected = vit.mask_token + vit.positional_embedding[1:][torch.from_numpy(mask)]
    torch.testing.assert_close(masked[0, 1:][torch.from_numpy(mask)], expected)


def test_transform_adds_mask_and_checks_image_size():
    transform = TRANSFORMS.build(dict(type='BlockwiseMaskGenerator', grid_size=4,
                                      num_masking_patches=6, min_num_patches=2, patch_size=8,
                                      seed=7))
    sample = dict(img=np.zeros((32, 32, 3), np.uint8), text='a face', key='k0')
    out = transform(dict(sample))
    assert out['mim_mask'].dtype == np.bool_ and out['mim_mask'].shape == (16, )
    assert 0 < out['mim_mask'].sum() <= 6
    again = BlockwiseMaskGenerator(grid_size=4, num_masking_patches=6, min_num_patches=2, seed=7)
    assert np.array_equal(again(dict(sample))['mim_mask'], out['mim_mask'])
    np.random.seed(0)
    unseeded = BlockwiseMaskGenerator(grid_size=4, num_masking_patches=6, min_num_patches=2)
    first = unseeded(dict(sample))['mim_mask']
    np.random.seed(0)
    assert np.array_equal(unseeded(dict(sample))['mim_mask'], first)
    assert 'BlockwiseMaskGenerator' in repr(transform)
    with pytest.raises(ValueError, match='k1.*24x32'):
        transform(dict(img=np.zeros((24, 32, 3), np.uint8), key='k1'))


@pytest.mark.parametrize('kwargs', [dict(num_masking_patches=300), dict(min_num_patches=0),
                                    dict(min_aspect=0.), dict(max_num_patches=0)])
def test_bad_arguments_raise(kwargs):
    args = dict(grid_size=14, num_masking_patches=75)
    args.update(kwargs)
    with pytest.raises(ValueError):
        BlockwiseMaskGenerator(**args)
