"""The base of the gradient methods: strategies that combine the tasks' gradients, not their losses.

Every such method here turns the present tasks' gradients g_i of the shared parameters into one update
d = Σ_i α_i·g_i, with coefficients α that depend on the gradients only through their Gram matrix
M_ij = ⟨g_i, g_j⟩ (P × P for P present tasks). So a method is one function, Gram matrix -> α, and
this base does the rest:

- `backward` (what the training loop calls) runs one backward pass per present task, collects each
  task's gradient of the shared parameters (`SharedLayers.shared_parameters()`: the encoder and the
  shared decoder), writes d into their `.grad`, and leaves every other parameter with its own task's
  gradient, as a plain sum of the losses would (a head depends on one task's loss only).
- `combine` (the loss-level form) returns Σ_i α_i·L_i with α detached: its gradient on the shared
  parameters is the same d, but every head then gets α_i·∇L_i (the Nash-MTL authors' form). The loop
  does not use it; it exists so that code written against `combine` still gets the method's update of
  the shared parameters. Both work on any subset of tasks present in a batch.

Parameter level, not "feature level": the gradients are taken on the shared parameters, as the
papers define the methods, rather than on the last shared representation (the cheaper variant some
papers offer). Here the tasks do not share one representation: the dense heads read the shared
decoder's output, the attribute heads the encoder's deepest features, so a feature-level variant
would have to pick one and leave the rest unbalanced. The cost is one backward pass per task.

Mixed precision: with a GradScaler every per-task gradient comes out multiplied by the scale S. The
Gram matrix is divided by S² before the method sees it (the methods are not all scale-homogeneous:
Nash-MTL's α scales with 1/S), and d is written multiplied by S, so `scaler.step` unscales it like
any other gradient. When a gradient overflowed (inf/NaN, as fp16 does while GradScaler looks for its
scale) the plain sum is written instead, still non-finite, so GradScaler skips the step as usual.

DistributedDataParallel is refused (`ddp_refusal`): DDP all-reduces gradients once per forward and
backward pair, not once per task's backward pass.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from onepass.train.balancers.base import LossBalancer, SharedLayers, as_dict, scaled


class GradientBalancer(LossBalancer):
    """A strategy that maps the present tasks' gradient Gram matrix to coefficients α (see module doc)."""

    ddp_refusal = (
        "it runs one backward pass per task to get each task's gradient, while DistributedDataParallel "
        "all-reduces gradients once per forward and backward pair"
    )

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        # α_i of the last step in which task i was present and had a gradient; 1 before that.
        self.register_buffer("task_weights", torch.ones(len(self.tasks)))  # (K,)

    @abstractmethod
    def _coefficients(self, gram: Tensor) -> Tensor:
        """α (P,) float64 from the Gram matrix (P, P) float64 of P ≥ 1 gradients, none of them zero.

        The update is d = Σ_i α_i·g_i. The methods are written so that d is the plain sum Σ_i g_i when
        the gradients are orthogonal and of equal norm (α = 1), like the other balancers' unit weights.
        """

    # ---- the loop's entry point -----------------------------------------------------------
    def backward(
        self, losses: Mapping[str, Tensor], network: SharedLayers, scaler: torch.amp.GradScaler | None = None
    ) -> Tensor:
        present = self._check_losses(losses)
        shared = _unique(network.shared_parameters())
        if not shared:
            raise ValueError(f"{self.name} balancer: the network has no shared parameters to balance")
        scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else 1.0
        earlier = [p.grad for p in shared]  # gradients accumulated before this call stay
        for p in shared:
            p.grad = None
        size = sum(p.numel() for p in shared)
        grads = torch.empty((len(present), size), dtype=shared[0].dtype, device=shared[0].device)  # (P, N)
        for i, task in enumerate(present):
            # Every parameter accumulates this task's gradient; the shared ones are moved out after
            # each pass, so a head ends with its own task's gradient and the shared ones with none.
            scaled(losses[task], scaler).backward(retain_graph=i < len(present) - 1)
            _take_flat_grad(shared, grads[i])  # row i: g_i·scale
        alpha = self._solve(present, grads, scale)  # (P,) float64
        combined = alpha.to(grads) @ grads  # (N,) d·scale
        _put_flat_grad(shared, combined, earlier)
        return (alpha.to(losses[present[0]]) * torch.stack([losses[t].detach() for t in present])).sum()

    # ---- the loss-level form --------------------------------------------------------------
    def _combine(self, present: list[str], losses: Tensor, shared_parameters: Sequence[nn.Parameter]) -> Tensor:
        if not self._updates_now(losses):  # validation: the weights of the last training step
            weights = self.task_weights[self._index_of(present, self.task_weights.device)]  # (P,)
            return (weights.to(losses) * losses).sum()
        shared = _unique(shared_parameters)
        if not shared:
            raise ValueError(f"{self.name} balancer: combine needs the shared parameters")
        grads = torch.stack([_flat_grad(loss, shared) for loss in losses])  # (P, N)
        alpha = self._solve(present, grads, 1.0)
        return (alpha.to(losses) * losses).sum()

    # ---- shared by both -------------------------------------------------------------------
    def _solve(self, present: list[str], grads: Tensor, scale: float) -> Tensor:
        """α (P,) float64 for the gradients `grads` (P, N) that carry the factor `scale`; records α."""
        grads64 = grads.double()
        gram = (grads64 @ grads64.T) / scale**2  # (P, P), unscaled
        alpha = torch.ones(len(present), dtype=torch.float64, device=gram.device)
        if not torch.isfinite(gram).all():  # overflow: pass the sum on, GradScaler skips this step
            return alpha
        gram = gram.cpu()  # a few numbers; the solvers run small loops on them
        active = gram.diagonal() > 0  # a task without a gradient here takes no part (its α is moot)
        if active.any():
            chosen = active.nonzero().flatten()
            alpha[chosen.to(alpha.device)] = self._coefficients(gram[chosen][:, chosen]).to(alpha.device)
        with torch.no_grad():
            index = self._index_of(present, self.task_weights.device)
            self.task_weights[index] = alpha.to(self.task_weights)
        return alpha

    def weights(self) -> dict[str, float]:
        return as_dict(self.tasks, self.task_weights)


def _unique(parameters: Sequence[nn.Parameter]) -> list[nn.Parameter]:
    """`parameters` without repeats (tied weights), in order."""
    seen: set[int] = set()
    return [p for p in parameters if not (id(p) in seen or seen.add(id(p)))]


def _flat_grad(loss: Tensor, parameters: list[nn.Parameter]) -> Tensor:
    """∇_params loss as one flat vector (N,), zeros where the loss does not reach; `.grad` untouched."""
    grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(parameters, grads, strict=True)]
    )


def _take_flat_grad(parameters: list[nn.Parameter], out: Tensor) -> None:
    """Move the parameters' `.grad` into the flat vector `out` (N,) (zeros where None), leaving them None."""
    offset = 0
    for p in parameters:
        chunk = out[offset : offset + p.numel()]
        if p.grad is None:
            chunk.zero_()
        else:
            chunk.copy_(p.grad.reshape(-1))
        p.grad = None
        offset += p.numel()


def _put_flat_grad(parameters: list[nn.Parameter], flat: Tensor, earlier: list[Tensor | None]) -> None:
    """Write the flat vector (N,) into the parameters' `.grad`, added to what was there before."""
    offset = 0
    for p, before in zip(parameters, earlier, strict=True):
        # empty_like keeps the parameter's memory format (channels-last convolutions)
        grad = torch.empty_like(p).copy_(flat[offset : offset + p.numel()].view(p.shape))
        p.grad = grad if before is None else before + grad
        offset += p.numel()
