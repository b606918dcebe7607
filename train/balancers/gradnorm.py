"""`gradnorm`: gradient-norm balancing (Chen et al. 2018)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from onepass.errors import ConfigError, unknown_name_error
from onepass.train.balancers.base import LossBalancer, as_dict, register_balancer

_GRADNORM_OPTIMISERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}
_MIN_GRADNORM_WEIGHT = 1e-4  # floor after each update: a weight must stay positive
_MIN_INITIAL_LOSS = 1e-12  # L_i(0) floor, so a task that starts at zero loss cannot divide by 0


@register_balancer
class GradNormBalancer(LossBalancer):
    """GradNorm (Chen, Badrinarayanan, Lee, Rabinovich, ICML 2018, arXiv 1711.02257).

    Learnable weights w_i (init 1) with their own optimiser, stepped inside `combine`:
      G_i = ||∇_W (w_i·L_i)||₂ over the last shared layer W (`shared_parameters`),
      L̃_i = L_i / L_i(0),  r_i = L̃_i / mean(L̃),  target_i = mean(G)·r_i^α (a constant),
      L_grad = Σ_i |G_i − target_i|,  w ← step(∇_w L_grad),  then w_i > 0 and Σ_i w_i = K.
    The returned total Σ_i w_i·L_i uses the weights from before the update (the paper's
    Algorithm 1 order), detached: the network must not push gradients into w.

    Deviations, all because the paper assumes every task is labelled in every batch:
    - Only the present tasks' weights are updated; the mean in target_i is over present tasks;
      after the update the present weights are rescaled to sum to K − Σ(absent weights), so the
      absent weights stay put and Σ over all K tasks stays K. With every task present this is
      exactly the paper's renormalisation.
    - L_i(0) is the mean of a task's first `initial_steps` observed losses (counted from the
      first batch that labels it; the paper uses the single loss at t = 0, `initial_steps=1`).
      During those first steps the running mean so far stands in for it.
    - Weights are clamped to ≥ 1e-4 before renormalising; the paper does not say how it keeps
      weights positive, and a negative weight would turn a task's loss into a reward.
    - No update in `eval()` mode or under `torch.no_grad()`, so validation can use `combine`.
    Each task's weight is a separate parameter so that the optimiser skips absent tasks
    entirely (PyTorch optimisers skip parameters whose `.grad` is None — no momentum drift).
    """

    name = "gradnorm"

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        alpha: float = 1.5,
        lr: float = 0.025,
        optimizer: str = "adam",
        initial_steps: int = 1,
    ) -> None:
        super().__init__(tasks)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ConfigError(f"gradnorm balancer: alpha must be >= 0, got {alpha}")
        if not (math.isfinite(lr) and lr > 0):
            raise ConfigError(f"gradnorm balancer: lr must be > 0, got {lr}")
        if optimizer not in _GRADNORM_OPTIMISERS:
            raise unknown_name_error("gradnorm optimizer", str(optimizer), list(_GRADNORM_OPTIMISERS))
        if isinstance(initial_steps, bool) or not isinstance(initial_steps, int) or initial_steps < 1:
            raise ConfigError(f"gradnorm balancer: initial_steps must be an int >= 1, got {initial_steps}")
        self.alpha = float(alpha)
        self.lr = float(lr)
        self.optimizer_name = optimizer
        self.initial_steps = initial_steps

        self.task_weights = nn.ParameterList(nn.Parameter(torch.tensor(1.0)) for _ in self.tasks)
        # L_i(0) = initial_loss_sum / initial_loss_count over a task's first `initial_steps` losses.
        self.register_buffer("initial_loss_sum", torch.zeros(len(self.tasks)))  # (K,)
        self.register_buffer("initial_loss_count", torch.zeros(len(self.tasks), dtype=torch.long))
        self._optimizer = self._new_optimizer()

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return _GRADNORM_OPTIMISERS[self.optimizer_name](list(self.task_weights), lr=self.lr)

    # ---- combine --------------------------------------------------------------------------
    def _combine(self, present: list[str], losses: Tensor, shared_parameters: Sequence[nn.Parameter]) -> Tensor:
        index = [self._task_index[task] for task in present]
        weights = torch.stack([self.task_weights[i] for i in index])  # (P,), a copy of w(t)
        # Detached: the model's backward must not reach w. torch.stack copied the values, so the
        # in-place update below cannot change the weights this total was built with.
        total = (weights.detach().to(losses) * losses).sum()
        if self.training and torch.is_grad_enabled() and losses.requires_grad:
            self._record_initial_losses(index, losses.detach())
            self._update_weights(index, weights, losses, list(shared_parameters))
        return total

    def _record_initial_losses(self, index: list[int], losses: Tensor) -> None:
        """Accumulate L_i(0) from a task's first `initial_steps` observed losses."""
        with torch.no_grad():
            positions = torch.tensor(index, device=self.initial_loss_count.device)  # (P,)
            still_counting = self.initial_loss_count[positions] < self.initial_steps  # (P,)
            self.initial_loss_sum[positions] += torch.where(still_counting, losses.to(self.initial_loss_sum), 0.0)
            self.initial_loss_count[positions] += still_counting.long()

    def _update_weights(self, index: list[int], weights: Tensor, losses: Tensor, shared: list[nn.Parameter]) -> None:
        """One step of the weights' own optimiser on L_grad, then clamp and renormalise."""
        if not shared:
            raise ValueError("gradnorm balancer: combine needs the last shared layer's parameters")
        # ||∇_W L_i|| (P,), a constant. G_i = ||∇_W (w_i L_i)|| = w_i·||∇_W L_i|| because w_i is a
        # positive scalar, so G_i is explicitly linear in w_i and ∂L_grad/∂w_i needs no
        # double-backward through the network: no create_graph. retain_graph keeps the graph for
        # the training loop's backward; autograd only walks from L_i down to W (the heads), not
        # the whole backbone.
        grad_norms = torch.stack([_grad_norm(loss, shared) for loss in losses])
        weighted_norms = weights * grad_norms.to(weights)  # G_i (P,), differentiable in w
        initial = self.initial_loss_sum / self.initial_loss_count.clamp_min(1)  # L_i(0) (K,)
        initial = initial[index].clamp_min(_MIN_INITIAL_LOSS)  # (P,)
        loss_ratios = losses.detach().to(initial) / initial  # L̃_i (P,)
        inverse_rates = loss_ratios / loss_ratios.mean()  # r_i (P,)
        targets = (weighted_norms.mean() * inverse_rates**self.alpha).detach()  # (P,), constant
        gradnorm_loss = (weighted_norms - targets).abs().sum()

        present_weights = [self.task_weights[i] for i in index]
        self._optimizer.zero_grad(set_to_none=True)  # absent tasks: grad None -> not stepped
        grads = torch.autograd.grad(gradnorm_loss, present_weights)
        for weight, grad in zip(present_weights, grads, strict=True):
            weight.grad = grad
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
        self._renormalise(index)

    @torch.no_grad()
    def _renormalise(self, index: list[int]) -> None:
        """Present weights positive and summing to K − Σ(absent weights), so Σ_all w = K."""
        present_set = set(index)
        absent_sum = sum(float(w) for i, w in enumerate(self.task_weights) if i not in present_set)
        present = torch.stack([self.task_weights[i] for i in index]).clamp_min(_MIN_GRADNORM_WEIGHT)
        present = present * ((len(self.tasks) - absent_sum) / present.sum())  # (P,)
        for i, value in zip(index, present, strict=True):
            self.task_weights[i].copy_(value)

    # ---- reporting and checkpointing ------------------------------------------------------
    def weights(self) -> dict[str, float]:
        return as_dict(self.tasks, torch.stack([w.detach() for w in self.task_weights]))

    def initial_losses(self) -> dict[str, float]:
        """L_i(0) per task recorded so far (absent from the dict until the task was seen)."""
        counts = self.initial_loss_count.tolist()
        sums = self.initial_loss_sum.tolist()
        return {t: s / c for t, s, c in zip(self.tasks, sums, counts, strict=True) if c > 0}

    def _config(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "optimizer": self.optimizer_name,
            "initial_steps": self.initial_steps,
        }

    def _extra_state(self) -> dict[str, Any]:
        return {"optimizer_state": self._optimizer.state_dict()}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        # A fresh optimiser over the current parameter objects, in case loading replaced them
        # (load_state_dict(assign=True)); nn.Module loads parameters before the extra state.
        self._optimizer = self._new_optimizer()
        self._optimizer.load_state_dict(state["optimizer_state"])


def _grad_norm(loss: Tensor, parameters: list[nn.Parameter]) -> Tensor:
    """||∇_params loss||₂ over all `parameters` together, without touching their `.grad`."""
    grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    squares = [g.detach().float().square().sum() for g in grads if g is not None]
    if not squares:  # this task's loss does not depend on the shared layer at all
        return torch.zeros((), device=loss.device)
    return torch.stack(squares).sum().sqrt()
