"""`cagrad`: Conflict-Averse Gradient descent (Liu et al. 2021)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from onepass.errors import ConfigError
from onepass.train.balancers.base import register_balancer
from onepass.train.balancers.gradient import GradientBalancer

_SOLVER_GAP = 1e-10  # the interior-point solver's duality gap at the end (M scaled to a largest diagonal of 1)
_BARRIER_GROWTH = 50.0  # t's factor between centring steps
_NEWTON_STEPS = 50  # per centring step at most; a handful usually suffice


@register_balancer
class CaGradBalancer(GradientBalancer):
    """CAGrad (Liu, Liu, Jin, Stone, Liu, NeurIPS 2021, "Conflict-Averse Gradient Descent for
    Multi-task Learning", arXiv 2110.14048).

    Among the directions within c·||g0|| of the average gradient g0 = mean_i g_i, CAGrad takes the one
    that most improves the task that improves least:
      d = argmax_d min_i ⟨g_i, d⟩  subject to  ||d − g0|| ≤ c·||g0||,
    through its dual over the simplex: w* = argmin_w g_wᵀg0 + c·||g0||·||g_w|| (g_w = Σ_i w_i g_i),
    d = g0 + c·||g0||/||g_w*||·g_w*. c = 0 is gradient averaging; with c < 1 CAGrad converges to a
    minimum of the average loss (the paper's Theorem), larger c leans towards the worst-off task.
    The update written is P·d/(1 + c²).

    Deviations from the paper and the authors' code:
    - Scale: the authors divide d by 1 + c² ("rescale=1", their default); the factor P makes c = 0 the
      plain sum of the task gradients, the same scale as the other balancers with unit weights.
    - The dual is solved by accelerated projected gradient on the simplex in float64, on the Gram
      matrix, to a change in w below 1e-12 (the authors: scipy's SLSQP with its default tolerance), so
      onepass needs no scipy. Where ||g_w*|| = 0 (the average of some gradients is zero: a
      Pareto-stationary point) d = g0.
    - A batch that labels only some tasks applies CAGrad to those tasks; with every task labelled
      this is the paper's method.

    Option: `c` (default 0.4, the paper's NYUv2 setting; LibMTL's default is 0.5).
    """

    name = "cagrad"

    def __init__(self, tasks: Sequence[str], *, c: float = 0.4) -> None:
        super().__init__(tasks)
        if isinstance(c, bool) or not isinstance(c, int | float) or not (math.isfinite(c) and c >= 0):
            raise ConfigError(f"cagrad balancer: c must be a number >= 0, got {c!r}")
        self.c = float(c)

    def _coefficients(self, gram: Tensor) -> Tensor:
        return cagrad_coefficients(gram, self.c)

    def _config(self) -> dict[str, Any]:
        return {"c": self.c}


def cagrad_coefficients(gram: Tensor, c: float) -> Tensor:
    """α (P,) with P·d/(1 + c²) = Σ_i α_i g_i, from the Gram matrix (P, P) float64."""
    tasks = gram.shape[0]
    mean = torch.full((tasks,), 1.0 / tasks, dtype=gram.dtype)  # g0 = G·mean
    if c == 0:
        return mean * tasks
    g0_norm = (mean @ gram @ mean).clamp_min(0).sqrt()
    w = cagrad_dual(gram, c)
    gw_norm = (w @ gram @ w).clamp_min(0).sqrt()
    extra = c * g0_norm / gw_norm if gw_norm > 1e-12 * g0_norm else 0.0  # ||g_w*|| = 0: d = g0
    return (mean + extra * w) * (tasks / (1 + c**2))


def cagrad_dual(gram: Tensor, c: float) -> Tensor:
    """w* = argmin over the simplex of wᵀM·(1/P) + c·||g0||·sqrt(wᵀMw) (P,), M the Gram matrix."""
    matrix = (gram / gram.diagonal().max()).numpy()  # the minimiser does not depend on M's scale
    tasks = matrix.shape[0]
    if tasks == 1:
        return torch.ones(1, dtype=gram.dtype)
    mean = np.full(tasks, 1.0 / tasks)
    linear = matrix @ mean  # ⟨g_i, g0⟩ (P,)
    radius = c * math.sqrt(max(mean @ linear, 0.0))  # c·||g0||
    # An interior-point method: minimise aᵀw + r·s over w > 0, Σw = 1, s² > wᵀMw (a second-order cone)
    # with the barrier −Σ log w_i − log(s² − wᵀMw), by Newton steps on t·(aᵀw + r·s) + barrier for a
    # growing t. Newton's method does not mind the Gram matrix's scales differing by many orders of
    # magnitude (tasks with losses of very different sizes), where first-order methods crawl.
    # Σw = 1 is eliminated: w = E·x + e_P with x = (w_1 … w_{P−1}) and E = [I; −1ᵀ].
    embed = np.vstack([np.eye(tasks - 1), -np.ones((1, tasks - 1))])  # E (P, P−1)
    w = mean.copy()
    s = 2.0 * math.sqrt(max(w @ matrix @ w, 0.0)) + 1.0
    t = 1.0
    while (tasks + 2) / t > _SOLVER_GAP:  # the barrier's parameter ν = P + 2 bounds the duality gap by ν/t
        for _ in range(_NEWTON_STEPS):
            mw = matrix @ w  # (P,)
            slack = s * s - w @ mw
            grad_w = t * linear - 1 / w + 2 * mw / slack  # (P,)
            grad_s = t * radius - 2 * s / slack
            hess_ww = np.diag(1 / w**2) + 2 * matrix / slack + 4 * np.outer(mw, mw) / slack**2  # (P, P)
            hess_ws = -4 * s * mw / slack**2  # (P,)
            hess_ss = -2 / slack + 4 * s * s / slack**2
            gradient = np.append(embed.T @ grad_w, grad_s)  # (P,) in (x, s)
            hessian = np.empty((tasks, tasks))
            hessian[:-1, :-1] = embed.T @ hess_ww @ embed
            hessian[:-1, -1] = hessian[-1, :-1] = embed.T @ hess_ws
            hessian[-1, -1] = hess_ss
            step = -np.linalg.solve(hessian, gradient)
            decrement = math.sqrt(max(-(gradient @ step), 0.0))  # the Newton decrement λ
            if decrement < 1e-7:
                break
            # A self-concordant barrier: the damped step 1/(1 + λ) stays feasible, the full step
            # converges quadratically once λ < 1/4 (Nesterov & Nemirovski).
            size = 1.0 if decrement < 0.25 else 1 / (1 + decrement)
            w, s = w + size * (embed @ step[:-1]), s + size * step[-1]
        t *= _BARRIER_GROWTH
    return torch.from_numpy(np.clip(w, 0.0, None) / np.clip(w, 0.0, None).sum())
