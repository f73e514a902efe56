"""FaRL, MCF and FLIP-80M: :class:`FaceViT` switch settings matching each released model.

Each preset fixes the switches its checkpoints were trained with (shared/docs/pretrain.md §2.2,
§3.2, §5.2); everything else (``arch``, ``img_size``, ``out_indices``, ``drop_path_rate`` ...)
is passed through to :class:`FaceViT`. A switch can still be overridden, e.g. FLIP-80M's
``act='gelu_tanh'`` (the activation TencentPretrain trained it with, see ``FLIP80M``).
"""
from __future__ import annotations

from typing import Union

from faceanalysis.registry import MODELS
from .vit import FaceViT

__all__ = ['FaRL', 'MCF', 'FLIP80M']


class _Preset(FaceViT):
    """A :class:`FaceViT` whose switch defaults come from :attr:`switches`."""

    switches: dict = {}

    def __init__(self, arch: Union[str, dict] = 'base', **kwargs) -> None:
        for name, value in self.switches.items():
            kwargs.setdefault(name, value)
        super().__init__(arch=arch, **kwargs)


@MODELS.register_module()
class FaRL(_Preset):
    """FaRL ViT (OpenAI CLIP visual layout).

    QuickGELU, LayerNorm eps 1e-5, ``ln_pre``, no patch-embedding bias, learned position table.
    Loads ``FaRL-Base-Patch16-LAIONFace20M-ep{16,64}.pth`` as released (text tower and MIM head
    ignored). Downstream FaRL runs at ``img_size=448`` with ``out_indices=(3, 5, 7, 11)``.
    """

    switches = dict(patch_size=16, act='quick_gelu', ln_eps=1e-5, ln_pre=True, patch_bias=False,
                    pos_embed='learned')


@MODELS.register_module()
class MCF(_Preset):
    """MCF encoder (MAE / timm layout in the released file).

    erf GELU, LayerNorm eps 1e-6, no ``ln_pre``, patch-embedding bias, MAE's sin-cos position table
    (stored in the checkpoint; trained downstream as MAE fine-tuning does, fixed with
    ``freeze_pos_embed=True`` for pre-training). The online encoder of
    ``{'model': {...}}`` is used; decoder, momentum encoder and teacher keys are ignored.
    """

    switches = dict(patch_size=16, act='gelu', ln_eps=1e-6, ln_pre=False, patch_bias=True,
                    pos_embed='sincos')


@MODELS.register_module()
class FLIP80M(_Preset):
    """FLIP-80M (FaceCLIP) image tower, loaded from its Hugging Face ``CLIPModel`` release.

    B/32 is ``arch='base', patch_size=32``; B/16 is ``arch='base', patch_size=16``; L/14 is
    ``arch='large', patch_size=14``. The defaults reproduce the released model as Hugging Face runs
    it (QuickGELU, eps 1e-5, ``ln_pre``, no patch bias). TencentPretrain fine-tuned it with tanh
    GELU (pretrain.md §5.2): ``act='gelu_tanh'`` selects that instead.
    """

    switches = dict(patch_size=16, act='quick_gelu', ln_eps=1e-5, ln_pre=True, patch_bias=False,
                    pos_embed='learned')
