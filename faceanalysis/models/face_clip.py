"""``FaceCLIP``: an image tower, a text tower, their projections and a logit scale.

FaRL and FLIP-80M are CLIP models; this class runs either as released, with zero-shot
classification on top. The state dict is OpenAI CLIP's, so a FaRL ``state_dict`` (or any
checkpoint that :func:`faceanalysis.converters.load_clip_checkpoint` maps to that layout) loads
with ``strict=True``::

    visual.*                                 the image tower, a FaceViT (conv1 ... ln_post, proj)
    token_embedding.weight  positional_embedding  transformer.resblocks.{i}.*  ln_final.*
    text_projection                          the text tower, at the top level (no prefix)
    logit_scale                              a scalar, ln of the softmax temperature's inverse

The text tower's modules are registered on the ``FaceCLIP`` itself by
:class:`~faceanalysis.models.backbones.text_transformer.TextTowerMixin`, the same code that makes
the standalone ``TextTransformer``; no key is renamed on the way in or out, so
``named_parameters()`` (what optimizer ``paramwise_cfg`` sees) equals the checkpoint keys.

Use FaRL / FLIP-80M as a FaceCLIP::

    from faceanalysis.models import FaceCLIP
    model = FaceCLIP.from_pretrained('checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth')
    probs = model.zero_shot('face.jpg', ['a photo of a smiling face', 'a photo of a sad face'])
    # FLIP-80M: a Hugging Face CLIPModel directory (or its model.safetensors / pytorch_model.bin)
    model = FaceCLIP.from_pretrained('checkpoints/FLIP-base-16')

The architecture is read off the tensor shapes; keyword overrides change what shapes cannot tell,
e.g. ``FaceCLIP.from_pretrained(path, act='gelu', text_causal=False)`` (FLIP-80M's
TencentPretrain settings) or ``vision_cfg=dict(img_size=448)``.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from torch import nn

from faceanalysis.registry import MODELS
from .backbones.text_transformer import TextTowerMixin
from .backbones.vit import FaceViT  # noqa: F401  (registers FaceViT for the default vision_cfg)
from .layers.pos_embed import resize_pos_embed

__all__ = [
    'FaceCLIP', 'infer_clip_config', 'clip_preprocess', 'CLIP_MEAN', 'CLIP_STD', 'HINT_KEYS'
]

#: OpenAI CLIP's image normalisation (FaRL and FLIP-80M use it too).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: FaRL's image tower as a CLIP: ViT-B/16 at 224, QuickGELU, ``ln_pre``, ``ln_post`` and ``proj``.
DEFAULT_VISION_CFG = dict(type='FaceViT', arch='base', img_size=224, patch_size=16,
                          act='quick_gelu', ln_eps=1e-5, ln_pre=True, patch_bias=False)
#: OpenAI CLIP's / FaRL's text tower.
DEFAULT_TEXT_CFG = dict(vocab_size=49408, context_length=77, width=512, layers=12, heads=8,
                        act='quick_gelu', ln_eps=1e-5, causal=True, pool='eot_argmax')

#: Architecture facts that tensor shapes cannot tell, accepted as ``from_pretrained`` /
#: ``from_state_dict`` overrides. A tower-specific key (``vision_act``) wins over the shared one
#: (``act``); both win over the converter's per-tower hints (``hints['vision']['act']``).
HINT_KEYS = frozenset({
    'act', 'vision_act', 'text_act', 'ln_eps', 'vision_ln_eps', 'text_ln_eps', 'heads',
    'vision_heads', 'text_heads', 'causal', 'text_causal', 'vision_pool', 'text_pool',
    'eos_id', 'text_eos_id', 'pad_id', 'text_pad_id'
})

#: Our hint names -> the key of :func:`faceanalysis.converters.infer_hints`'s per-tower dicts.
_CONVERTER_HINT_NAMES = {'act': 'act', 'ln_eps': 'ln_eps', 'heads': 'num_heads'}

#: Widths whose usual head width is not 64 (ViT-H/14: 1280 wide, 16 heads of 80).
_HEADS_BY_WIDTH = {1280: 16}

# FaRL's masked-image-modelling head lives under ``visual.`` in its checkpoint; not part of CLIP.
_MIM_PREFIXES = ('visual.lm_transformer.', 'visual.ln_lm.', 'visual.lm_head.')
# Entries of OpenAI's TorchScript state dicts that are not tensors of the model.
_OPENAI_META_KEYS = ('input_resolution', 'context_length', 'vocab_size')


# ---------------------------------------------------------------------- architecture inference
def _count_blocks(state_dict: Dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.')
    indices = {int(m.group(1)) for m in map(pattern.match, state_dict) if m}
    if not indices:
        raise KeyError(f'no {prefix}{{i}}.* blocks in the state dict')
    return max(indices) + 1


def _hint(hints: Dict[str, Any], tower: str, name: str, default: Any) -> Any:
    """Override ``{tower}_{name}``, then ``name``, then the converter's ``hints[tower]``."""
    for key in (f'{tower}_{name}', name):
        if hints.get(key) is not None:
            return hints[key]
    nested = hints.get(tower)
    converter_name = _CONVERTER_HINT_NAMES.get(name)
    if isinstance(nested, dict) and converter_name and nested.get(converter_name) is not None:
        return nested[converter_name]
    return default


def _default_heads(width: int, tower: str) -> int:
    if width in _HEADS_BY_WIDTH:
        return _HEADS_BY_WIDTH[width]
    if width % 64:
        raise ValueError(f'cannot infer the {tower} heads of width {width} (OpenAI CLIP uses '
                         f'width // 64): pass {tower}_heads=...')
    return width // 64


def infer_clip_config(state_dict: Dict[str, torch.Tensor],
                      hints: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """:class:`FaceCLIP` constructor arguments for an OpenAI-layout CLIP state dict.

    Read from shapes: vision width, patch size and input size (``visual.conv1.weight``,
    ``visual.positional_embedding``), depth (number of ``resblocks``), MLP width, ``ln_pre`` /
    patch bias presence, text vocabulary, context length and width (the two text embeddings) and
    the embedding size (``text_projection`` / ``visual.proj``). Heads, activation and LayerNorm
    eps come from the flat override keys of :data:`HINT_KEYS`, else from the converter's per-tower
    hints (``hints['vision'|'text']['num_heads'|'act'|'ln_eps']``, read from a Hugging Face
    ``config.json`` or the layout's convention), else OpenAI CLIP's rules (``width // 64`` heads,
    QuickGELU, 1e-5). Text causality and pooling default to OpenAI's (causal, ``eot_argmax``).

    Args:
        state_dict: OpenAI CLIP layout.
        hints: :func:`faceanalysis.converters.load_clip_checkpoint`'s hints and/or flat
            :data:`HINT_KEYS` entries.

    Returns:
        ``dict(embed_dim=E, vision_cfg=..., text_cfg=...)``.
    """
    hints = dict(hints or {})
    required = ('visual.conv1.weight', 'visual.positional_embedding', 'token_embedding.weight',
                'positional_embedding', 'text_projection')
    missing = [key for key in required if key not in state_dict]
    if missing:
        raise KeyError(f'not an OpenAI-layout CLIP state dict: {missing} missing')

    v_width, _, patch_h, patch_w = state_dict['visual.conv1.weight'].shape
    if patch_h != patch_w:
        raise ValueError(f'non-square patches {patch_h}x{patch_w} are not supported')
    grid_tokens = state_dict['visual.positional_embedding'].shape[0] - 1
    side = math.isqrt(grid_tokens)
    if side * side != grid_tokens:
        raise ValueError(f'visual.positional_embedding has {grid_tokens + 1} rows, which is not '
                         '1 + a square grid')
    v_ff = state_dict['visual.transformer.resblocks.0.mlp.c_fc.weight'].shape[0]
    proj = state_dict.get('visual.proj')
    vision_cfg = dict(
        type='FaceViT',
        arch=dict(embed_dims=v_width, num_layers=_count_blocks(state_dict,
                                                               'visual.transformer.resblocks.'),
                  num_heads=_hint(hints, 'vision', 'heads', None) or _default_heads(v_width,
                                                                                   'vision'),
                  feedforward_channels=v_ff),
        img_size=side * patch_h, patch_size=patch_h,
        act=_hint(hints, 'vision', 'act', 'quick_gelu'),
        ln_eps=_hint(hints, 'vision', 'ln_eps', 1e-5),
        ln_pre='visual.ln_pre.weight' in state_dict,
        patch_bias='visual.conv1.bias' in state_dict,
        final_norm='visual.ln_post.weight' in state_dict,
        output_dim=proj.shape[1] if proj is not None else None,
        pool=_hint(hints, 'vision', 'pool', 'cls'))

    vocab_size, t_width = state_dict['token_embedding.weight'].shape
    text_proj = state_dict['text_projection']
    text_cfg = dict(
        vocab_size=vocab_size, context_length=state_dict['positional_embedding'].shape[0],
        width=t_width, layers=_count_blocks(state_dict, 'transformer.resblocks.'),
        heads=_hint(hints, 'text', 'heads', None) or _default_heads(t_width, 'text'),
        feedforward_channels=state_dict['transformer.resblocks.0.mlp.c_fc.weight'].shape[0],
        act=_hint(hints, 'text', 'act', 'quick_gelu'),
        ln_eps=_hint(hints, 'text', 'ln_eps', 1e-5),
        causal=bool(_hint(hints, 'text', 'causal', True)),
        pool=_hint(hints, 'text', 'pool', 'eot_argmax'),
        pad_id=_hint(hints, 'text', 'pad_id', 0),
        eos_id=_hint(hints, 'text', 'eos_id', 49407))
    embed_dim = text_proj.shape[1]
    if proj is not None and proj.shape[1] != embed_dim:
        raise ValueError(f'visual.proj gives {proj.shape[1]}-d image embeddings but '
                         f'text_projection {embed_dim}-d text embeddings')
    return dict(embed_dim=embed_dim, vision_cfg=vision_cfg, text_cfg=text_cfg)


# ---------------------------------------------------------------------- image preprocessing
ImageInput = Union[str, os.PathLike, np.ndarray, torch.Tensor, 'PIL.Image.Image']


def _to_pil(image: Any):
    from PIL import Image
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as opened:
            return opened.convert('RGB')
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise TypeError(f'an array image must be HxWx3 (RGB) or HxW uint8, got '
                            f'{image.dtype} {image.shape}')
        return Image.fromarray(image).convert('RGB')
    if isinstance(image, Image.Image):
        return image.convert('RGB')
    raise TypeError(f'unsupported image type {type(image).__name__}')


def clip_preprocess(image: Union[ImageInput, Sequence[ImageInput]],
                    img_size: Union[int, Tuple[int, int]] = 224,
                    mean: Sequence[float] = CLIP_MEAN,
                    std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """CLIP's evaluation transform: bicubic resize of the shorter side, center crop, normalise.

    Matches OpenAI's ``Resize(n, BICUBIC) -> CenterCrop(n) -> ToTensor -> Normalize`` on PIL
    images (PIL's antialiased bicubic, torchvision's rounding of the long side and of the crop
    offsets).

    Args:
        image: a path, an HxWx3 uint8 RGB array, a ``PIL.Image``, a (B, H, W, 3) uint8 array, or
            a list of those; a float tensor (3, H, W) or (B, 3, H, W) is taken as already
            normalised and returned batched, unchanged.
        img_size: output size, int or (H, W).

    Returns:
        float32 (B, 3, H, W).
    """
    if isinstance(image, torch.Tensor):
        if not image.is_floating_point() or image.dim() not in (3, 4):
            raise TypeError('a tensor image must be a normalised float (3, H, W) or (B, 3, H, W)')
        return image if image.dim() == 4 else image.unsqueeze(0)
    if isinstance(image, np.ndarray) and image.ndim == 4:
        image = list(image)
    images = list(image) if isinstance(image, (list, tuple)) else [image]
    from PIL import Image
    out_h, out_w = (img_size, img_size) if isinstance(img_size, int) else img_size
    mean_arr = np.asarray(mean, dtype=np.float32)
    std_arr = np.asarray(std, dtype=np.float32)
    batch = []
    for item in images:
        pil = _to_pil(item)
        width, height = pil.size
        if out_h / height >= out_w / width:
            new_h, new_w = out_h, int(out_h * width / height)
        else:
            new_h, new_w = int(out_w * height / width), out_w
        if (new_w, new_h) != (width, height):
            pil = pil.resize((new_w, new_h), Image.BICUBIC)
        top = int(round((new_h - out_h) / 2.0))
        left = int(round((new_w - out_w) / 2.0))
        pil = pil.crop((left, top, left + out_w, top + out_h))
        array = np.asarray(pil, dtype=np.float32) / 255.
        batch.append(torch.from_numpy(((array - mean_arr) / std_arr).transpose(2, 0, 1).copy()))
    return torch.stack(batch)


# ---------------------------------------------------------------------- the model
def _adapt_clip_state_dict(module: 'FaceCLIP', state_dict: Dict[str, Any], prefix: str,
                           *args) -> None:
    """Load pre-hook: fit a CLIP checkpoint to this model before the strict key check.

    Drops FaRL's MIM head (``visual.mask_token`` unless the image tower builds one,
    ``visual.lm_transformer.*``, ``visual.ln_lm.*``, ``visual.lm_head.*``) and the non-tensor
    entries of OpenAI's TorchScript files, resizes ``visual.positional_embedding`` to the image
    tower's grid (FaRL's bicubic rule) and reshapes a 1-element ``logit_scale``.
    """
    ignored = []
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if (name in _OPENAI_META_KEYS or name.startswith(_MIM_PREFIXES)
                or (name == 'visual.mask_token' and module.visual.mask_token is None)):
            state_dict.pop(key)
            ignored.append(name)
    module.ignored_checkpoint_keys = ignored

    pos_key = prefix + 'visual.positional_embedding'
    own_pos = module.visual.positional_embedding
    source = state_dict.get(pos_key)
    if isinstance(source, torch.Tensor) and source.dim() == 2 and \
            source.shape[0] != own_pos.shape[0] and source.shape[1] == own_pos.shape[1]:
        side = math.isqrt(source.shape[0] - 1)
        if side * side == source.shape[0] - 1:
            state_dict[pos_key] = resize_pos_embed(source, (side, side), module.visual.grid_size)

    scale_key = prefix + 'logit_scale'
    scale = state_dict.get(scale_key)
    if isinstance(scale, torch.Tensor) and scale.numel() == 1:
        state_dict[scale_key] = scale.reshape(module.logit_scale.shape)


@MODELS.register_module()
class FaceCLIP(TextTowerMixin, BaseModule):
    """CLIP with a :class:`FaceViT` image tower and OpenAI CLIP's text tower (FaRL, FLIP-80M).

    Args:
        embed_dim: size E of the joint embedding (``visual.proj`` and ``text_projection``).
        vision_cfg: image-tower config; a ``FaceViT`` one (or one without ``type``) is merged over
            :data:`DEFAULT_VISION_CFG` (FaRL's ViT-B/16 at 224), a preset (``type='FLIP80M'``)
            keeps its own switches. ``final_norm`` defaults to True and ``output_dim`` to
            ``embed_dim``.
        text_cfg: :class:`~faceanalysis.models.backbones.TextTransformer` arguments (without
            ``type``); merged over :data:`DEFAULT_TEXT_CFG`; ``embed_dim`` defaults to
            ``embed_dim``.
        init_logit_scale: initial ``logit_scale`` (CLIP: ln(1 / 0.07)).
        logit_scale_max: the scale is clamped to this before ``exp`` wherever it is used
            (open_clip / OpenAI: ln 100); ``None`` disables the clamp.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads any checkpoint
            :func:`faceanalysis.converters.load_clip_checkpoint` reads (strict).

    Use FaRL / FLIP-80M as a FaceCLIP::

        model = FaceCLIP.from_pretrained('checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth')
        probs = model.zero_shot('face.jpg', ['a photo of a smiling face',
                                             'a photo of a sad face'])
    """

    def __init__(self, embed_dim: int = 512, vision_cfg: Optional[dict] = None,
                 text_cfg: Optional[dict] = None,
                 init_logit_scale: float = math.log(1 / 0.07),
                 logit_scale_max: Optional[float] = math.log(100),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        vision = dict(vision_cfg or {})
        if vision.get('type', 'FaceViT') == 'FaceViT':  # a preset (FaRL, FLIP80M) has its own
            vision = {**DEFAULT_VISION_CFG, **vision}
        vision.setdefault('final_norm', True)
        vision.setdefault('output_dim', embed_dim)
        self.visual = MODELS.build(vision)

        text = {**DEFAULT_TEXT_CFG, **(text_cfg or {})}
        text_type = text.pop('type', 'TextTransformer')
        if text_type != 'TextTransformer':
            raise ValueError(f'FaceCLIP builds an OpenAI-CLIP text tower; got type={text_type!r}')
        text.setdefault('embed_dim', embed_dim)
        self.build_text_tower(**text)

        image_dim = self.visual.proj.shape[1] if self.visual.proj is not None \
            else self.visual.embed_dims
        if image_dim != self.text_output_dim:
            raise ValueError(f'image embeddings are {image_dim}-d but text embeddings '
                             f'{self.text_output_dim}-d: set output_dim / embed_dim')
        self.embed_dim = image_dim
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.logit_scale_max = logit_scale_max
        self.ignored_checkpoint_keys: List[str] = []
        self.register_load_state_dict_pre_hook(_adapt_clip_state_dict)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _merge_overrides(config: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
        """Apply ``from_pretrained`` overrides (other than hints) to an inferred config."""
        config = dict(config, vision_cfg=dict(config['vision_cfg']),
                      text_cfg=dict(config['text_cfg']))
        for name, value in overrides.items():
            if name in ('vision_cfg', 'text_cfg'):
                for key, item in value.items():
                    current = config[name].get(key)
                    if isinstance(current, dict) and isinstance(item, dict):
                        config[name][key] = {**current, **item}
                    else:
                        config[name][key] = item
            else:
                config[name] = value
        return config

    @classmethod
    def from_state_dict(cls, state_dict: Dict[str, torch.Tensor],
                        hints: Optional[Dict[str, Any]] = None, **overrides) -> 'FaceCLIP':
        """Build a model whose architecture fits an OpenAI-layout state dict, and load it.

        Args:
            state_dict: OpenAI CLIP layout (FaRL's MIM keys are ignored).
            hints: architecture facts shapes cannot tell (see :data:`HINT_KEYS`).
            **overrides: hint keys (:data:`HINT_KEYS`, they win over ``hints``), ``vision_cfg``
                / ``text_cfg`` dicts merged into the inferred ones, or other constructor
                arguments (``logit_scale_max`` ...).

        Returns:
            The model in eval mode; ``ignored_checkpoint_keys`` lists the dropped entries.
        """
        hints = dict(hints or {})
        hints.update({key: overrides.pop(key) for key in list(overrides) if key in HINT_KEYS})
        config = cls._merge_overrides(infer_clip_config(state_dict, hints), overrides)
        model = cls(**config)
        model.load_state_dict(state_dict, strict=True)
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str, **overrides) -> 'FaceCLIP':
        """Load a released CLIP checkpoint (FaRL ``.pth``, Hugging Face ``CLIPModel`` ...).

        The file is read and mapped to OpenAI's layout by
        :func:`faceanalysis.converters.load_clip_checkpoint`; the architecture is inferred from
        the tensor shapes and the converter's hints (:func:`infer_clip_config`), so no
        architecture argument is needed. ``overrides`` as in :meth:`from_state_dict`.

        Example:
            >>> model = FaceCLIP.from_pretrained(
            ...     'checkpoints/FaRL-Base-Patch16-LAIONFace20M-ep64.pth')
            >>> probs = model.zero_shot('face.jpg', ['a photo of a smiling face',
            ...                                      'a photo of a sad face'])
        """
        from faceanalysis.converters import load_clip_checkpoint
        state_dict, layout, hints = load_clip_checkpoint(path)
        model = cls.from_state_dict(state_dict, hints=hints, **overrides)
        model.checkpoint_info = dict(path=str(path), layout=layout, hints=dict(hints or {}),
                                     ignored=list(model.ignored_checkpoint_keys))
        MMLogger.get_current_instance().info(
            f'FaceCLIP: loaded {path} (layout {layout}); ignored entries: '
            f'{model.ignored_checkpoint_keys or "none"}')
        return model

    def init_weights(self) -> None:
        """``init_cfg=dict(type='Pretrained', checkpoint=...)`` loads through the converters."""
        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(init_cfg['checkpoint'])
            self._is_init = True
            return
        super().init_weights()

    def load_pretrained(self, path: str) -> Dict[str, Any]:
        """Load a supported CLIP checkpoint into this (already built) model, strictly."""
        from faceanalysis.converters import load_clip_checkpoint
        state_dict, layout, _ = load_clip_checkpoint(path)
        self.load_state_dict(state_dict, strict=True)
        MMLogger.get_current_instance().info(
            f'FaceCLIP: loaded {path} (layout {layout}); ignored entries: '
            f'{self.ignored_checkpoint_keys or "none"}')
        return dict(layout=layout, ignored=list(self.ignored_checkpoint_keys))

    # ------------------------------------------------------------------ encoders
    @property
    def img_size(self) -> Tuple[int, int]:
        return self.visual.img_size

    def encode_image(self, images: torch.Tensor, normalize: bool = False,
                     token_drop_ratio: float = 0.) -> torch.Tensor:
        """Image embedding: normalised (B, 3, H, W) -> (B, E) (L2-normalised if ``normalize``).

        ``token_drop_ratio`` > 0 applies FLIP's random patch removal.
        """
        features = self.visual.forward_pooled(images, token_drop_ratio=token_drop_ratio)
        return F.normalize(features, dim=-1) if normalize else features

    def logit_scale_exp(self) -> torch.Tensor:
        """``exp(logit_scale)``, with ``logit_scale`` clamped at ``logit_scale_max``."""
        scale = self.logit_scale
        if self.logit_scale_max is not None:
            scale = scale.clamp(max=self.logit_scale_max)
        return scale.exp()

    def forward(self, images: torch.Tensor,
                token_ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """L2-normalised image (B, E) and text (T, E) embeddings, and ``exp(logit_scale)``."""
        return (self.encode_image(images, normalize=True),
                self.encode_text(token_ids, normalize=True), self.logit_scale_exp())

    def get_logits(self, images: torch.Tensor,
                   token_ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """CLIP logits: (B, T) per image and its transpose (T, B) per text."""
        image_features, text_features, scale = self(images, token_ids)
        logits = scale * image_features @ text_features.t()
        return logits, logits.t()

    # ------------------------------------------------------------------ zero-shot
    def preprocess(self, image: Union[ImageInput, Sequence[ImageInput]]) -> torch.Tensor:
        """:func:`clip_preprocess` to this model's ``img_size``, on its device and dtype."""
        parameter = self.logit_scale
        return clip_preprocess(image, self.img_size).to(parameter.device, parameter.dtype)

    @torch.no_grad()
    def zero_shot(self, image: Union[ImageInput, Sequence[ImageInput]],
                  prompts: Sequence[str]) -> torch.Tensor:
        """Zero-shot classification: softmax over prompts of scaled cosine similarities.

        Args:
            image: a path, an HxWx3 uint8 RGB array, a ``PIL.Image``, a list of those, or a
                normalised float tensor (3, H, W) / (B, 3, H, W); see :func:`clip_preprocess`.
            prompts: one text per class, e.g. ``['a photo of a smiling face', ...]``.

        Returns:
            float probabilities (B, len(prompts)), each row summing to 1.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        was_training = self.training
        self.eval()
        try:
            images = self.preprocess(image)
            token_ids = self.tokenize(list(prompts)).to(images.device)
            logits, _ = self.get_logits(images, token_ids)
        finally:
            self.train(was_training)
        return logits.float().softmax(dim=-1)
