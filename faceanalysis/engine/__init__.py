"""Training machinery on top of MMEngine: pre-training loop, hooks and the DDP wrapper."""
from .hooks import PretrainLoggingHook, UnmaskedTuningHook
from .model_wrappers import PretrainDistributedDataParallel
from .streaming_loop import StreamingIterBasedTrainLoop

__all__ = ['PretrainDistributedDataParallel', 'PretrainLoggingHook',
           'StreamingIterBasedTrainLoop', 'UnmaskedTuningHook']
