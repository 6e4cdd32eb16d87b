"""The accelerator check (``python -m benchmarks.gpu_check``): its sections, in the order they run.

Each section is a function ``(Context) -> Outcome`` (benchmarks/gpu/common.py) that goes through
the toolkit's own code paths; docs/gpu-check.md says what each one verifies.
"""
from benchmarks.gpu.eval_sections import generation, two_processes
from benchmarks.gpu.metric_sections import clip_aesthetics, fid_kid
from benchmarks.gpu.model_sections import f16_vae, wlf_training

SECTIONS = {
    "fid": fid_kid,
    "clip": clip_aesthetics,
    "vae": f16_vae,
    "train": wlf_training,
    "generate": generation,
    "two-process": two_processes,
}
