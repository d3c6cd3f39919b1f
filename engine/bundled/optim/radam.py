"""RAdam, the update rule Dassl builds for ``OPTIM.NAME: radam`` (Liu et al., ICLR 2020).

It differs from ``torch.optim.RAdam`` in ways that change the parameters:

* Weight decay is decoupled, ``p -= lr * weight_decay * p`` before the step (torch's
  default adds ``weight_decay * p`` to the gradient instead).
* While the variance rectification is undefined (rho_t < 5, the first five steps with
  beta2 = 0.999) it takes a momentum-SGD step, ``p -= lr * m_t / (1 - beta1^t)``;
  with ``degenerated_to_sgd=False`` it leaves the parameter alone instead (no decay).
* The adaptive step divides by ``sqrt(v_t) + eps`` and folds the bias correction of
  ``v_t`` into the step size.

Moments and arithmetic are float32 whatever the parameter's dtype, so half-precision
parameters are updated from an fp32 copy.
"""
import math

import torch
from torch.optim import Optimizer

# The rectification term needs rho_t > 4; Dassl switches to the adaptive step at 5.
MIN_RHO_FOR_ADAPTIVE_STEP = 5


class RAdam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 degenerated_to_sgd=True):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {index}: {beta}")
        # An attribute, not a group setting, so that optimizer state dicts carry the same
        # keys as Dassl's and load into either.
        self.degenerated_to_sgd = degenerated_to_sgd
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _step_rule(self, step, beta1, beta2):
        """``(adaptive, size)`` for update number ``step`` (from 1), or None for no update.

        ``size`` multiplies ``lr * m_t / (sqrt(v_t) + eps)`` when ``adaptive``, else
        ``lr * m_t``.
        """
        beta2_t = beta2 ** step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2_t / (1 - beta2_t)
        bias_correction1 = 1 - beta1 ** step
        if rho_t >= MIN_RHO_FOR_ADAPTIVE_STEP:
            rectification = ((rho_t - 4) * (rho_t - 2) * rho_inf) / (
                (rho_inf - 4) * (rho_inf - 2) * rho_t)
            return True, math.sqrt((1 - beta2_t) * rectification) / bias_correction1
        if self.degenerated_to_sgd:
            return False, 1 / bias_correction1
        return None

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param, group):
        if param.grad.is_sparse:
            raise RuntimeError("RAdam does not support sparse gradients")
        grad = param.grad.float()
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, dtype=torch.float32)
            state["exp_avg_sq"] = torch.zeros_like(param, dtype=torch.float32)
        # load_state_dict casts the moments to the parameter's dtype; keep them fp32.
        exp_avg = state["exp_avg"] = state["exp_avg"].float()
        exp_avg_sq = state["exp_avg_sq"] = state["exp_avg_sq"].float()

        beta1, beta2 = group["betas"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        state["step"] += 1

        rule = self._step_rule(state["step"], beta1, beta2)
        if rule is None:
            return
        adaptive, size = rule
        lr = group["lr"]
        master = param.float()  # the parameter itself when it is already fp32
        if group["weight_decay"] != 0:
            master.add_(master, alpha=-group["weight_decay"] * lr)
        if adaptive:
            master.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(group["eps"]), value=-size * lr)
        else:
            master.add_(exp_avg, alpha=-size * lr)
        if master is not param:
            param.copy_(master)
