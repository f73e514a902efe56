"""Issue 6, "tiny CPU runs": MCF and ALIP pre-training through tools/train.py on generated data,
resumed from a mid-run checkpoint, then exported with tools/export_backbone.py into the layouts
their downstream loaders read.

* configs/pretrain/mcf-tiny_face-crops_cpu.py: 256 synthetic face crops (ImageFolder layout),
  80 iterations of 16 images with accumulation 2, a random test-only teacher. About 15 s on an
  idle 2-core machine (the test: about 35 s with the resumed run and the export).
* configs/pretrain/alip-tiny_toy-shapes_cpu.py: the toy shapes corpus with a second caption per
  image, 80 iterations of 32 pairs, held-out retrieval every 40, resumed from iteration 60.

Each test trains once, resumes a second run from a mid-run checkpoint in another work dir, and
exports; both are marked slow.
"""
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from tests.test_tools.test_parsing_overfit import _run

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
MCF_CONFIG = REPO / 'configs' / 'pretrain' / 'mcf-tiny_face-crops_cpu.py'
ALIP_CONFIG = REPO / 'configs' / 'pretrain' / 'alip-tiny_toy-shapes_cpu.py'

pytestmark = pytest.mark.slow


def _export_backbone(*args) -> None:
    """tools/export_backbone.py in this process (its CLI runs as a subprocess in test_export.py;
    here the interpreter start-up would only add time)."""
    spec = importlib.util.spec_from_file_location('export_backbone', TOOLS / 'export_backbone.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(arg) for arg in args]) == 0


def _records(work_dir: Path):
    """Every line of the run's scalars.json (one work dir holds one run here)."""
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert len(scalars) == 1, f'expected one run under {work_dir}, found {scalars}'
    return [json.loads(line) for line in scalars[0].read_text().splitlines()]


def _train_records(work_dir: Path):
    return [r for r in _records(work_dir) if 'loss' in r]


def _val_records(work_dir: Path):
    return [r for r in _records(work_dir) if 'retrieval/i2t_R@1' in r]


def _mean(values):
    values = list(values)
    return sum(values) / len(values)


def _checkpoint(path: Path):
    from faceanalysis.converters import load_checkpoint_file
    return load_checkpoint_file(str(path))


# ------------------------------------------------------------------------------------------ MCF
@pytest.mark.scope('faceanalysis')
def test_mcf_tiny_trains_resumes_and_exports_to_the_mcf_backbone(tmp_path):
    work_dir = tmp_path / 'work'
    train = _run([sys.executable, TOOLS / 'train.py', MCF_CONFIG, '--work-dir', work_dir],
                 tmp_path)
    crops = list((tmp_path / 'data' / 'synthetic' / 'face_crops' / 'faces').glob('*.jpg'))
    assert len(crops) == 256

    # The losses fall: the logged values are means over 10 iterations (log_processor window).
    records = _train_records(work_dir)
    assert [r['step'] for r in records] == list(range(10, 81, 10))
    first, last = records[:3], records[-3:]
    loss_first, loss_last = _mean(r['loss'] for r in first), _mean(r['loss'] for r in last)
    con_first, con_last = _mean(r['loss_con'] for r in first), _mean(r['loss_con'] for r in last)
    print(f'MCF train {train.seconds:.0f} s; loss {loss_first:.1f} -> {loss_last:.1f} '
          f'(loss_feat {first[0]["loss_feat"]:.1f} -> {last[-1]["loss_feat"]:.1f}), '
          f'loss_con {con_first:.3f} -> {con_last:.3f}')
    assert loss_last < 0.9 * loss_first
    assert con_last < con_first

    # Checkpoints: trainable state + momentum target, never the frozen teacher.
    middle = _checkpoint(work_dir / 'iter_40.pth')
    final = _checkpoint(work_dir / 'iter_80.pth')
    for checkpoint in (middle, final):
        keys = checkpoint['state_dict']
        assert not any(key.startswith('teacher.') for key in keys)
        assert 'target_encoder.conv1.weight' in keys and 'target_projector.0.weight' in keys
        assert 'online_encoder.conv1.weight' in keys and 'decoder.mask_token' in keys
        assert checkpoint['optimizer']['state']  # AdamW moments are saved
    target_keys = [key for key in middle['state_dict']
                   if key.startswith(('target_encoder.', 'target_projector.'))
                   and 'running_' not in key and 'num_batches' not in key]
    # m = 0.99 per optimizer step: the target moved between iterations 40 and 80
    assert not torch.equal(middle['state_dict']['target_encoder.conv1.weight'],
                           final['state_dict']['target_encoder.conv1.weight'])

    # Resume from iteration 40 with m = 1 (the EMA becomes the identity): the target at the end
    # must be the saved one, bit for bit, which proves it came from the checkpoint and was not
    # re-copied from the online encoder (init_weights' start state) or re-initialised.
    resumed_dir = tmp_path / 'resumed'
    resume = _run([sys.executable, TOOLS / 'train.py', MCF_CONFIG, '--work-dir', resumed_dir,
                   '--resume', work_dir / 'iter_40.pth', '--cfg-options', 'model.momentum=1.0'],
                  tmp_path)
    assert [r['step'] for r in _train_records(resumed_dir)] == [50, 60, 70, 80]
    resumed = _checkpoint(resumed_dir / 'iter_80.pth')
    assert resumed['meta']['iter'] == 80
    assert not any(key.startswith('teacher.') for key in resumed['state_dict'])
    for key in target_keys:
        assert torch.equal(resumed['state_dict'][key], middle['state_dict'][key]), key
    assert not torch.equal(resumed['state_dict']['online_encoder.conv1.weight'],
                           middle['state_dict']['online_encoder.conv1.weight'])
    print(f'MCF resume 40 -> 80: {resume.seconds:.0f} s')

    # Export: MCF's release layout, loaded by a downstream MCF backbone through init_cfg.
    exported = tmp_path / 'mcf_tiny.pth'
    _export_backbone(work_dir / 'iter_80.pth', exported, '--format', 'mcf')
    from mmengine.config import Config

    import faceanalysis.models  # noqa: F401
    from faceanalysis.registry import MODELS
    encoder = Config.fromfile(str(MCF_CONFIG)).model.encoder.to_dict()
    backbone = MODELS.build(dict(encoder, init_cfg=dict(type='Pretrained',
                                                         checkpoint=str(exported))))
    backbone.init_weights()
    trained = final['state_dict']
    weights = backbone.state_dict()
    assert 'conv1.weight' in weights and 'transformer.resblocks.1.mlp.c_fc.weight' in weights
    for name, value in weights.items():
        assert torch.equal(value, trained[f'online_encoder.{name}']), name


# ----------------------------------------------------------------------------------------- ALIP
def _weighted_mean_loss(record):
    """``loss_raw`` divided by the mean gate weights of its pair: the gate-weighted average of
    the per-sample contrastive losses (exact if weights and losses were uncorrelated).

    The logged ``loss_raw = mean_i(W_s W_t l_i)`` grows as the gate EMAs fall and the weights
    rise towards 1 (and above), so it is no measure of learning on its own.
    """
    return record['loss_raw'] / (record['gate_ws_mean'] * record['gate_wt_mean'])


@pytest.mark.scope('faceanalysis')
def test_alip_tiny_learns_resumes_and_exports_to_faceclip(tmp_path):
    work_dir = tmp_path / 'work'
    train = _run([sys.executable, TOOLS / 'train.py', ALIP_CONFIG, '--work-dir', work_dir],
                 tmp_path)
    records = _train_records(work_dir)
    assert [r['step'] for r in records] == list(range(10, 81, 10))
    vals = _val_records(work_dir)
    assert [r['step'] for r in vals] == [40, 80]
    chance = vals[-1]['retrieval/chance_i2t_R@1']
    assert chance == pytest.approx(100 / 30)

    first, last = records[:3], records[-3:]
    weighted_first = _mean(map(_weighted_mean_loss, first))
    weighted_last = _mean(map(_weighted_mean_loss, last))
    print(f'ALIP train {train.seconds:.0f} s; logged loss {first[0]["loss"]:.2f} -> '
          f'{last[-1]["loss"]:.2f}; gate-normalised loss_raw {weighted_first:.2f} -> '
          f'{weighted_last:.2f}; positive cosine s_it {first[0]["gate_s_it"]:.2f} -> '
          f'{last[-1]["gate_s_it"]:.2f}; EMAs m_tc/m_it/m_ic {last[-1]["gate_m_tc"]:.3f}/'
          f'{last[-1]["gate_m_it"]:.3f}/{last[-1]["gate_m_ic"]:.3f}; held-out retrieval: '
          + '; '.join(f"i2t R@1 {r['retrieval/i2t_R@1']:.1f} t2i R@1 "
                      f"{r['retrieval/t2i_R@1']:.1f}" for r in vals))
    # The judge is held-out retrieval (the logged weighted loss may rise, see the config).
    assert max(r['retrieval/i2t_R@1'] for r in vals) >= 4 * chance
    assert max(r['retrieval/t2i_R@1'] for r in vals) >= 4 * chance
    assert vals[-1]['retrieval/i2t_R@5'] >= 50
    # ... and the gate-weighted mean of the per-sample contrastive losses falls, to well under
    # ln(batch), the loss of a model that cannot tell the pairs apart.
    from mmengine.config import Config
    chance_loss = math.log(Config.fromfile(str(ALIP_CONFIG)).train_dataloader.batch_size)
    assert weighted_last < 0.9 * weighted_first
    assert weighted_last < 0.5 * chance_loss
    assert last[-1]['gate_s_it'] > first[0]['gate_s_it'] + 0.3
    # The gate EMAs left their initial 1.0, and the temperature stays clamped to [0, ln 100]
    # (logged as exp: at most 100).
    assert all(last[-1][f'gate_m_{pair}'] < 0.97 for pair in ('tc', 'it', 'ic'))
    assert all(r['logit_scale'] <= 100 + 1e-3 for r in records)
    assert len(list(work_dir.glob('best_retrieval_i2t_R@1_iter_*.pth'))) == 1

    # Resume from iteration 60 in another work dir: the gate EMAs continue from the saved
    # buffers (a fresh start would put them back near 1.0).
    middle = _checkpoint(work_dir / 'iter_60.pth')
    saved_emas = {pair: middle['state_dict'][f'gates.m_{pair}'].item()
                  for pair in ('tc', 'it', 'ic')}
    resumed_dir = tmp_path / 'resumed'
    resume = _run([sys.executable, TOOLS / 'train.py', ALIP_CONFIG, '--work-dir', resumed_dir,
                   '--resume', work_dir / 'iter_60.pth'], tmp_path)
    resumed_records = _train_records(resumed_dir)
    assert [r['step'] for r in resumed_records] == list(range(70, 81, 10))
    assert [r['step'] for r in _val_records(resumed_dir)] == [80]
    assert _checkpoint(resumed_dir / 'iter_80.pth')['meta']['iter'] == 80
    original_70 = next(r for r in records if r['step'] == 70)
    for pair, saved in saved_emas.items():
        logged = resumed_records[0][f'gate_m_{pair}']  # mean over iterations 61-70
        assert logged == pytest.approx(saved, abs=0.02), pair
        assert logged == pytest.approx(original_70[f'gate_m_{pair}'], abs=0.01), pair
    print(f'ALIP resume 60 -> 80: {resume.seconds:.0f} s; saved EMAs {saved_emas}; '
          f'first logged after resume '
          + ', '.join(f"{pair} {resumed_records[0][f'gate_m_{pair}']:.4f}"
                      for pair in saved_emas))

    # Export to ALIP's flat module.* layout; FaceCLIP.from_pretrained gives the same embeddings.
    exported = tmp_path / 'alip_tiny.pt'
    _export_backbone(work_dir / 'iter_80.pth', exported, '--format', 'alip')
    import faceanalysis.models  # noqa: F401
    from faceanalysis.models import FaceCLIP
    from faceanalysis.registry import MODELS
    saved = torch.load(exported, map_location='cpu', weights_only=True)
    assert all(key.startswith('module.') for key in saved) and 'module.logit_scale' in saved
    # the flat release dict has no room for architecture hints: say what the weights can not
    clip = FaceCLIP.from_pretrained(str(exported), act='gelu', vision_heads=4, text_heads=4)
    pretrainer = MODELS.build(Config.fromfile(str(ALIP_CONFIG)).model)
    pretrainer.load_state_dict(_checkpoint(work_dir / 'iter_80.pth')['state_dict'])
    pretrainer.eval()
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    tokens = torch.randint(1, 1000, (3, 16), generator=torch.Generator().manual_seed(1))
    tokens[:, -1] = 49407  # CLIP's end-of-text id, the pooled position
    with torch.no_grad():
        torch.testing.assert_close(clip.encode_image(images, normalize=True),
                                   pretrainer.clip.encode_image(images, normalize=True),
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(clip.encode_text(tokens, normalize=True),
                                   pretrainer.clip.encode_text(tokens, normalize=True),
                                   rtol=0, atol=1e-6)
