"""GradNorm's toy problem (Chen et al. 2018, §4), small: the reference problem every balancer is
checked on (tests/train/test_balancing.py) and that study/libmtl_crosscheck runs onepass's and
LibMTL's balancers on, side by side.

T regression tasks y_i = σ_i·tanh((B + ε_i)·x) on a shared two-layer ReLU trunk with one linear head
per task. The σ_i span two orders of magnitude, so the losses span four. Each head's output is
multiplied by its σ_i, so that the tasks differ in loss scale, not in how far their heads must travel
(which no balancer can change). ε_i's size (`spreads`) sets how far task i is from the shared B: the
first task, the smallest-scale one, is also the hardest.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ScaledTanhTasks(nn.Module):
    """The toy problem on one full batch of 128 samples, deterministic by `seed`; it offers the shared
    layers interface the balancers use (`shared_parameters`, `last_shared_parameters`)."""

    def __init__(
        self, scales: tuple[float, ...] = (1.0, 10.0, 100.0), spreads: tuple[float, ...] = (2.0, 0.35, 0.35), seed=0
    ) -> None:
        super().__init__()
        samples, inputs, outputs, hidden = 128, 16, 8, 32
        generator = torch.Generator().manual_seed(seed)
        self.tasks = tuple(f"task{i}" for i in range(len(scales)))
        self.scales = dict(zip(self.tasks, scales, strict=True))
        self.inputs = torch.randn(samples, inputs, generator=generator)
        shared = torch.randn(outputs, inputs, generator=generator) * (2 / math.sqrt(inputs))  # B
        self.targets = {}
        for task, scale, spread in zip(self.tasks, scales, spreads, strict=True):
            own = torch.randn(outputs, inputs, generator=generator) * (2 * spread / math.sqrt(inputs))  # ε_i
            self.targets[task] = scale * torch.tanh(self.inputs @ (shared + own).T)  # (samples, outputs)
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({task: nn.Linear(hidden, outputs) for task in self.tasks})

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk[2].parameters())

    def losses(self, tasks: tuple[str, ...] | None = None) -> dict[str, Tensor]:
        features = self.trunk(self.inputs)
        return {
            task: nn.functional.mse_loss(self.heads[task](features) * self.scales[task], self.targets[task])
            for task in tasks or self.tasks
        }

    def task_gradients(self, losses: dict[str, Tensor]) -> Tensor:
        """Each task's gradient of the shared parameters, flattened: (T, N), `.grad` untouched."""
        rows = []
        for loss in losses.values():
            grads = torch.autograd.grad(loss, self.shared_parameters(), retain_graph=True)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
        return torch.stack(rows)

    def shared_grad(self) -> Tensor:
        """The shared parameters' `.grad`, flattened."""
        return torch.cat([p.grad.reshape(-1) for p in self.shared_parameters()])
