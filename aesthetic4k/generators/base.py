"""The generator contract: anything with ``name`` and ``generate(prompts, size, seed)``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol, runtime_checkable


@runtime_checkable
class Generator(Protocol):
    """A text-to-image generator as ``a4k-eval`` sees it.

    ``generate`` returns one PIL image of ``size`` x ``size`` per prompt. Generators may also
    define ``defaults`` (a dict recorded in results.csv: steps, guidance, dtype, ...) and
    ``generate_records(records, size, seed)`` when they need the dataset entry itself (the
    ``folder``, ``reference`` and ``upscale`` built-ins do).
    """

    name: str

    def generate(self, prompts: list[str], size: int, seed: int) -> list: ...


@dataclass
class GeneratorOptions:
    """Settings from the command line that built-in generators understand."""

    device: str = "cpu"
    dtype: Optional[str] = None          # "bf16", "fp16", "fp32"; None: the generator's default
    steps: Optional[int] = None
    guidance: Optional[float] = None
    images: Optional[str] = None         # folder generator: where the images are
    base_size: int = 1024                # upscale generator
    resample: str = "bicubic"            # upscale generator: bicubic or lanczos
    offload: bool = False                # model CPU offload for 4K generation on small GPUs
    vae: Optional[str] = None            # "f16" or "f8" for flux/sd3 base models
    partitions: int = 2                  # partitioned F16 VAE decode
    extra: dict = field(default_factory=dict)
