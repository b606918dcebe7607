"""Multi-task loss balancing: one class per strategy behind one small interface.

The training loop only ever talks to `LossBalancer`:

    balancer = build_balancer(config.name, task_names, **config.options)
    optimiser = Adam([*model.parameters(), *balancer.model_parameters()])
    for batch in loader:
        losses = {task: loss for task, loss in task_losses.items() if loss is not None}
        total = balancer.combine(losses, last_shared_layer_parameters)
        total.backward()
        ...
    balancer.end_epoch(epoch_mean_losses)

| name          | strategy                                    | state                          |
|---------------|---------------------------------------------|--------------------------------|
| `fixed`       | user weights                                | weights                        |
| `uncertainty` | Kendall, Gal, Cipolla 2018: learned log σ²  | log σ² (main optimiser)        |
| `gradnorm`    | Chen et al. 2018: gradient-norm balancing   | weights, own optimiser, L_i(0) |
| `dwa`         | Liu, Johns, Davison 2019: dynamic averaging | weights, last two epoch means  |

Partially labelled data is normal: `combine` receives only the tasks present in the batch, and
every balancer handles any non-empty subset. A task that is absent contributes nothing.

Everything needed to resume bit-for-bit lives in `state_dict()` (parameters, buffers and an
"extra state" of python primitives), so a checkpoint loads with `torch.load(weights_only=True)`.
Move the balancer to the model's device (`balancer.to(device)`) before building optimisers.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from onepass.models.tasks.base import ConfigError, unknown_name_error

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


class LossBalancer(nn.Module, ABC):
    """Turns the per-task losses of one batch into the scalar the training loop backpropagates."""

    name: ClassVar[str]

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks: tuple[str, ...] = _check_tasks(tasks)
        self._task_index = {task: i for i, task in enumerate(self.tasks)}

    # ---- the interface the training loop uses ---------------------------------------------
    def combine(self, losses: Mapping[str, Tensor], shared_parameters: Sequence[nn.Parameter]) -> Tensor:
        """The scalar total loss to call `.backward()` on.

        `losses` holds the scalar loss of each task present in this batch (any non-empty subset of
        `tasks`). `shared_parameters` are the last shared layer's parameters (GradNorm only).
        """
        present = self._check_losses(losses)
        stacked = torch.stack([losses[task] for task in present])  # (P,)
        return self._combine(present, stacked, shared_parameters)

    def end_epoch(self, mean_losses: Mapping[str, float]) -> None:
        """Called after each epoch with the epoch-mean unweighted loss per task."""
        self._check_known(mean_losses, "end_epoch")

    @abstractmethod
    def weights(self) -> dict[str, float]:
        """Current effective weight per task, for logging."""

    def model_parameters(self) -> list[nn.Parameter]:
        """Parameters the main optimiser must train together with the network."""
        return []

    # ---- what a strategy implements -------------------------------------------------------
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


def _check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    tasks = tuple(tasks)
    if not tasks:
        raise ConfigError("loss balancer: needs at least one task")
    if not all(isinstance(t, str) for t in tasks):
        raise ConfigError(f"loss balancer: task names must be strings, got {list(tasks)}")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"loss balancer: task names must be unique, got {list(tasks)}")
    return tasks


def _as_dict(tasks: Sequence[str], values: Tensor) -> dict[str, float]:
    return dict(zip(tasks, values.tolist(), strict=True))


# ==== fixed ====================================================================================
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
        return _as_dict(self.tasks, self.task_weights)


# ==== uncertainty ==============================================================================
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
        return _as_dict(self.tasks, 0.5 * torch.exp(-self.log_variances.detach()))

    def variances(self) -> dict[str, float]:
        """Learned σ_i² per task, for logging."""
        return _as_dict(self.tasks, torch.exp(self.log_variances.detach()))

    def model_parameters(self) -> list[nn.Parameter]:
        return [self.log_variances]


# ==== gradnorm =================================================================================
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
        return _as_dict(self.tasks, torch.stack([w.detach() for w in self.task_weights]))

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


# ==== dwa ======================================================================================
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
        return _as_dict(self.tasks, self.task_weights)

    def _config(self) -> dict[str, Any]:
        return {"temperature": self.temperature}
