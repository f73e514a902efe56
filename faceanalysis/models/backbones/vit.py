"""``FaceViT``: the one Vision Transformer behind every face backbone.

FaRL, MCF and FLIP-80M differ only in switches (activation, LayerNorm eps, ``ln_pre``, patch-embed
bias, position-embedding kind) and in the layout of their released checkpoints; the presets in
:mod:`.presets` set the switches and :mod:`faceanalysis.converters` maps the checkpoints. Parameter
names are OpenAI CLIP's visual tower without the ``visual.`` prefix::

    conv1.{weight[,bias]}  class_embedding [D]  positional_embedding [1+N, D]  ln_pre
    transformer.resblocks.{i}.*  ln_post  proj [D, E]

Coordinate conventions: an input (B, 3, H, W) gives an (H/p) x (W/p) patch grid whose token n
covers pixels [p*col, p*col+p) x [p*row, p*row+p) with n = row * (W/p) + col.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from torch import nn

from faceanalysis.registry import MODELS
from ..layers.pos_embed import resize_pos_embed, sincos_2d_pos_embed
from ..layers.transformer import Transformer

__all__ = ['FaceViT', 'VIT_ARCHS']

#: Sizes of the usual ViTs (OpenAI CLIP / timm naming). ``dict`` archs use the same keys.
VIT_ARCHS: Dict[str, Dict[str, int]] = {
    'tiny': dict(embed_dims=192, num_layers=12, num_heads=3, feedforward_channels=768),
    'small': dict(embed_dims=384, num_layers=12, num_heads=6, feedforward_channels=1536),
    'base': dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072),
    'large': dict(embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=4096),
    'huge': dict(embed_dims=1280, num_layers=32, num_heads=16, feedforward_channels=5120),
}

#: FaRL's ``get_default_output_indices``: the blocks tapped for dense heads.
DEFAULT_OUT_INDICES = {'base': (3, 5, 7, 11), 'large': (7, 11, 15, 23), 'huge': (8, 14, 20, 31)}

#: Checkpoint entries a downstream backbone may ignore: pre-training heads it does not build.
_IGNORABLE_PREFIXES = ('ln_post.', 'proj', 'mask_token', 'lm_transformer.', 'ln_lm.', 'lm_head.')


def _to_2tuple(value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    height, width = value
    return int(height), int(width)


@MODELS.register_module()
class FaceViT(BaseModule):
    """Vision Transformer with the switches of the CLIP / MAE / FLIP families.

    Args:
        arch: ``'tiny' | 'small' | 'base' | 'large' | 'huge'`` or a dict with ``embed_dims``,
            ``num_layers``, ``num_heads`` and ``feedforward_channels``.
        img_size: input size (int or (H, W)) the position table is built for. Other input sizes
            work too: the table is then resized on the fly with the same rule.
        patch_size: patch (and stride) of the patch embedding, in pixels.
        out_indices: 0-based blocks whose outputs :meth:`forward` returns. Defaults to FaRL's
            choice for base/large/huge, otherwise the last block.
        act: MLP activation, ``'quick_gelu' | 'gelu' | 'gelu_tanh'``.
        ln_eps: LayerNorm epsilon of every LayerNorm.
        ln_pre: LayerNorm on the embedded tokens before the first block (CLIP family).
        patch_bias: bias in the patch embedding (MAE, FLIP).
        pos_embed: initial position table, ``'learned'`` (CLIP's random init) or ``'sincos'``
            (MAE's fixed 2-D table). A checkpoint's table replaces either.
        freeze_pos_embed: keep the position table fixed (MAE / MCF pre-training); downstream
            fine-tuning trains it, as FaRL and MAE fine-tuning do.
        final_norm: build ``ln_post`` (used by :meth:`forward_pooled`, never by the taps).
        output_dim: build ``proj`` (D -> output_dim) for image-text embeddings.
        pool: pooled output of :meth:`forward_pooled`: ``'cls'`` (CLIP) or ``'avg_all'``
            (mean over all tokens after ``ln_post``, FLIP).
        drop_path_rate: stochastic depth at the last block (linear in depth).
        grad_checkpointing: recompute blocks in backward.
        mask_token: build a learnable token that :meth:`prepare_tokens` substitutes for masked
            patches (BEiT / FaRL masked image modelling).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads any supported released
            layout (:func:`faceanalysis.converters.load_visual_state_dict`); position
            embeddings are resized to ``img_size`` and a missing backbone key is an error.
    """

    def __init__(self, arch: Union[str, dict] = 'base', img_size: Union[int, Sequence[int]] = 224,
                 patch_size: int = 16, in_channels: int = 3,
                 out_indices: Optional[Sequence[int]] = None, act: str = 'quick_gelu',
                 ln_eps: float = 1e-5, ln_pre: bool = True, patch_bias: bool = False,
                 pos_embed: str = 'learned', freeze_pos_embed: bool = False,
                 final_norm: bool = False,
                 output_dim: Optional[int] = None, pool: str = 'cls',
                 drop_path_rate: float = 0., grad_checkpointing: bool = False,
                 mask_token: bool = False, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, str):
            if arch not in VIT_ARCHS:
                raise ValueError(f'unknown arch {arch!r}; choose one of {sorted(VIT_ARCHS)} '
                                 'or pass a dict')
            sizes = VIT_ARCHS[arch]
            default_out = DEFAULT_OUT_INDICES.get(arch)
        else:
            missing = {'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels'} - set(arch)
            if missing:
                raise ValueError(f'arch dict lacks {sorted(missing)}')
            sizes, default_out = dict(arch), None
        if pos_embed not in ('learned', 'sincos'):
            raise ValueError(f"pos_embed must be 'learned' or 'sincos', got {pos_embed!r}")
        if pool not in ('cls', 'avg_all'):
            raise ValueError(f"pool must be 'cls' or 'avg_all', got {pool!r}")

        self.embed_dims = width = sizes['embed_dims']
        self.num_layers = sizes['num_layers']
        self.img_size = _to_2tuple(img_size)
        self.patch_size = patch_size
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        if out_indices is None:
            out_indices = default_out or (self.num_layers - 1, )
        out_indices = [index % self.num_layers for index in out_indices]
        if any(not 0 <= index < self.num_layers for index in out_indices):
            raise ValueError(f'out_indices {out_indices} outside 0..{self.num_layers - 1}')
        self.out_indices = tuple(out_indices)
        self.pos_embed_type = pos_embed
        self.pool = pool

        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=patch_size, stride=patch_size,
                               bias=patch_bias)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        num_tokens = 1 + self.grid_size[0] * self.grid_size[1]
        self.positional_embedding = nn.Parameter(torch.zeros(num_tokens, width),
                                                 requires_grad=not freeze_pos_embed)
        self.ln_pre = nn.LayerNorm(width, eps=ln_eps) if ln_pre else None
        self.transformer = Transformer(width, sizes['num_layers'], sizes['num_heads'],
                                       sizes['feedforward_channels'], act=act, ln_eps=ln_eps,
                                       drop_path_rate=drop_path_rate,
                                       grad_checkpointing=grad_checkpointing)
        self.ln_post = nn.LayerNorm(width, eps=ln_eps) if final_norm else None
        self.proj = nn.Parameter(torch.empty(width, output_dim)) if output_dim else None
        self.mask_token = nn.Parameter(torch.zeros(width)) if mask_token else None
        self._reset_parameters()

    # ------------------------------------------------------------------ initialisation
    def _reset_parameters(self) -> None:
        """CLIP's initialisation; MAE's sin-cos table when ``pos_embed='sincos'``."""
        scale = self.embed_dims**-0.5
        nn.init.normal_(self.class_embedding, std=scale)
        with torch.no_grad():
            if self.pos_embed_type == 'sincos':
                self.positional_embedding.copy_(sincos_2d_pos_embed(self.embed_dims,
                                                                    self.grid_size))
            else:
                nn.init.normal_(self.positional_embedding, std=scale)
        self.transformer.init_clip_weights()
        if self.proj is not None:
            nn.init.normal_(self.proj, std=scale)
        if self.mask_token is not None:
            nn.init.trunc_normal_(self.mask_token, std=0.02)

    def init_weights(self) -> None:
        """Load ``init_cfg=dict(type='Pretrained', checkpoint=...)`` through our converters.

        MMEngine's generic ``PretrainedInit`` would load with ``strict=False`` and silently skip
        every key of a foreign layout; here the layout is detected, mapped, position embeddings
        are resized, and missing keys raise.
        """
        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(init_cfg['checkpoint'], prefix=init_cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None) -> Dict[str, str]:
        """Load a released checkpoint (any supported layout) into this backbone.

        Args:
            checkpoint: file or Hugging Face directory.
            prefix: sub-model to take from the checkpoint, in our layout (default ``'visual.'``).

        Returns:
            Information about the load: ``layout`` and the ignored extra keys.
        """
        from faceanalysis.converters import load_visual_state_dict
        state_dict, layout = load_visual_state_dict(checkpoint, prefix=prefix or 'visual.')
        ignored = self.load_visual_state_dict(state_dict, source=f'{checkpoint} ({layout})')
        logger = MMLogger.get_current_instance()
        logger.info(f'{type(self).__name__}: loaded {checkpoint} (layout {layout}); '
                    f'ignored pre-training entries: {sorted(ignored) or "none"}')
        return dict(layout=layout, ignored=','.join(sorted(ignored)))

    def load_visual_state_dict(self, state_dict: Dict[str, torch.Tensor],
                               source: str = 'state dict') -> List[str]:
        """Load a visual state dict in our layout (no ``visual.`` prefix), strictly.

        The position table is resized to this model's grid. Keys of pre-training heads this
        backbone does not build (``ln_post``, ``proj``, FaRL's MIM head) are ignored and returned;
        any other missing or unexpected key raises ``KeyError`` naming it.
        """
        state_dict = dict(state_dict)
        own = self.state_dict()
        pos_key = 'positional_embedding'
        if pos_key in state_dict:
            src = state_dict[pos_key]
            src_tokens = src.shape[0] - 1
            side = int(round(src_tokens**0.5))
            if side * side != src_tokens:
                raise ValueError(f'{source}: positional_embedding has {src.shape[0]} rows, '
                                 'which is not 1 + a square grid')
            state_dict[pos_key] = resize_pos_embed(src, (side, side), self.grid_size)
        conv_key = 'conv1.weight'
        if conv_key in state_dict and state_dict[conv_key].shape != own[conv_key].shape:
            raise ValueError(f'{source}: patch embedding {tuple(state_dict[conv_key].shape)} '
                             f'does not match this backbone {tuple(own[conv_key].shape)}: '
                             'check arch and patch_size')
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        ignored = [key for key in unexpected if key.startswith(_IGNORABLE_PREFIXES)]
        foreign = [key for key in unexpected if key not in ignored]
        if missing or foreign:
            hint = ''
            if 'conv1.bias' in foreign or 'conv1.bias' in missing:
                hint = ' (patch_bias differs: is this the right preset, FaRL/MCF/FLIP80M?)'
            elif any(key.startswith('ln_pre') for key in missing + foreign):
                hint = ' (ln_pre differs: is this the right preset, FaRL/MCF/FLIP80M?)'
            raise KeyError(f'{source} does not fit {type(self).__name__}{hint}: '
                           f'missing keys {missing}, unexpected keys {foreign}')
        for key in ignored:
            state_dict.pop(key)
        self.load_state_dict(state_dict, strict=True)
        return ignored

    # ------------------------------------------------------------------ forward
    def _position_table(self, grid: Tuple[int, int]) -> torch.Tensor:
        return resize_pos_embed(self.positional_embedding, self.grid_size, grid)

    def prepare_tokens(self, x: torch.Tensor,
                       mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Embed an image batch into tokens.

        Args:
            x: normalised images (B, C, H, W); H and W multiples of ``patch_size``.
            mask: optional (B, N) bool, True where a patch is replaced by ``mask_token``.

        Returns:
            Tokens (B, 1 + N, D) with CLS first, position added and ``ln_pre`` applied, and the
            patch grid (h, w) with N = h * w.
        """
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f'input {height}x{width} is not a multiple of the patch size '
                             f'{self.patch_size}')
        patches = self.conv1(x)
        grid = (patches.shape[-2], patches.shape[-1])
        patches = patches.flatten(2).transpose(1, 2)  # (B, N, D)
        if mask is not None:
            if self.mask_token is None:
                raise RuntimeError('a token mask needs the backbone built with mask_token=True')
            replace = mask.unsqueeze(-1).to(patches.dtype)
            patches = patches * (1 - replace) + self.mask_token.to(patches.dtype) * replace
        cls = self.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        tokens = torch.cat([cls, patches], dim=1) + self._position_table(grid).to(patches.dtype)
        if self.ln_pre is not None:
            tokens = self.ln_pre(tokens)
        return tokens, grid

    @staticmethod
    def random_keep_indices(batch: int, num_patches: int, num_keep: int,
                            device: Optional[torch.device] = None,
                            generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """MAE / FLIP random masking: (B, K) ascending patch indices (0-based, no CLS) of the
        ``num_keep`` patches each sample keeps (uniform noise, argsort, the K lowest)."""
        noise = torch.rand(batch, num_patches, device=device, generator=generator)
        return noise.argsort(dim=1)[:, :num_keep].sort(dim=1).values

    @staticmethod
    def keep_tokens(tokens: torch.Tensor, kept_indices: torch.Tensor) -> torch.Tensor:
        """CLS plus the patches ``kept_indices`` (B, K) selects: (B, 1 + N, D) -> (B, 1 + K, D)."""
        dims = tokens.shape[-1]
        patches = tokens[:, 1:].gather(1, kept_indices.unsqueeze(-1).expand(-1, -1, dims))
        return torch.cat([tokens[:, :1], patches], dim=1)

    @staticmethod
    def drop_tokens(tokens: torch.Tensor, ratio: float,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """FLIP / MAE token removal: keep CLS and a random ``1 - ratio`` of the patches per sample.

        Args:
            tokens: (B, 1 + N, D) with CLS first.
            ratio: fraction of patch tokens removed, in [0, 1).

        Returns:
            (B, 1 + K, D) with K = N - int(N * ratio); kept patches stay in their original order.
        """
        if not 0 <= ratio < 1:
            raise ValueError(f'token drop ratio must be in [0, 1), got {ratio}')
        if ratio == 0:
            return tokens
        batch, length, _ = tokens.shape
        num_patches = length - 1
        keep = num_patches - int(num_patches * ratio)
        kept = FaceViT.random_keep_indices(batch, num_patches, keep, tokens.device, generator)
        return FaceViT.keep_tokens(tokens, kept)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Dense features for parsing / alignment heads.

        Args:
            x: normalised images (B, 3, H, W).

        Returns:
            One map (B, D, H/p, W/p) per ``out_indices`` entry: the raw block output with the
            class token dropped (no ``ln_post``), in float32 like FaRL's feature extractor.
        """
        tokens, (grid_h, grid_w) = self.prepare_tokens(x)
        _, taps = self.transformer(tokens, out_indices=self.out_indices)
        batch = x.shape[0]
        return tuple(
            tap[:, 1:].transpose(1, 2).reshape(batch, self.embed_dims, grid_h, grid_w).float()
            for tap in taps)

    def forward_pooled(self, x: torch.Tensor, token_drop_ratio: float = 0.,
                       mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Image embedding for contrastive models: pool, ``ln_post``, then ``proj`` if built.

        Args:
            x: normalised images (B, 3, H, W).
            token_drop_ratio: FLIP's random token removal (applied whenever > 0).
            mask: (B, N) bool patches replaced by ``mask_token``.

        Returns:
            (B, output_dim) if ``proj`` exists, else (B, D).
        """
        tokens, _ = self.prepare_tokens(x, mask=mask)
        tokens = self.drop_tokens(tokens, token_drop_ratio)
        tokens, _ = self.transformer(tokens)
        return self.pool_tokens(tokens)

    def pool_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pool the last block's tokens (B, 1 + K, D), CLS first: ``pool``, ``ln_post``, ``proj``.

        Returns:
            (B, output_dim) if ``proj`` exists, else (B, D).
        """
        if self.pool == 'cls':
            pooled = self.ln_post(tokens[:, 0]) if self.ln_post is not None else tokens[:, 0]
        else:
            normed = self.ln_post(tokens) if self.ln_post is not None else tokens
            pooled = normed.mean(dim=1)
        return pooled @ self.proj if self.proj is not None else pooled
