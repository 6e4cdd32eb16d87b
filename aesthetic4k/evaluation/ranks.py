"""Several processes (torchrun / accelerate launch): which rank this is, and the two collectives a run needs."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    joined: bool = False      # this process started the process group (and so ends it)

    def close(self) -> None:
        """End the process group this run joined. A process that exits with its group alive can abort in
        the group's threads ('terminate called without an active exception', exit -6) after its work."""
        if self.joined:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.joined = False

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


def process_group_backend(device: str, local_world: int, gpu_count: int) -> str:
    """nccl when each process of this machine has a GPU of its own, else gloo.

    NCCL refuses two ranks on one GPU ("Duplicate GPU detected"), so processes that share one
    (more processes than GPUs) exchange their few objects over gloo; the work stays on the GPU.
    """
    return "nccl" if device.startswith("cuda") and gpu_count >= local_world else "gloo"


def setup_ranks(device: str) -> Ranks:
    """Join the process group that torchrun / accelerate launch describe in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch.distributed as dist

    joined = not dist.is_initialized()
    if joined:
        gpu_count = 0
        if device.startswith("cuda"):
            import torch

            gpu_count = torch.cuda.device_count()
            index = torch.device(device).index
            if index is None:   # plain "cuda" means this rank's GPU
                index = int(os.environ.get("LOCAL_RANK", "0")) % max(gpu_count, 1)
            torch.cuda.set_device(index)   # NCCL's object collectives use the current device
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        dist.init_process_group(backend=process_group_backend(device, local_world, gpu_count))
    return Ranks(dist.get_rank(), dist.get_world_size(), joined)
