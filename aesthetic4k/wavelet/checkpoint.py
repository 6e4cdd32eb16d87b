"""What a WLF checkpoint exports: a complete diffusers pipeline folder (LoRA merged) and its marker.

``checkpoint-<step>/`` (see :mod:`aesthetic4k.training.checkpoints` for the folder protocol)
holds the pipeline written by ``save_pretrained`` with the trained transformer weights, and
``a4k_wlf.json``: ``{"family", "vae", "partitions", "base", "step", "loss", "resolution"}``,
which the ``wlf:`` generator reads.
"""
from __future__ import annotations

import json
from pathlib import Path

MARKER_NAME = "a4k_wlf.json"


def merged_state_dict(state: dict, lora_scale: float, dtype=None) -> dict:
    """A plain model state dict from one with peft LoRA layers: ``W + scale * B @ A``, LoRA keys dropped."""
    out = {}
    for key, tensor in state.items():
        if ".lora_" in key:
            continue
        if ".base_layer." in key:
            prefix, _, leaf = key.partition(".base_layer.")
            if leaf == "weight":
                downs = [k for k in state if k.startswith(prefix + ".lora_A.") and k.endswith(".weight")]
                for down_key in downs:
                    up_key = down_key.replace(".lora_A.", ".lora_B.")
                    down, up = state[down_key].float(), state[up_key].float()
                    tensor = (tensor.float() + lora_scale * (up.flatten(1) @ down.flatten(1)).reshape(tensor.shape))
            key = f"{prefix}.{leaf}"
        # on the CPU: a cast copy of a 12B model must not land on the accelerator
        tensor = tensor.detach().to("cpu")
        out[key] = tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor
    return {k: v.contiguous() for k, v in out.items()}


def save_pipeline(pipe, transformer, folder: Path, transformer_state: dict) -> None:
    """``pipe.save_pretrained`` with ``transformer_state`` as the weights of ``transformer`` (pipe's own)."""
    from aesthetic4k.training.checkpoints import state_dict_replaced

    with state_dict_replaced(transformer, transformer_state):
        pipe.save_pretrained(folder)


def write_marker(folder: Path, marker: dict) -> None:
    (folder / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
