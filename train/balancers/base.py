"""The balancer interface, its registry and front door (`build_balancer`)."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from onepass.errors import ConfigError, unknown_name_error

BALANCERS: dict[str, type[LossBalancer]] = {}


def register_balancer(cls: type[LossBalancer]) -> type[LossBalancer]:
    """Class decorator: make `cls` buildable by `build_balancer(cls.name, ...)`."""
    if cls.name in BALANCERS:
        raise ValueError(f"loss balancer {cls.name!r} registered twice")
    BALANCERS[cls.name] = cls
    return cls


def balancer_options(cls: type[LossBalancer]) -> list[str]:
    """The keyword options a balancer class accepts (its keyword-only `__init__` parameters)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


def build_balancer(name: str, tasks: Sequence[str], **options: Any) -> LossBalancer:
    """The front door: the balancer registered as `name`, for `tasks`, with its `options`."""
    if name not in BALANCERS:
        raise unknown_name_error("loss balancer", str(name), list(BALANCERS))
    cls = BALANCERS[name]
    valid = balancer_options(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        valid_text = ", ".join(sorted(valid)) or "none"
        raise ConfigError(f"loss balancer {name!r}: unknown option(s) {unknown} (valid: {valid_text})")
    return cls(tasks, **options)


class SharedLayers(Protocol):
    """What a balancer needs to know about the network: which parameters every task shares.

    `MultiTaskModel` is one; so is any toy model with these two methods.
    """

    def shared_parameters(self) -> Sequence[nn.Parameter]:
        """Every parameter that more than one task's loss depends on (gradient methods combine these)."""
        ...

    def last_shared_parameters(self) -> Sequence[nn.Parameter]:
        """The last layer whose output every task depends on (GradNorm's W)."""
        ...


def scaled(loss: Tensor, scaler: torch.amp.GradScaler | None) -> Tensor:
    """`loss` as the GradScaler wants it backpropagated (unchanged without one, or when it is off)."""
    return loss if scaler is None else scaler.scale(loss)


class LossBalancer(nn.Module, ABC):
    """Turns the per-task losses of one batch into gradients: the training loop calls `backward`.

    Loss-level strategies implement `_combine` (a scalar total whose gradient is the update); the
    gradient methods (`GradientBalancer`) own the backward pass instead, because they combine
    per-task gradients, not losses.
    """

    name: ClassVar[str]
    #: Why this balancer cannot train under DistributedDataParallel; None when it can.
    ddp_refusal: ClassVar[str | None] = None

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks: tuple[str, ...] = _check_tasks(tasks)
        self._task_index = {task: i for i, task in enumerate(self.tasks)}

    # ---- the interface the training loop uses ---------------------------------------------
    def backward(
        self, losses: Mapping[str, Tensor], network: SharedLayers, scaler: torch.amp.GradScaler | None = None
    ) -> Tensor:
        """Backpropagate this batch's task losses into the parameters' `.grad`; the detached total.

        `losses` holds the scalar loss of each task present in this batch (any non-empty subset of
        `tasks`). With a GradScaler the gradients come out scaled, as from `scaler.scale(loss)`, so
        `scaler.step` unscales them as usual. Call it after `optimizer.zero_grad()`.
        """
        total = self.combine(losses, network.last_shared_parameters())
        scaled(total, scaler).backward()
        return total.detach()

    def combine(self, losses: Mapping[str, Tensor], shared_parameters: Sequence[nn.Parameter]) -> Tensor:
        """The scalar total whose gradient is this balancer's update, for `.backward()`.

        `losses` as for `backward`. `shared_parameters` are the parameters the strategy balances over:
        the last shared layer's for GradNorm, all shared parameters for the gradient methods, unused by
        the others.
        """
        present = self._check_losses(losses)
        stacked = torch.stack([losses[task] for task in present])  # (P,)
        return self._combine(present, stacked, shared_parameters)

    def after_step(self, recompute_losses: Callable[[], Mapping[str, Tensor]]) -> None:
        """Called after the optimiser step with a function that evaluates the same batch's losses again
        (without grad). Only a strategy that learns from the step's effect (FAMO) calls it, so the
        others cost no extra forward pass."""

    def end_epoch(self, mean_losses: Mapping[str, float]) -> None:
        """Called after each epoch with the epoch-mean unweighted loss per task."""
        self._check_known(mean_losses, "end_epoch")

    @abstractmethod
    def weights(self) -> dict[str, float]:
        """Current effective weight per task, for logging."""

    def model_parameters(self) -> list[nn.Parameter]:
        """Parameters the main optimiser must train together with the network."""
        return []

    @classmethod
    def check_world_size(cls, world_size: int) -> None:
        """Refuse, with the reason, to train with `world_size` DistributedDataParallel processes if this
        strategy cannot."""
        if world_size > 1 and cls.ddp_refusal is not None:
            able = sorted(name for name, other in BALANCERS.items() if other.ddp_refusal is None)
            raise ConfigError(
                f"loss balancer {cls.name!r} cannot train under DistributedDataParallel ({world_size} processes): "
                f"{cls.ddp_refusal}; train it in one process, or choose one of {able}"
            )

    # ---- what a loss-level strategy implements ----------------------------------------------
    @abstractmethod
    def _combine(self, present: list[str], losses: Tensor, shared_parameters: Sequence[nn.Parameter]) -> Tensor:
        """`losses` (P,) are the present tasks' losses in `present` order (= `tasks` order)."""

    def _config(self) -> dict[str, Any]:
        """Options that must match when a checkpoint is loaded (python primitives only)."""
        return {}

    def _extra_state(self) -> dict[str, Any]:
        """State beyond parameters and buffers (python primitives and tensors only)."""
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    # ---- checkpointing: nn.Module puts this under "_extra_state" in state_dict() ----------
    def get_extra_state(self) -> dict[str, Any]:
        return {"tasks": list(self.tasks), "config": self._config(), **self._extra_state()}

    def set_extra_state(self, state: Mapping[str, Any]) -> None:
        # Same-length task lists load into the same tensor shapes, so a reordered or renamed task
        # list would load silently into the wrong tasks without this check.
        if list(state["tasks"]) != list(self.tasks):
            raise ValueError(
                f"{self.name} balancer checkpoint is for tasks {list(state['tasks'])}, "
                f"this balancer has {list(self.tasks)}"
            )
        if dict(state["config"]) != self._config():
            raise ValueError(
                f"{self.name} balancer checkpoint has options {dict(state['config'])}, "
                f"this balancer has {self._config()}"
            )
        self._load_extra_state(state)

    # ---- helpers --------------------------------------------------------------------------
    def _index_of(self, tasks: Sequence[str], device: torch.device) -> Tensor:
        """Positions of `tasks` in `self.tasks`: (len(tasks),) int64 on `device`."""
        return torch.tensor([self._task_index[t] for t in tasks], dtype=torch.long, device=device)

    def _check_known(self, values: Mapping[str, Any], where: str) -> None:
        unknown = sorted(set(values) - set(self.tasks))
        if unknown:
            raise ValueError(f"{where}: unknown task(s) {unknown} (tasks: {list(self.tasks)})")

    def _check_losses(self, losses: Mapping[str, Tensor]) -> list[str]:
        """Present tasks in `tasks` order, after checking names and shapes."""
        self._check_known(losses, "combine")
        if not losses:
            raise ValueError("combine: no task losses (every task is unlabelled in this batch)")
        for task, loss in losses.items():
            if not isinstance(loss, Tensor) or loss.ndim != 0:
                shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                raise ValueError(f"combine: loss of task {task!r} must be a scalar tensor, got {shape}")
        return [task for task in self.tasks if task in losses]

    def _updates_now(self, losses: Tensor) -> bool:
        """Whether a learning strategy should learn from this call: not in eval() mode, not under
        torch.no_grad(), so that validation can call `combine` too."""
        return self.training and torch.is_grad_enabled() and losses.requires_grad


def _check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    tasks = tuple(tasks)
    if not tasks:
        raise ConfigError("loss balancer: needs at least one task")
    if not all(isinstance(t, str) for t in tasks):
        raise ConfigError(f"loss balancer: task names must be strings, got {list(tasks)}")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"loss balancer: task names must be unique, got {list(tasks)}")
    return tasks


def as_dict(tasks: Sequence[str], values: Tensor) -> dict[str, float]:
    return dict(zip(tasks, values.tolist(), strict=True))
