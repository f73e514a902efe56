"""Pre-training checkpoints -> the layouts FaRL, ALIP, FLIP-80M and MCF released.

This is the converters' other direction. The pre-training runners save MMEngine checkpoints
(``{'meta', 'state_dict', 'message_hub', 'optimizer', 'param_schedulers'[, 'ema_state_dict']}``)
of a whole pre-training model; sharing a backbone means writing only its weights, in a layout
that the projects' own code and ours read unchanged:

=========  ===============================================================================
format     written layout (shared/docs/pretrain.md section)
=========  ===============================================================================
``farl``   ``{'state_dict': OpenAI CLIP keys + FaRL's MIM head (visual.lm_transformer.*,
           visual.ln_lm.*, visual.lm_head.*, visual.mask_token), 'meta': {'hints': ...}}`` (§2.5)
``openai`` the same without the MIM head: plain OpenAI / open_clip CLIP
``alip``   a flat ``{'module.' + OpenAI key: tensor}``, ``torch.save`` of a DDP wrapper (§6.5)
``hf``     a Hugging Face ``CLIPModel`` directory: ``config.json`` + ``model.safetensors`` (§5.5)
``mcf``    ``{'model': {'online_encoder.' + timm/MAE key: tensor}}`` (§3.5)
=========  ===============================================================================

Source keys (the pre-training model contract): CLIP-family pretrainers hold ``clip.<OpenAI
layout>`` and, for FaRL, ``mim_head.{lm_transformer,ln_lm,lm_head}.*``; the MCF pretrainer holds
``online_encoder.<FaceViT layout>`` and ``target_encoder.*``. Everything else (losses' buffers,
MIM targets, ALIP's gate statistics, MCF's projector / predictor / decoder / teacher) is
pre-training machinery and is dropped; :func:`split_clip_pretrainer` and the CLI
(``tools/export_backbone.py``) name what was dropped.

The HF and timm mappings are derived from the tables of :mod:`.hf_clip` and :mod:`.mae_timm` by
inverting them, so an export read back by the converters gives the same tensors, key for key
(tests/test_converters/test_export.py). New code rather than ``transformers``' or timm's
converters: those go from foreign layouts to theirs, not from ours, and the export must not need
``transformers`` installed.

Architecture facts the weights do not hold (head counts, activation, LayerNorm epsilon, text
pooling) are *hints*, in :func:`~faceanalysis.converters.infer_hints`'s nested format
``{'vision': {'num_heads', 'act', 'ln_eps', 'pool'}, 'text': {..., 'causal', 'pool', 'eos_id'}}``.
Missing ones default to OpenAI CLIP's conventions (64-wide heads, QuickGELU, eps 1e-5);
:func:`clip_hints_from_model` reads them off a built model. ``farl`` / ``openai`` files carry
them in ``meta['hints']`` (which :func:`~faceanalysis.converters.load_clip_checkpoint` reads),
``hf`` in ``config.json``; ALIP's flat layout has no room for them.

EMA: MMEngine's ``EMAHook.before_save_checkpoint`` *swaps* the two copies before saving:
``state_dict`` holds the averaged (EMA) weights, so that deployment loads them directly, and
``ema_state_dict`` holds ``module.<key>`` = the gradient-trained weights (plus the ``steps``
counter). :func:`load_pretrain_state_dict` undoes that: ``use_ema=False`` returns the
gradient-trained weights, ``use_ema=True`` the averaged ones.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import re
import shutil
import uuid
from collections import Counter
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import torch

# The forward converters' private tables: their inverses below are derived from them, so the two
# directions can not drift apart.
from . import hf_clip as _hf_clip
from . import mae_timm as _mae_timm
from .hints import infer_hints
from .io import PathLike, load_checkpoint_file

__all__ = [
    'EXPORT_FORMATS', 'CLIP_PREFIX', 'MIM_HEAD_PREFIX', 'MCF_ENCODER_PREFIXES', 'key_groups',
    'extract_submodel', 'load_pretrain_state_dict', 'pretrainer_kind', 'split_clip_pretrainer',
    'resolve_clip_hints', 'clip_hints_from_model', 'export_openai_clip', 'to_hf_clip_state_dict',
    'hf_clip_config', 'export_hf_clip', 'to_mae_timm_state_dict', 'export_mae_timm',
    'save_checkpoint_atomic'
]

EXPORT_FORMATS = ('farl', 'openai', 'alip', 'hf', 'mcf')

CLIP_PREFIX = 'clip.'
MIM_HEAD_PREFIX = 'mim_head.'
#: Parts of FaRL's MIM head; in FaRL's release they sit under ``visual.`` with these names.
FARL_MIM_PARTS = ('lm_transformer.', 'ln_lm.', 'lm_head.')
MASK_TOKEN_KEY = 'visual.mask_token'
MCF_ENCODER_PREFIXES = ('online_encoder.', 'target_encoder.')

#: Our activation names -> Hugging Face ``hidden_act`` computing the same function
#: (``gelu_pytorch_tanh`` is ``F.gelu(approximate='tanh')``, as our ``gelu_tanh``; ``gelu_new``
#: is the same formula written out, equal only up to rounding).
HF_HIDDEN_ACT = {'quick_gelu': 'quick_gelu', 'gelu': 'gelu', 'gelu_tanh': 'gelu_pytorch_tanh'}

#: Hugging Face's own default (``CLIPConfig``), ln(1 / 0.07) as OpenAI's configs write it.
HF_LOGIT_SCALE_INIT = 2.6592

#: Text settings OpenAI CLIP uses, for hints a caller leaves out.
_TEXT_DEFAULTS = dict(causal=True, pool='eot_argmax', eos_id=49407, pad_id=0)


# ----------------------------------------------------------------------------- reading
def key_groups(keys: Iterable[str]) -> str:
    """``'clip.* (152), gates.* (2), logit_bias (1)'``: keys grouped by their first name part."""
    counts = Counter(key.split('.', 1)[0] + ('.*' if '.' in key else '') for key in keys)
    return ', '.join(f'{group} ({count})' for group, count in sorted(counts.items())) or 'none'


def extract_submodel(state_dict: Mapping[str, torch.Tensor], prefix: str,
                     source: str = 'state dict') -> Dict[str, torch.Tensor]:
    """The entries under ``prefix`` (``'clip.'``, ``'online_encoder.'`` ...), prefix removed.

    Raises:
        KeyError: nothing is under ``prefix``; the message lists the key groups there are.
    """
    if not prefix.endswith('.'):
        prefix += '.'
    sub = {key[len(prefix):]: value for key, value in state_dict.items()
           if key.startswith(prefix)}
    if not sub:
        raise KeyError(f'{source} has no {prefix}* keys; its key groups are: '
                       f'{key_groups(state_dict)}')
    return sub


def _tensors(node: Any) -> Dict[str, torch.Tensor]:
    return {str(key): value for key, value in node.items() if isinstance(value, torch.Tensor)}


def load_pretrain_state_dict(path: PathLike, use_ema: bool = False) -> Dict[str, torch.Tensor]:
    """The model weights of a pre-training checkpoint, read safely.

    Args:
        path: an MMEngine checkpoint (``{'state_dict': ..., ...}``) or a bare ``torch.save`` of
            the model's state dict.
        use_ema: return the EMA weights of an ``EMAHook`` run instead of the gradient-trained
            ones. MMEngine saves them swapped (module docstring): the averaged weights are
            ``state_dict``, the trained ones ``ema_state_dict['module.<key>']``.

    Returns:
        ``{key: tensor}`` in the pre-training model's names (``clip.*``, ``online_encoder.*``...).

    Raises:
        KeyError: ``use_ema`` for a checkpoint without ``ema_state_dict``.
        ValueError: no state dict, or an ``ema_state_dict`` that does not mirror it.
    """
    source = os.fspath(path)
    checkpoint = load_checkpoint_file(source)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{source}: expected a checkpoint dict, got {type(checkpoint).__name__}')
    if isinstance(checkpoint.get('state_dict'), Mapping):
        state_dict = _tensors(checkpoint['state_dict'])
    elif checkpoint and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        state_dict = dict(checkpoint)
    else:
        raise ValueError(f'{source}: not a pre-training checkpoint: no state_dict entry; top-level '
                         f'entries are {sorted(map(str, checkpoint))[:20]}')
    if not state_dict:
        raise ValueError(f'{source}: the state_dict holds no tensors')

    ema = checkpoint.get('ema_state_dict')
    if not isinstance(ema, Mapping):
        if use_ema:
            raise KeyError(f'{source} has no ema_state_dict (top-level entries: '
                           f'{sorted(map(str, checkpoint))}): it was saved without EMAHook, so '
                           'there are no EMA weights; export without --ema')
        return state_dict
    trained = {key[len('module.'):]: value for key, value in _tensors(ema).items()
               if key.startswith('module.')}
    strangers = sorted(set(trained) - set(state_dict))
    if not trained or strangers:
        raise ValueError(f'{source}: ema_state_dict does not mirror state_dict as MMEngine\'s '
                         f'EMAHook saves it (module.<key> for each model key); keys not in '
                         f'state_dict: {strangers[:10]}')
    if use_ema:
        return state_dict
    return {**state_dict, **trained}


def pretrainer_kind(state_dict: Mapping[str, torch.Tensor], source: str = 'checkpoint') -> str:
    """``'clip'`` (``clip.*`` keys: CLIP/FLIP, FLIP-80M, FaRL, ALIP) or ``'mcf'``
    (``online_encoder.*``).

    Raises:
        ValueError: both or neither, listing the key groups the checkpoint has.
    """
    has_clip = any(key.startswith(CLIP_PREFIX) for key in state_dict)
    has_mcf = any(key.startswith('online_encoder.') for key in state_dict)
    if has_clip and has_mcf:
        raise ValueError(f'{source} has both clip.* and online_encoder.* keys: pass --format to '
                         f'say which model to export (key groups: {key_groups(state_dict)})')
    if has_clip:
        return 'clip'
    if has_mcf:
        return 'mcf'
    raise ValueError(f'{source} is not a pre-training checkpoint this tool knows: it has neither '
                     'clip.* keys (CLIP-family pretrainers) nor online_encoder.* keys (MCF). Its '
                     f'key groups are: {key_groups(state_dict)}')


def split_clip_pretrainer(state_dict: Mapping[str, torch.Tensor], mim: bool = True,
                          source: str = 'checkpoint'
                          ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """A CLIP-family pretrainer's state dict -> OpenAI CLIP layout, plus what was dropped.

    Args:
        state_dict: ``clip.*`` (+ FaRL's ``mim_head.*``, + pre-training buffers).
        mim: keep FaRL's masked-image-modelling head, renamed as FaRL released it:
            ``mim_head.<part>`` -> ``visual.<part>`` and ``clip.visual.mask_token`` ->
            ``visual.mask_token``. Without it both are dropped.

    Returns:
        ``(openai_state_dict, dropped_keys)``, the dropped keys in the pretrainer's names.

    Raises:
        KeyError: no ``clip.*`` key, or (with ``mim``) a ``mim_head.*`` entry FaRL's release has
            no name for (it would otherwise be lost silently).
    """
    out = extract_submodel(state_dict, CLIP_PREFIX, source)
    dropped = []
    if not mim and MASK_TOKEN_KEY in out:
        out.pop(MASK_TOKEN_KEY)
        dropped.append(CLIP_PREFIX + MASK_TOKEN_KEY)
    unnamed = []
    for key, value in state_dict.items():
        if key.startswith(CLIP_PREFIX):
            continue
        if mim and key.startswith(MIM_HEAD_PREFIX):
            part = key[len(MIM_HEAD_PREFIX):]
            if part.startswith(FARL_MIM_PARTS):
                out['visual.' + part] = value
            else:
                unnamed.append(key)
            continue
        dropped.append(key)
    if unnamed:
        raise KeyError(f'{source}: MIM head entries outside FaRL\'s released names '
                       f'(mim_head.{{lm_transformer,ln_lm,lm_head}}.*): {sorted(unnamed)[:10]}; '
                       'export with mim=False (--no-mim) to drop the head')
    return out, dropped


# ----------------------------------------------------------------------------- hints
def _activation_name(module: torch.nn.Module) -> str:
    from faceanalysis.models.layers.transformer import QuickGELU
    if isinstance(module, QuickGELU):
        return 'quick_gelu'
    if isinstance(module, torch.nn.GELU):
        return 'gelu_tanh' if module.approximate == 'tanh' else 'gelu'
    raise ValueError(f'unknown activation module {type(module).__name__}')


def _block_hints(transformer: torch.nn.Module) -> Dict[str, Any]:
    block = transformer.resblocks[0]
    return dict(num_heads=int(block.attn.num_heads), act=_activation_name(block.mlp.act),
                ln_eps=float(block.ln_1.eps), num_heads_inferred=False)


def clip_hints_from_model(model: torch.nn.Module) -> Dict[str, Dict[str, Any]]:
    """Hints (heads, activation, LayerNorm eps, pooling, causality) of a built ``FaceCLIP``.

    Args:
        model: a :class:`~faceanalysis.models.FaceCLIP` or a module holding one (a pretrainer's
            ``clip``). A model built on the ``meta`` device works: only attributes are read.
    """
    from faceanalysis.models.face_clip import FaceCLIP
    clip = next((module for module in model.modules() if isinstance(module, FaceCLIP)), None)
    if clip is None:
        raise TypeError(f'{type(model).__name__} holds no FaceCLIP: cannot read CLIP hints')
    vision = dict(_block_hints(clip.visual.transformer), pool=clip.visual.pool)
    text = dict(_block_hints(clip.transformer), causal=bool(clip.text_causal),
                pool=clip.text_pool, eos_id=int(clip.text_eos_id), pad_id=int(clip.text_pad_id))
    return dict(vision=vision, text=text)


def resolve_clip_hints(state_dict: Mapping[str, torch.Tensor],
                       hints: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Complete hints for an OpenAI-layout CLIP state dict.

    Shape facts come from :func:`~faceanalysis.converters.infer_hints`; the rest from ``hints``
    (nested per tower, as :func:`clip_hints_from_model` returns), else OpenAI CLIP's conventions.
    ``vision['num_heads_inferred']`` / ``text[...]`` stay True where the head count was assumed.
    """
    resolved = infer_hints(state_dict, 'openai_clip')
    hints = dict(hints or {})
    for tower in ('vision', 'text'):
        if tower not in resolved:
            continue
        given = dict(hints.get(tower) or {})
        if 'num_heads' in given:
            given.setdefault('num_heads_inferred', False)
        resolved[tower].update(given)
    if 'vision' in resolved:
        resolved['vision'].setdefault('pool', 'cls')
    if 'text' in resolved:
        for name, value in _TEXT_DEFAULTS.items():
            resolved['text'].setdefault(name, value)
    for name, value in hints.items():
        if name not in ('vision', 'text'):
            resolved[name] = value
    return resolved


# ----------------------------------------------------------------------------- OpenAI / FaRL / ALIP
def _compact(tensor: torch.Tensor) -> torch.Tensor:
    """A detached tensor that owns exactly its data (``torch.save`` writes whole storages, and
    ``safetensors`` refuses shared ones)."""
    tensor = tensor.detach().contiguous()
    if tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size():
        tensor = tensor.clone()
    return tensor


def export_openai_clip(state_dict: Mapping[str, torch.Tensor], mim: bool = True,
                       flavor: str = 'farl', hints: Optional[Mapping[str, Any]] = None,
                       source: str = 'checkpoint') -> Dict[str, Any]:
    """A CLIP-family pretrainer's weights in the OpenAI CLIP layout, as FaRL / ALIP released it.

    Args:
        state_dict: the pretrainer's state dict (``clip.*``, maybe ``mim_head.*``).
        mim: keep FaRL's MIM head (see :func:`split_clip_pretrainer`); ignored for ALIP.
        flavor: ``'farl'``: ``{'state_dict': ..., 'meta': {'hints', 'source_layout'}}`` (FaRL's
            wrapper; ``meta`` is ours, FaRL's loader reads only ``state_dict``). ``'alip'``: the
            flat ``{'module.' + key: tensor}`` of ALIP's release, never with a MIM head (ALIP's
            loader is strict).
        hints: architecture hints stored in ``meta`` (``'farl'`` only), see
            :func:`resolve_clip_hints`.

    Returns:
        The object to ``torch.save``.
    """
    if flavor not in ('farl', 'alip'):
        raise ValueError(f"flavor must be 'farl' or 'alip', got {flavor!r}")
    weights, _ = split_clip_pretrainer(state_dict, mim=mim and flavor == 'farl', source=source)
    weights = {key: _compact(value) for key, value in weights.items()}
    if flavor == 'alip':
        return {f'module.{key}': value for key, value in weights.items()}
    meta = dict(source_layout='openai_clip', hints=resolve_clip_hints(weights, hints),
                exported_from='pre-training checkpoint')
    return dict(state_dict=weights, meta=meta)


# ----------------------------------------------------------------------------- Hugging Face
_TO_HF_FIXED = {ours: theirs for theirs, ours in _hf_clip._FIXED.items()}
_TO_HF_TRANSPOSED = {ours: theirs for theirs, ours in _hf_clip._TRANSPOSED.items()}
_TO_HF_RENAMED_PREFIXES = {ours: theirs for theirs, ours in _hf_clip._RENAMED_PREFIXES.items()}
_TO_HF_BLOCK_PARTS = {ours: theirs for theirs, ours in _hf_clip._BLOCK_PARTS.items()}
_INTERNAL_BLOCK = re.compile(r'^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$')
_IN_PROJ = re.compile(r'^attn\.in_proj_(weight|bias)$')


def to_hf_clip_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """OpenAI CLIP layout -> Hugging Face ``CLIPModel`` names: the exact inverse of
    :func:`~faceanalysis.converters.convert_hf_clip`.

    ``in_proj_{weight,bias}`` rows are split into ``q_proj | k_proj | v_proj`` (thirds, in that
    order), ``visual.proj`` / ``text_projection`` are transposed into ``Linear`` weights. No
    ``position_ids`` are written: transformers (>= 4.31, and 5.x) keeps them as non-persistent
    buffers, outside the state dict.

    Raises:
        KeyError: a key with no Hugging Face name (e.g. FaRL's MIM head; drop it first).
    """
    out: Dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state_dict.items():
        if key in _TO_HF_FIXED:
            out[_TO_HF_FIXED[key]] = value
            continue
        if key in _TO_HF_TRANSPOSED:
            out[_TO_HF_TRANSPOSED[key]] = value.t()
            continue
        prefix = next((p for p in _TO_HF_RENAMED_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            out[_TO_HF_RENAMED_PREFIXES[prefix] + key[len(prefix):]] = value
            continue
        match = _INTERNAL_BLOCK.match(key)
        if match is None:
            unknown.append(key)
            continue
        visual, index, rest = match.groups()
        stem = f'{"vision_model" if visual else "text_model"}.encoder.layers.{index}.'
        in_proj = _IN_PROJ.match(rest)
        if in_proj is not None:
            if value.shape[0] % 3:
                raise ValueError(f'{key}: {value.shape[0]} rows are not q | k | v thirds')
            for name, part in zip('qkv', value.chunk(3, dim=0)):
                out[f'{stem}self_attn.{name}_proj.{in_proj.group(1)}'] = part
            continue
        part = next((p for p in _TO_HF_BLOCK_PARTS if rest.startswith(p)), None)
        if part is None:
            unknown.append(key)
            continue
        out[stem + _TO_HF_BLOCK_PARTS[part] + rest[len(part):]] = value
    if unknown:
        raise KeyError(f'keys with no Hugging Face CLIPModel name: {sorted(unknown)[:10]} '
                       f'({len(unknown)} in all)')
    return out


def _hf_requirements(state_dict: Mapping[str, torch.Tensor], hints: Mapping[str, Any]) -> None:
    """Refuse a model that ``CLIPModel`` would run differently (every mismatch is silent)."""
    problems = []
    for key, what in (('visual.ln_pre.weight', 'ln_pre'), ('visual.ln_post.weight', 'ln_post'),
                      ('visual.proj', 'the image projection'),
                      ('text_projection', 'the text projection'),
                      ('token_embedding.weight', 'a text tower')):
        if key not in state_dict:
            problems.append(f'CLIPModel needs {what} ({key})')
    if 'visual.conv1.bias' in state_dict:
        problems.append('CLIPModel has no patch-embedding bias (visual.conv1.bias)')
    vision, text = hints.get('vision', {}), hints.get('text', {})
    if vision.get('pool', 'cls') != 'cls':
        problems.append(f"CLIPModel pools the CLS token, the model pools {vision['pool']!r}")
    if not text.get('causal', True):
        problems.append('CLIPModel\'s text tower is causal, the model\'s is not')
    if text.get('pool', 'eot_argmax') not in ('eot_argmax', 'eos'):
        problems.append(f"CLIPModel pools at the EOS token, the model pools {text['pool']!r}")
    if text.get('pool') == 'eos' and text.get('eos_id') == 2:
        problems.append('eos_id 2 would make CLIPModel pool at argmax(input_ids) instead')
    for tower in (vision, text):
        if tower.get('act') not in HF_HIDDEN_ACT:
            problems.append(f"activation {tower.get('act')!r} has no Hugging Face equivalent")
    if problems:
        raise ValueError('cannot export as a Hugging Face CLIPModel: ' + '; '.join(problems))


def hf_clip_config(state_dict: Mapping[str, torch.Tensor],
                   hints: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The ``config.json`` (a ``CLIPConfig`` dict) for an OpenAI-layout CLIP state dict.

    Sizes come from shapes; heads, activations, LayerNorm eps and text pooling from ``hints``
    (:func:`resolve_clip_hints`). Text pooling: our ``'eot_argmax'`` is written as OpenAI's
    original HF ids (bos 0, eos 2, pad 1), with which ``CLIPModel`` pools at
    ``argmax(input_ids)``; ``'eos'`` as ``eos_token_id = eos_id`` (first occurrence).

    Raises:
        ValueError: a model ``CLIPModel`` cannot represent (no ``ln_pre``, patch bias, mean
            pooling, a non-causal text tower ...).
    """
    hints = resolve_clip_hints(state_dict, hints)
    _hf_requirements(state_dict, hints)
    vision, text = hints['vision'], hints['text']
    embed_dim = int(state_dict['text_projection'].shape[1])
    if int(state_dict['visual.proj'].shape[1]) != embed_dim:
        raise ValueError(f'visual.proj gives {state_dict["visual.proj"].shape[1]}-d image '
                         f'embeddings, text_projection {embed_dim}-d text embeddings')
    if 'grid_size' not in vision:
        raise ValueError(f'visual.positional_embedding has {vision.get("pos_rows")} rows, not 1 + '
                         'a square grid')
    if text['pool'] == 'eot_argmax':
        token_ids = dict(bos_token_id=0, eos_token_id=2, pad_token_id=1)
    else:
        token_ids = dict(bos_token_id=None, eos_token_id=int(text['eos_id']),
                         pad_token_id=int(text['pad_id']))
    text_config = dict(
        model_type='clip_text_model', vocab_size=text['vocab_size'],
        hidden_size=text['embed_dims'], intermediate_size=text['feedforward_channels'],
        num_hidden_layers=text['num_layers'], num_attention_heads=int(text['num_heads']),
        max_position_embeddings=text['context_length'], hidden_act=HF_HIDDEN_ACT[text['act']],
        layer_norm_eps=float(text['ln_eps']), projection_dim=embed_dim, **token_ids)
    vision_config = dict(
        model_type='clip_vision_model', hidden_size=vision['embed_dims'],
        intermediate_size=vision['feedforward_channels'], num_hidden_layers=vision['num_layers'],
        num_attention_heads=int(vision['num_heads']), num_channels=vision['in_channels'],
        image_size=vision['img_size'], patch_size=vision['patch_size'],
        hidden_act=HF_HIDDEN_ACT[vision['act']], layer_norm_eps=float(vision['ln_eps']),
        projection_dim=embed_dim)
    dtype = str(state_dict['visual.conv1.weight'].dtype).replace('torch.', '')
    return dict(architectures=['CLIPModel'], model_type='clip', projection_dim=embed_dim,
                logit_scale_init_value=float(hints.get('logit_scale_init',
                                                       HF_LOGIT_SCALE_INIT)),
                text_config=text_config, vision_config=vision_config, torch_dtype=dtype)


def export_hf_clip(state_dict: Mapping[str, torch.Tensor], out_dir: PathLike,
                   hints: Optional[Mapping[str, Any]] = None,
                   overwrite: bool = False) -> List[str]:
    """Write a Hugging Face ``CLIPModel`` directory (FLIP-80M's release layout).

    Args:
        state_dict: OpenAI CLIP layout without MIM keys (``split_clip_pretrainer(sd, mim=False)``).
        out_dir: the directory to create; written atomically (a temporary sibling, renamed).
        hints: see :func:`hf_clip_config`.
        overwrite: replace an existing model directory (one holding ``config.json``).

    Returns:
        The written file paths: ``config.json`` and ``model.safetensors``. No tokenizer or
        preprocessor files: ``CLIPModel`` does not need them, and our models tokenize with
        open_clip's BPE; copy a CLIP tokenizer there for ``CLIPProcessor``.
    """
    from safetensors.torch import save_file
    config = hf_clip_config(state_dict, hints)
    weights = {key: _compact(value) for key, value in to_hf_clip_state_dict(state_dict).items()}

    def write(folder: str) -> None:
        with open(osp.join(folder, 'config.json'), 'w') as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write('\n')
        save_file(weights, osp.join(folder, 'model.safetensors'), metadata={'format': 'pt'})

    out_dir = os.fspath(out_dir)
    _write_directory_atomic(out_dir, write, overwrite)
    return [osp.join(out_dir, 'config.json'), osp.join(out_dir, 'model.safetensors')]


# ----------------------------------------------------------------------------- timm / MAE (MCF)
# mae_timm's outputs carry ``visual.``; the FaceViT layout exported here does not.
_TO_MAE_TOP_PREFIXES = {ours[len('visual.'):]: theirs
                        for theirs, ours in _mae_timm._TOP_PREFIXES.items()}
_TO_MAE_BLOCK_PARTS = {ours: theirs for theirs, ours in _mae_timm._BLOCK_PARTS.items()}
_FACEVIT_BLOCK = re.compile(r'^transformer\.resblocks\.(\d+)\.(.+)$')


def to_mae_timm_state_dict(visual_state_dict: Mapping[str, torch.Tensor]
                           ) -> Dict[str, torch.Tensor]:
    """FaceViT layout (``conv1.*``, ``transformer.resblocks.*``, ``ln_post.*`` ...; a ``visual.``
    prefix on every key is accepted) -> timm / MAE ``VisionTransformer`` names: the exact inverse
    of :func:`~faceanalysis.converters.convert_mae_timm`.

    ``class_embedding [D]`` -> ``cls_token [1, 1, D]``, ``positional_embedding [1 + N, D]`` ->
    ``pos_embed [1, 1 + N, D]``; ``ln_post`` -> ``norm`` (MAE's final norm).

    Raises:
        KeyError: a key timm's encoder has no name for (``proj``, ``mask_token``, ...).
    """
    if visual_state_dict and all(key.startswith('visual.') for key in visual_state_dict):
        visual_state_dict = {key[len('visual.'):]: value
                             for key, value in visual_state_dict.items()}
    out: Dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in visual_state_dict.items():
        if key == 'class_embedding':
            out['cls_token'] = value.reshape(1, 1, -1)
            continue
        if key == 'positional_embedding':
            out['pos_embed'] = value.reshape(1, -1, value.shape[-1])
            continue
        prefix = next((p for p in _TO_MAE_TOP_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            out[_TO_MAE_TOP_PREFIXES[prefix] + key[len(prefix):]] = value
            continue
        match = _FACEVIT_BLOCK.match(key)
        part = None
        if match is not None:
            index, rest = match.groups()
            part = next((p for p in _TO_MAE_BLOCK_PARTS if rest.startswith(p)), None)
        if part is None:
            unknown.append(key)
            continue
        out[f'blocks.{index}.{_TO_MAE_BLOCK_PARTS[part]}{rest[len(part):]}'] = value
    if unknown:
        raise KeyError(f'encoder keys with no timm/MAE name: {sorted(unknown)[:10]} '
                       f'({len(unknown)} in all)')
    return out


def export_mae_timm(visual_state_dict: Mapping[str, torch.Tensor],
                    prefix: str = 'online_encoder.') -> Dict[str, Any]:
    """An MCF encoder as MCF released it: ``{'model': {prefix + timm key: tensor}}``.

    Args:
        visual_state_dict: the encoder in FaceViT layout (``extract_submodel(sd,
            'online_encoder.')``).
        prefix: ``'online_encoder.'`` (what MCF trains by gradient and what our MCF loader
            prefers) or ``'target_encoder.'`` (the momentum encoder; loaders fall back to it).
    """
    if prefix not in MCF_ENCODER_PREFIXES:
        raise ValueError(f'prefix must be one of {MCF_ENCODER_PREFIXES}, got {prefix!r}')
    timm = to_mae_timm_state_dict(visual_state_dict)
    return dict(model={prefix + key: _compact(value) for key, value in timm.items()})


# ----------------------------------------------------------------------------- writing
def _temporary_sibling(path: str) -> str:
    folder, name = osp.split(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return osp.join(folder, f'.{name}.{uuid.uuid4().hex[:8]}.tmp')


def _check_target(path: str, overwrite: bool, directory: bool) -> None:
    if not osp.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(f'{path} exists; pass --force (overwrite=True) to replace it')
    if directory and not (osp.isdir(path) and osp.isfile(osp.join(path, 'config.json'))):
        raise FileExistsError(f'{path} exists and is not a model directory (no config.json); '
                              'refusing to replace it')
    if not directory and osp.isdir(path):
        raise IsADirectoryError(f'{path} is a directory; refusing to replace it with a file')


def save_checkpoint_atomic(obj: Any, path: PathLike, overwrite: bool = False) -> str:
    """``torch.save`` to a temporary sibling, then rename: ``path`` is never half-written."""
    path = os.fspath(path)
    _check_target(path, overwrite, directory=False)
    tmp = _temporary_sibling(path)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.unlink(tmp)
    return path


def _write_directory_atomic(path: str, write: Callable[[str], None], overwrite: bool) -> None:
    _check_target(path, overwrite, directory=True)
    tmp = _temporary_sibling(path)
    os.makedirs(tmp)
    try:
        write(tmp)
        if osp.lexists(path):
            old = _temporary_sibling(path)
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp)
