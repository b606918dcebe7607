"""Loss balancers: registry, each strategy's behaviour, partial labels, checkpoint round trip."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from torch import Tensor, nn

from onepass.errors import ConfigError
from onepass.models import open_package
from onepass.train.balancers import GradientBalancer
from onepass.train.balancers.aligned_mtl import aligned_mtl_coefficients
from onepass.train.balancers.cagrad import cagrad_coefficients
from onepass.train.balancers.nash_mtl import nash_coefficients
from onepass.train.balancers.toy_problem import ScaledTanhTasks
from onepass.train.balancing import (
    BALANCERS,
    AlignedMtlBalancer,
    CaGradBalancer,
    DwaBalancer,
    FamoBalancer,
    FixedBalancer,
    GradNormBalancer,
    LossBalancer,
    NashMtlBalancer,
    UncertaintyBalancer,
    build_balancer,
)
from onepass.train.config import TrainConfig
from onepass.train.loop import Trainer, train
from tests.tiny import TINY_ENCODER, write_random_dataset

TASKS = ("semseg", "depth", "normals")


def scalars(**values: float) -> dict[str, Tensor]:
    return {task: torch.tensor(value) for task, value in values.items()}


# ---- registry ---------------------------------------------------------------------------------
def test_registry_has_every_strategy() -> None:
    assert set(BALANCERS) == {"fixed", "uncertainty", "gradnorm", "dwa", "famo", "aligned-mtl", "cagrad", "nash-mtl"}


@pytest.mark.parametrize("name", sorted(BALANCERS))
def test_every_name_builds_and_starts_with_unit_or_half_weights(name: str) -> None:
    balancer = build_balancer(name, TASKS)
    assert isinstance(balancer, LossBalancer)
    assert type(balancer).name == name
    assert balancer.tasks == TASKS
    expected = 0.5 if name == "uncertainty" else 1.0  # 0.5·exp(-0)
    assert balancer.weights() == pytest.approx(dict.fromkeys(TASKS, expected))


def test_unknown_name_lists_valid_names_and_suggests_a_close_match() -> None:
    with pytest.raises(ValueError) as error:
        build_balancer("gradnrom", TASKS)
    message = str(error.value)
    assert "'gradnrom'" in message
    assert "did you mean 'gradnorm'?" in message
    for name in BALANCERS:
        assert name in message


def test_unknown_option_names_it_and_the_valid_options() -> None:
    with pytest.raises(ValueError, match=r"temprature.*valid: temperature"):
        build_balancer("dwa", TASKS, temprature=1.0)
    with pytest.raises(ValueError, match=r"valid: none"):
        build_balancer("uncertainty", TASKS, lr=0.1)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("gradnorm", {"alpha": -1.0}),
        ("gradnorm", {"lr": 0.0}),
        ("gradnorm", {"optimizer": "adamw"}),
        ("gradnorm", {"initial_steps": 0}),
        ("dwa", {"temperature": 0.0}),
        ("fixed", {"weights": {"depth": -1.0}}),
    ],
)
def test_bad_option_values_are_rejected(name: str, options: dict) -> None:
    with pytest.raises(ValueError):
        build_balancer(name, TASKS, **options)


@pytest.mark.parametrize("tasks", [(), ("depth", "depth")])
def test_bad_task_lists_are_rejected(tasks: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        build_balancer("fixed", tasks)


@pytest.mark.parametrize("name", sorted(BALANCERS))
def test_combine_rejects_unknown_tasks_empty_batches_and_non_scalars(name: str) -> None:
    balancer = build_balancer(name, TASKS)
    with pytest.raises(ValueError, match="unknown task"):
        balancer.combine(scalars(edges=1.0), [])
    with pytest.raises(ValueError, match="no task losses"):
        balancer.combine({}, [])
    with pytest.raises(ValueError, match="scalar"):
        balancer.combine({"depth": torch.ones(2)}, [])


# ---- fixed ------------------------------------------------------------------------------------
def test_fixed_total_is_the_weighted_sum() -> None:
    balancer = build_balancer("fixed", TASKS, weights={"semseg": 2.0, "normals": 0.5})
    total = balancer.combine(scalars(semseg=1.5, depth=3.0, normals=4.0), [])
    assert total.item() == pytest.approx(2.0 * 1.5 + 1.0 * 3.0 + 0.5 * 4.0)
    assert balancer.weights() == {"semseg": 2.0, "depth": 1.0, "normals": 0.5}


def test_fixed_missing_task_contributes_nothing_and_weights_are_not_rescaled() -> None:
    balancer = build_balancer("fixed", TASKS, weights={"semseg": 2.0, "normals": 0.5})
    total = balancer.combine(scalars(normals=4.0), [])
    assert total.item() == pytest.approx(0.5 * 4.0)


def test_fixed_weight_for_unknown_task_is_an_error() -> None:
    with pytest.raises(ValueError, match="edges"):
        build_balancer("fixed", TASKS, weights={"edges": 1.0})


def test_fixed_gradient_reaches_the_losses_with_their_weights() -> None:
    balancer = build_balancer("fixed", TASKS, weights={"depth": 3.0})
    depth = torch.tensor(2.0, requires_grad=True)
    balancer.combine({"depth": depth}, []).backward()
    assert depth.grad.item() == pytest.approx(3.0)


# ---- uncertainty ------------------------------------------------------------------------------
def test_uncertainty_total_matches_the_formula_and_trains_log_variances() -> None:
    balancer = build_balancer("uncertainty", TASKS)
    assert balancer.model_parameters() == [balancer.log_variances]
    with torch.no_grad():
        balancer.log_variances.copy_(torch.tensor([0.5, -1.0, 2.0]))
    total = balancer.combine(scalars(semseg=2.0, normals=3.0), [])  # depth missing
    expected = 0.5 * math.exp(-0.5) * 2.0 + 0.25 + 0.5 * math.exp(-2.0) * 3.0 + 1.0
    assert total.item() == pytest.approx(expected)
    total.backward()
    # d/ds of 0.5·e^{-s}·L + 0.5·s is 0.5 − 0.5·e^{-s}·L; the absent task gets no gradient.
    grad = balancer.log_variances.grad
    assert grad[0].item() == pytest.approx(0.5 - 0.5 * math.exp(-0.5) * 2.0)
    assert grad[1].item() == 0.0
    assert grad[2].item() == pytest.approx(0.5 - 0.5 * math.exp(-2.0) * 3.0)


def test_uncertainty_learns_a_larger_variance_for_the_noisier_task() -> None:
    torch.manual_seed(0)
    inputs = torch.randn(256, 4)
    noise_std = torch.tensor([0.1, 1.0])  # precise, noisy
    targets = inputs @ torch.randn(4, 2) + torch.randn(256, 2) * noise_std  # (256, 2)
    shared = nn.Linear(4, 16)
    heads = nn.ModuleDict({"precise": nn.Linear(16, 1), "noisy": nn.Linear(16, 1)})
    balancer = build_balancer("uncertainty", ["precise", "noisy"])
    optimiser = torch.optim.Adam([*shared.parameters(), *heads.parameters(), *balancer.model_parameters()], lr=0.05)
    for _ in range(300):
        features = shared(inputs)
        losses = {
            task: nn.functional.mse_loss(heads[task](features)[:, 0], targets[:, column])
            for column, task in enumerate(["precise", "noisy"])
        }
        total = balancer.combine(losses, list(shared.parameters()))
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    variances = balancer.variances()
    assert variances["noisy"] > 20 * variances["precise"]
    # At the optimum σ² equals the task's MSE, i.e. the noise variance of a well-fitted model.
    assert variances["precise"] == pytest.approx(0.1**2, rel=0.5)
    assert variances["noisy"] == pytest.approx(1.0**2, rel=0.5)


# ---- gradnorm ---------------------------------------------------------------------------------
class TwoScaleProblem:
    """A shared layer with two heads; task "large"'s targets are ×10 (losses ×100, grads ×~10)."""

    def __init__(self, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(128, 8, generator=generator)
        noise = torch.randn(128, 2, generator=generator)
        self.targets = {
            "small": self.inputs @ torch.randn(8, 1, generator=generator) + noise[:, :1],
            "large": 10 * (self.inputs @ torch.randn(8, 1, generator=generator) + noise[:, 1:]),
        }
        torch.manual_seed(seed)
        self.shared = nn.Linear(8, 4)
        self.heads = nn.ModuleDict({"small": nn.Linear(4, 1), "large": nn.Linear(4, 1)})

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.shared.parameters())

    def parameters(self) -> list[nn.Parameter]:
        return [*self.shared.parameters(), *self.heads.parameters()]

    def losses(self, tasks: tuple[str, ...] = ("small", "large")) -> dict[str, Tensor]:
        features = self.shared(self.inputs)
        return {t: nn.functional.mse_loss(self.heads[t](features), self.targets[t]) for t in tasks}

    def weighted_grad_norms(self, balancer: LossBalancer) -> dict[str, float]:
        """G_i = w_i·||∇_W L_i||, computed independently of the balancer's own code."""
        weights = balancer.weights()
        norms = {}
        for task, loss in self.losses().items():
            grads = torch.autograd.grad(loss, self.shared_parameters(), retain_graph=True)
            norms[task] = weights[task] * math.sqrt(sum(g.square().sum().item() for g in grads))
        return norms


def gradnorm_training(problem: TwoScaleProblem, balancer: LossBalancer, steps: int, lr: float = 1e-4) -> list[float]:
    """Train `problem` with `balancer`; the max/min ratio of G_i before each step."""
    optimiser = torch.optim.SGD(problem.parameters(), lr=lr)
    ratios = []
    for _ in range(steps):
        norms = problem.weighted_grad_norms(balancer)
        ratios.append(max(norms.values()) / min(norms.values()))
        total = balancer.combine(problem.losses(), problem.shared_parameters())
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        weights = balancer.weights()
        assert sum(weights.values()) == pytest.approx(2.0, abs=1e-5)
        assert min(weights.values()) > 0
    return ratios


def test_gradnorm_brings_the_weighted_gradient_norms_together() -> None:
    problem = TwoScaleProblem()
    balancer = build_balancer("gradnorm", ["small", "large"])
    # The network trains slowly, so both tasks progress at about the same rate (r_i ≈ 1) and
    # GradNorm's target is simply equal G_i.
    ratios = gradnorm_training(problem, balancer, steps=150)
    assert ratios[0] > 5
    assert max(ratios[-20:]) < 1.3
    weights = balancer.weights()
    assert weights["large"] < 0.3 * weights["small"]  # the ×10-gradient task is damped


def test_gradnorm_update_matches_the_paper_by_hand() -> None:
    """Two SGD steps of the weights on L_i = c_i·||W − t_i||², where ||∇_W L_i|| is closed-form."""
    scales = torch.tensor([1.0, 4.0, 0.5])  # c_i
    centres = torch.tensor([[0.0, 0.0], [1.0, -1.0], [3.0, 1.0]])  # t_i (3, 2)
    shared = nn.Parameter(torch.tensor([1.0, 2.0]))  # W (2,)
    tasks = ["a", "b", "c"]
    balancer = build_balancer("gradnorm", tasks, optimizer="sgd", lr=0.1, alpha=1.5)

    def losses() -> Tensor:
        return scales * (shared - centres).square().sum(dim=1)  # (3,)

    def expected_step(weights: Tensor, loss: Tensor, initial: Tensor) -> Tensor:
        grad_norms = 2 * scales * (shared.detach() - centres).norm(dim=1)  # ||∇_W L_i|| (3,)
        weighted = weights * grad_norms  # G_i
        ratios = (loss / initial) / (loss / initial).mean()  # r_i
        target = weighted.mean() * ratios**1.5
        updated = weights - 0.1 * torch.sign(weighted - target) * grad_norms  # ∂L_grad/∂w_i
        updated = updated.clamp_min(1e-4)
        return 3 * updated / updated.sum()

    first = losses()
    balancer.combine(dict(zip(tasks, first, strict=True)), [shared])
    expected = expected_step(torch.ones(3), first.detach(), first.detach())
    assert list(balancer.weights().values()) == pytest.approx(expected.tolist(), rel=1e-5)

    with torch.no_grad():
        shared.copy_(torch.tensor([0.5, 0.5]))  # as if the network had trained
    second = losses()
    balancer.combine(dict(zip(tasks, second, strict=True)), [shared])
    expected = expected_step(expected, second.detach(), first.detach())
    assert list(balancer.weights().values()) == pytest.approx(expected.tolist(), rel=1e-5)
    assert balancer.initial_losses() == pytest.approx(dict(zip(tasks, first.tolist(), strict=True)))


def test_gradnorm_records_initial_losses_from_the_first_steps() -> None:
    problem = TwoScaleProblem()
    first = {t: loss.item() for t, loss in problem.losses().items()}
    balancer = build_balancer("gradnorm", ["small", "large"])
    gradnorm_training(problem, balancer, steps=3)
    assert balancer.initial_losses() == pytest.approx(first)

    averaging = build_balancer("gradnorm", ["small", "large"], initial_steps=2)
    problem = TwoScaleProblem()
    losses_seen = []
    optimiser = torch.optim.SGD(problem.parameters(), lr=1e-3)
    for _ in range(4):
        losses = problem.losses()
        losses_seen.append({t: loss.item() for t, loss in losses.items()})
        total = averaging.combine(losses, problem.shared_parameters())
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    expected = {t: (losses_seen[0][t] + losses_seen[1][t]) / 2 for t in ("small", "large")}
    assert averaging.initial_losses() == pytest.approx(expected)


def test_gradnorm_total_uses_detached_pre_update_weights() -> None:
    problem = TwoScaleProblem()
    balancer = build_balancer("gradnorm", ["small", "large"])
    gradnorm_training(problem, balancer, steps=5)
    weights_before = balancer.weights()
    losses = problem.losses()
    total = balancer.combine(losses, problem.shared_parameters())
    expected = sum(weights_before[t] * loss.item() for t, loss in losses.items())
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert balancer.weights() != weights_before  # the update happened inside combine
    total.backward()
    assert all(w.grad is None for w in balancer.task_weights)  # the model's backward left w alone


def test_gradnorm_step_with_one_task_present() -> None:
    problem = TwoScaleProblem()
    balancer = build_balancer("gradnorm", ["small", "large"])
    gradnorm_training(problem, balancer, steps=5)
    weights_before = balancer.weights()

    losses = problem.losses(("small",))
    total = balancer.combine(losses, problem.shared_parameters())
    total.backward()
    assert total.item() == pytest.approx(weights_before["small"] * losses["small"].item())
    # Alone, a task's G_i is its own target; the absent task's weight is untouched and the
    # renormalisation keeps the sum at K, so the present weight cannot move either.
    assert balancer.weights() == pytest.approx(weights_before, abs=1e-6)
    assert balancer.weights()["large"] == weights_before["large"]


def test_gradnorm_with_a_task_missing_updates_only_the_present_weights() -> None:
    problem = TwoScaleProblem()
    balancer = build_balancer("gradnorm", ["small", "large", "other"])
    optimiser = torch.optim.SGD(problem.parameters(), lr=1e-4)
    for _ in range(10):
        total = balancer.combine(problem.losses(), problem.shared_parameters())  # no "other"
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
    weights = balancer.weights()
    assert weights["other"] == 1.0
    assert weights["small"] + weights["large"] == pytest.approx(2.0, abs=1e-5)
    assert weights["large"] < weights["small"]
    assert "other" not in balancer.initial_losses()


def test_gradnorm_does_not_update_in_eval_mode_or_without_grad() -> None:
    problem = TwoScaleProblem()
    balancer = build_balancer("gradnorm", ["small", "large"])
    balancer.eval()
    balancer.combine(problem.losses(), problem.shared_parameters())
    with torch.no_grad():
        balancer.train()
        balancer.combine(problem.losses(), problem.shared_parameters())
    assert balancer.weights() == {"small": 1.0, "large": 1.0}
    assert balancer.initial_losses() == {}


def test_gradnorm_needs_the_shared_parameters() -> None:
    problem = TwoScaleProblem()
    balancer = build_balancer("gradnorm", ["small", "large"])
    with pytest.raises(ValueError, match="shared"):
        balancer.combine(problem.losses(), [])


def test_gradnorm_with_sgd_weight_optimiser_keeps_the_invariants() -> None:
    problem = TwoScaleProblem()
    balancer = build_balancer("gradnorm", ["small", "large"], optimizer="sgd", lr=0.01)
    ratios = gradnorm_training(problem, balancer, steps=30)
    assert ratios[-1] < ratios[0]


# ---- dwa --------------------------------------------------------------------------------------
def dwa_weights(ratios: list[float], temperature: float = 2.0) -> list[float]:
    exps = [math.exp(r / temperature) for r in ratios]
    return [len(ratios) * e / sum(exps) for e in exps]


def test_dwa_weights_are_one_for_the_first_two_epochs_then_follow_the_loss_ratios() -> None:
    balancer = build_balancer("dwa", ["a", "b", "c"])
    epochs = [
        {"a": 1.0, "b": 2.0, "c": 4.0},
        {"a": 0.5, "b": 1.8, "c": 4.0},
        {"a": 0.4, "b": 0.9, "c": 4.4},
    ]
    assert balancer.weights() == {"a": 1.0, "b": 1.0, "c": 1.0}  # epoch 1
    balancer.end_epoch(epochs[0])
    assert balancer.weights() == {"a": 1.0, "b": 1.0, "c": 1.0}  # epoch 2

    balancer.end_epoch(epochs[1])  # epoch 3 uses r = L(2)/L(1)
    expected = dwa_weights([0.5 / 1.0, 1.8 / 2.0, 4.0 / 4.0])
    assert list(balancer.weights().values()) == pytest.approx(expected, rel=1e-6)

    balancer.end_epoch(epochs[2])  # epoch 4 uses r = L(3)/L(2)
    expected = dwa_weights([0.4 / 0.5, 0.9 / 1.8, 4.4 / 4.0])
    weights = balancer.weights()
    assert list(weights.values()) == pytest.approx(expected, rel=1e-6)
    assert sum(weights.values()) == pytest.approx(3.0)
    assert weights["c"] > weights["a"] > weights["b"]  # the task that improved least gets most

    total = balancer.combine(scalars(a=2.0, c=1.0), [])  # "b" missing in this batch
    assert total.item() == pytest.approx(expected[0] * 2.0 + expected[2] * 1.0, rel=1e-6)


def test_dwa_temperature_flattens_the_weights() -> None:
    cold, hot = (build_balancer("dwa", ["a", "b"], temperature=t) for t in (0.5, 100.0))
    for balancer in (cold, hot):
        balancer.end_epoch({"a": 1.0, "b": 1.0})
        balancer.end_epoch({"a": 0.1, "b": 2.0})
    assert hot.weights() == pytest.approx({"a": 1.0, "b": 1.0}, abs=0.02)
    assert cold.weights()["b"] > 1.9


def test_dwa_task_missing_from_an_epoch_gets_the_neutral_ratio() -> None:
    balancer = build_balancer("dwa", ["a", "b"])
    balancer.end_epoch({"a": 1.0, "b": 1.0})
    balancer.end_epoch({"a": 0.5})  # no "b" labels this epoch: b has only one epoch mean
    assert list(balancer.weights().values()) == pytest.approx(dwa_weights([0.5, 1.0]), rel=1e-6)


def test_dwa_rejects_bad_epoch_losses() -> None:
    balancer = build_balancer("dwa", ["a", "b"])
    with pytest.raises(ValueError, match="unknown task"):
        balancer.end_epoch({"z": 1.0})
    with pytest.raises(ValueError, match="'a'"):
        balancer.end_epoch({"a": math.nan})


# ---- checkpoint round trip --------------------------------------------------------------------
def save_and_load(balancer: LossBalancer) -> dict:
    buffer = io.BytesIO()
    torch.save(balancer.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def warm_up(balancer: LossBalancer, problem: TwoScaleProblem) -> None:
    """A few training steps and epochs, so every kind of state is non-trivial."""
    optimiser = torch.optim.Adam([*problem.parameters(), *balancer.model_parameters()], lr=1e-2)
    for epoch in range(3):
        for _ in range(2):
            total = balancer.combine(problem.losses(), problem.shared_parameters())
            optimiser.zero_grad()
            total.backward()
            optimiser.step()
        balancer.end_epoch({"small": 1.0 / (epoch + 1), "large": 10.0 - epoch})


@pytest.mark.parametrize("name", sorted(BALANCERS))
def test_state_dict_round_trip_reproduces_the_next_steps_exactly(name: str) -> None:
    options = {"weights": {"small": 0.3}} if name == "fixed" else {}
    problem = TwoScaleProblem()
    original = build_balancer(name, ["small", "large"], **options)
    warm_up(original, problem)

    restored = build_balancer(name, ["small", "large"], **options)
    restored.load_state_dict(save_and_load(original))

    for _ in range(2):  # two steps: the second depends on optimiser state the first updated
        totals = [b.combine(problem.losses(), problem.shared_parameters()) for b in (original, restored)]
        assert torch.equal(totals[0], totals[1])
        assert original.weights() == restored.weights()
    original.end_epoch({"small": 0.2, "large": 7.0})
    restored.end_epoch({"small": 0.2, "large": 7.0})
    assert original.weights() == restored.weights()


def test_gradnorm_checkpoint_holds_optimiser_state_and_initial_losses() -> None:
    problem = TwoScaleProblem()
    balancer = build_balancer("gradnorm", ["small", "large"])
    warm_up(balancer, problem)
    state = save_and_load(balancer)
    optimiser_state = state["_extra_state"]["optimizer_state"]["state"]
    assert len(optimiser_state) == 2 and all("exp_avg" in s for s in optimiser_state.values())
    assert state["initial_loss_count"].tolist() == [1, 1]

    # A balancer without that optimiser state would take a different next step.
    fresh_optimiser = build_balancer("gradnorm", ["small", "large"])
    fresh_optimiser.load_state_dict(state)
    fresh_optimiser._optimizer = fresh_optimiser._new_optimizer()
    for b in (balancer, fresh_optimiser):
        b.combine(problem.losses(), problem.shared_parameters())
    assert balancer.weights() != fresh_optimiser.weights()


def test_checkpoint_for_other_tasks_or_options_is_refused() -> None:
    state = build_balancer("dwa", ["a", "b"]).state_dict()
    with pytest.raises(ValueError, match="tasks"):
        build_balancer("dwa", ["b", "a"]).load_state_dict(state)
    with pytest.raises(ValueError, match="options"):
        build_balancer("dwa", ["a", "b"], temperature=1.0).load_state_dict(state)


def test_classes_are_exported_under_their_names() -> None:
    assert BALANCERS == {
        "fixed": FixedBalancer,
        "uncertainty": UncertaintyBalancer,
        "gradnorm": GradNormBalancer,
        "dwa": DwaBalancer,
        "famo": FamoBalancer,
        "aligned-mtl": AlignedMtlBalancer,
        "cagrad": CaGradBalancer,
        "nash-mtl": NashMtlBalancer,
    }


# ==== the interface every balancer shares ========================================================
LOSS_LEVEL = ("fixed", "uncertainty", "gradnorm", "dwa", "famo")
GRADIENT_METHODS = ("aligned-mtl", "cagrad", "nash-mtl")


def test_every_balancer_is_either_loss_level_or_a_gradient_method() -> None:
    assert set(LOSS_LEVEL) | set(GRADIENT_METHODS) == set(BALANCERS)
    assert all(issubclass(BALANCERS[name], GradientBalancer) for name in GRADIENT_METHODS)
    assert not any(issubclass(BALANCERS[name], GradientBalancer) for name in LOSS_LEVEL)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("famo", {"lr": 0.0}),
        ("famo", {"gamma": -1.0}),
        ("cagrad", {"c": -0.1}),
        ("cagrad", {"c": "large"}),
        ("cagrad", {"c": True}),
    ],
)
def test_bad_options_of_the_new_strategies_are_rejected(name: str, options: dict) -> None:
    with pytest.raises(ValueError, match=name):
        build_balancer(name, TASKS, **options)


@pytest.mark.parametrize("name", sorted(BALANCERS))
def test_gradient_methods_refuse_distributed_training_and_say_why(name: str) -> None:
    cls = BALANCERS[name]
    cls.check_world_size(1)
    if name in LOSS_LEVEL:
        cls.check_world_size(4)
        return
    with pytest.raises(ConfigError) as error:
        cls.check_world_size(4)
    message = str(error.value)
    assert f"'{name}'" in message and "4 processes" in message and "backward pass per task" in message
    assert "famo" in message and "uncertainty" in message and "cagrad" not in message.split("choose one of")[1]


@pytest.mark.parametrize("name", LOSS_LEVEL)
def test_backward_of_a_loss_level_balancer_is_combine_then_backward(name: str) -> None:
    """The loop's `backward` gives exactly the gradients the loop got from combine + backward before."""
    grads = []
    for use_backward in (False, True):
        problem = TwoScaleProblem()
        problem.last_shared_parameters = problem.shared_parameters  # the SharedLayers interface
        balancer = build_balancer(name, ["small", "large"])
        warm_up(balancer, problem)
        if use_backward:
            total = balancer.backward(problem.losses(), problem)
            assert not total.requires_grad
        else:
            balancer.combine(problem.losses(), problem.shared_parameters()).backward()
        grads.append([p.grad.clone() for p in [*problem.parameters(), *balancer.model_parameters()]])
    for before, after in zip(*grads, strict=True):
        assert torch.equal(before, after)


# ==== GradNorm's toy problem =====================================================================
@pytest.fixture
def one_thread():
    """These problems are tiny: threads would only add synchronisation (and the machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def log_decreases(name: str, steps: int = 80, **options) -> list[float]:
    """log(L_i(0) / L_i(steps)) per task after training the toy problem with Adam, as the loop does."""
    problem = ScaledTanhTasks()
    balancer = build_balancer(name, problem.tasks, **options)
    optimiser = torch.optim.Adam([*problem.parameters(), *balancer.model_parameters()], lr=1e-2)
    first = {task: loss.item() for task, loss in problem.losses().items()}
    for _ in range(steps):
        optimiser.zero_grad()
        balancer.backward(problem.losses(), problem)
        optimiser.step()
        balancer.after_step(problem.losses)
    return [math.log(first[task] / loss.item()) for task, loss in problem.losses().items()]


# ==== famo =======================================================================================
def test_famo_total_and_gradient_follow_the_formula() -> None:
    balancer = build_balancer("famo", ["a", "b", "c"])
    with torch.no_grad():
        for logit, value in zip(balancer.logits, [0.5, -1.0, 0.2], strict=True):
            logit.fill_(value)
    losses = {
        task: torch.tensor(value, requires_grad=True) for task, value in zip("abc", [2.0, 0.01, 300.0], strict=True)
    }
    z = torch.softmax(torch.tensor([0.5, -1.0, 0.2]), dim=0)
    values = torch.tensor([2.0, 0.01, 300.0]) + 1e-8
    c = (z / values).sum()
    expected = 3 * z / (c * values)  # the weight on each L_i: the gradient of 3·Σ z_i log L_i / c
    balancer.combine(losses, []).backward()
    assert [losses[t].grad.item() for t in "abc"] == pytest.approx(expected.tolist(), rel=1e-5)
    assert balancer.weights() == pytest.approx(dict(zip("abc", (3 * z).tolist(), strict=True)))


def test_famo_with_equal_losses_and_fresh_logits_is_the_plain_sum() -> None:
    balancer = build_balancer("famo", ["a", "b", "c"])
    losses = {task: torch.tensor(0.7, requires_grad=True) for task in "abc"}
    total = balancer.combine(losses, [])
    total.backward()
    assert total.item() == pytest.approx(3 * 0.7)
    assert [losses[t].grad.item() for t in "abc"] == pytest.approx([1.0, 1.0, 1.0])


def test_famo_logit_update_matches_the_paper_by_hand() -> None:
    """ξ ← Adam step on ∇_ξ zᵀδ, δ the decrease of each log-loss over the step; Adam's first step is
    lr·sign(gradient), its weight decay acts through the gradient (γ·ξ)."""
    balancer = build_balancer("famo", ["a", "b", "c"], lr=0.1, gamma=0.5)
    with torch.no_grad():
        for logit, value in zip(balancer.logits, [0.3, 0.0, -0.2], strict=True):
            logit.fill_(value)
    before, after = torch.tensor([1.0, 4.0, 0.5]), torch.tensor([0.9, 2.0, 0.5])
    balancer.combine({t: v.clone().requires_grad_() for t, v in zip("abc", before, strict=True)}, [])
    balancer.after_step(lambda: dict(zip("abc", after, strict=True)))

    xi = torch.tensor([0.3, 0.0, -0.2])
    z = torch.softmax(xi, dim=0)
    delta = before.log() - after.log()
    gradient = z * (delta - z @ delta) + 0.5 * xi  # softmax's Jacobian times δ, plus the decay
    expected = xi - 0.1 * gradient / (gradient.abs() + 1e-8)
    assert [p.item() for p in balancer.logits] == pytest.approx(expected.tolist(), abs=1e-6)
    # the task whose log-loss fell least ("c": not at all) gains weight, the one that fell most ("b") loses
    assert balancer.logits[2].item() > -0.2 and balancer.logits[1].item() < 0.0


def test_famo_decreases_every_task_at_a_similar_log_rate(one_thread) -> None:
    def spread(rates: list[float]) -> float:
        return max(rates) / min(rates)

    famo = log_decreases("famo")
    assert min(famo) > 1.5  # every task learns
    assert spread(famo) < 1.25
    # Controls, to show the test can fail: the plain sum lets the ×10⁴ loss run ahead, and FAMO
    # without its logit updates (log-losses with fixed equal weights) leaves the hardest task behind.
    assert spread(log_decreases("fixed")) > 2.0
    assert spread(log_decreases("famo", lr=1e-12)) > 1.4


def test_famo_with_a_task_missing_weighs_and_updates_only_the_present_tasks() -> None:
    balancer = build_balancer("famo", ["a", "b", "c"])
    with torch.no_grad():
        balancer.logits[0].fill_(1.0)
        balancer.logits[1].fill_(-1.0)
    losses = {"a": torch.tensor(2.0, requires_grad=True), "c": torch.tensor(0.5, requires_grad=True)}
    balancer.combine(losses, []).backward()
    z = torch.softmax(torch.tensor([1.0, 0.0]), dim=0)  # over the present a and c
    shifted = torch.tensor([2.0, 0.5]) + 1e-8
    expected = 3 * z / ((z / shifted).sum() * shifted)
    assert [losses["a"].grad.item(), losses["c"].grad.item()] == pytest.approx(expected.tolist(), rel=1e-5)

    balancer.after_step(lambda: {"a": torch.tensor(1.0), "c": torch.tensor(0.5)})
    assert balancer.logits[1].item() == -1.0  # absent: untouched, and no optimiser state either
    assert balancer.logits[0].item() != 1.0 and balancer.logits[2].item() != 0.0
    assert set(balancer._optimizer.state) == {balancer.logits[0], balancer.logits[2]}


def test_famo_learns_only_from_a_training_step() -> None:
    balancer = build_balancer("famo", ["a", "b"])

    def never() -> dict:
        raise AssertionError("after_step must not evaluate the losses without a training step")

    balancer.after_step(never)  # no combine yet
    balancer.eval()
    balancer.combine({"a": torch.tensor(1.0, requires_grad=True)}, [])
    balancer.after_step(never)
    balancer.train()
    with torch.no_grad():
        balancer.combine({"a": torch.tensor(1.0)}, [])
    balancer.after_step(never)
    assert balancer.weights() == {"a": 1.0, "b": 1.0}


def test_famo_refuses_recomputed_losses_without_a_task_of_the_step() -> None:
    balancer = build_balancer("famo", ["a", "b"])
    balancer.combine({t: torch.tensor(1.0, requires_grad=True) for t in "ab"}, [])
    with pytest.raises(ValueError, match=r"lack \['b'\]"):
        balancer.after_step(lambda: {"a": torch.tensor(0.5)})


def test_famo_checkpoint_resumes_the_logits_and_their_optimiser_bit_for_bit(one_thread) -> None:
    def steps(balancer: LossBalancer, problem: ScaledTanhTasks, count: int) -> None:
        optimiser = torch.optim.SGD(problem.parameters(), lr=1e-4)
        for _ in range(count):
            optimiser.zero_grad()
            balancer.backward(problem.losses(), problem)
            optimiser.step()
            balancer.after_step(problem.losses)

    problem = ScaledTanhTasks()
    original = build_balancer("famo", problem.tasks)
    steps(original, problem, 3)
    state = save_and_load(original)
    assert all("exp_avg_sq" in s for s in state["_extra_state"]["optimizer_state"]["state"].values())
    restored = build_balancer("famo", problem.tasks)
    restored.load_state_dict(state)
    twin = ScaledTanhTasks()
    for p, q in zip(twin.parameters(), problem.parameters(), strict=True):
        p.data.copy_(q.data)
    steps(original, problem, 2)
    steps(restored, twin, 2)
    assert original.weights() == restored.weights()
    for p, q in zip(twin.parameters(), problem.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="options"):
        build_balancer("famo", problem.tasks, gamma=0.01).load_state_dict(state)


# ==== gradient methods: what they share ==========================================================
@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_writes_its_combination_and_each_head_keeps_its_own_gradient(name: str, one_thread) -> None:
    problem = ScaledTanhTasks()
    losses = problem.losses()
    grads = problem.task_gradients(losses)  # (T, N), computed here, not by the balancer
    heads = {
        t: torch.autograd.grad(loss, list(problem.heads[t].parameters()), retain_graph=True)
        for t, loss in losses.items()
    }
    balancer = build_balancer(name, problem.tasks)
    total = balancer.backward(losses, problem)
    alpha = torch.tensor(list(balancer.weights().values()))
    assert alpha.tolist() != [1.0, 1.0, 1.0]  # it did balance
    torch.testing.assert_close(problem.shared_grad(), alpha @ grads, rtol=1e-5, atol=1e-6)
    for task, expected in heads.items():  # not α-weighted: the head's own task's gradient
        for parameter, grad in zip(problem.heads[task].parameters(), expected, strict=True):
            torch.testing.assert_close(parameter.grad, grad)
    assert total.item() == pytest.approx(sum(a * loss.item() for a, loss in zip(alpha, losses.values(), strict=True)))


def after_one_backward(name: str) -> tuple[ScaledTanhTasks, LossBalancer]:
    """The toy problem and the balancer `name` on it, after one balanced backward pass."""
    problem = ScaledTanhTasks()
    balancer = build_balancer(name, problem.tasks)
    balancer.backward(problem.losses(), problem)
    return problem, balancer


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_combine_gives_the_shared_parameters_the_same_update(name: str, one_thread) -> None:
    problem, balancer = after_one_backward(name)
    through_backward = problem.shared_grad()
    problem.zero_grad()
    losses = problem.losses()
    balancer.combine(losses, problem.shared_parameters()).backward()
    # float32 gradients summed in another order move α a little: CAGrad's α spans 10⁴ here
    atol = 1e-5 * through_backward.abs().max().item()
    torch.testing.assert_close(problem.shared_grad(), through_backward, rtol=1e-4, atol=atol)
    alpha = list(balancer.weights().values())
    head = problem.heads["task0"]  # the loss-level form weights the heads too
    expected = torch.autograd.grad(problem.losses()["task0"], head.weight)[0] * alpha[0]
    torch.testing.assert_close(head.weight.grad, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_update_is_not_dominated_by_the_largest_scale_task(name: str, one_thread) -> None:
    problem = ScaledTanhTasks()
    grads = problem.task_gradients(problem.losses())
    for balancer_name, dominated in (("fixed", True), (name, False)):
        problem.zero_grad()
        build_balancer(balancer_name, problem.tasks).backward(problem.losses(), problem)
        cosines = nn.functional.cosine_similarity(grads, problem.shared_grad()[None], dim=1)  # (T,)
        if dominated:  # the plain sum: the ×10⁴ loss's gradient is all there is
            assert cosines[-1] > 0.999
        else:
            assert cosines[-1] < 0.95


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_with_tasks_missing_balances_the_present_ones(name: str, one_thread) -> None:
    problem = ScaledTanhTasks()
    balancer = build_balancer(name, (*problem.tasks, "absent"))
    balancer.backward(problem.losses(), problem)
    weights = balancer.weights()
    assert weights["absent"] == 1.0

    problem.zero_grad()
    losses = problem.losses(("task0", "task2"))
    grads = problem.task_gradients(losses)
    balancer.backward(losses, problem)
    after = balancer.weights()
    assert after["task1"] == weights["task1"] and after["absent"] == 1.0  # absent: kept
    alpha = torch.tensor([after["task0"], after["task2"]])
    torch.testing.assert_close(problem.shared_grad(), alpha @ grads, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in problem.heads["task1"].parameters())

    problem.zero_grad()
    balancer.backward(problem.losses(("task1",)), problem)  # alone: every method's α is 1 here or a rescaling
    grad = problem.task_gradients(problem.losses(("task1",)))[0]
    assert nn.functional.cosine_similarity(problem.shared_grad(), grad, dim=0) > 1 - 1e-6


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_with_a_grad_scaler_steps_as_without_one(name: str, one_thread) -> None:
    parameters = []
    for scale in (None, 2.0**12):
        problem = ScaledTanhTasks()
        balancer = build_balancer(name, problem.tasks)
        optimiser = torch.optim.SGD(problem.parameters(), lr=1e-6)
        scaler = None if scale is None else torch.amp.GradScaler("cpu", init_scale=scale)
        balancer.backward(problem.losses(), problem, scaler)
        if scaler is None:
            optimiser.step()
        else:
            assert torch.isfinite(problem.shared_grad()).all()
            scaler.step(optimiser)  # unscales, finds no inf, steps
            scaler.update()
        parameters.append([p.detach().clone() for p in problem.parameters()])
    for unscaled, scaled in zip(*parameters, strict=True):
        torch.testing.assert_close(scaled, unscaled, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_passes_an_overflow_on_so_the_grad_scaler_skips_the_step(name: str, one_thread) -> None:
    problem = ScaledTanhTasks()
    balancer = build_balancer(name, problem.tasks)
    optimiser = torch.optim.SGD(problem.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    before = [p.detach().clone() for p in problem.parameters()]
    losses = problem.losses()
    losses["task2"] = losses["task2"] * math.inf  # as fp16 overflows while GradScaler searches its scale
    balancer.backward(losses, problem, scaler)
    scaler.step(optimiser)
    scaler.update()
    assert scaler.get_scale() == 2.0**11
    assert all(torch.equal(p, q) for p, q in zip(problem.parameters(), before, strict=True))
    assert balancer.weights() == dict.fromkeys(problem.tasks, 1.0)  # nothing learned from it


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_gradient_method_validation_uses_the_last_weights_and_learns_nothing(name: str, one_thread) -> None:
    problem, balancer = after_one_backward(name)
    weights = balancer.weights()
    with torch.no_grad():
        losses = problem.losses()
        total = balancer.combine(losses, problem.shared_parameters())
    assert total.item() == pytest.approx(sum(weights[t] * loss.item() for t, loss in losses.items()))
    assert balancer.weights() == weights


def test_gradient_method_needs_shared_parameters() -> None:
    balancer = build_balancer("nash-mtl", ["a", "b"])
    loss = {"a": torch.tensor(1.0, requires_grad=True)}
    with pytest.raises(ValueError, match="shared parameters"):
        balancer.combine(loss, [])

    class NothingShared:
        def shared_parameters(self) -> list:
            return []

    with pytest.raises(ValueError, match="no shared parameters"):
        balancer.backward(loss, NothingShared())


# ==== aligned-mtl ================================================================================
def conflicting_gradients(seed: int, tasks: int = 3, size: int = 20) -> Tensor:
    """(tasks, size) float64 gradients with norms over four orders of magnitude, the second one
    conflicting with the first."""
    generator = torch.Generator().manual_seed(seed)
    grads = torch.randn(tasks, size, generator=generator, dtype=torch.float64)
    grads[1] = -0.8 * grads[0] + 0.3 * grads[1]
    return grads * torch.logspace(0, 2, tasks, dtype=torch.float64)[torch.randperm(tasks, generator=generator)][:, None]


@pytest.mark.parametrize("seed", range(4))
def test_aligned_mtl_steps_along_the_sum_of_the_aligned_gradients(seed: int) -> None:
    """d = G'·1 with G' = σ_min·U Vᵀ from G's SVD (the test's own route; the method uses the Gram
    matrix's eigendecomposition); the aligned gradients are orthogonal with equal norms σ_min."""
    grads = conflicting_gradients(seed)  # rows g_i: G = gradsᵀ
    u, singular, vh = torch.linalg.svd(grads.T, full_matrices=False)  # (N, P), (P,), (P, P)
    aligned = singular.min() * u @ vh  # G' (N, P)
    torch.testing.assert_close(aligned.T @ aligned, singular.min() ** 2 * torch.eye(3, dtype=torch.float64))
    alpha = aligned_mtl_coefficients(grads @ grads.T)
    torch.testing.assert_close(alpha @ grads, aligned.sum(dim=1))


def test_aligned_mtl_drops_directions_a_rank_deficient_gradient_matrix_lacks() -> None:
    grads = conflicting_gradients(0)
    grads[2] = 3.0 * grads[0] - 2.0 * grads[1]  # rank 2
    u, singular, vh = torch.linalg.svd(grads.T, full_matrices=False)
    kept = singular > singular.max() * 1e-6
    aligned = singular[kept].min() * u[:, kept] @ vh[kept]
    alpha = aligned_mtl_coefficients(grads @ grads.T)
    torch.testing.assert_close(alpha @ grads, aligned.sum(dim=1))


def test_aligned_mtl_of_orthogonal_gradients_of_equal_norm_is_the_plain_sum() -> None:
    gram = 4.0 * torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(aligned_mtl_coefficients(gram), torch.ones(3, dtype=torch.float64))


# ==== cagrad =====================================================================================
@pytest.mark.parametrize("seed", range(4))
def test_cagrad_maximises_the_worst_improvement_within_its_ball(seed: int) -> None:
    """max_d min_i ⟨g_i, d⟩ subject to ||d − g0|| ≤ c·||g0||, checked against many other points of the ball."""
    c = 0.4
    grads = conflicting_gradients(seed)
    tasks = grads.shape[0]
    direction = cagrad_coefficients(grads @ grads.T, c) @ grads * (1 + c**2) / tasks  # back to the paper's d
    g0 = grads.mean(dim=0)
    radius = c * g0.norm()
    assert (direction - g0).norm() <= radius * (1 + 1e-9)
    worst = (grads @ direction).min()
    assert worst > (grads @ g0).min()  # g0 lets the conflicting task get worse; CAGrad helps it
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.randn(4000, grads.shape[1], generator=generator, dtype=torch.float64)
    offsets = (
        offsets
        / offsets.norm(dim=1, keepdim=True)
        * radius
        * torch.rand(4000, 1, generator=generator, dtype=torch.float64) ** 0.05
    )
    others = g0 + offsets  # (4000, N), all inside the ball, most near its surface
    assert (others @ grads.T).min(dim=1).values.max() <= worst + 1e-9 * grads.norm() ** 2


def test_cagrad_with_c_zero_is_the_plain_sum_and_scales_by_one_plus_c_squared() -> None:
    grads = conflicting_gradients(1)
    torch.testing.assert_close(cagrad_coefficients(grads @ grads.T, 0.0), torch.ones(3, dtype=torch.float64))
    lone = cagrad_coefficients(torch.tensor([[2.0]], dtype=torch.float64), 0.5)  # d = g0 + c·g0, ÷(1 + c²)
    assert lone.item() == pytest.approx(1.5 / 1.25)


# ==== nash-mtl ===================================================================================
@pytest.mark.parametrize("seed", range(4))
def test_nash_mtl_improves_every_task_and_ignores_the_loss_scales(seed: int) -> None:
    grads = conflicting_gradients(seed)
    assert (grads @ grads.sum(dim=0)).min() < 0  # the plain sum would make a task worse
    alpha = nash_coefficients(grads @ grads.T)
    direction = alpha @ grads
    assert (alpha > 0).all()
    torch.testing.assert_close(grads @ direction, 1 / alpha)  # ⟨g_i, d⟩ = 1/α_i > 0: conflict-free
    assert direction.norm().item() == pytest.approx(math.sqrt(3))
    rescaled = grads * torch.tensor([[1e3], [1.0], [1e-2]], dtype=torch.float64)  # losses ×1000, ×1, ×0.01
    torch.testing.assert_close(nash_coefficients(rescaled @ rescaled.T) @ rescaled, direction)


def test_nash_mtl_through_backward_is_unchanged_by_scaling_a_loss(one_thread) -> None:
    problem = ScaledTanhTasks()
    balancer = build_balancer("nash-mtl", problem.tasks)
    balancer.backward(problem.losses(), problem)
    direction = problem.shared_grad()
    problem.zero_grad()
    losses = problem.losses()
    losses["task0"] = losses["task0"] * 1e4
    balancer.backward(losses, problem)
    torch.testing.assert_close(problem.shared_grad(), direction, rtol=1e-4, atol=1e-7)


def test_nash_mtl_of_orthogonal_unit_gradients_is_the_plain_sum_and_survives_a_stationary_point() -> None:
    torch.testing.assert_close(nash_coefficients(torch.eye(3, dtype=torch.float64)), torch.ones(3, dtype=torch.float64))
    opposed = torch.tensor([[1.0, 0.0], [-2.0, 0.0]], dtype=torch.float64)  # no direction improves both
    alpha = nash_coefficients(opposed @ opposed.T)
    assert torch.isfinite(alpha).all() and (alpha > 0).all()
    assert (alpha @ opposed).norm() < 1e-3 * (alpha * opposed.norm(dim=1)).min()  # d ≈ 0: no step


# ==== in the training loop =======================================================================
def tiny_training(tmp_path, **overrides) -> TrainConfig:
    data = tmp_path / "data"
    if not data.exists():
        write_random_dataset(data, n=12, size=(64, 96), drop={"depth": [1, 6]})  # some batches lack depth
    values = dict(
        data=str(data), out=str(tmp_path / "pkg"), encoder=TINY_ENCODER, decoder_channels=16, input_size=(64, 96),
        epochs=2, batch_size=4, num_workers=0, warmup_steps=2, log_every=1, device="cpu",
    )  # fmt: skip
    values.update(overrides)
    return TrainConfig.from_mapping(values)


@pytest.mark.parametrize("name", ["famo", "nash-mtl"])
def test_the_loop_trains_and_resumes_bit_for_bit_with(name: str, tmp_path, one_thread) -> None:
    straight = tiny_training(tmp_path, out=str(tmp_path / "a"), balancer=name)
    train(straight, progress=False)
    interrupted = tiny_training(tmp_path, out=str(tmp_path / "b"), balancer=name)
    assert train(interrupted, progress=False, stop_after=4) is None  # mid-epoch 1 (3 steps an epoch)
    train(interrupted, resume=True, progress=False)
    a = open_package(tmp_path / "a").load_model().state_dict()
    b = open_package(tmp_path / "b").load_model().state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)
    log = [json.loads(line) for line in (tmp_path / "b" / "train" / "log.jsonl").read_text().splitlines()]
    assert set(log[-1]["weights"]) == {"semseg", "depth", "normals", "attributes"}
    assert log[-1]["weights"] != dict.fromkeys(log[-1]["weights"], 1.0)  # it balanced


@pytest.mark.parametrize("name", ["aligned-mtl", "cagrad"])
def test_the_loop_trains_a_package_with(name: str, tmp_path, one_thread) -> None:
    package = train(tiny_training(tmp_path, balancer=name, epochs=1), progress=False)
    assert package is not None and package.training["steps"] == 3
    weights = package.training["balancer_weights"]
    assert set(weights) == {"semseg", "depth", "normals", "attributes"} and len(set(weights.values())) > 1


def test_famos_second_look_at_the_batch_leaves_batchnorm_statistics_alone(tmp_path, one_thread) -> None:
    """After one step, BatchNorm's running statistics are those of one forward pass, with or without
    FAMO's re-evaluation of the batch (which runs in train mode)."""
    buffers = {}
    for name in ("fixed", "famo"):
        trainer = Trainer(tiny_training(tmp_path, balancer=name, out=str(tmp_path / name)), progress=False)
        trainer.model.train()
        batch = next(iter(trainer.loader(0, 0)))
        trainer.train_step(batch)
        buffers[name] = {key: value.clone() for key, value in trainer.model.named_buffers()}
    assert any("running_mean" in key for key in buffers["famo"])
    for key, value in buffers["fixed"].items():
        assert torch.equal(buffers["famo"][key], value), key
    assert trainer.balancer.weights() != dict.fromkeys(trainer.balancer.tasks, 1.0)  # FAMO did look again
