"""`uncertainty`: homoscedastic uncertainty weighting (Kendall, Gal, Cipolla 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from onepass.train.balancers.base import LossBalancer, as_dict, register_balancer


@register_balancer
class UncertaintyBalancer(LossBalancer):
    """Homoscedastic uncertainty weighting (Kendall, Gal, Cipolla, CVPR 2018).

    One learned log-variance s_i = log σ_i² per task, initialised to 0, trained by the MAIN
    optimiser (see `model_parameters`): total = Σ_i 0.5·exp(-s_i)·L_i + 0.5·s_i.

    Deviation: the paper derives 1/(2σ²)·L + log σ for regression but 1/σ²·L + log σ for
    classification. In s that is 0.5·e^{-s}·L + 0.5·s versus e^{-s}·L + 0.5·s; substituting
    s → s + log 2 turns the second into the first plus a constant, so both have the same optimum
    effective weight 1/(2·L_i) and (Adam being shift-invariant) the same training dynamics — only
    the starting weight differs (0.5 instead of 1). One form for every task means the balancer
    needs no per-task "regression or classification" option. Learning log σ² rather than σ, as
    the paper itself recommends, keeps the division-free form numerically stable.
    """

    name = "uncertainty"

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self.log_variances = nn.Parameter(torch.zeros(len(self.tasks)))  # (K,) s_i

    def _combine(self, present: list[str], losses: Tensor, shared_parameters: Sequence[nn.Parameter]) -> Tensor:
        log_variances = self.log_variances[self._index_of(present, self.log_variances.device)]
        # (P,): absent tasks get no gradient, so their s_i stay where they are.
        return (0.5 * torch.exp(-log_variances) * losses + 0.5 * log_variances).sum()

    def weights(self) -> dict[str, float]:
        return as_dict(self.tasks, 0.5 * torch.exp(-self.log_variances.detach()))

    def variances(self) -> dict[str, float]:
        """Learned σ_i² per task, for logging."""
        return as_dict(self.tasks, torch.exp(self.log_variances.detach()))

    def model_parameters(self) -> list[nn.Parameter]:
        return [self.log_variances]
