"""An exponential moving average of a model's trainable weights (the SC-VAE keeps one of its student).

The decay follows diffusers' ``EMAModel`` without warm-up, which the upstream SC-VAE script uses:
the k-th update (k = 1, 2, ...) uses ``decay_k = min(max_decay, k / (9 + k))`` except ``decay_1 = 0``
(the average starts as a copy), and moves every average toward its weight,
``average -= (1 - decay_k) * (average - weight)``.
"""
from __future__ import annotations

import torch


class EMA:
    def __init__(self, parameters, max_decay: float = 0.9999):
        self.max_decay = float(max_decay)
        self.averages = [p.detach().clone() for p in parameters]
        self.updates = 0

    def decay(self, update: int) -> float:
        """The decay of the ``update``-th update (1-based)."""
        if update <= 1:
            return 0.0
        return min(self.max_decay, update / (9.0 + update))

    @torch.no_grad()
    def update(self, parameters) -> None:
        self.updates += 1
        keep = 1.0 - self.decay(self.updates)
        for average, weight in zip(self.averages, parameters):
            average.sub_(keep * (average - weight.detach().to(average.dtype)))

    def state_dict(self) -> dict:
        return {"max_decay": self.max_decay, "updates": self.updates, "averages": self.averages}

    def load_state_dict(self, state: dict) -> None:
        if len(state["averages"]) != len(self.averages):
            raise ValueError(f"EMA state holds {len(state['averages'])} tensors, the model {len(self.averages)}")
        self.max_decay = float(state["max_decay"])
        self.updates = int(state["updates"])
        for average, saved in zip(self.averages, state["averages"]):
            average.copy_(saved)
