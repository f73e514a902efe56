"""Export a pre-training checkpoint to a released layout (FaRL, OpenAI CLIP, ALIP, FLIP-80M, MCF).

Usage::

    # FaRL pre-training -> FaRL's release layout (OpenAI CLIP keys + the MIM head)
    python tools/export_backbone.py work_dirs/farl/iter_100000.pth checkpoints/farl_ours.pth
    # FLIP-80M-style fine-tune -> a Hugging Face CLIPModel directory, EMA weights, hints from
    # the config the run was trained with
    python tools/export_backbone.py work_dirs/flip80m/epoch_10.pth checkpoints/flip80m_ours \
        --format hf --ema --config work_dirs/flip80m/<config>.py
    # MCF -> {'model': {'online_encoder.<timm names>': ...}}
    python tools/export_backbone.py work_dirs/mcf/epoch_16.pth checkpoints/mcf_ours.pth

Formats: ``farl`` (``{'state_dict'}`` with FaRL's MIM head, default for CLIP checkpoints with
``mim_head.*``), ``openai`` (the same without it, default for other CLIP checkpoints), ``alip``
(flat ``module.``-prefixed dict), ``hf`` (``config.json`` + ``model.safetensors``; OUT is a
directory) and ``mcf`` (default for ``online_encoder.*`` checkpoints). Every output loads through
a backbone's ``init_cfg=dict(type='Pretrained', checkpoint=OUT)`` (FaRL / FLIP80M / MCF presets),
the CLIP ones also through ``FaceCLIP.from_pretrained(OUT)``. ``--ema`` takes MMEngine
``EMAHook``'s averaged weights, which that hook saves as ``state_dict`` (and the trained ones as
``ema_state_dict``): see :mod:`faceanalysis.converters.export`.

Head counts, activations and LayerNorm eps are not in the weights. They come from ``--config``
(the training config: its ``model.clip`` FaceCLIP is built on the ``meta`` device and read;
another model is built whole), ``--hint`` (e.g.
``--hint vision.num_heads=16 --hint text.act=gelu``), else OpenAI CLIP's conventions (64-wide
heads, QuickGELU, eps 1e-5), which the tool then says it assumed.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional

# faceanalysis (and with it torch) is imported in main(), after the arguments are parsed, so that
# --help and argument errors answer at once.

#: faceanalysis.converters.export.EXPORT_FORMATS (tests check that they agree).
FORMATS = ('farl', 'openai', 'alip', 'hf', 'mcf')
HINT_NAMES = {'num_heads': int, 'act': str, 'ln_eps': float, 'pool': str, 'causal': bool,
              'eos_id': int, 'pad_id': int}
HINT_CHOICES = {'act': ('quick_gelu', 'gelu', 'gelu_tanh'),
                'pool': ('cls', 'avg_all', 'eot_argmax', 'eos', 'first', 'last', 'last_valid')}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export the backbone of a faceanalysis pre-training checkpoint (MMEngine, '
        'CLIP-family clip.* or MCF online_encoder.* keys) to a released layout.')
    parser.add_argument('checkpoint', metavar='CHECKPOINT', help='MMEngine checkpoint (.pth)')
    parser.add_argument('out', metavar='OUT',
                        help='output file (.pth), or a directory for --format hf')
    parser.add_argument('--format', choices=FORMATS,
                        help='output layout; default: farl for CLIP checkpoints with a MIM head, '
                        'openai for other CLIP checkpoints, mcf for MCF checkpoints')
    parser.add_argument('--ema', action='store_true',
                        help="export EMAHook's averaged weights (error if the run had no EMA)")
    parser.add_argument('--no-mim', action='store_true',
                        help="farl: leave out FaRL's MIM head and mask token")
    parser.add_argument('--mcf-encoder', choices=('online', 'target'),
                        help='mcf: the encoder to export (default: online)')
    parser.add_argument('--config', help='training config: architecture hints are read from '
                        'the model it builds (CLIP formats)')
    parser.add_argument('--hint', action='append', default=[], metavar='TOWER.NAME=VALUE',
                        help='architecture hint, e.g. vision.num_heads=16, text.act=gelu, '
                        f'vision.ln_eps=1e-6 (names: {", ".join(HINT_NAMES)}); repeatable; '
                        'wins over --config')
    parser.add_argument('--force', action='store_true', help='replace OUT if it exists')
    return parser.parse_args(argv)


def parse_hints(items: List[str]) -> Dict[str, Dict[str, Any]]:
    """``['vision.num_heads=16', ...]`` -> ``{'vision': {'num_heads': 16}}``."""
    hints: Dict[str, Dict[str, Any]] = {}
    for item in items:
        name, sep, value = item.partition('=')
        tower, dot, field = name.partition('.')
        if not sep or not dot or tower not in ('vision', 'text') or field not in HINT_NAMES:
            raise ValueError(f'--hint {item!r}: expected vision.NAME=VALUE or text.NAME=VALUE '
                             f'with NAME one of {list(HINT_NAMES)}')
        kind = HINT_NAMES[field]
        if kind is bool:
            if value.lower() not in ('true', 'false', '1', '0'):
                raise ValueError(f'--hint {item!r}: expected true or false')
            parsed: Any = value.lower() in ('true', '1')
        else:
            try:
                parsed = kind(value)
            except ValueError:
                raise ValueError(f'--hint {item!r}: {value!r} is not a {kind.__name__}') from None
        if field in HINT_CHOICES and parsed not in HINT_CHOICES[field]:
            raise ValueError(f'--hint {item!r}: {field} must be one of {HINT_CHOICES[field]}')
        hints.setdefault(tower, {})[field] = parsed
    return hints


def hints_from_config(path: str) -> Dict[str, Dict[str, Any]]:
    """Read the hints off the model a training config builds (no weights are loaded).

    A CLIP pretrainer builds ``FaceCLIP`` from ``model.clip``: only that is built, on the
    ``meta`` device (no memory). Another model is built whole, on the meta device if its
    constructor allows, else on the CPU.
    """
    import torch
    from mmengine.config import Config

    from faceanalysis.converters.export import clip_hints_from_model
    from faceanalysis.registry import MODELS
    model_cfg = Config.fromfile(path).get('model')
    if model_cfg is None:
        raise ValueError(f'{path} has no model')
    if isinstance(model_cfg.get('clip'), dict):
        build_cfg = dict(model_cfg['clip'])
        build_cfg.setdefault('type', 'FaceCLIP')
        build_cfg.pop('init_cfg', None)
    else:
        build_cfg = model_cfg.copy()
    try:
        with torch.device('meta'):
            model = MODELS.build(build_cfg)
    except (NotImplementedError, RuntimeError):  # a constructor that reads tensor values
        model = MODELS.build(build_cfg)
    return clip_hints_from_model(model)


def _merge_hints(*sources: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    merged: Dict[str, Dict[str, Any]] = {}
    for source in sources:
        for tower, values in source.items():
            merged.setdefault(tower, {}).update(values)
    return merged


def _describe_hints(hints: Dict[str, Any]) -> List[str]:
    lines = []
    for tower in ('vision', 'text'):
        info = hints.get(tower)
        if not info:
            continue
        facts = ', '.join(f'{key}={info[key]}' for key in (
            'embed_dims', 'num_layers', 'num_heads', 'patch_size', 'img_size', 'context_length',
            'act', 'ln_eps', 'pool') if key in info)
        assumed = (' (num_heads assumed: width // 64; pass --config or --hint '
                   f'{tower}.num_heads=N if the model differs)'
                   if info.get('num_heads_inferred') else '')
        lines.append(f'{tower:<12} {facts}{assumed}')
    return lines


def _count(tensors) -> str:
    values = sum(value.numel() for value in tensors.values())
    return f'{len(tensors)} tensors, {values / 1e6:.2f} M values'


def export(args: argparse.Namespace) -> List[str]:
    """Run the export; returns the summary lines."""
    from faceanalysis.converters.export import (MIM_HEAD_PREFIX, export_hf_clip,
                                                export_mae_timm, export_openai_clip,
                                                extract_submodel, key_groups,
                                                load_pretrain_state_dict, pretrainer_kind,
                                                resolve_clip_hints, save_checkpoint_atomic,
                                                split_clip_pretrainer)
    if osp.lexists(args.out) and not args.force:
        raise FileExistsError(f'{args.out} exists; pass --force to replace it')
    state_dict = load_pretrain_state_dict(args.checkpoint, use_ema=args.ema)
    fmt = args.format
    if fmt is None:
        kind = pretrainer_kind(state_dict, args.checkpoint)
        has_mim = any(key.startswith(MIM_HEAD_PREFIX) for key in state_dict)
        fmt = 'mcf' if kind == 'mcf' else ('farl' if has_mim else 'openai')
    lines = [f'source       {args.checkpoint} ({"EMA" if args.ema else "trained"} weights)',
             f'format       {fmt}']

    clip_only = [flag for flag, used in (('--config', args.config), ('--hint', args.hint),
                                         ('--no-mim', args.no_mim)) if used]
    if fmt == 'mcf' and clip_only:
        raise ValueError(f'{", ".join(clip_only)}: CLIP-format options, not for --format mcf')
    if fmt != 'mcf' and args.mcf_encoder:
        raise ValueError(f'--mcf-encoder is for --format mcf, not {fmt}')

    if fmt == 'mcf':
        prefix = f'{args.mcf_encoder or "online"}_encoder.'
        visual = extract_submodel(state_dict, prefix, args.checkpoint)
        exported = export_mae_timm(visual, prefix=prefix)
        save_checkpoint_atomic(exported, args.out, overwrite=args.force)
        dropped = [key for key in state_dict if not key.startswith(prefix)]
        lines += [f'written      {args.out}: {{"model": {prefix}<timm names>}} '
                  f'({_count(exported["model"])})']
    else:
        hints = _merge_hints(hints_from_config(args.config) if args.config else {},
                             parse_hints(args.hint))
        mim = fmt == 'farl' and not args.no_mim
        weights, dropped = split_clip_pretrainer(state_dict, mim=mim, source=args.checkpoint)
        resolved = resolve_clip_hints(weights, hints)
        if fmt == 'hf':
            written = export_hf_clip(weights, args.out, hints, overwrite=args.force)
            lines.append(f'written      {", ".join(written)} ({_count(weights)}; no tokenizer '
                         'files: CLIPModel does not need them)')
        else:
            exported = export_openai_clip(state_dict, mim=mim,
                                          flavor='alip' if fmt == 'alip' else 'farl',
                                          hints=hints, source=args.checkpoint)
            if fmt != 'alip':
                exported['meta'].update(source=os.fspath(args.checkpoint), ema=bool(args.ema))
            save_checkpoint_atomic(exported, args.out, overwrite=args.force)
            layout = ('flat module.<OpenAI names>' if fmt == 'alip' else
                      '{"state_dict": <OpenAI names>, "meta"}')
            mim_keys = [key for key in weights if key.startswith(
                ('visual.lm_transformer.', 'visual.ln_lm.', 'visual.lm_head.', 'visual.mask_'))]
            mim_note = f'; FaRL MIM head: {len(mim_keys)} tensors' if fmt == 'farl' else ''
            lines.append(f'written      {args.out}: {layout} ({_count(weights)}{mim_note})')
        lines += _describe_hints(resolved)
    if dropped:
        # Weights of the exported model itself (clip.visual.mask_token) are named in full.
        named = [key for key in dropped if key.startswith('clip.')]
        groups = key_groups([key for key in dropped if key not in named])
        lines.append(f'dropped      {len(dropped)} tensor{"s" if len(dropped) > 1 else ""}: '
                     + ', '.join(named + ([groups] if len(named) < len(dropped) else [])))
    else:
        lines.append('dropped      nothing')
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import faceanalysis  # noqa: F401  (first: the compat shims and the unpickling allowlist)
    from faceanalysis.converters.io import UnsafeCheckpointError
    try:
        lines = export(args)
    except (FileExistsError, IsADirectoryError, FileNotFoundError, KeyError, ValueError,
            TypeError, UnsafeCheckpointError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f'export_backbone: error: {message}', file=sys.stderr)
        return 1
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
