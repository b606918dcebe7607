"""Multi-GPU (or multi-process CPU) training through torchrun: DistributedDataParallel, no home-made
launcher. `torchrun --nproc_per_node N -m onepass train ...` sets the environment read here."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_process_group(device: torch.device) -> ProcessGroup:
    """Join the group torchrun describes (WORLD_SIZE > 1); a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return ProcessGroup()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def average_parameters(parameters: list[torch.nn.Parameter], group: ProcessGroup) -> None:
    """Keep parameters that live outside the DDP module (loss-balancer weights) equal on every rank."""
    if not group.enabled:
        return
    for parameter in parameters:
        dist.all_reduce(parameter.data)
        parameter.data /= group.world_size


def barrier(group: ProcessGroup) -> None:
    if group.enabled:
        dist.barrier()
