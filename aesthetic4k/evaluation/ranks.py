"""Several processes (torchrun / accelerate launch): which rank this is, and the two collectives a run needs."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def first(self, work):
        """Run ``work`` on rank 0, then on the other ranks (which find its files in place)."""
        if self.world == 1:
            return work()
        import torch.distributed as dist

        result = work() if self.main else None
        dist.barrier()
        return result if self.main else work()

    def gather(self, obj) -> list:
        """Objects of every rank, in rank order (just ``[obj]`` on one process)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def setup_ranks(device: str) -> Ranks:
    """Join the process group that torchrun / accelerate launch describe in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())
