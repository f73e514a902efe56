"""``FrozenViTTeacher``: a fixed, pre-trained :class:`FaceViT` that only produces target features.

MCF distils the block outputs of a frozen MoCo-v3 ViT-B/16 (shared/docs/pretrain.md §3.1, step 3);
FaRL-style masked image modelling can take its targets from a frozen ViT the same way. The
teacher is one of our own backbones, so every released layout our converters read (FaRL / OpenAI
CLIP, MAE / timm / MCF, Hugging Face CLIP, and MoCo-v3's ``{'state_dict':
{'module.base_encoder.*'}}`` through the ``base_encoder.`` sub-model prefix) loads into it, with
the same position-table resizing and strict key checks as a downstream backbone.

What "frozen" means here:

* every parameter has ``requires_grad=False``, so MMEngine's optimizer constructor and DDP skip
  it; gradients still flow *through* the teacher to its input (MCF's reconstruction);
* the module stays in eval mode whatever ``train()`` is called with;
* it is not part of a training checkpoint: :meth:`state_dict` drops its entries (they are a
  copy of a file we reload at construction) and loading a checkpoint leaves the teacher as
  built, ignoring ``teacher.*`` entries an older checkpoint may hold. A run therefore resumes
  with the teacher of its config, and checkpoints are smaller (ViT-B: 86M parameters fewer).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from faceanalysis.registry import MODELS

__all__ = ['FrozenViTTeacher', 'MOCO_V3_VIT_SWITCHES']

#: FaceViT switches of MoCo-v3's (timm) ViT: erf GELU, LayerNorm eps 1e-6, no ln_pre, patch bias,
#: q|k|v bias (always on in our attention). These are the ``MCF`` preset's switches.
MOCO_V3_VIT_SWITCHES = dict(act='gelu', ln_eps=1e-6, ln_pre=False, patch_bias=True,
                            pos_embed='sincos')


@MODELS.register_module()
class FrozenViTTeacher(BaseModule):
    """A frozen :class:`FaceViT` returning raw block outputs (before the final norm).

    Args:
        backbone: config of the ViT (any registered FaceViT preset), e.g.
            ``dict(type='MCF', arch='base', img_size=224)`` for MoCo-v3 ViT-B/16. ``final_norm``
            and ``output_dim`` are forced off: the taps never use them.
        checkpoint: released weights, read by :meth:`FaceViT.load_pretrained` (all layouts of
            :mod:`faceanalysis.converters`). Required unless ``allow_random_init``.
        out_indices: 0-based blocks whose outputs :meth:`forward` returns, in this order
            (MCF: ``(2, 5, 8, 11)``). Blocks after the last one are removed at construction.
        input_size: resize inputs to this size first, with ``F.interpolate``'s default nearest
            mode, as MCF's ``F.interpolate(x, size=224)`` does; ``None`` feeds them as they are
            (the position table is then resized to the input grid).
        grad_checkpointing: recompute the teacher's blocks in backward when a gradient flows
            through it (saves activation memory of the reconstruction branch).
        allow_random_init: permit ``checkpoint=None`` (tests and smoke runs only: a random
            teacher gives a meaningless target).
    """

    def __init__(self, backbone: dict, checkpoint: Optional[str] = None,
                 out_indices: Sequence[int] = (2, 5, 8, 11),
                 input_size: Union[int, Tuple[int, int], None] = None,
                 grad_checkpointing: bool = False, allow_random_init: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if checkpoint is None and not allow_random_init:
            raise ValueError('FrozenViTTeacher needs a checkpoint (e.g. the MoCo-v3 ViT-B/16 '
                             '.pth.tar for MCF); pass allow_random_init=True only for tests')
        if not out_indices:
            raise ValueError('FrozenViTTeacher needs at least one block in out_indices')
        cfg = dict(backbone)
        cfg.update(final_norm=False, output_dim=None, out_indices=None)
        self.vit = MODELS.build(cfg)
        depth = self.vit.num_layers
        if any(not -depth <= index < depth for index in out_indices):
            raise ValueError(f'FrozenViTTeacher out_indices {tuple(out_indices)} outside the '
                             f'{depth} blocks of the teacher')
        self.out_indices = tuple(index % depth for index in out_indices)
        self.input_size = (input_size, input_size) if isinstance(input_size, int) else (
            tuple(input_size) if input_size is not None else None)
        self.grad_checkpointing = grad_checkpointing
        self.checkpoint = checkpoint
        if checkpoint is not None:
            self.vit.load_pretrained(checkpoint)
        else:
            MMLogger.get_current_instance().warning(
                'FrozenViTTeacher: randomly initialised teacher (allow_random_init=True); its '
                'features are no meaningful target outside tests')
        # Blocks after the last tap never influence the outputs: drop them (and their memory).
        del self.vit.transformer.resblocks[max(self.out_indices) + 1:]
        self.requires_grad_(False)
        super().train(False)
        self.register_state_dict_post_hook(_drop_own_entries)
        self.register_load_state_dict_pre_hook(_keep_built_weights)

    def init_weights(self) -> None:
        """Nothing to do: the weights were loaded at construction (never re-initialised)."""
        self._is_init = True

    def train(self, mode: bool = True) -> 'FrozenViTTeacher':
        """Stay in eval mode: the teacher is a fixed function."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> List[torch.Tensor]:
        """Raw block outputs of ``images``.

        Args:
            images: normalised images (B, 3, H, W) in the statistics the teacher was trained
                with (MoCo-v3: ImageNet mean/std, as MCF's inputs).

        Returns:
            One float32 tensor (B, 1 + N, D) per ``out_indices`` entry, CLS first, before any
            final LayerNorm. N is the patch grid of ``input_size`` (or of the input).
        """
        if self.input_size is not None and tuple(images.shape[-2:]) != self.input_size:
            images = F.interpolate(images, size=self.input_size)
        tokens, _ = self.vit.prepare_tokens(images)
        wanted = {index: position for position, index in enumerate(self.out_indices)}
        taps: List[Optional[torch.Tensor]] = [None] * len(self.out_indices)
        recompute = self.grad_checkpointing and torch.is_grad_enabled() and tokens.requires_grad
        for index, block in enumerate(self.vit.transformer.resblocks):
            if recompute:
                tokens = activation_checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
            if index in wanted:
                taps[wanted[index]] = tokens.float()
        return taps  # type: ignore[return-value]

    def extra_repr(self) -> str:
        return (f'checkpoint={self.checkpoint!r}, out_indices={self.out_indices}, '
                f'input_size={self.input_size}')


def _drop_own_entries(module: FrozenViTTeacher, state_dict: dict, prefix: str,
                      local_metadata: dict) -> None:
    """State-dict post hook: remove the teacher's tensors (it is rebuilt from its file)."""
    for key in [key for key in state_dict if key.startswith(prefix)]:
        del state_dict[key]


def _persistent_state(module: torch.nn.Module) -> dict:
    """``{name: tensor}`` of what ``module.state_dict()`` would hold without our post hook."""
    state = {}
    for prefix, sub in module.named_modules():
        dot = f'{prefix}.' if prefix else ''
        state.update({dot + name: value for name, value in sub._parameters.items()
                      if value is not None})
        state.update({dot + name: value for name, value in sub._buffers.items()
                      if value is not None and name not in sub._non_persistent_buffers_set})
    return state


def _keep_built_weights(module: FrozenViTTeacher, state_dict: dict, prefix: str,
                        local_metadata: dict, strict: bool, missing_keys: list,
                        unexpected_keys: list, error_msgs: list) -> None:
    """Load pre hook: feed the teacher its own current tensors.

    Checkpoints hold no teacher entries (see :func:`_drop_own_entries`), and stale ones from an
    older checkpoint must not replace the configured teacher; so whatever is there is replaced by
    the built weights, which loads as a no-op and reports no missing or unexpected key (with
    both ``torch``'s and MMEngine's ``load_state_dict``, whose recursion hands each child the
    entries of this dict).
    """
    for key in [key for key in state_dict if key.startswith(prefix)]:
        del state_dict[key]
    for name, tensor in _persistent_state(module).items():
        state_dict[prefix + name] = tensor.detach()
