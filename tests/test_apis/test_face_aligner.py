"""FaceAligner (faceanalysis.apis) on a randomly initialised tiny model saved as a checkpoint.

The model is the one of tests/data/configs/alignment_300w-synthetic_tiny.py (a trained one is
exercised by tests/test_tools/test_alignment_e2e.py). Checks the API contract: ``(K, 2)``
landmarks in the original image's pixels, the same for a path and for the BGR array, exactly
translated with the image and the box, checkpoint weights actually loaded, clear errors.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'tests' / 'data' / 'configs' / 'alignment_300w-synthetic_tiny.py'
BOX = (30.0, 40.0, 90.0, 100.0)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    import faceanalysis.models  # noqa: F401
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS

    from faceanalysis.apis.face_aligner import _sync_bn_to_bn

    cfg = Config.fromfile(str(CONFIG))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(_sync_bn_to_bn(cfg.model))
    path = tmp_path_factory.mktemp('aligner') / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return path


@pytest.fixture(scope='module')
def image():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), (0, 0), 3)
    return img


@pytest.fixture(scope='module')
def aligner(checkpoint):
    from faceanalysis.apis import FaceAligner
    return FaceAligner(str(CONFIG), str(checkpoint), device='cpu')


def test_shape_and_path_equals_array(aligner, image, tmp_path):
    points = aligner.align(image, BOX)
    assert points.shape == (68, 2) and points.dtype == np.float64
    assert np.isfinite(points).all()
    assert aligner.num_keypoints == 68
    path = tmp_path / 'face.png'
    cv2.imwrite(str(path), image)
    np.testing.assert_allclose(aligner.align(str(path), BOX), points, atol=1e-5)
    np.testing.assert_allclose(aligner.align(image, list(BOX)), points, atol=1e-6)


def test_landmarks_are_in_original_pixels(aligner, image):
    """Padding the image and moving the box by (dx, dy) moves every landmark by (dx, dy)."""
    dx, dy = 17, 9
    padded = cv2.copyMakeBorder(image, dy, 0, dx, 0, cv2.BORDER_CONSTANT, value=0)
    moved = (BOX[0] + dx, BOX[1] + dy, BOX[2] + dx, BOX[3] + dy)
    np.testing.assert_allclose(aligner.align(padded, moved),
                               aligner.align(image, BOX) + [dx, dy], atol=1e-3)
    # and the predictions lie around the box (soft-argmax stays inside the crop canvas)
    points = aligner.align(image, BOX)
    w = BOX[2] - BOX[0]
    assert (points[:, 0] > BOX[0] - 0.2 * w).all() and (points[:, 0] < BOX[2] + 0.2 * w).all()


def test_checkpoint_weights_are_loaded(checkpoint, image, tmp_path):
    from faceanalysis.apis import FaceAligner
    state = torch.load(str(checkpoint), map_location='cpu', weights_only=False)
    key = next(k for k in state['state_dict'] if k.startswith('head.') and k.endswith('weight')
               and state['state_dict'][k].ndim == 4)
    state['state_dict'][key] = state['state_dict'][key] * 0 + 0.01
    other = tmp_path / 'other.pth'
    torch.save(state, str(other))
    a = FaceAligner(str(CONFIG), str(checkpoint))
    b = FaceAligner(str(CONFIG), str(other))
    assert torch.equal(dict(b.model.named_parameters())[key], state['state_dict'][key])
    assert not np.allclose(a.align(image, BOX), b.align(image, BOX))


def test_bad_input(aligner, image):
    with pytest.raises(ValueError, match='4 finite numbers'):
        aligner.align(image, (1, 2, 3))
    with pytest.raises(ValueError, match='4 finite numbers'):
        aligner.align(image, (1, 2, np.nan, 4))
    with pytest.raises(ValueError, match='x2 > x1'):
        aligner.align(image, (50, 50, 40, 60))
    with pytest.raises(ValueError, match='H x W x 3'):
        aligner.align(image[..., 0], BOX)
