"""DDP wrapper that lets a pre-training model run its own accumulation inside a step.

MMEngine's ``MMDistributedDataParallel.train_step`` does one forward and one backward per
iteration, so a model's own ``train_step`` never runs under DDP. The feature-cache accumulation
of :class:`~faceanalysis.models.pretrainers.CLIPPretrainer` needs several gradient passes per
step (each through DDP, with ``no_sync`` on all but the last so gradients are reduced once):
this wrapper hands the step to the model when it asks for that, and is otherwise MMEngine's.
"""
from __future__ import annotations

from typing import Any, Dict

from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper

from faceanalysis.registry import MODEL_WRAPPERS

__all__ = ['PretrainDistributedDataParallel']


@MODEL_WRAPPERS.register_module()
class PretrainDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that delegates to ``module.accumulated_train_step``
    when the module's ``accumulation_steps`` > 1, and lets a module with momentum targets
    (``attach_optimizer``, MCF) follow the optimizer's real steps."""

    def train_step(self, data: Any, optim_wrapper: OptimWrapper) -> Dict[str, Any]:
        module = self.module
        if hasattr(module, 'attach_optimizer'):  # MCF: momentum update after optimizer steps
            module.attach_optimizer(optim_wrapper)
        if getattr(module, 'accumulation_steps', 1) > 1:
            return module.accumulated_train_step(data, optim_wrapper, grad_forward=self,
                                                 no_sync=self.no_sync)
        return super().train_step(data, optim_wrapper)
