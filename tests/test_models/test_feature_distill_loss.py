"""FeatureDistillLoss (MCF's teacher-feature loss) against a hand-written formula."""
import pytest
import torch

from faceanalysis.models.losses.feature_distill_loss import FeatureDistillLoss
from faceanalysis.registry import MODELS


def layers(seed, count=3, shape=(2, 5, 4)):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(count)]


def direct(preds, targets, dim, weight):
    """sum_l mean((p / ||p||_dim - t / ||t||_dim)^2) * weight, written out."""
    total = 0.
    for pred, target in zip(preds, targets):
        pred = pred / pred.norm(dim=dim, keepdim=True)
        target = target / target.norm(dim=dim, keepdim=True)
        total = total + ((pred - target)**2).sum() / pred.numel()
    return weight * total


@pytest.mark.parametrize('norm_dim', [1, -1])
def test_matches_direct_formula(norm_dim):
    preds, targets = layers(0), layers(1)
    loss = FeatureDistillLoss(norm_dim=norm_dim, loss_weight=1000.)(preds, targets)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    torch.testing.assert_close(loss, direct(preds, targets, norm_dim, 1000.), rtol=1e-5,
                               atol=1e-5)


def test_token_axis_quirk_matters_and_default_is_mcf():
    preds, targets = layers(2), layers(3)
    token_axis = FeatureDistillLoss(loss_weight=1000.)(preds, targets)
    channel_axis = FeatureDistillLoss(norm_dim=-1, loss_weight=1000.)(preds, targets)
    torch.testing.assert_close(token_axis, direct(preds, targets, 1, 1000.))
    assert not torch.allclose(token_axis, channel_axis)
    built = MODELS.build(dict(type='FeatureDistillLoss', norm_dim=1, loss_weight=1000.))
    torch.testing.assert_close(built(preds, targets), token_axis)


def test_target_is_detached_and_bf16_is_upcast():
    preds = [tensor.requires_grad_() for tensor in layers(4)]
    targets = [tensor.requires_grad_() for tensor in layers(5)]
    FeatureDistillLoss()(preds, targets).backward()
    assert all(pred.grad is not None for pred in preds)
    assert all(target.grad is None for target in targets)
    half = FeatureDistillLoss()([p.detach().bfloat16() for p in preds],
                                [t.detach().bfloat16() for t in targets])
    assert half.dtype == torch.float32


def test_bad_inputs_raise():
    loss = FeatureDistillLoss()
    with pytest.raises(ValueError, match='same non-zero number'):
        loss(layers(0, count=2), layers(1, count=3))
    with pytest.raises(ValueError, match='layer 0'):
        loss(layers(0, shape=(2, 5, 4)), layers(1, shape=(2, 6, 4)))
