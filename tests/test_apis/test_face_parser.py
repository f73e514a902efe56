"""faceanalysis.apis.FaceParser and demo/face_parsing_demo.py.

The quickstart config (128 canvas, tiny ViT) with random weights saved as a checkpoint: parse()
must give exactly what the test pipeline + model give for the same image and 5 points, in the
original image's pixels.
"""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from faceanalysis.geometry import LAPA_ALIGN_INDICES

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
QUICKSTART = osp.join(ROOT, 'configs', 'quickstart', 'lapa-synthetic_farl-tiny.py')

pytestmark = pytest.mark.scope('mmseg')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Synthetic LaPa (2 test images of 144 px) and a checkpoint of the quickstart model."""
    import faceanalysis.models  # noqa: F401
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from faceanalysis.datasets import LAPA_CLASSES, LAPA_PALETTE, make_synthetic_lapa

    init_default_scope('mmseg')
    root = tmp_path_factory.mktemp('face_parser')
    data = make_synthetic_lapa(str(root / 'LaPa'), dict(train=0, val=0, test=2), image_size=144)
    cfg = Config.fromfile(QUICKSTART)
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    # give BN non-trivial statistics so that eval mode differs from identity
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    ckpt = str(root / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=LAPA_CLASSES,
                                                palette=[list(c) for c in LAPA_PALETTE]))), ckpt)
    return dict(root=root, data=data, ckpt=ckpt, cfg=cfg)


def _sample(data, index=0):
    from faceanalysis.datasets import read_lapa_landmarks
    name = f'test_{index:05d}'
    image = osp.join(data, 'test', 'images', f'{name}.jpg')
    points = read_lapa_landmarks(osp.join(data, 'test', 'landmarks', f'{name}.txt'))
    return image, points[list(LAPA_ALIGN_INDICES)]


@pytest.fixture(scope='module')
def parser(setup):
    from faceanalysis.apis import FaceParser
    return FaceParser(QUICKSTART, setup['ckpt'])


def test_settings_come_from_the_config_and_checkpoint(parser):
    from faceanalysis.datasets import LAPA_CLASSES
    assert parser.warped_shape == (128, 128) and parser.warp_factor == 0.8
    assert parser.align_mode == 'landmarks'
    assert parser.classes == LAPA_CLASSES and len(parser.palette) == 11
    assert not parser.model.training


def test_parse_equals_the_test_pipeline(setup, parser):
    """parse(path, 5 points) == LaPaDataset + test pipeline + model.test_step."""
    import faceanalysis.datasets  # noqa: F401
    from mmseg.registry import DATASETS

    cfg = setup['cfg']
    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.data_root = setup['data']
    dataset = DATASETS.build(dataset_cfg)
    for index in range(2):
        image, points5 = _sample(setup['data'], index)
        label, logits = parser.parse(image, landmarks5=points5, return_logits=True)
        packed = dataset[index]
        with torch.no_grad():
            ref = parser.model.test_step(dict(inputs=[packed['inputs']],
                                              data_samples=[packed['data_samples']]))[0]
        assert label.dtype == np.uint8 and label.shape == (144, 144)
        np.testing.assert_array_equal(label, ref.pred_sem_seg.data[0].numpy())
        np.testing.assert_allclose(logits, ref.seg_logits.data.numpy(), rtol=1e-5, atol=1e-5)


def test_array_inputs_and_channel_order(setup, parser):
    image_path, points5 = _sample(setup['data'])
    bgr = cv2.imread(image_path)
    from_path = parser.parse(image_path, landmarks5=points5)
    np.testing.assert_array_equal(parser.parse(bgr, landmarks5=points5), from_path)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    np.testing.assert_array_equal(parser.parse(rgb, landmarks5=points5, channel_order='rgb'),
                                  from_path)


def test_box_gives_a_square_crop(setup, parser):
    from faceanalysis.apis import box_to_matrix
    from faceanalysis.geometry import apply_matrix

    box = (40.0, 30.0, 100.0, 110.0)  # 60 x 80
    matrix = box_to_matrix(box, (128, 128), box_scale=1.5, box_shift=0.0)
    # a square of 1.5 * 80 = 120 px centred on the box, edges onto the canvas edges
    corners = apply_matrix([[10.0, 10.0], [130.0, 130.0]], matrix)
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [127.5, 127.5]], atol=1e-9)
    shifted = box_to_matrix(box, (128, 128), box_scale=1.5, box_shift=0.25)
    # the crop moves up by 0.25 * 80 = 20 px: the box centre lands lower on the canvas
    centre = apply_matrix([[70.0, 70.0]], shifted)[0]
    np.testing.assert_allclose(centre, [63.5, 63.5 + 20 * 128 / 120], atol=1e-9)

    image_path, _ = _sample(setup['data'])
    label = parser.parse(image_path, box=box)
    assert label.shape == (144, 144) and label.max() < 11


def test_bad_requests_fail_clearly(setup, parser):
    image_path, points5 = _sample(setup['data'])
    with pytest.raises(ValueError, match='pass landmarks5'):
        parser.parse(image_path)  # a landmark-aligned (LaPa) config needs a face position
    with pytest.raises(ValueError, match='5 .x, y. points'):
        parser.parse(image_path, landmarks5=points5[:4])
    with pytest.raises(ValueError, match='not both'):
        parser.parse(image_path, landmarks5=points5, box=(0, 0, 10, 10))
    with pytest.raises(FileNotFoundError, match='cannot read image'):
        parser.parse(str(setup['root'] / 'missing.jpg'), landmarks5=points5)


def test_flip_test_option(setup):
    from faceanalysis.apis import FaceParser
    image_path, points5 = _sample(setup['data'])
    tta = FaceParser(QUICKSTART, setup['ckpt'], cfg_options={'model.flip_test': True})
    assert tta.model.flip_test
    label, probs = tta.parse(image_path, landmarks5=points5, return_logits=True)
    assert label.shape == (144, 144)
    inside = probs.sum(0) > 0.99  # probabilities inside the canvas, 0 outside
    np.testing.assert_allclose(probs.sum(0)[inside], 1.0, atol=1e-4)


def test_demo_writes_overlay(setup, tmp_path):
    image_path, points5 = _sample(setup['data'])
    out = tmp_path / 'overlay.png'
    label_out = tmp_path / 'label.png'
    gt = osp.join(setup['data'], 'test', 'labels', 'test_00000.png')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'demo', 'face_parsing_demo.py'), image_path, QUICKSTART,
         setup['ckpt'], '--landmarks', ','.join(f'{v:.3f}' for v in points5.ravel()),
         '--out', str(out), '--label-out', str(label_out), '--gt', gt],
        capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'overlay written to' in proc.stdout
    panel = cv2.imread(str(out))
    assert panel.shape == (144, 3 * 144, 3)  # image | ground truth | prediction
    label = cv2.imread(str(label_out), cv2.IMREAD_UNCHANGED)
    assert label.shape == (144, 144) and label.max() < 11
