from .pos_embed import resize_pos_embed, sincos_2d_pos_embed
from .transformer import (ACTIVATIONS, Attention, QuickGELU, ResidualAttentionBlock, Transformer,
                          build_activation)

__all__ = [
    'ACTIVATIONS', 'Attention', 'QuickGELU', 'ResidualAttentionBlock', 'Transformer',
    'build_activation', 'resize_pos_embed', 'sincos_2d_pos_embed'
]
