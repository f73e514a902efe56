"""FaceParsingSegmentor: FaRL's loss size, inverse-warped predictions, flips and the flip TTA.

A tiny network (FaceViT 4 x 32, Feature2Pyramid, UPerHead 16 channels, BN) on a 64x64 canvas;
the original images are 50x70 and the alignment matrices real similarities with rotation, so the
inverse warp is not a resize.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from faceanalysis.geometry import inverse_warp_logits, similarity_about_center
from faceanalysis.models.segmentors import FaceParsingSegmentor, swap_permutation

CANVAS = (64, 64)
ORI = (50, 70)
NUM_CLASSES = 5
SWAP = [(1, 2), (3, 4)]

pytestmark = pytest.mark.scope('mmseg')


def _cfg(**kwargs):
    cfg = dict(
        type='FaceParsingSegmentor',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[120.0] * 3, std=[60.0] * 3,
                               bgr_to_rgb=True, size=CANVAS),
        backbone=dict(type='FaRL', arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                                             feedforward_channels=64),
                      img_size=32, patch_size=8, out_indices=(0, 1, 2, 3)),
        neck=dict(type='Feature2Pyramid', embed_dim=32, rescales=[4, 2, 1, 0.5],
                  norm_cfg=dict(type='BN')),
        decode_head=dict(type='UPerHead', in_channels=[32] * 4, in_index=[0, 1, 2, 3],
                         channels=16, num_classes=NUM_CLASSES, dropout_ratio=0.,
                         norm_cfg=dict(type='BN'), align_corners=False, init_cfg=None,
                         loss_decode=dict(type='CrossEntropyLoss', avg_non_ignore=False)),
        backbone_input_size=(32, 32),
        swap_pairs=SWAP,
        test_cfg=dict(mode='whole'))
    cfg.update(kwargs)
    return cfg


def _build(**kwargs):
    from mmseg.registry import MODELS  # built through mmseg's registry, as configs do
    torch.manual_seed(0)
    return MODELS.build(_cfg(**kwargs))


def _matrix(seed):
    """A similarity original (50x70) -> canvas (64x64), rotated and shifted."""
    rng = np.random.default_rng(seed)
    scale = np.diag([CANVAS[1] / ORI[1], CANVAS[0] / ORI[0], 1.0])
    return similarity_about_center(CANVAS, rotation=rng.uniform(-0.4, 0.4),
                                   scale=rng.uniform(0.9, 1.2),
                                   shift=tuple(rng.uniform(-3, 3, 2))) @ scale


def _samples(num=2, flip=False, label_shape=CANVAS, wf=0.8):
    samples = []
    for i in range(num):
        sample = SegDataSample()
        meta = dict(img_shape=CANVAS, pad_shape=CANVAS, ori_shape=ORI, align_matrix=_matrix(i),
                    warp_factor=wf, warped_shape=CANVAS, align_src_shape=ORI,
                    img_path=f'img{i}.jpg')
        if flip:
            meta.update(flip=True, flip_direction='horizontal')
        sample.set_metainfo(meta)
        sample.gt_sem_seg = PixelData(data=torch.randint(0, NUM_CLASSES, (1, *label_shape)))
        samples.append(sample)
    return samples


@pytest.fixture(scope='module')
def inputs():
    torch.manual_seed(1)
    return torch.rand(2, 3, *CANVAS) * 4 - 2  # already normalised


def test_registered_in_mmseg():
    from mmseg.registry import MODELS
    assert MODELS.get('FaceParsingSegmentor') is FaceParsingSegmentor


def test_backbone_sees_backbone_input_size(inputs):
    model = _build()
    seen = []
    model.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    feats = model.extract_feat(inputs)
    assert tuple(seen[0][-2:]) == (32, 32)
    # FaRL's resize: bilinear, align_corners=False, no antialias
    expected = model.backbone(F.interpolate(inputs, (32, 32), mode='bilinear',
                                            align_corners=False))
    torch.testing.assert_close(feats[2], expected[2])
    assert [tuple(f.shape[-2:]) for f in feats] == [(16, 16), (8, 8), (4, 4), (2, 2)]


def test_loss_is_ce_on_logits_upsampled_to_the_canvas(inputs):
    model = _build()
    model.train()
    samples = _samples()
    losses = model.loss(inputs, samples)
    feats = model.extract_feat(inputs)
    logits = model.decode_head.forward(feats)
    assert tuple(logits.shape[-2:]) == (16, 16)  # the head's output is smaller than the canvas
    up = F.interpolate(logits, size=CANVAS, mode='bilinear', align_corners=False)
    labels = torch.stack([s.gt_sem_seg.data[0] for s in samples]).long()
    expected = F.cross_entropy(up, labels)  # FaRL: plain mean over pixels and images
    torch.testing.assert_close(losses['decode.loss_ce'], expected, rtol=1e-5, atol=1e-6)
    losses['decode.loss_ce'].backward()
    assert model.backbone.conv1.weight.grad is not None


def test_loss_refuses_unwarped_labels(inputs):
    model = _build()
    model.train()
    with pytest.raises(ValueError, match='warped canvas'):
        model.loss(inputs, _samples(label_shape=ORI))


def _manual_prediction(model, inputs, samples, flip=False):
    metas = [s.metainfo for s in samples]
    logits = model.encode_decode(inputs, metas)
    out = []
    for i, meta in enumerate(metas):
        canvas = logits[i]
        if flip:
            canvas = canvas.flip(-1)[swap_permutation(NUM_CLASSES, SWAP)]
        out.append(inverse_warp_logits(canvas, meta['align_matrix'], meta['warp_factor'], ORI,
                                       CANVAS))
    return out


def test_predict_maps_logits_back_then_argmax(inputs):
    model = _build().eval()
    samples = _samples()
    with torch.no_grad():
        results = model.predict(inputs, _samples())
        expected = _manual_prediction(model, inputs, samples)
    for result, logits in zip(results, expected):
        assert tuple(result.pred_sem_seg.shape) == ORI
        torch.testing.assert_close(result.seg_logits.data, logits)
        assert torch.equal(result.pred_sem_seg.data[0], logits.argmax(0))
        assert result.pred_sem_seg.data.dtype == torch.int64


def test_predict_flipped_sample_unflips_and_swaps(inputs):
    model = _build().eval()
    samples = _samples(flip=True)
    with torch.no_grad():
        results = model.predict(inputs, _samples(flip=True))
        expected = _manual_prediction(model, inputs, samples, flip=True)
    for result, logits in zip(results, expected):
        torch.testing.assert_close(result.seg_logits.data, logits)


def test_predict_without_matrix_resizes_like_mmseg(inputs):
    """Samples of a plain mmseg pipeline (no alignment metainfo): resize to ori_shape."""
    model = _build().eval()
    plain = []
    for _ in range(2):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=CANVAS, pad_shape=CANVAS, ori_shape=ORI))
        plain.append(sample)
    with torch.no_grad():
        results = model.predict(inputs, plain)
        logits = model.encode_decode(inputs, [s.metainfo for s in plain])
    expected = F.interpolate(logits, ORI, mode='bilinear', align_corners=False)
    torch.testing.assert_close(results[0].seg_logits.data, expected[0])


class _SideAwareOracle(torch.nn.Module):
    """A perfect 'network': the input's channel 0 holds a label map with one class per "part"
    (0 bg, 1 eye); it answers 'left eye' (1) or 'right eye' (2) by the image side, as a real
    parser does. Classes 3/4 stay unused."""

    def forward(self, inputs):
        part = inputs[:, 0].round().long()
        width = inputs.shape[-1]
        left = (torch.arange(width) < width / 2).view(1, 1, -1).expand_as(part)
        label = torch.where(part == 1, torch.where(left, 1, 2), 0)
        return F.one_hot(label, NUM_CLASSES).permute(0, 3, 1, 2).float() * 10


def _oracle_model(**kwargs):
    model = _build(**kwargs).eval()
    oracle = _SideAwareOracle()
    model.encode_decode = lambda inputs, metas: oracle(inputs)
    return model


def _eye_image():
    """Canvas with one eye blob on each side; the label is 1 on the left, 2 on the right."""
    image = torch.zeros(1, 3, *CANVAS)
    image[:, 0, 20:30, 8:20] = 1
    image[:, 0, 24:34, 40:56] = 1
    truth = torch.zeros(CANVAS, dtype=torch.long)
    truth[20:30, 8:20] = 1
    truth[24:34, 40:56] = 2
    return image, truth


def _identity_sample(flip=False):
    sample = SegDataSample()
    meta = dict(img_shape=CANVAS, pad_shape=CANVAS, ori_shape=CANVAS, align_matrix=np.eye(3),
                warp_factor=0.0, warped_shape=CANVAS, align_src_shape=CANVAS)
    if flip:
        meta.update(flip=True, flip_direction='horizontal')
    sample.set_metainfo(meta)
    return sample


def test_flipped_sample_keeps_left_and_right_classes_in_place():
    """A pipeline-flipped sample (RandomFlip after TanhWarp) is predicted in the unflipped
    image with left/right classes where they belong; without the swap they would be exchanged
    (mmseg's behaviour, shared/docs/stack.md P13)."""
    image, truth = _eye_image()
    flipped = image.flip(-1)
    result = _oracle_model().predict(flipped, [_identity_sample(flip=True)])[0]
    assert torch.equal(result.pred_sem_seg.data[0], truth)
    unswapped = _oracle_model(swap_pairs=[]).predict(flipped, [_identity_sample(flip=True)])[0]
    assert not torch.equal(unswapped.pred_sem_seg.data[0], truth)


def test_flip_tta_agrees_with_plain_view_only_with_the_swap():
    image, truth = _eye_image()
    tta = _oracle_model(flip_test=True).predict(image, [_identity_sample()])[0]
    assert torch.equal(tta.pred_sem_seg.data[0], truth)
    # probabilities: the two views agree, so the averaged softmax equals the plain one
    plain = _oracle_model().predict(image, [_identity_sample()])[0]
    torch.testing.assert_close(tta.seg_logits.data, plain.seg_logits.data.softmax(0))
    broken = _oracle_model(flip_test=True, swap_pairs=[]).predict(image, [_identity_sample()])[0]
    eyes = truth > 0
    # without the swap each eye gets 50/50 left/right: the argmax no longer follows the side
    assert not torch.equal(broken.pred_sem_seg.data[0][eyes], truth[eyes])


def test_flip_tta_averages_softmax_of_both_views(inputs):
    model = _build(flip_test=True).eval()
    samples = _samples()
    with torch.no_grad():
        results = model.predict(inputs, samples)
        plain = _build().eval()
        plain.load_state_dict(model.state_dict())
        metas = [s.metainfo for s in samples]
        a = plain.encode_decode(inputs, metas).softmax(1)
        b = plain.encode_decode(inputs.flip(-1), metas).flip(-1)
        b = b[:, swap_permutation(NUM_CLASSES, SWAP)].softmax(1)
        probs = (a + b) / 2
    for i, (result, meta) in enumerate(zip(results, metas)):
        expected = inverse_warp_logits(probs[i], meta['align_matrix'], 0.8, ORI, CANVAS)
        torch.testing.assert_close(result.seg_logits.data, expected)
        assert torch.equal(result.pred_sem_seg.data[0], expected.argmax(0))


def test_freeze_backbone_trains_only_neck_and_head(inputs):
    from mmengine.optim import build_optim_wrapper
    model = _build(freeze_backbone=True)
    model.train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2, weight_decay=1e-5),
        paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)})))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.loss(inputs, _samples())
    wrapper.update_params(losses['decode.loss_ce'])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith('backbone.'))
    assert not torch.equal(before['decode_head.conv_seg.weight'],
                           after['decode_head.conv_seg.weight'])
    assert not torch.equal(before['neck.upsample_2x.0.weight'], after['neck.upsample_2x.0.weight'])


def test_swap_permutation_checks_pairs():
    assert swap_permutation(6, [(2, 3), (4, 5)]) == [0, 1, 3, 2, 5, 4]
    with pytest.raises(ValueError, match='outside'):
        swap_permutation(4, [(2, 4)])
    with pytest.raises(ValueError, match='two swap pairs'):
        swap_permutation(6, [(1, 2), (2, 3)])
