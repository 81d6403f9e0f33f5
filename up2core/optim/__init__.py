"""Optimisation for unmixed multi-task training: MT-AdamW and its optim wrapper."""

from up2core.optim.mt_adamw import MTAdamW, MultiTaskOptimWrapper

__all__ = ['MTAdamW', 'MultiTaskOptimWrapper']
