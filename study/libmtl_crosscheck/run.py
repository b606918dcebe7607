"""Run LibMTL's loss balancers beside onepass's on GradNorm's toy problem and compare them.

    python study/libmtl_crosscheck/run.py --libmtl /path/to/LibMTL-checkout [--steps 210] [--json results.json]

LibMTL (median-research-group/LibMTL on GitHub) is imported only from the checkout given by
--libmtl, and only its `LibMTL/weighting/` modules (its package `__init__` imports every
architecture and optional dependency). Its CAGrad needs scipy and its Nash-MTL cvxpy with ECOS:
put them on PYTHONPATH; a method whose dependency is missing is reported as not run. Nothing of
LibMTL is installed or copied; its trainer's bookkeeping (epoch-mean losses, FAMO's second forward
pass) is reproduced here in a few lines, as its `Trainer.train` does it.

Both sides train the same toy model from the same initial weights on the same full batch, with the
same Adam optimiser; only the balancer differs. Printed: a Markdown table, one row per method, and the
raw numbers as JSON (--json).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from onepass.train.balancers import build_balancer
from onepass.train.balancers.cagrad import cagrad_dual
from onepass.train.balancers.nash_mtl import nash_coefficients
from onepass.train.balancers.toy_problem import ScaledTanhTasks  # GradNorm's toy problem

EPOCH_STEPS = 20  # steps per "epoch" (DWA's and LibMTL's GradNorm's time unit); the data is one full batch
LR = 1e-2


# ---- the methods compared ---------------------------------------------------------------------
# name in the table: (onepass balancer, its options, LibMTL module/class, LibMTL's kwargs)
METHODS = {
    "UW (defaults)": ("uncertainty", {}, "UW", {}),
    "UW (LibMTL's init s = −0.5)": ("uncertainty", {"initial_log_variance": -0.5}, "UW", {}),
    "DWA": ("dwa", {}, "DWA", {"T": 2.0}),
    "GradNorm": ("gradnorm", {}, "GradNorm", {"alpha": 1.5}),
    "FAMO": ("famo", {}, "FAMO", {"FAMO_w_lr": 0.025, "FAMO_w_gamma": 1e-3}),
    "Aligned-MTL": ("aligned-mtl", {}, "Aligned_MTL", {}),
    "CAGrad (c = 0.4)": ("cagrad", {"c": 0.4}, "CAGrad", {"calpha": 0.4, "rescale": 1}),
    "Nash-MTL": ("nash-mtl", {}, "Nash_MTL", {"update_weights_every": 1, "optim_niter": 20, "max_norm": 1.0}),
}


def import_libmtl_weighting(root: Path, module: str) -> type:
    """LibMTL.weighting.<module>.<module> from the checkout at `root`, without LibMTL's __init__."""
    package_dir = root / "LibMTL"
    if not (package_dir / "weighting" / "abstract_weighting.py").is_file():
        raise SystemExit(f"{root}: not a LibMTL checkout (no LibMTL/weighting/abstract_weighting.py)")
    for name, path in (("LibMTL", package_dir), ("LibMTL.weighting", package_dir / "weighting")):
        if name not in sys.modules:
            stub = types.ModuleType(name)
            stub.__path__ = [str(path)]
            sys.modules[name] = stub
    return getattr(importlib.import_module(f"LibMTL.weighting.{module}"), module)


def onepass_run(name: str, options: dict, steps: int) -> dict:
    toy = ScaledTanhTasks()
    initial_log_variance = options.pop("initial_log_variance", None)
    balancer = build_balancer(name, toy.tasks, **options)
    if initial_log_variance is not None:
        with torch.no_grad():
            balancer.log_variances.fill_(initial_log_variance)
    optimiser = torch.optim.Adam([*toy.parameters(), *balancer.model_parameters()], lr=LR)
    first_update = None
    history = []
    for step in range(steps):
        losses = toy.losses()
        history.append([loss.item() for loss in losses.values()])
        optimiser.zero_grad()
        balancer.backward(losses, toy)
        if step == 0:
            first_update = torch.cat([p.grad.reshape(-1) for p in toy.shared_parameters()]).clone()
        optimiser.step()
        balancer.after_step(toy.losses)
        if (step + 1) % EPOCH_STEPS == 0:
            means = np.mean(history[-EPOCH_STEPS:], axis=0)
            balancer.end_epoch(dict(zip(toy.tasks, means.tolist(), strict=True)))
    return {
        "weights": list(balancer.weights().values()),
        "losses": [loss.item() for loss in toy.losses().values()],
        "first_update": first_update,
    }


def libmtl_run(module: str, root: Path, kwargs: dict, steps: int) -> dict:
    weighting = import_libmtl_weighting(root, module)
    toy = ScaledTanhTasks()

    class Model(weighting):  # what LibMTL's trainer builds: the architecture mixed with the weighting
        def __init__(self) -> None:
            super().__init__()
            self.toy = toy
            self.task_name, self.task_num = list(toy.tasks), len(toy.tasks)
            self.device, self.rep_grad = torch.device("cpu"), False
            self.epochs = math.ceil(steps / EPOCH_STEPS)
            self.train_loss_buffer = np.zeros([self.task_num, self.epochs])

        def get_share_params(self) -> list[nn.Parameter]:
            return list(self.toy.trunk.parameters())

        def zero_grad_share_params(self) -> None:
            self.toy.trunk.zero_grad(set_to_none=False)

    model = Model()
    model.init_param()
    optimiser = torch.optim.Adam(model.parameters(), lr=LR)  # LibMTL's: the model's and the weighting's
    weights = np.ones(model.task_num)
    first_update = first_returned = None
    history = []
    for step in range(steps):
        model.epoch = step // EPOCH_STEPS
        losses = torch.stack(list(toy.losses().values()))
        history.append(losses.tolist())
        optimiser.zero_grad(set_to_none=False)
        returned = model.backward(losses, **kwargs)
        if returned is not None:
            weights = np.asarray(returned, dtype=np.float64)
        if step == 0:
            first_update = torch.cat([p.grad.reshape(-1) for p in toy.trunk.parameters()]).clone()
            first_returned = None if returned is None else np.asarray(returned, dtype=np.float64)
        optimiser.step()
        if module == "FAMO":  # LibMTL's trainer: the same batch's losses after the step
            with torch.no_grad():
                model.update_w(torch.stack(list(toy.losses().values())).detach())
        if (step + 1) % EPOCH_STEPS == 0:
            model.train_loss_buffer[:, model.epoch] = np.mean(history[-EPOCH_STEPS:], axis=0)
    if module == "FAMO":  # LibMTL returns nothing; its weighting is softmax(w), on onepass's scale K·z
        weights = (model.task_num * torch.softmax(model.w.detach(), -1)).numpy()
    if module == "CAGrad":  # LibMTL returns the dual w; the coefficients on the gradients, ×P like onepass
        weights = cagrad_coefficients_from_dual(model, toy, weights, kwargs["calpha"])
    return {
        "weights": weights.tolist(),
        "losses": [loss.item() for loss in toy.losses().values()],
        "first_update": first_update,
        "first_returned": first_returned,
    }


def gram_matrix(toy: ScaledTanhTasks) -> np.ndarray:
    """⟨g_i, g_j⟩ of the tasks' gradients of the shared parameters, in float64 (P, P)."""
    rows = []
    for loss in toy.losses().values():
        grads = torch.autograd.grad(loss, toy.shared_parameters(), retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    grads = torch.stack(rows).double()
    return (grads @ grads.T).numpy()


def cagrad_coefficients_from_dual(model, toy, dual: np.ndarray, c: float) -> np.ndarray:
    """LibMTL's CAGrad update is (g0 + λ·g_w)/(1 + c²), λ = c·||g0||/||g_w||: as coefficients on the
    task gradients at the final parameters, times P (onepass's scale)."""
    gram = gram_matrix(toy)
    tasks = len(toy.tasks)
    g0_norm = math.sqrt(gram.mean() + 1e-8)
    gw_norm = math.sqrt(dual @ gram @ dual)
    lam = (c * g0_norm + 1e-8) / (gw_norm + 1e-8)
    return tasks * (np.full(tasks, 1 / tasks) + lam * dual) / (1 + c**2)


def compare(name: str, steps: int, root: Path) -> dict:
    balancer, options, module, kwargs = METHODS[name]
    started = time.perf_counter()
    ours = onepass_run(balancer, dict(options), steps)
    try:
        theirs = libmtl_run(module, root, kwargs, steps)
    except ModuleNotFoundError as error:
        return {"method": name, "skipped": f"LibMTL's {module} needs {error.name}, which is not importable"}
    a, b = ours.pop("first_update"), theirs.pop("first_update")
    result = {
        "method": name,
        "onepass": ours,
        "libmtl": theirs,
        "first_update_cosine": float(nn.functional.cosine_similarity(a, b, dim=0)),
        "first_update_norm_ratio": float(a.norm() / b.norm()),
    }
    first_returned = theirs.pop("first_returned")
    if module in FIRST_STEP_CHECKS:
        result["first_step"] = FIRST_STEP_CHECKS[module](gram_matrix(ScaledTanhTasks()), first_returned, kwargs)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def cagrad_first_step(gram: np.ndarray, libmtl_dual: np.ndarray, kwargs: dict) -> dict:
    """Both sides' dual solutions at the first step and CAGrad's dual objective (lower is better)."""
    c = kwargs["calpha"]
    mean = np.full(len(gram), 1 / len(gram))

    def objective(w: np.ndarray) -> float:
        return float(w @ gram @ mean + c * math.sqrt(mean @ gram @ mean) * math.sqrt(w @ gram @ w))

    ours = cagrad_dual(torch.from_numpy(gram), c).numpy()
    return {
        "dual_onepass": ours.tolist(),
        "dual_libmtl": libmtl_dual.tolist(),
        "objective_onepass": objective(ours),
        "objective_libmtl": objective(libmtl_dual),
    }


def nash_first_step(gram: np.ndarray, libmtl_alpha: np.ndarray, kwargs: dict) -> dict:
    """Both sides' α at the first step and how far each is from the bargaining condition α_i·(Mα)_i = 1."""
    ours = nash_coefficients(torch.from_numpy(gram)).numpy()
    return {
        "alpha_onepass": ours.tolist(),
        "alpha_libmtl": libmtl_alpha.tolist(),
        "condition_error_onepass": float(np.abs(ours * (gram @ ours) - 1).max()),
        "condition_error_libmtl": float(np.abs(libmtl_alpha * (gram @ libmtl_alpha) - 1).max()),
    }


FIRST_STEP_CHECKS = {"CAGrad": cagrad_first_step, "Nash_MTL": nash_first_step}


def markdown(results: list[dict], steps: int) -> str:
    lines = [
        f"| method | first step: cos(d_onepass, d_LibMTL), norm ratio | weights after {steps} steps, onepass | LibMTL "
        f"| losses after {steps} steps, onepass | LibMTL |",
        "|---|---|---|---|---|---|",
    ]

    def numbers(values: list[float]) -> str:
        return " / ".join(f"{v:.4g}" for v in values)

    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['method']} | not run: {r['skipped']} | | | | |")
            continue
        lines.append(
            f"| {r['method']} | {r['first_update_cosine']:.6f}, {r['first_update_norm_ratio']:.4g} "
            f"| {numbers(r['onepass']['weights'])} | {numbers(r['libmtl']['weights'])} "
            f"| {numbers(r['onepass']['losses'])} | {numbers(r['libmtl']['losses'])} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libmtl", required=True, type=Path, help="a LibMTL checkout (the folder holding LibMTL/)")
    # not a whole number of epochs, so that both sides report the weights of the epoch in progress
    parser.add_argument("--steps", type=int, default=210)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--only", nargs="*", choices=list(METHODS), help="compare only these methods")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # LibMTL's Aligned_MTL calls torch.symeig(M, eigenvectors=True), which torch removed (it raises
    # now); torch.linalg.eigh(M, UPLO="U") is the replacement its error message gives (symeig read the
    # upper triangle), with the same (eigenvalues, eigenvectors) pair.
    torch.symeig = lambda matrix, eigenvectors=True: torch.linalg.eigh(matrix, UPLO="U")
    results = [compare(name, args.steps, args.libmtl) for name in (args.only or METHODS)]
    commit = subprocess.run(["git", "-C", str(args.libmtl), "rev-parse", "HEAD"], capture_output=True, text=True)
    print(f"LibMTL commit: {commit.stdout.strip() or 'unknown'}; torch {torch.__version__}; {args.steps} steps, "
          f"{EPOCH_STEPS} steps an epoch, Adam lr {LR}")  # fmt: skip
    print(markdown(results, args.steps))
    for result in results:
        if "first_step" in result:
            print(f"{result['method']}, first step:", json.dumps(result["first_step"]))
    if args.json:
        args.json.write_text(
            json.dumps({"libmtl_commit": commit.stdout.strip(), "steps": args.steps, "results": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
