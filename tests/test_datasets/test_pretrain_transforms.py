"""Image-text pre-training transforms and image decoding: shapes, dtypes, crop bounds, squash,
short-side crop, mmcv's RandomFlip on our samples, CLIP tokenization, packing."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch

from faceanalysis.datasets.pretrain.decoding import ImageDecodeError, decode_image_rgb
from faceanalysis.datasets.pretrain.transforms import (PackImageText, RandomResizedCropImage,
                                                       ResizeShortCenterCrop, SquashResize,
                                                       TokenizeText, build_pipeline,
                                                       resize_image)


def make_sample(height: int = 40, width: int = 60, **extra) -> dict:
    img = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return dict(img=img, text='a smiling face', key='k0', source='s.tar', **extra)


def test_random_resized_crop_respects_scale_and_ratio():
    transform = RandomResizedCropImage(24, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3))
    np.random.seed(0)
    areas, ratios = [], []
    for _ in range(200):
        top, left, crop_h, crop_w = transform.get_crop_box(100, 120)
        assert 0 <= top and top + crop_h <= 100 and 0 <= left and left + crop_w <= 120
        areas.append(crop_h * crop_w / (100 * 120))
        ratios.append(crop_w / crop_h)
    # rounding to whole pixels moves the bounds by about one pixel
    assert 0.48 <= min(areas) and max(areas) <= 1.0 and max(areas) > 0.9 and min(areas) < 0.6
    assert 0.73 <= min(ratios) and max(ratios) <= 1.36
    out = transform(make_sample())
    assert out['img'].shape == (24, 24, 3) and out['img'].dtype == np.uint8
    assert out['img'].flags['C_CONTIGUOUS'] and out['img_shape'] == (24, 24)
    assert RandomResizedCropImage((16, 32))(make_sample())['img'].shape == (16, 32, 3)


def test_random_resized_crop_falls_back_to_a_centre_crop():
    # scale range that never fits (crop larger than the image): every attempt misses
    transform = RandomResizedCropImage(8, scale=(2.0, 3.0), ratio=(3 / 4, 4 / 3))
    assert transform.get_crop_box(100, 300) == (0, 83, 100, 133)  # ratio clamped to 4/3
    assert transform.get_crop_box(300, 100) == (83, 0, 133, 100)  # ratio clamped to 3/4
    assert transform.get_crop_box(90, 100) == (0, 0, 90, 100)     # ratio inside: whole image
    sample = transform(make_sample(100, 300))
    assert sample['crop_box'] == (83, 0, 216, 100)


def test_squash_resize_ignores_aspect():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 40:] = 255  # right half white
    out = SquashResize(16)(dict(img=img))['img']
    assert out.shape == (16, 16, 3)
    assert out[:, :7].max() == 0 and out[:, 9:].min() == 255  # the halves stay halves


def test_resize_short_center_crop():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 30:50] = 200  # a central band
    out = ResizeShortCenterCrop(20)(dict(img=img))['img']
    assert out.shape == (20, 20, 3)
    # short side 40 -> 20, so the band 30..50 of 80 becomes 15..25 of 40, cropped at 10: 5..15
    assert out[:, 6:14].min() == 200 and out[:, :4].max() == 0 and out[:, 16:].max() == 0
    assert ResizeShortCenterCrop(20)(dict(img=np.zeros((80, 40, 3), np.uint8)))['img'].shape \
        == (20, 20, 3)


def test_antialiased_shrink_has_no_aliasing():
    stripes = np.zeros((480, 480, 3), np.uint8)
    stripes[:, ::3] = 255  # fine vertical stripes, mean 85; a 15x shrink
    smooth = resize_image(stripes, (32, 32), 'bicubic', antialias=True)
    assert np.abs(smooth.astype(float) - 85).max() < 6
    aliased = resize_image(stripes, (32, 32), 'bicubic', antialias=False)
    assert np.abs(aliased.astype(float) - 85).max() > 50  # plain cv2 bicubic hits the gaps
    with pytest.raises(ValueError, match='unknown interpolation'):
        SquashResize(8, interpolation='cubic')


def test_mmcv_random_flip_on_our_sample():
    pipeline = build_pipeline([dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                               dict(type='SquashResize', size=(40, 60))])
    sample = make_sample()
    flipped = pipeline(dict(sample, img=sample['img'].copy()))
    assert np.array_equal(flipped['img'], sample['img'][:, ::-1])
    assert flipped['text'] == sample['text'] and flipped['flip'] is True


def test_tokenize_text_equals_open_clip():
    import open_clip
    sample = make_sample(text_aux='A Synthetic CAPTION, with punctuation!')
    out = TokenizeText(keys=('text', 'text_aux'), context_length=77)(sample)
    for key, text in (('text', 'a smiling face'),
                      ('text_aux', 'A Synthetic CAPTION, with punctuation!')):
        assert out[key].dtype == torch.long and out[key].shape == (77,)
        assert torch.equal(out[key], open_clip.tokenize([text])[0])
    long_text = ' '.join(['face'] * 100)
    short = TokenizeText(context_length=16)(dict(text=long_text))['text']
    assert torch.equal(short, open_clip.tokenize([long_text], context_length=16)[0])
    with pytest.raises(KeyError, match="no 'text_aux'"):
        TokenizeText(keys=('text', 'text_aux'))(make_sample())


def test_pack_image_text_contract():
    sample = make_sample(text_aux='x', mim_mask=np.zeros((2, 3), bool))
    sample['text'] = torch.arange(5)
    sample['text_aux'] = np.arange(5, dtype=np.int32)
    packed = PackImageText()(sample)
    assert set(packed) == {'img', 'text', 'text_aux', 'mim_mask', 'key'}
    assert packed['img'].dtype == torch.uint8 and packed['img'].shape == (3, 40, 60)
    assert packed['img'].is_contiguous()
    assert torch.equal(packed['img'].permute(1, 2, 0), torch.from_numpy(sample['img']))
    assert packed['text'].dtype == torch.long and packed['text_aux'].dtype == torch.long
    assert packed['mim_mask'].dtype == torch.bool and packed['mim_mask'].shape == (6,)
    assert packed['key'] == 'k0'
    with pytest.raises(TypeError, match='still a string; put TokenizeText'):
        PackImageText()(make_sample())
    with pytest.raises(TypeError, match='must be uint8'):
        PackImageText()(dict(img=np.zeros((4, 4, 3), np.float32), text=torch.arange(3)))
    with pytest.raises(KeyError, match='no "text"'):
        PackImageText()(dict(img=np.zeros((4, 4, 3), np.uint8)))
    image_only = PackImageText(with_text=False)(dict(img=np.zeros((4, 4, 3), np.uint8), key='i'))
    assert set(image_only) == {'img', 'key'}


def test_full_pipeline_from_configs():
    pipeline = build_pipeline([
        dict(type='RandomResizedCropImage', size=32),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='TokenizeText', context_length=77), dict(type='PackImageText')])
    out = pipeline(make_sample())
    assert out['img'].shape == (3, 32, 32) and out['text'].shape == (77,)


def _encode(img: np.ndarray, ext: str) -> bytes:
    return cv2.imencode(ext, img)[1].tobytes()


def test_decode_image_rgb_variants():
    bgr = np.zeros((6, 5, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    rgb = decode_image_rgb(_encode(bgr, '.png'))
    assert rgb.shape == (6, 5, 3) and rgb.dtype == np.uint8 and (rgb[..., 2] == 255).all()
    assert rgb[..., :2].max() == 0
    grey = decode_image_rgb(_encode(np.full((4, 4), 77, np.uint8), '.png'))
    assert grey.shape == (4, 4, 3) and (grey == 77).all()
    rgba = np.dstack([bgr, np.zeros((6, 5), np.uint8)])  # fully transparent: colour kept
    assert np.array_equal(decode_image_rgb(_encode(rgba, '.png')), rgb)
    deep = decode_image_rgb(_encode(np.full((4, 4, 3), 65535, np.uint16), '.png'))
    assert deep.dtype == np.uint8 and (deep == 255).all()
    for junk in (b'', b'\xff\xd8\xff garbage', _encode(bgr, '.jpg')[:20]):
        with pytest.raises(ImageDecodeError):
            decode_image_rgb(junk)


def test_decode_cmyk_jpeg():
    Image = pytest.importorskip('PIL.Image')
    buffer = io.BytesIO()
    Image.new('RGB', (8, 8), (200, 30, 10)).convert('CMYK').save(buffer, 'JPEG', quality=95)
    rgb = decode_image_rgb(buffer.getvalue())
    assert rgb.shape == (8, 8, 3)
    assert np.abs(rgb.astype(int) - (200, 30, 10)).max() < 12
