"""Sharded data-parallel training: FSDP2 (``torch.distributed.fsdp.fully_shard``) as an MMEngine
strategy for its ``FlexibleRunner``.

Config::

    runner_type = 'FlexibleRunner'
    strategy = dict(type='FullyShardStrategy')            # + checkpoint='sharded' (see below)

then ``torchrun ... -m up2core.cli train CONFIG --launcher pytorch`` as for DDP.  Each process
keeps 1/N of every parameter, gradient and optimiser state; a sharded module gathers its full
parameters for its forward and backward and frees them after (``reshard_after_forward``).

Why a strategy of our own: MMEngine's ``FSDPStrategy`` wraps the model in FSDP v1, which in
torch 2.13 refuses to run without an accelerator ("FSDP needs a non-CPU accelerator device"),
so it cannot be tested here; FSDP2 runs on CPUs with gloo as on GPUs with NCCL.  MT-AdamW needs no
change: its parameters, gradients and moments become DTensors sharded alike, and the per-task
global gradient norm over them is reduced across ranks by DTensor itself
(``tests/core/optim/test_mt_adamw_sharded.py``).

Checkpoints (``checkpoint=``):

* ``'consolidated'`` (default): one ordinary ``.pth`` file, as without sharding, gathered on
  every rank and written by rank 0.  ``up2 test`` / ``up2 infer`` read it without sharding, and
  a sharded run resumes from it (each rank loads its shards out of the full tensors);
* ``'sharded'``: a folder ``<name>.pth.dcp/`` written by ``torch.distributed.checkpoint``, each
  rank its own shards (no rank holds the whole model); ``--resume`` reads it back sharded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from mmengine._strategy import DDPStrategy
from mmengine.registry import STRATEGIES
from torch import nn

#: modules sharded one by one (each gathers its parameters only while it runs), by class name
DEFAULT_SHARD_MODULES = ('DecoderLayer', 'BertLayer', 'RobertaLayer', 'SwinBlockSequence',
                         'ResLayer', 'DeformableDetrTransformerEncoderLayer',
                         'DeformableDetrTransformerDecoderLayer')


def _patch_flexible_runner_batch_size() -> None:
    """``FlexibleRunner.train`` reads one batch size from ``runner.train_dataloader`` (for
    DeepSpeed's micro-batch setting); a multi-task loop's loaders have one per task: give the
    current task's."""
    import mmengine.runner._flexible_runner as flexible

    from up2core.engine.loops import _TaskLoaders

    original = flexible._get_batch_size
    if getattr(original, '_up2', False):
        return

    def batch_size(dataloader):
        if isinstance(dataloader, _TaskLoaders):
            return dataloader.loaders[dataloader.current].batch_size
        return original(dataloader)

    batch_size._up2 = True
    flexible._get_batch_size = batch_size


@STRATEGIES.register_module()
class FullyShardStrategy(DDPStrategy):
    """FSDP2 for MMEngine's ``FlexibleRunner`` (see the module docstring).

    Args:
        shard_modules: class names of the submodules sharded as units (every module of those
            classes); the rest of the model forms the root unit.
        reshard_after_forward: free gathered parameters after each unit's forward (ZeRO-3-like;
            ``False`` keeps them until the backward, ZeRO-2-like).
        checkpoint: ``'consolidated'`` or ``'sharded'``.
    """

    def __init__(self, *, shard_modules=DEFAULT_SHARD_MODULES,
                 reshard_after_forward: bool = True, checkpoint: str = 'consolidated',
                 **kwargs) -> None:
        if checkpoint not in ('consolidated', 'sharded'):
            from up2core.config import ConfigError

            raise ConfigError(f"FullyShardStrategy(checkpoint={checkpoint!r}): checkpoint must be "
                              f"'consolidated' or 'sharded'")
        super().__init__(**kwargs)
        self.shard_modules = tuple(shard_modules)
        self.reshard_after_forward = reshard_after_forward
        self.checkpoint = checkpoint
        _patch_flexible_runner_batch_size()

    def _setup_distributed(self, launcher: str = 'pytorch', backend: str = 'nccl',
                           **kwargs) -> None:
        if dist.is_initialized():
            return
        if not torch.cuda.is_available():  # MMEngine's init_dist would call cuda.set_device;
            dist.init_process_group(backend='gloo')  # and NCCL needs GPUs: gloo on CPUs
            return
        super()._setup_distributed(launcher, backend, **kwargs)

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        from torch.distributed.fsdp import fully_shard

        if not dist.is_initialized():
            from up2core.config import ConfigError

            raise ConfigError('FullyShardStrategy shards over the processes of a distributed '
                              'launch: torchrun --nproc_per_node N -m up2core.cli train ... '
                              '--launcher pytorch')
        if torch.cuda.is_available():
            model = model.to(f"cuda:{os.environ.get('LOCAL_RANK', 0)}")
        for param in model.parameters():  # e.g. convolution weights loaded channels-last
            if not param.is_contiguous():
                param.data = param.data.contiguous()
        units = [m for m in model.modules()
                 if type(m).__name__ in self.shard_modules and m is not model]
        for unit in units:
            fully_shard(unit, reshard_after_forward=self.reshard_after_forward)
        fully_shard(model, reshard_after_forward=self.reshard_after_forward)
        self.logger.info(f'FullyShardStrategy: {len(units)} units sharded over '
                         f'{dist.get_world_size()} ranks')
        return model

    # ------------------------------------------------------------------ state dicts

    def _options(self, full: bool):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=full, cpu_offload=full)

    def model_state_dict(self, full: bool = True) -> dict:
        """The model's state: full tensors (collective: every rank must call it), or this
        rank's shards with ``full=False``."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.model, options=self._options(full))

    def optim_state_dict(self, full: bool = True) -> dict:
        """The optimiser's state as :meth:`model_state_dict`, keyed by parameter name, plus the
        optimiser's own entries besides ``state``/``param_groups`` (MT-AdamW's current task)."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        optimizer = self.optim_wrapper.optimizer
        state = get_optimizer_state_dict(self.model, optimizer, options=self._options(full))
        extra = {k: v for k, v in optimizer.state_dict().items()
                 if k not in ('state', 'param_groups')}
        return {'optimizer': state, 'extra': extra}

    def load_model_state_dict(self, state_dict: dict, *, strict: bool = False,
                              revise_keys: list | None = None) -> None:
        from torch.distributed.checkpoint.state_dict import set_model_state_dict

        sharded = any(hasattr(v, 'device_mesh') for v in state_dict.values())
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        set_model_state_dict(self.model, state_dict, options=StateDictOptions(
            full_state_dict=not sharded, cpu_offload=False, strict=strict))

    def load_optim_state_dict(self, state_dict: dict) -> None:
        from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

        optimizer = self.optim_wrapper.optimizer
        inner = state_dict['optimizer']
        sharded = any(hasattr(v, 'device_mesh') for entry in inner.get('state', {}).values()
                      if isinstance(entry, dict) for v in entry.values())
        # not strict: parameters that had no gradient by the checkpoint have no state in it
        # (MT-AdamW creates a state at a parameter's first gradient), and start from none
        options = self._options(not sharded)
        options.strict = False
        set_optimizer_state_dict(self.model, optimizer, inner, options=options)
        mt = (state_dict.get('extra') or {}).get('mt')
        if mt is not None and hasattr(optimizer, 'set_task'):
            optimizer.set_task(mt['task'], mt['sampling_ratio'], mt['loss_weight'],
                               num_tasks=mt.get('num_tasks', 1))

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, filename: str, *, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, extra_ckpt: dict | None = None,
                        callback: Callable | None = None) -> None:
        """Every rank takes part (gathering is collective).  Consolidated: rank 0 writes one
        ordinary checkpoint.  Sharded: each rank writes its shards of the model and optimiser
        into ``<filename>.dcp/``, and rank 0 writes ``filename`` with everything else (meta,
        schedulers) and where the shards are."""
        import mmengine
        from mmengine.runner.checkpoint import save_checkpoint

        full = self.checkpoint == 'consolidated'
        state = {'state_dict': self.model_state_dict(full)}
        if save_optimizer and hasattr(self, 'optim_wrapper'):
            state['optimizer'] = self.optim_state_dict(full)
        if save_param_scheduler and hasattr(self, 'param_schedulers'):
            state['param_schedulers'] = self.scheduler_state_dict()
        state.update(extra_ckpt or {})
        state.setdefault('meta', {}).update(
            seed=self.seed, time=time.strftime('%Y%m%d_%H%M%S', time.localtime()),
            mmengine=mmengine.__version__)
        if callback is not None:
            callback(state)
        if not full:
            import torch.distributed.checkpoint as dcp

            folder = _dcp_folder(filename)
            tensors = {'model': state.pop('state_dict')}
            if 'optimizer' in state:
                tensors['optim'] = state['optimizer'].pop('optimizer')
            dcp.save(tensors, checkpoint_id=folder)
            state['sharded'] = Path(folder).name
        if dist.get_rank() == 0:
            save_checkpoint(state, filename)
        dist.barrier()

    def load_checkpoint(self, filename: str, *, map_location='cpu', strict: bool = False,
                        revise_keys: list | None = None, callback: Callable | None = None
                        ) -> dict:
        """A consolidated checkpoint (any ordinary one: each rank keeps its shards of the full
        tensors) or a sharded one (each rank reads its own shards)."""
        from mmengine.runner.checkpoint import _load_checkpoint

        self.logger.info(f'Load checkpoint from {filename}')
        checkpoint = _load_checkpoint(filename, map_location='cpu')
        if callback is not None:
            callback(checkpoint)
        if 'sharded' not in checkpoint:
            self.load_model_state_dict(checkpoint.pop('state_dict'), strict=strict)
            return checkpoint
        import torch.distributed.checkpoint as dcp

        tensors = {'model': self.model_state_dict(full=False)}
        if 'optimizer' in checkpoint and hasattr(self, 'optim_wrapper'):
            tensors['optim'] = self.optim_state_dict(full=False)['optimizer']
        # partial: the template holds a (zero) state for every parameter, the checkpoint only
        # for those that had a gradient by then; a zero state is what a first step starts from
        dcp.load(tensors, checkpoint_id=str(Path(filename).parent / checkpoint.pop('sharded')),
                 planner=dcp.DefaultLoadPlanner(allow_partial_load=True))
        self.load_model_state_dict(tensors['model'], strict=strict)
        if 'optim' in tensors:
            checkpoint['optimizer']['optimizer'] = tensors['optim']
        return checkpoint


def _dcp_folder(filename: str) -> str:
    """``<checkpoint>.dcp`` beside the checkpoint, named after the final name when
    :class:`~up2core.engine.hooks.AtomicCheckpointHook` writes ``.<name>.partial`` first (the
    file is renamed afterwards; the folder keeps the final name from the start)."""
    path = Path(filename)
    name = path.name
    if name.startswith('.') and name.endswith('.partial'):
        name = name[1:-len('.partial')]
    return str(path.with_name(f'{name}.dcp'))
