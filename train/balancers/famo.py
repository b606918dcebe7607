"""`famo`: Fast Adaptive Multitask Optimization (Liu et al. 2023)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from onepass.errors import ConfigError
from onepass.train.balancers.base import LossBalancer, register_balancer

_EPSILON = 1e-8  # added to every loss before its log, as the authors do (a loss may reach 0)


@register_balancer
class FamoBalancer(LossBalancer):
    """FAMO (Liu, Liu, Stone, Liu, NeurIPS 2023, "FAMO: Fast Adaptive Multitask Optimization",
    arXiv 2306.03792). Loss-based: O(1) in the number of tasks, one backward pass per step.

    One logit ξ_i per task (init 0), z = softmax(ξ), and the update descends z-weighted log-losses:
      total = Σ_i w_i·L_i,  w_i = K·z_i / (c·(L_i + ε)),  c = Σ_j z_j / (L_j + ε)  (w detached),
    whose gradient is that of K·Σ_i z_i·log(L_i + ε) / c. A log-loss has no scale, so a task's loss
    scale does not set its share of the update. After the optimiser step (`after_step`) the same
    batch's losses L' are evaluated again, and
      δ_i = log(L_i + ε) − log(L'_i + ε)   (how much this step decreased each log-loss),
      ξ ← one Adam step on ∇_ξ(zᵀδ), with weight decay γ (Adam's L2 form, as the authors' code),
    which moves weight to the tasks whose log-loss decreased least: FAMO makes every task's loss
    decrease at about the same log-rate. With equal losses and z uniform, w_i = 1 (the plain sum).

    Deviations from the paper and the authors' code:
    - Scale: the factor K (the authors: 1) makes Σ_i w_i·(L_i + ε) = K, so that equal losses give the
      plain sum, the same scale as the other balancers with unit weights.
    - Missing labels: z is the softmax over the tasks present in the batch, and only their logits
      are updated (a separate parameter each, so that Adam skips the absent ones entirely: no
      momentum drift); with every task labelled this is the paper's rule.
    - The loop re-evaluates the batch in train mode, as the authors do, but without updating
      BatchNorm's running statistics a second time (theirs do).
    - The lower bounds L_i* are 0 (the authors' default; the paper allows known minima).
    - `weights()` reports K·z_i, FAMO's learned task weighting; the weight on L_i in a given step is
      that divided by c·(L_i + ε).
    - Under DistributedDataParallel each process updates ξ from its own shard's losses, and the loop
      averages ξ across processes after every step (like every balancer parameter).
    Without `after_step` (code that only calls `combine`) ξ stays 0: equal weights on the log-losses.

    Options: `lr` (ξ's Adam learning rate, default 0.025) and `gamma` (its weight decay, default
    1e-3), the authors' defaults.
    """

    name = "famo"

    def __init__(self, tasks: Sequence[str], *, lr: float = 0.025, gamma: float = 1e-3) -> None:
        super().__init__(tasks)
        if not (math.isfinite(lr) and lr > 0):
            raise ConfigError(f"famo balancer: lr must be > 0, got {lr}")
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ConfigError(f"famo balancer: gamma must be >= 0, got {gamma}")
        self.lr = float(lr)
        self.gamma = float(gamma)
        self.logits = nn.ParameterList(nn.Parameter(torch.tensor(0.0)) for _ in self.tasks)  # ξ_i
        self._optimizer = self._new_optimizer()
        # (task positions, their losses) from the last training `combine`, until `after_step` uses them
        self._pending: tuple[list[int], Tensor] | None = None

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(list(self.logits), lr=self.lr, weight_decay=self.gamma)

    def _combine(self, present: list[str], losses: Tensor, shared_parameters: Sequence[nn.Parameter]) -> Tensor:
        index = [self._task_index[task] for task in present]
        with torch.no_grad():
            z = torch.softmax(torch.stack([self.logits[i] for i in index]), dim=0).to(losses)  # (P,)
            shifted = losses.detach() + _EPSILON  # (P,)
            c = (z / shifted).sum()
            weights = len(self.tasks) * z / (c * shifted)  # (P,)
        if self._updates_now(losses):
            self._pending = (index, losses.detach().clone())
        return (weights * losses).sum()

    def after_step(self, recompute_losses: Callable[[], Mapping[str, Tensor]]) -> None:
        if self._pending is None:
            return
        index, before = self._pending
        self._pending = None
        present = [self.tasks[i] for i in index]
        with torch.no_grad():
            recomputed = recompute_losses()
        missing = [task for task in present if task not in recomputed]
        if missing:
            raise ValueError(f"famo balancer: after_step's losses lack {missing}, which the step had")
        after = torch.stack([recomputed[task].detach().to(before) for task in present])  # (P,)
        decrease = (before + _EPSILON).log() - (after + _EPSILON).log()  # δ (P,)
        logits = [self.logits[i] for i in index]
        with torch.enable_grad():
            z = torch.softmax(torch.stack(logits), dim=0)  # (P,)
            grads = torch.autograd.grad(z, logits, grad_outputs=decrease.to(z))  # ∇_ξ(zᵀδ)
        self._optimizer.zero_grad(set_to_none=True)  # absent tasks: grad None -> not stepped
        for logit, grad in zip(logits, grads, strict=True):
            logit.grad = grad
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)

    def weights(self) -> dict[str, float]:
        z = torch.softmax(torch.stack([p.detach() for p in self.logits]), dim=0)
        return dict(zip(self.tasks, (len(self.tasks) * z).tolist(), strict=True))

    def _config(self) -> dict[str, Any]:
        return {"lr": self.lr, "gamma": self.gamma}

    def _extra_state(self) -> dict[str, Any]:
        return {"optimizer_state": self._optimizer.state_dict()}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        # A fresh optimiser over the current parameter objects (see GradNormBalancer).
        self._optimizer = self._new_optimizer()
        self._optimizer.load_state_dict(state["optimizer_state"])
        self._pending = None
