"""`nash-mtl`: multi-task learning as a bargaining game (Navon et al. 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from onepass.train.balancers.base import register_balancer
from onepass.train.balancers.gradient import GradientBalancer

_NEWTON_STEPS = 100  # Newton iterations at most; about ten usually reach the tolerance
_TOLERANCE = 1e-9  # on max_i |β_i·(Cβ)_i − 1|, the bargaining condition
_RIDGE = 1e-10  # added to the correlation matrix's diagonal: a solution exists for any gradients


@register_balancer
class NashMtlBalancer(GradientBalancer):
    """Nash-MTL (Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik, Fetaya, ICML 2022, "Multi-Task
    Learning as a Bargaining Game", arXiv 2202.01017).

    The update is the Nash bargaining solution d = Σ_i α_i g_i, α > 0 solving (GᵀG·α)_i = 1/α_i:
    - every task improves, ⟨g_i, d⟩ = 1/α_i > 0 (a conflict-free direction), and
    - it is invariant to the tasks' loss scales: multiplying L_i by s divides α_i by s and leaves d as
      it was, so no task's scale decides its share of the update.
    α is the unique minimiser of the strictly convex ½αᵀMα − Σ_i log α_i (M = GᵀG; its gradient
    Mα − 1/α vanishes exactly at the bargaining condition), found by damped Newton steps in float64,
    in units of each gradient's norm (on the correlation matrix). At the solution ||d||² = αᵀMα = P: the step has the same length whatever the losses'
    scale, like normalised gradient descent. Orthogonal unit-norm gradients give α = 1 (the plain sum).

    Deviations from the paper and the authors' code:
    - The solver: the authors approximate α by up to 20 convex sub-problems (cvxpy, ECOS), warm-started
      from the previous step's α; Newton's method on the convex objective above reaches the same α to
      1e-9 without a convex-solver dependency. A ridge of 1e-10 on the correlation matrix's diagonal
      keeps the problem solvable at a Pareto-stationary point (a convex combination of the gradients
      is zero, no direction improves every task, and no exact solution exists): α grows large there
      instead of failing.
    - No clipping: the authors clip the shared gradient's norm to 1 (`max_norm`); since ||d|| = √P
      always, that is a fixed rescaling by 1/√P, and the loop clips no other balancer's update either.
    - Heads get their own task's gradient (the authors backpropagate Σ α_i L_i, so a head gets
      α_i·∇L_i); `combine` keeps their form.
    - α is solved every step (the authors' `update_weights_every` = 1, their default).
    - A batch that labels only some tasks bargains among those tasks; with every task labelled this is
      the paper's method.
    """

    name = "nash-mtl"

    def _coefficients(self, gram: Tensor) -> Tensor:
        return nash_coefficients(gram)


def nash_coefficients(gram: Tensor) -> Tensor:
    """α > 0 (P,) with α_i·(Mα)_i = 1 for the Gram matrix M (P, P) float64 (plus the ridge)."""
    # In units of each gradient's norm (α_i = β_i / ||g_i||) the problem is the same for the
    # correlation matrix C: the solution's scale invariance, used to keep Newton well conditioned.
    norms = gram.diagonal().sqrt()  # ||g_i|| (P,)
    matrix = gram / torch.outer(norms, norms) + _RIDGE * torch.eye(len(norms), dtype=gram.dtype)  # C (P, P)
    beta = torch.ones_like(norms)  # exact when the gradients are orthogonal
    for _ in range(_NEWTON_STEPS):
        product = matrix @ beta  # (P,)
        if (beta * product - 1).abs().max() < _TOLERANCE:
            return beta / norms
        # ½βᵀCβ − Σ log β is self-concordant: the damped Newton step 1/(1 + λ) (λ the Newton
        # decrement) stays inside β > 0 and decreases it, the full step converges quadratically once
        # λ < 1/4 (Nesterov & Nemirovski) — no line search, which rounding would stall near the end.
        gradient = product - 1 / beta
        step = torch.linalg.solve(matrix + torch.diag(1 / beta**2), gradient)
        decrement = float(gradient @ step) ** 0.5
        beta = beta - (step if decrement < 0.25 else step / (1 + decrement))
    raise RuntimeError(
        f"nash-mtl balancer: no bargaining solution after {_NEWTON_STEPS} Newton steps for {gram.tolist()}"
    )
