"""FaRL's face-alignment head: targets, soft-argmax, loss, decoding, a tiny estimator end to end.

farl_protocol.md §3.4 (points back to the image), §4.1 (UPerHead logits, sigmoid, soft-argmax),
§4.2 (BCE against truncated Gaussians on 128^2 + mean Euclidean distance).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import faceanalysis.models  # noqa: F401  (registers the head and the estimator)
from faceanalysis.datasets.transforms import ALIGNMENT_WARP_META_KEYS
from faceanalysis.geometry import transform_points
from faceanalysis.models.heads import FaceHeatmapHead
from faceanalysis.models.utils.heatmap import (denormalize_points, heatmap_targets,
                                               normalize_points, render_truncated_gaussians,
                                               soft_argmax)


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread than on two shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------- targets
def _loop_render(points, size, radius=5.0, sigma=1.25):
    """Direct implementation: every pixel of every channel, max over the channel's points."""
    h, w = size
    out = np.zeros((len(points), h, w))
    for c, channel_points in enumerate(points):
        for px, py in channel_points:
            for y in range(h):
                for x in range(w):
                    r = math.sqrt((x - px) ** 2 + (y - py) ** 2)
                    if r <= radius:
                        out[c, y, x] = max(out[c, y, x], math.exp(-r * r / (2 * sigma * sigma)))
    return out


def test_render_equals_direct_loop():
    size = (20, 24)
    # channel 0: two overlapping points (max wins); 1: on a pixel centre (peak 1);
    # 2: near the border (clipped); 3: outside the grid but within reach; 4: far away
    points = [[(6.3, 7.6), (9.1, 8.2)], [(12.0, 10.0), (12.0, 10.0)], [(0.4, 18.7), (0.4, 18.7)],
              [(-3.0, 5.5), (-3.0, 5.5)], [(60.0, 60.0), (60.0, 60.0)]]
    expected = _loop_render(points, size)
    got = render_truncated_gaussians(torch.tensor(points, dtype=torch.float64), size,
                                     radius=5.0, points_per_channel=True)
    assert got.shape == (5, 20, 24)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
    assert got[1].max() == 1.0 and got[4].max() == 0.0 and got[3].max() > 0
    # one point per channel (FaRL's layout), batched, float32
    single = render_truncated_gaussians(torch.tensor([[p[0] for p in points]]), size)
    assert single.shape == (1, 5, 20, 24) and single.dtype == torch.float32
    np.testing.assert_allclose(single[0].numpy(), _loop_render([p[:1] for p in points], size),
                               atol=1e-6)
    # sigma = R / 4 and the r <= R cut, at R = 5 on the 128 grid (FaRL)
    t = render_truncated_gaussians(torch.tensor([[64.0, 64.0]]), 128)[0]
    assert t[64, 69].item() == pytest.approx(math.exp(-25 / (2 * 1.25 ** 2)))
    assert t[64, 70].item() == 0.0 and t[68, 68].item() == 0.0  # r = 6 and r = 5.66: outside
    edge = math.exp(-25 / (2 * 1.25 ** 2))  # exp(-8): r = 5 is inside
    assert t[67, 68].item() == pytest.approx(edge) and t[68, 67].item() == pytest.approx(edge)
    # non-finite points draw nothing
    assert render_truncated_gaussians(torch.tensor([[float('nan'), 3.0]]), 8).abs().sum() == 0


def test_heatmap_targets_place_normalised_points_on_the_128_grid():
    n = torch.tensor([[[0.5, 0.5], [(10 + 0.5) / 128, (20 + 0.5) / 128]]])
    t = heatmap_targets(n, 128, 5.0)
    assert t.shape == (1, 2, 128, 128)
    # n = 0.5 -> q = 63.5: four pixels share the maximum
    peak = t[0, 0].max()
    assert torch.isclose(t[0, 0, 63:65, 63:65], peak).all()
    assert t[0, 1, 20, 10].item() == 1.0  # q exactly on pixel (10, 20)
    q = denormalize_points(normalize_points(torch.tensor([3.0, 7.0]), 112), 112)
    assert torch.allclose(q, torch.tensor([3.0, 7.0]))


# ---------------------------------------------------------------------------------- soft-argmax
def test_soft_argmax_returns_gaussian_centre():
    """Interior points (>= 3 px from the edge) within 0.05 heatmap px (measured ~1e-3)."""
    rng = np.random.default_rng(0)
    pts = torch.tensor(rng.uniform(3.0, 108.0, (2, 200, 2)))
    maps = render_truncated_gaussians(pts, 112)
    est = denormalize_points(soft_argmax(maps), 112)
    assert (est - pts).abs().max() < 0.05
    # normalisation (x + 0.5) / w with the map's own size, x and y not swapped
    maps = render_truncated_gaussians(torch.tensor([[30.25, 70.5]]), (112, 96))
    np.testing.assert_allclose(soft_argmax(maps)[0].numpy(),
                               [(30.25 + 0.5) / 96, (70.5 + 0.5) / 112], atol=1e-4)


def test_soft_argmax_border_bias_is_inwards():
    """Documented: a blob cut by the map edge decodes inwards (0.55 px on the edge pixel)."""
    pts = torch.tensor([[0.0, 50.0], [1.0, 50.0], [111.0, 50.0], [50.0, -2.0]])
    est = denormalize_points(soft_argmax(render_truncated_gaussians(pts, 112)), 112)
    bias = est - pts
    assert 0.3 < bias[0, 0] < 0.8 and 0.05 < bias[1, 0] < 0.4 and -0.8 < bias[2, 0] < -0.3
    assert est[3, 1] > 0  # outside the map -> decoded inside it
    assert bias[:3, 1].abs().max() < 1e-3  # the other axis is unaffected


# ---------------------------------------------------------------------------------- head
class _Sample:
    """The bits of a PoseDataSample the head reads."""

    def __init__(self, metainfo, transformed=None):
        from mmengine.structures import InstanceData
        self.metainfo = metainfo
        self.gt_instances = InstanceData()
        if transformed is not None:
            self.gt_instances.transformed_keypoints = transformed


def _logits_from_heatmaps(maps: torch.Tensor) -> torch.Tensor:
    """Logits whose sigmoid is ``maps`` (background at sigmoid(-30) ~ 1e-13)."""
    return torch.logit(maps.clamp(1e-13, 1 - 1e-7))


@pytest.mark.scope('mmpose')
def test_head_forward_loss_and_decode():
    torch.manual_seed(0)
    k = 5
    head = FaceHeatmapHead(in_channels=[8, 8, 8, 8], num_keypoints=k, channels=16,
                           dropout_ratio=0.0, heatmap_size=32, nme_indices=(0, 1))
    feats = [torch.randn(2, 8, s, s) for s in (16, 8, 4, 2)]
    logits = head(feats)
    assert logits.shape == (2, k, 16, 16)  # stride of the finest neck level

    canvas = (64, 64)
    rng = np.random.default_rng(1)
    warped = rng.uniform(8, 56, (2, 1, k, 2)).astype(np.float32)
    samples = [_Sample(dict(warped_shape=canvas), warped[i]) for i in range(2)]
    losses = head.loss(feats, samples)
    assert set(losses) == {'loss_heatmap', 'loss_coord', 'dist_px', 'nme_train'}
    assert not losses['dist_px'].requires_grad

    # FaRL's formulas, written out
    gt = (torch.tensor(warped[:, 0]) + 0.5) / 64
    pred = soft_argmax(torch.sigmoid(logits))
    up = F.interpolate(logits, size=(32, 32), mode='bilinear', align_corners=False)
    bce = F.binary_cross_entropy_with_logits(up, heatmap_targets(gt, 32, 5.0))
    assert losses['loss_heatmap'].item() == pytest.approx(bce.item(), rel=1e-5)
    assert losses['loss_coord'].item() == pytest.approx((pred - gt).norm(dim=-1).mean().item(),
                                                        rel=1e-5)
    assert losses['dist_px'].item() == pytest.approx(
        ((pred - gt) * 64).norm(dim=-1).mean().item(), rel=1e-4)
    (losses['loss_heatmap'] + losses['loss_coord']).backward()
    assert head.uper_head.conv_seg.weight.grad.abs().sum() > 0

    head_no_hm = FaceHeatmapHead(in_channels=8, num_keypoints=k, channels=16,
                                 loss_weights=dict(heatmap=0.0))
    assert set(head_no_hm.loss(feats, samples)) == {'loss_coord', 'dist_px'}
    with pytest.raises(KeyError, match='pack_transformed'):
        head.loss(feats, [_Sample(dict(warped_shape=canvas))] * 2)
    with pytest.raises(NotImplementedError):
        head.predict(feats, samples, test_cfg=dict(flip_test=True))
    with pytest.raises(KeyError):
        FaceHeatmapHead(in_channels=8, num_keypoints=k, loss_weights=dict(l1=1.0))

    # decode a perfect heatmap: normalised coordinates are resolution independent, so a 16x16
    # map gives canvas pixels of the 64 canvas, then the original image through M^-1
    matrix = np.array([[1.6, 0.2, -30.0], [-0.2, 1.6, -10.0], [0.0, 0.0, 1.0]])
    original = rng.uniform(30, 45, (k, 2))  # canvas points 24..56 of 64: interior
    canvas_pts = transform_points(original, matrix, canvas, 0.0)
    n = torch.tensor((canvas_pts + 0.5) / 64)
    maps = render_truncated_gaussians(denormalize_points(n, 112), 112)[None].float()
    preds = head.decode(_logits_from_heatmaps(maps),
                        [_Sample(dict(warped_shape=canvas, align_matrix=matrix,
                                      warp_factor=0.0))])
    assert preds[0].keypoints.shape == (1, k, 2) and preds[0].keypoint_scores.shape == (1, k)
    # 0.05 heatmap px = 0.05 * 64 / 112 canvas px, / 1.6 canvas px per image px
    np.testing.assert_allclose(preds[0].keypoints[0], original, atol=0.05 * 64 / 112 / 1.6)
    assert (preds[0].keypoint_scores > 0.5).all()
    # no data samples: normalised canvas coordinates
    np.testing.assert_allclose(head.decode(_logits_from_heatmaps(maps))[0].keypoints[0],
                               n.numpy(), atol=1e-3)


def test_normalised_points_to_image_exact():
    """The head's canvas -> image mapping inverts the pipeline's within 1e-4 px (wf 0 and 0.8)."""
    rng = np.random.default_rng(2)
    matrix = np.array([[2.1, -0.3, -100.0], [0.3, 2.1, -80.0], [0.0, 0.0, 1.0]])
    original = rng.uniform(40, 120, (68, 2))
    for wf in (0.0, 0.8):
        warped = transform_points(original, matrix, (512, 512), wf)
        meta = dict(warped_shape=(512, 512), align_matrix=matrix, warp_factor=wf)
        back = FaceHeatmapHead.to_image_points((warped + 0.5) / 512, meta)
        assert np.abs(back - original).max() < 1e-4
    # no matrix: canvas pixels
    np.testing.assert_allclose(FaceHeatmapHead.to_image_points([[0.5, 0.25]], dict(
        img_shape=(64, 32))), [[15.5, 15.5]])


# ---------------------------------------------------------------------------------- estimator
CANVAS = (128, 128)
EMBED = 32


def _tiny_estimator():
    from faceanalysis.registry import MODELS
    return MODELS.build(dict(
        type='FaceAlignmentEstimator',
        backbone_input_size=(64, 64),
        data_preprocessor=dict(type='PoseDataPreprocessor',
                               mean=[122.7709383, 116.7460125, 104.0937362],
                               std=[68.5005327, 66.6321579, 70.323163], bgr_to_rgb=True),
        backbone=dict(type='FaRL', arch=dict(embed_dims=EMBED, num_layers=4, num_heads=4,
                                             feedforward_channels=64),
                      img_size=64, patch_size=8, out_indices=(0, 1, 2, 3)),
        neck=dict(type='mmseg.Feature2Pyramid', embed_dim=EMBED, rescales=[4, 2, 1, 0.5],
                  norm_cfg=dict(type='BN', requires_grad=True)),
        head=dict(type='FaceHeatmapHead', in_channels=[EMBED] * 4, num_keypoints=68, channels=32,
                  dropout_ratio=0.0, norm_cfg=dict(type='BN', requires_grad=True),
                  nme_indices=(36, 45)),
        test_cfg=dict()))


def _pipelines():
    common = [dict(type='LoadImage')]
    train = common + [
        dict(type='FaceBoxCropMatrix', target_shape=CANVAS, face_scale=1.0),
        dict(type='RandomFaceAffine', target_shape=CANVAS, shift=0.05, rotation=0.174,
             scale=0.1, scale_mu=0.8, distribution='uniform'),
        dict(type='TanhWarp', warped_shape=CANVAS, warp_factor=0.0),
        dict(type='RandomOcclusion'), dict(type='NoiseFusion', prob=0.5),
        dict(type='RandomGray', prob=0.1), dict(type='RandomGamma'),
        dict(type='RandomBoxBlur', max_ratio=0.01),
        dict(type='PackPoseInputs', meta_keys=ALIGNMENT_WARP_META_KEYS, pack_transformed=True),
    ]
    test = common + [
        dict(type='FaceBoxCropMatrix', target_shape=CANVAS, face_scale=0.8),
        dict(type='TanhWarp', warped_shape=CANVAS, warp_factor=0.0),
        dict(type='PackPoseInputs', meta_keys=ALIGNMENT_WARP_META_KEYS, pack_transformed=True),
    ]
    return train, test


@pytest.mark.scope('mmpose')
def test_tiny_estimator_trains_and_predicts_in_original_pixels(tmp_path, one_thread):
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import OptimWrapper

    from faceanalysis.datasets import IBUG300WDataset, make_synthetic_300w
    from faceanalysis.evaluation.metrics import FaceAlignmentMetric

    np.random.seed(0)
    torch.manual_seed(0)
    root = make_synthetic_300w(str(tmp_path / '300w'), dict(train=4, common=2, challenging=1),
                               image_size=96)
    train_pipeline, test_pipeline = _pipelines()
    train_set = IBUG300WDataset(data_root=root, split='train', pipeline=train_pipeline)
    test_set = IBUG300WDataset(data_root=root, split='full', pipeline=test_pipeline)
    batch = pseudo_collate([train_set[i] for i in range(4)])

    model = _tiny_estimator()
    model.init_weights()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-5))
    model.train()
    history = []
    for _ in range(30):
        log = model.train_step(batch, optim)
        assert {'loss', 'loss_heatmap', 'loss_coord', 'dist_px', 'nme_train'} <= set(log)
        history.append(float(log['loss'].detach()))
    assert all(math.isfinite(v) for v in history)
    assert np.mean(history[-3:]) < 0.8 * np.mean(history[:3]), history

    # predict: (1, K, 2) in original image pixels, with scores
    model.eval()
    test_batch = pseudo_collate([test_set[i] for i in range(len(test_set))])
    with torch.no_grad():
        outputs = model.test_step(test_batch)
    for out in outputs:
        pred = out.pred_instances
        assert pred.keypoints.shape == (1, 68, 2) and pred.keypoint_scores.shape == (1, 68)
        assert pred.keypoints_visible.shape == (1, 68)
        np.testing.assert_allclose(pred.bboxes, out.face_box)  # original-pixel box
        # predictions live in the 96x96 original image, not on the 128 canvas
        assert np.isfinite(pred.keypoints).all()

    # a perfect heatmap through the whole estimator comes back on the ground truth
    head = model.head
    real_forward = head.forward

    def perfect_forward(feats):
        logits = real_forward(feats)
        size = logits.shape[-1]
        gt = torch.stack([
            normalize_points(torch.as_tensor(s.gt_instances.transformed_keypoints[0]), CANVAS)
            for s in test_batch['data_samples']])
        maps = render_truncated_gaussians(denormalize_points(gt, size), size)
        return _logits_from_heatmaps(maps.float())

    head.forward = perfect_forward
    try:
        with torch.no_grad():
            outputs = model.test_step(test_batch)
    finally:
        head.forward = real_forward
    metric = FaceAlignmentMetric(dataset='300w')
    metric.dataset_meta = test_set.metainfo
    metric.process(test_batch, outputs)
    for out in outputs:
        gt = np.asarray(out.gt_keypoints, dtype=np.float64).reshape(68, 2)
        pred = out.pred_instances.keypoints[0]
        # head map of 32 px on a 128 canvas for a box of ~1.25 x face size: 1 heatmap px is
        # about 4 canvas px and < 1.5 original px here; interior points are within 0.05 map px
        box = np.asarray(out.face_box, dtype=np.float64).reshape(4)
        map_px = (box[2] - box[0]) / 0.8 / 32
        assert np.abs(pred - gt).max() < 0.05 * map_px, np.abs(pred - gt).max() / map_px
    results = metric.compute_metrics(metric.results)
    assert results['nme'] < 0.05  # percent: a perfect heatmap gives ~0


@pytest.mark.scope('mmpose')
def test_estimator_registered_and_does_not_remap_with_input_center():
    from mmengine.structures import InstanceData
    from mmpose.registry import MODELS as POSE_MODELS
    from mmpose.structures import PoseDataSample

    assert POSE_MODELS.get('FaceHeatmapHead') is FaceHeatmapHead
    assert POSE_MODELS.get('FaceAlignmentEstimator') is not None
    model = _tiny_estimator()
    sample = PoseDataSample(metainfo=dict(input_center=np.array([5.0, 5.0]),
                                          input_scale=np.array([2.0, 2.0]),
                                          input_size=(128, 128)))
    sample.gt_instances = InstanceData(bboxes=np.zeros((1, 4)), bbox_scores=np.ones(1))
    pred = InstanceData(keypoints=np.full((1, 68, 2), 10.0, np.float32),
                        keypoint_scores=np.ones((1, 68), np.float32))
    out = model.add_pred_to_datasample([pred], None, [sample])[0]
    np.testing.assert_array_equal(out.pred_instances.keypoints, 10.0)
    model.test_cfg = dict(output_keypoint_indices=[36, 45])
    pred = InstanceData(keypoints=np.zeros((1, 68, 2), np.float32),
                        keypoint_scores=np.ones((1, 68), np.float32))
    out = model.add_pred_to_datasample([pred], None, [sample])[0]
    assert out.pred_instances.keypoints.shape == (1, 2, 2)
