"""MIM targets from a frozen teacher: features, codebook ids, losses, checkpoints, statistics."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceanalysis.models.face_clip import FaceCLIP
from faceanalysis.models.mim_targets import (CodebookTokenizer, TeacherFeatureTarget,
                                             load_codebook)
from faceanalysis.registry import MODELS

VISION = dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
              img_size=32, patch_size=8)
TEACHER = dict(type='FaceViT', **VISION)


def _images(batch=2, seed=0):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _perturbed(module, seed=0):
    """LayerNorm weights are 1 and biases 0 at init; random values make the checks stricter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return module


def _manual_tokens(teacher, images, layer, layer_norm=True):
    tokens, _ = teacher.prepare_tokens(images)
    for block in teacher.transformer.resblocks[:layer + 1]:
        tokens = block(tokens)
    patches = tokens[:, 1:]
    return F.layer_norm(patches, patches.shape[-1:], eps=1e-6) if layer_norm else patches


@pytest.mark.parametrize('layer', [-1, 0])
def test_codebook_ids_are_argmax_cosine(layer):
    target = MODELS.build(dict(type='CodebookTokenizer', teacher=TEACHER, vocab_size=37, seed=3,
                               layer=layer, allow_random_init=True))
    _perturbed(target.teacher)
    images = _images()
    ids = target(images)
    assert ids.dtype == torch.long and ids.shape == (2, 16)
    assert target.num_outputs == 37 and target.discrete
    with torch.no_grad():
        features = _manual_tokens(target.teacher.vit, images, layer % 2)
    cosine = F.normalize(features, dim=-1) @ target.codebook.t()  # rows are unit vectors
    assert torch.equal(ids, cosine.argmax(dim=-1))
    torch.testing.assert_close(target.codebook.norm(dim=1), torch.ones(37))
    # the generated codebook depends on the seed only
    again = CodebookTokenizer(teacher=TEACHER, vocab_size=37, seed=3, allow_random_init=True)
    assert torch.equal(again.codebook, target.codebook)


def test_codebook_files(tmp_path):
    table = torch.randn(11, 32, generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / 'codes.npy', table.numpy())
    torch.save({'codebook': table, 'step': torch.tensor(3)}, tmp_path / 'codes.pth')
    torch.save({'a': table, 'b': table}, tmp_path / 'ambiguous.pth')
    for name in ('codes.npy', 'codes.pth'):
        target = CodebookTokenizer(teacher=TEACHER, codebook=str(tmp_path / name),
                                   vocab_size=11, allow_random_init=True)
        torch.testing.assert_close(target.codebook, F.normalize(table, dim=1))
        assert target.num_outputs == 11
    assert torch.equal(load_codebook(str(tmp_path / 'ambiguous.pth'), key='b'), table)
    with pytest.raises(KeyError, match='ambiguous.pth'):
        load_codebook(str(tmp_path / 'ambiguous.pth'))
    np.save(tmp_path / 'wide.npy', torch.randn(11, 48).numpy())
    with pytest.raises(ValueError, match='wide.npy.*48-d'):
        CodebookTokenizer(teacher=TEACHER, codebook=str(tmp_path / 'wide.npy'), vocab_size=11,
                          allow_random_init=True)
    with pytest.raises(ValueError, match='11 entries'):
        CodebookTokenizer(teacher=TEACHER, codebook=str(tmp_path / 'codes.npy'),
                          vocab_size=8192, allow_random_init=True)


def test_feature_target_is_frozen_layer_normed_teacher_tokens():
    target = TeacherFeatureTarget(teacher=TEACHER, allow_random_init=True)
    _perturbed(target.teacher)
    images = _images()
    features = target(images)
    assert features.dtype == torch.float32 and features.shape == (2, 16, 32)
    assert target.num_outputs == 32 and not target.discrete
    with torch.no_grad():
        torch.testing.assert_close(features, _manual_tokens(target.teacher.vit, images, 1))
    torch.testing.assert_close(features.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)
    raw = TeacherFeatureTarget(teacher=TEACHER, feature_norm=None, allow_random_init=True)
    raw.teacher.vit.load_state_dict(target.teacher.vit.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(raw(images),
                                   _manual_tokens(target.teacher.vit, images, 1, layer_norm=False))
    # frozen: no trainable parameter, eval even when the owner trains, not saved
    assert not any(p.requires_grad for p in target.parameters())
    assert not any(key.startswith('teacher.') for key in target.state_dict())
    target.train()
    assert target.training and not target.teacher.training
    assert not target(images).requires_grad


def test_teacher_loads_a_checkpoint_and_refuses_random_init(tmp_path):
    clip = _perturbed(FaceCLIP(embed_dim=16, vision_cfg=VISION,
                               text_cfg=dict(width=32, layers=1, heads=2, vocab_size=100,
                                             context_length=8)))
    path = tmp_path / 'farl_like.pth'
    torch.save({'state_dict': clip.state_dict()}, path)
    target = TeacherFeatureTarget(teacher=dict(type='FaRL', **VISION), checkpoint=str(path))
    for name, value in clip.visual.state_dict().items():
        if not name.startswith(('ln_post', 'proj')):
            assert torch.equal(target.teacher.vit.state_dict()[name], value), name
    via_init_cfg = TeacherFeatureTarget(
        teacher=dict(type='FaRL', **VISION, init_cfg=dict(type='Pretrained',
                                                          checkpoint=str(path))))
    assert torch.equal(via_init_cfg.teacher.vit.conv1.weight, clip.visual.conv1.weight)
    with pytest.raises(ValueError, match='no checkpoint'):
        TeacherFeatureTarget(teacher=TEACHER)


def test_teacher_input_renormalisation():
    student = dict(student_mean=(120., 110., 100.), student_std=(60., 65., 70.))
    teacher_stats = dict(teacher_mean=(123.675, 116.28, 103.53), teacher_std=(58.395, 57.12,
                                                                              57.375))
    renorm = TeacherFeatureTarget(teacher=TEACHER, allow_random_init=True, **student,
                                  **teacher_stats)
    plain = TeacherFeatureTarget(teacher=TEACHER, allow_random_init=True)
    plain.teacher.vit.load_state_dict(renorm.teacher.vit.state_dict())
    raw = torch.rand(2, 3, 32, 32) * 255
    as_student = (raw - torch.tensor(student['student_mean']).view(1, 3, 1, 1)) / \
        torch.tensor(student['student_std']).view(1, 3, 1, 1)
    as_teacher = (raw - torch.tensor(teacher_stats['teacher_mean']).view(1, 3, 1, 1)) / \
        torch.tensor(teacher_stats['teacher_std']).view(1, 3, 1, 1)
    torch.testing.assert_close(renorm(as_student), plain(as_teacher), atol=1e-5, rtol=1e-5)
    assert not plain.renormalize and renorm.renormalize


def test_losses():
    generator = torch.Generator().manual_seed(0)
    pred, goal = torch.randn(5, 32, generator=generator), torch.randn(5, 32, generator=generator)
    smooth = TeacherFeatureTarget(teacher=TEACHER, allow_random_init=True, beta=0.5)
    torch.testing.assert_close(smooth.token_losses(pred, goal),
                               F.smooth_l1_loss(pred, goal, beta=0.5, reduction='none').mean(-1))
    torch.testing.assert_close(smooth.loss(pred, goal), F.smooth_l1_loss(pred, goal, beta=0.5))
    cosine = TeacherFeatureTarget(teacher=TEACHER, allow_random_init=True, loss='cosine')
    torch.testing.assert_close(cosine.token_losses(pred, goal),
                               1 - F.cosine_similarity(pred, goal, dim=-1))
    codes = CodebookTokenizer(teacher=TEACHER, vocab_size=7, allow_random_init=True)
    logits, ids = torch.randn(5, 7, generator=generator), torch.tensor([0, 6, 2, 2, 1])
    torch.testing.assert_close(codes.loss(logits, ids), F.cross_entropy(logits, ids))
    with pytest.raises(ValueError, match='expected logits'):
        codes.token_losses(torch.randn(5, 8), ids)
    with pytest.raises(ValueError):
        TeacherFeatureTarget(teacher=TEACHER, allow_random_init=True, loss='mse')
