"""Loss balancers: registry, each strategy's behaviour, partial labels, checkpoint round trip."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import Tensor, nn

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
