"""`fixed`: user weights."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from onepass.errors import ConfigError
from onepass.train.balancers.base import LossBalancer, as_dict, register_balancer


@register_balancer
class FixedBalancer(LossBalancer):
    """total = Σ_i w_i·L_i over the present tasks, with user weights (default 1.0 each).

    A task absent from the batch contributes nothing; the present tasks' weights are not
    rescaled, so a weight means the same thing in every batch.
    """

    name = "fixed"

    def __init__(self, tasks: Sequence[str], *, weights: Mapping[str, float] | None = None) -> None:
        super().__init__(tasks)
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self.tasks))
        if unknown:
            raise ConfigError(f"fixed balancer: weights for unknown task(s) {unknown} (tasks: {list(self.tasks)})")
        values = [float(weights.get(task, 1.0)) for task in self.tasks]
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ConfigError(f"fixed balancer: weights must be finite and >= 0, got {weights}")
        self.register_buffer("task_weights", torch.tensor(values))  # (K,)

    def _combine(self, present: list[str], losses: Tensor, shared_parameters: Sequence[nn.Parameter]) -> Tensor:
        weights = self.task_weights[self._index_of(present, self.task_weights.device)]  # (P,)
        return (weights.to(losses) * losses).sum()

    def weights(self) -> dict[str, float]:
        return as_dict(self.tasks, self.task_weights)
