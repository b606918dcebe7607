"""`dwa`: Dynamic Weight Average (Liu, Johns, Davison 2019)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from onepass.errors import ConfigError
from onepass.train.balancers.base import LossBalancer, as_dict, register_balancer

_MIN_EPOCH_LOSS = 1e-12  # denominator floor for r_k when an epoch's mean loss is exactly 0


@register_balancer
class DwaBalancer(LossBalancer):
    """Dynamic Weight Average (Liu, Johns, Davison, CVPR 2019, "End-to-End Multi-Task Learning
    with Attention", MTAN).

    w_k(t) = K·exp(r_k(t−1)/T) / Σ_i exp(r_i(t−1)/T),  r_k(t−1) = L_k(t−1) / L_k(t−2),
    with L_k the epoch-mean losses given to `end_epoch`; w_k = 1 for the first two epochs.
    total = Σ_k w_k·L_k over the tasks present in the batch (weights not rescaled for absent ones).

    Deviation, because the paper assumes every task is labelled every epoch: the history is kept
    per task, and a task without two recorded epoch means (e.g. absent from an epoch's data so
    far) gets the neutral ratio r_k = 1 (its loss "did not change") while the others use theirs.
    With every task present every epoch this is exactly the paper's rule.
    """

    name = "dwa"

    def __init__(self, tasks: Sequence[str], *, temperature: float = 2.0) -> None:
        super().__init__(tasks)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ConfigError(f"dwa balancer: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        # Row 0: L_k(t−2), row 1: L_k(t−1); NaN where not yet recorded.
        self.register_buffer("epoch_losses", torch.full((2, len(self.tasks)), math.nan))  # (2, K)
        self.register_buffer("task_weights", torch.ones(len(self.tasks)))  # (K,)

    def _combine(self, present: list[str], losses: Tensor, shared_parameters: Sequence[nn.Parameter]) -> Tensor:
        weights = self.task_weights[self._index_of(present, self.task_weights.device)]  # (P,)
        return (weights.to(losses) * losses).sum()

    @torch.no_grad()
    def end_epoch(self, mean_losses: Mapping[str, float]) -> None:
        super().end_epoch(mean_losses)
        for task, value in mean_losses.items():
            value = float(value)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"dwa balancer: epoch-mean loss of {task!r} is {value}")
            k = self._task_index[task]
            self.epoch_losses[0, k] = self.epoch_losses[1, k]
            self.epoch_losses[1, k] = value
        before, last = self.epoch_losses  # (K,) each
        ratios = last / before.clamp_min(_MIN_EPOCH_LOSS)  # r_k (K,)
        ratios = torch.where(ratios.isnan(), 1.0, ratios)  # fewer than two epochs: neutral
        self.task_weights.copy_(len(self.tasks) * torch.softmax(ratios / self.temperature, dim=0))

    def weights(self) -> dict[str, float]:
        return as_dict(self.tasks, self.task_weights)

    def _config(self) -> dict[str, Any]:
        return {"temperature": self.temperature}
