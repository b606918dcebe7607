"""`aligned-mtl`: Aligned-MTL, independent component alignment (Senushkin et al. 2023)."""

from __future__ import annotations

import torch
from torch import Tensor

from onepass.train.balancers.base import register_balancer
from onepass.train.balancers.gradient import GradientBalancer


@register_balancer
class AlignedMtlBalancer(GradientBalancer):
    """Aligned-MTL (Senushkin, Patakin, Kuznetsov, Konushin, CVPR 2023, "Independent Component
    Alignment for Multi-Task Learning", arXiv 2305.19000).

    With the P task gradients as the columns of G = U Σ Vᵀ (shared parameters × tasks), Aligned-MTL
    replaces G by the nearest matrix whose columns are orthogonal and of equal norm,
      G' = σ_min·U Vᵀ   (condition number 1: no task's gradient dominates or conflicts with another's),
    and steps along d = G'·1, the sum of the aligned task gradients. From the Gram matrix
    GᵀG = V Σ² Vᵀ alone: d = G·α with α = σ_min·V Σ⁻¹ Vᵀ·1. Directions whose eigenvalue is at most
    λ_max·P·ε (float32 ε) are dropped, so a rank-deficient G uses its r kept directions and σ_min is
    the smallest kept singular value, as in the authors' code. Orthogonal gradients of equal norm
    give α = 1 (the plain sum).

    Deviations from the paper and the authors' code:
    - The eigendecomposition is in float64 (theirs: float32), so nearly parallel gradients keep a
      meaningful σ_min a little longer; the rank cut-off still uses float32's ε, the gradients' own
      precision.
    - Only the paper's default scale, σ_min (the code also offers the median and RMS singular value),
      and equal task weights w = 1 (the paper allows preset ones). No options.
    - Parameter level only: the paper's cheaper "Aligned-MTL-UB" on the shared representation is not
      here (see `gradient.py` for why).
    - A batch that labels only some tasks aligns the gradients of those tasks (P of K columns); with
      every task labelled this is the paper's method.
    """

    name = "aligned-mtl"

    def _coefficients(self, gram: Tensor) -> Tensor:
        return aligned_mtl_coefficients(gram)


def aligned_mtl_coefficients(gram: Tensor) -> Tensor:
    """α = σ_min·V Σ⁻¹ Vᵀ·1 (P,) from the Gram matrix GᵀG = V Σ² Vᵀ (P, P) float64."""
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending, (P,), (P, P)
    tolerance = eigenvalues.max() * gram.shape[0] * torch.finfo(torch.float32).eps
    kept = eigenvalues > tolerance
    eigenvalues, eigenvectors = eigenvalues[kept], eigenvectors[:, kept]  # (r,), (P, r)
    singular = eigenvalues.sqrt()  # σ (r,)
    sigma_min = singular.min()
    ones = torch.ones(gram.shape[0], dtype=gram.dtype)
    return sigma_min * eigenvectors @ ((eigenvectors.T @ ones) / singular)  # (P,)
