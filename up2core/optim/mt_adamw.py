"""MT-AdamW (the paper's Task-Balanced Gradient Normalization) and the optim wrapper that feeds it.

With unmixed sampling every iteration trains ONE task, so the gradient changes sharply from step to
step.  Uni-Perceiver v2 normalises each step's gradient and re-weights the moment updates so that
every task pushes the parameters equally hard on average, however often it is sampled.  When task
``k`` (sampling ratio ``s_k``, loss weight ``w_k``) is the step's task, in the paper's notation
(``b`` multiplies the NEW gradient):

    g_t = w_k * grad L_k / ||grad L_k||
    m_t = (1 - b1) m_{t-1} + (b1 / s_k) g_t
    n_t = (1 - b2) n_{t-1} + (b2 / s_k) g_t^2
    theta_t = theta_{t-1} - lr * m_t / (sqrt(n_t) + eps)

This class takes PyTorch's convention instead (``beta`` multiplies the OLD moment, as in
:class:`torch.optim.AdamW`): ``beta1 = 1 - b1`` and ``beta2 = 1 - b2``, so the defaults
``betas=(0.9, 0.999)`` are the paper's ``b1 = 0.1, b2 = 0.001``.  Choices where the paper is silent:

* **Norm**: the global L2 norm over every parameter that received a gradient this step
  (``grad_norm='global'``, default), or each tensor's own norm (``'per_tensor'``).
* **Stability when s_k is small**: the new-gradient coefficient ``(1 - beta) / s_k`` is clipped at
  ``max_coefficient`` (default 1.0).  Without the clip a rarely sampled task (``s_k < 1 - beta``)
  would get a coefficient above one and overshoot; with it, the moment update stays a convex-like
  combination and the ``s_k * coefficient`` balance holds for every ``s_k >= 1 - beta``.
* **Bias correction**: the usual Adam correction, ``m / (1 - beta1^t)`` and ``n / (1 - beta2^t)``
  with ``t`` the global step count (``bias_correction=False`` turns it off).  It undoes the
  zero initialisation of the moments, exactly as in AdamW; the task re-weighting scales ``m`` and
  ``sqrt(n)`` alike and cancels in their ratio.
* **Weight decay**: decoupled, as in AdamW: ``theta -= lr * weight_decay * theta``.

Without a task set (``set_task`` never called) it behaves as one task with ``s = 1, w = 1``: then
it is AdamW on normalised gradients.

**Learning rate.**  With K tasks the expected new-gradient weight per step is ``K (1 - beta)``
(AdamW's: ``1 - beta``), so both moments are about K times an average and a step is about
``sqrt(K)`` times AdamW's at the same learning rate: measured 1.4x for 2 tasks, 2.0x for 4 and
2.2-2.4x for 5 (``benchmarks/mt_adamw_step_size.py``).  ``normalize_coefficients=True`` removes
that dependence: the coefficients become ``(1 - beta) / (K s_k)``, whose expectation under the
sampling distribution is AdamW's ``1 - beta`` for any K and any ratios, while their proportion
between tasks (``1 / s_k``: a rarely drawn task pushes as hard as a frequent one in expectation)
is the paper's.  With equal ratios it is AdamW on normalised, loss-weighted gradients.  The
loop passes K (``set_task(..., num_tasks=K)``).

Measured on the tiny Shapes generalist (README, "What the ablations show", 3 seeds): normalised,
two and five tasks are both best at one learning rate, 4e-4 (once the five-task config's proposal
network stops taking twice it), and train about as well there as with the paper's coefficients
at each one's own best learning rate.  It stays off by default: it trains no better, every
packaged config's learning rate (the paper-scale schedule's included) was set with the paper's
coefficients, and turning it on under them would shrink their steps by about ``sqrt(K)``.  A new
multi-task config, or one a plugin grows by a task, should turn it on and keep its learning rate.
"""

from __future__ import annotations

import math

import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from torch.optim import Optimizer

from up2core.registry import OPTIM_WRAPPERS, OPTIMIZERS


@OPTIMIZERS.register_module(name='MTAdamW')
class MTAdamW(Optimizer):
    """AdamW with task-balanced, normalised gradients (see the module documentation).

    Args:
        params: parameters or parameter groups.
        lr, betas, eps, weight_decay: as in :class:`torch.optim.AdamW`.
        grad_norm: 'global' or 'per_tensor'.
        max_coefficient: upper clip of ``(1 - beta) / s_k``.
        bias_correction: apply Adam's bias correction.
        normalize_coefficients: divide the coefficients by the number of tasks, so the step
            size does not grow with it (module documentation).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, grad_norm: str = 'global',
                 max_coefficient: float = 1.0, bias_correction: bool = True,
                 normalize_coefficients: bool = False) -> None:
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f'betas must be in [0, 1), got {betas}')
        if grad_norm not in ('global', 'per_tensor'):
            raise ValueError(f"grad_norm must be 'global' or 'per_tensor', got {grad_norm!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.grad_norm, self.max_coefficient = grad_norm, max_coefficient
        self.bias_correction = bias_correction
        self.normalize_coefficients = normalize_coefficients
        self.task: str | None = None
        self.sampling_ratio, self.loss_weight, self.num_tasks = 1.0, 1.0, 1

    def set_task(self, task: str, sampling_ratio: float = 1.0, loss_weight: float = 1.0,
                 num_tasks: int = 1) -> None:
        """Declare the task of the next :meth:`step`: its ``s_k`` and ``w_k``, and the number
        of tasks sampled (``K``, used by ``normalize_coefficients``)."""
        if not 0.0 < sampling_ratio <= 1.0:
            raise ValueError(f'sampling_ratio of {task!r} must be in (0, 1], got '
                             f'{sampling_ratio}')
        if num_tasks < 1:
            raise ValueError(f'num_tasks must be at least 1, got {num_tasks}')
        self.task, self.sampling_ratio, self.loss_weight = task, sampling_ratio, loss_weight
        self.num_tasks = num_tasks

    def coefficient(self, beta: float) -> float:
        """The new-gradient coefficient ``min((1 - beta) / s_k, max_coefficient)``, divided by
        ``K`` inside the ``min`` with ``normalize_coefficients``."""
        share = self.sampling_ratio * (self.num_tasks if self.normalize_coefficients else 1)
        return min((1.0 - beta) / share, self.max_coefficient)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for group in self.param_groups for p in group['params'] if p.grad is not None]
        if not params:
            return loss
        # Norms in at least float32, so that half-precision gradients do not overflow.
        norms = [torch.linalg.vector_norm(p.grad.to(torch.promote_types(p.grad.dtype,
                                                                         torch.float32)))
                 for p in params]
        if self.grad_norm == 'global':
            total = torch.linalg.vector_norm(torch.stack(norms))
            norms = [total] * len(params)
        scale = {p: self.loss_weight / n.clamp(min=1e-30) for p, n in zip(params, norms)}
        for group in self.param_groups:
            beta1, beta2 = group['betas']
            c1, c2 = self.coefficient(beta1), self.coefficient(beta2)
            for p in group['params']:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state['step'] = 0
                    state['exp_avg'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state['exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state['step'] += 1
                g = p.grad * scale[p].to(p.grad.dtype)
                m, n = state['exp_avg'], state['exp_avg_sq']
                m.mul_(beta1).add_(g, alpha=c1)
                n.mul_(beta2).addcmul_(g, g, value=c2)
                if group['weight_decay']:
                    p.mul_(1 - group['lr'] * group['weight_decay'])
                step_size = group['lr']
                denom = n.sqrt()
                if self.bias_correction:
                    step_size /= 1 - beta1 ** state['step']
                    denom.div_(math.sqrt(1 - beta2 ** state['step']))
                p.addcdiv_(m, denom.add_(group['eps']), value=-step_size)
        return loss

    def state_dict(self) -> dict:
        state = super().state_dict()
        state['mt'] = dict(task=self.task, sampling_ratio=self.sampling_ratio,
                           loss_weight=self.loss_weight, num_tasks=self.num_tasks)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        mt = state_dict.pop('mt', None)
        super().load_state_dict(state_dict)
        if mt is not None:
            self.task, self.sampling_ratio = mt['task'], mt['sampling_ratio']
            self.loss_weight = mt['loss_weight']
            self.num_tasks = mt.get('num_tasks', 1)


@OPTIM_WRAPPERS.register_module()
class MultiTaskOptimWrapper(OptimWrapper):
    """An :class:`~mmengine.optim.OptimWrapper` that tells its optimizer the current task.

    The training loop calls :meth:`set_task` before each iteration (UP2's UnmixedTrainLoop does);
    optimizers without ``set_task`` (plain AdamW) are left alone, so the wrapper is safe to use
    with any optimizer.  Clipping, accumulation and the rest are MMEngine's.
    """

    def set_task(self, task: str, sampling_ratio: float, loss_weight: float,
                 num_tasks: int = 1) -> None:
        if hasattr(self.optimizer, 'set_task'):
            self.optimizer.set_task(task, sampling_ratio, loss_weight, num_tasks=num_tasks)
        MessageHub.get_current_instance().update_info('task', task)
