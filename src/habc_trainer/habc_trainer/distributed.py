"""This process's place in a torchrun launch: join the process group, or run as rank 0 of 1."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from habc_trainer.config import TrainConfig


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed(cfg: TrainConfig) -> tuple[Dist, TrainConfig]:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else single process.

    NCCL on CUDA (one GPU per local rank), gloo on CPU. Returns the config with this rank's
    device filled in.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), cfg
    cuda = cfg.device.startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        cfg = dataclasses.replace(cfg, device=f"cuda:{local}")
    return Dist(dist.get_rank(), dist.get_world_size()), cfg
