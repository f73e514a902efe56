from .pretrain_logging_hook import PretrainLoggingHook
from .unmasked_tuning_hook import UnmaskedTuningHook

__all__ = ['PretrainLoggingHook', 'UnmaskedTuningHook']
