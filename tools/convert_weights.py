"""Convert a released FaRL / MCF / FLIP-80M checkpoint to our internal (OpenAI CLIP) layout.

Usage::

    python tools/convert_weights.py checkpoints/FLIP-base-16 checkpoints/flip80m_b16.pth
    python tools/convert_weights.py checkpoints/mcf_vitb16.pth checkpoints/mcf_visual.pth \
        --visual-only

The output is ``{'state_dict': {...}, 'meta': {'source', 'source_layout', 'hints'}}`` written with
``torch.save``; it holds only tensors and plain Python values, so it loads with
``torch.load(..., weights_only=True)`` and directly through ``init_cfg=dict(type='Pretrained',
checkpoint=DST)``. Converting is optional (every loader accepts the released files as they are);
it saves the conversion at each start and gives one file format to share.
"""
import faceanalysis  # noqa: F401  (first: applies the compat shims and the unpickling allowlist)

import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch

from faceanalysis.converters import load_clip_checkpoint


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a FaRL (.pth, OpenAI CLIP layout), MCF (.pth, timm/MAE layout) or '
        'FLIP-80M (Hugging Face CLIPModel directory) checkpoint to the faceanalysis internal '
        'layout (OpenAI CLIP names: visual.* image tower, text tower without prefix).')
    parser.add_argument('src', metavar='SRC',
                        help='released checkpoint: a .pth/.pt/.bin/.safetensors file or a Hugging '
                        'Face model directory (config.json + model.safetensors / '
                        'pytorch_model.bin)')
    parser.add_argument('dst', metavar='DST',
                        help='output file (torch.save), e.g. checkpoints/x.pth')
    parser.add_argument('--visual-only', action='store_true',
                        help='keep only the image tower (visual.* keys)')
    parser.add_argument('--overwrite', action='store_true', help='replace DST if it exists')
    return parser.parse_args(argv)


def _summary(state_dict, layout: str, hints: dict, src: str, dst: str) -> str:
    num_params = sum(value.numel() for value in state_dict.values())
    visual = [key for key in state_dict if key.startswith('visual.')]
    lines = [f'source       {src}', f'layout       {layout} (preset {hints.get("preset")})',
             f'written      {dst}',
             f'tensors      {len(state_dict)} ({num_params / 1e6:.2f} M values; '
             f'{len(visual)} image-tower tensors)']
    for tower in ('vision', 'text'):
        info = hints.get(tower)
        if info:
            sizes = ', '.join(f'{key}={info[key]}' for key in (
                'embed_dims', 'num_layers', 'num_heads', 'patch_size', 'img_size', 'act',
                'ln_eps') if key in info)
            lines.append(f'{tower:<12} {sizes}')
    if hints.get('submodel_prefix'):
        lines.append(f'sub-model    {hints["submodel_prefix"]!r} (prefix removed)')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if osp.exists(args.dst) and not args.overwrite:
        print(f'{args.dst} exists; pass --overwrite to replace it', file=sys.stderr)
        return 1
    state_dict, layout, hints = load_clip_checkpoint(args.src)
    if args.visual_only:
        state_dict = {key: value for key, value in state_dict.items()
                      if key.startswith('visual.')}
        if not state_dict:
            print(f'{args.src} has no image tower (visual.*) keys', file=sys.stderr)
            return 1
        hints.pop('text', None)
    # Contiguous, detached copies: a transposed view would save its whole base storage.
    state_dict = {key: value.detach().contiguous() for key, value in state_dict.items()}
    meta = dict(source=args.src, source_layout=layout, hints=hints,
                visual_only=bool(args.visual_only))
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=meta), args.dst)
    print(_summary(state_dict, layout, hints, args.src, args.dst))
    return 0


if __name__ == '__main__':
    sys.exit(main())
