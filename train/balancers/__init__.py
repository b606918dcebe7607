"""Multi-task loss balancing: one module per strategy behind one small interface.

The training loop only ever talks to `LossBalancer`:

    balancer = build_balancer(config.name, task_names, **config.options)
    balancer.check_world_size(world_size)            # refuses what cannot run under DDP
    optimiser = AdamW([*model.parameters(), *balancer.model_parameters()])
    for batch in loader:
        losses = {task: loss for task, loss in task_losses.items() if loss is not None}
        optimiser.zero_grad()
        total = balancer.backward(losses, model, scaler)   # fills .grad; the balancer owns this pass
        scaler.step(optimiser); scaler.update()
        balancer.after_step(lambda: same_batch_losses())   # FAMO only evaluates it
    balancer.end_epoch(epoch_mean_losses)

| name          | strategy                                             | kind     | state                          |
|---------------|------------------------------------------------------|----------|--------------------------------|
| `fixed`       | user weights                                         | loss     | weights                        |
| `uncertainty` | Kendall, Gal, Cipolla 2018: learned log σ²           | loss     | log σ² (main optimiser)        |
| `gradnorm`    | Chen et al. 2018: gradient-norm balancing            | loss     | weights, own optimiser, L_i(0) |
| `dwa`         | Liu, Johns, Davison 2019: dynamic averaging          | loss     | weights, last two epoch means  |
| `famo`        | Liu et al. 2023: equal log-loss decrease rates       | loss     | logits ξ, own optimiser        |
| `aligned-mtl` | Senushkin et al. 2023: aligned principal components  | gradient | last coefficients α            |
| `cagrad`      | Liu et al. 2021: conflict-averse direction           | gradient | last coefficients α            |
| `nash-mtl`    | Navon et al. 2022: Nash bargaining solution          | gradient | last coefficients α            |

"loss" strategies turn the losses into one scalar and backpropagate it once (`combine`); "gradient"
strategies (`GradientBalancer`) take one backward pass per task and combine the tasks' gradients of
the shared parameters; they refuse DistributedDataParallel. docs/balancers.md says how to choose.

Partially labelled data is normal: `backward` and `combine` receive only the tasks present in the
batch, and every balancer handles any non-empty subset. A task that is absent contributes nothing.

Everything needed to resume bit-for-bit lives in `state_dict()` (parameters, buffers and an
"extra state" of python primitives and tensors), so a checkpoint loads with
`torch.load(weights_only=True)`. Move the balancer to the model's device (`balancer.to(device)`)
before building optimisers.
"""

from onepass.train.balancers.aligned_mtl import AlignedMtlBalancer
from onepass.train.balancers.base import (
    BALANCERS,
    LossBalancer,
    SharedLayers,
    balancer_options,
    build_balancer,
    register_balancer,
)
from onepass.train.balancers.cagrad import CaGradBalancer
from onepass.train.balancers.dwa import DwaBalancer
from onepass.train.balancers.famo import FamoBalancer
from onepass.train.balancers.fixed import FixedBalancer
from onepass.train.balancers.gradient import GradientBalancer
from onepass.train.balancers.gradnorm import GradNormBalancer
from onepass.train.balancers.nash_mtl import NashMtlBalancer
from onepass.train.balancers.uncertainty import UncertaintyBalancer

__all__ = [
    "BALANCERS",
    "AlignedMtlBalancer",
    "CaGradBalancer",
    "DwaBalancer",
    "FamoBalancer",
    "FixedBalancer",
    "GradNormBalancer",
    "GradientBalancer",
    "LossBalancer",
    "NashMtlBalancer",
    "SharedLayers",
    "UncertaintyBalancer",
    "balancer_options",
    "build_balancer",
    "register_balancer",
]
