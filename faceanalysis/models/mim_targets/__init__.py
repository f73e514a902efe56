"""Masked-image-modelling targets for :class:`~faceanalysis.models.pretrainers.FaRLPretrainer`.

FaRL's own target is the DALL-E dVAE token id (8192 codes) of each masked patch, trained with
cross-entropy (pretrain.md §2.1). The dVAE weights cannot be downloaded here, so the target is
pluggable; every target is a module registered in ``MODELS`` with:

* ``forward(images)``: normalised student images (B, 3, H, W) -> targets for every patch, float
  (B, N, D_t) or int64 ids (B, N), row-major patch order, computed without gradient;
* ``num_outputs``: the width K of the student's ``lm_head`` (V classes or D_t features);
* ``token_losses(pred (M, K), targets_masked)``: per-masked-token losses (M,) float32, and
  ``loss(pred, targets_masked)``: their mean;
* ``discrete``: True for class ids (the pretrainer then logs ``mim_acc``).

Provided: :class:`TeacherFeatureTarget` (regress a frozen teacher ViT's patch features) and
:class:`CodebookTokenizer` (ids of those features on a fixed codebook: FaRL's CE objective). A
DALL-E dVAE tokenizer would be a third module with the same interface (``num_outputs=8192``).
"""
from .codebook_tokenizer import CodebookTokenizer, load_codebook
from .teacher_features import FrozenTeacherTarget, TeacherFeatureTarget

__all__ = ['CodebookTokenizer', 'FrozenTeacherTarget', 'TeacherFeatureTarget', 'load_codebook']
