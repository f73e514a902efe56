"""Pre-training algorithms (MMEngine ``BaseModel`` s registered in MODELS)."""
from .alip_pretrainer import ALIP_B32_CLIP, ALIPPretrainer
from .clip_pretrainer import CLIPPretrainer, build_data_preprocessor, split_batch
from .farl_pretrainer import FaRLPretrainer
from .mae_decoder import MAEDecoder, init_mae_weights, patchify, unpatchify
from .mcf_pretrainer import MCFMomentumHook, MCFPretrainer, build_mlp

__all__ = ['CLIPPretrainer', 'build_data_preprocessor', 'split_batch', 'MAEDecoder',
           'init_mae_weights', 'patchify', 'unpatchify', 'MCFMomentumHook', 'MCFPretrainer',
           'build_mlp', 'FaRLPretrainer', 'ALIPPretrainer', 'ALIP_B32_CLIP']
