"""The generator contract.

Required (``Generator``): ``name`` and ``generate(prompts, size, seed)`` returning one PIL image
of ``size`` x ``size`` per prompt. Optional (``GeneratorHooks``), all with a default: ``defaults``
(a dict recorded in results.csv: steps, guidance, dtype, ...), ``libraries`` (the PyPI names of
the libraries whose releases can change its images; their versions are recorded in results.csv),
``generate_records(records, size, seed)`` for generators that need the dataset entry itself (the
``reference`` and ``upscale`` baselines), and ``release()`` to free device memory before the final
metric work.

A run never probes a generator: ``GeneratorHandle`` looks the optional hooks up once and
offers all of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, runtime_checkable


@runtime_checkable
class Generator(Protocol):
    name: str

    def generate(self, prompts: list[str], size: int, seed: int) -> list: ...


class GeneratorHooks(Protocol):
    """What a generator may add to ``Generator``; each is optional."""

    defaults: dict
    libraries: tuple

    def generate_records(self, records: list, size: int, seed: int) -> list: ...

    def release(self) -> None: ...


class GeneratorHandle:
    """A generator with every hook present: the plugin's own, or the default behaviour."""

    def __init__(self, generator):
        self.generator = generator
        self.name = str(generator.name)
        self.defaults = dict(getattr(generator, "defaults", None) or {})
        self.libraries = tuple(str(name) for name in getattr(generator, "libraries", None) or ())
        self._records: Optional[Callable] = getattr(generator, "generate_records", None)
        self._release: Optional[Callable] = getattr(generator, "release", None)

    def generate(self, records: list, size: int, seed: int) -> list:
        if self._records is not None:
            return self._records(records, size, seed)
        return self.generator.generate([r.prompt for r in records], size, seed)

    def release(self) -> None:
        if self._release is not None:
            self._release()


# the allowed values and defaults of the generator options (argparse reads them here)
DTYPE_CHOICES = ("bf16", "fp16", "fp32")
RESAMPLERS = ("bicubic", "lanczos")      # upscale generator
VAE_CHOICES = ("f16", "f8")              # flux/sd3: the partitioned F16 VAE or the original F8 (or a folder)
BASE_SIZE = 1024                         # upscale generator: the size before upscaling
PARTITIONS = 2                           # partitioned F16 VAE decode, per side


@dataclass
class GeneratorOptions:
    """Settings from the command line that built-in generators understand."""

    device: str = "cpu"
    dtype: Optional[str] = None          # "bf16", "fp16", "fp32"; None: the generator's default
    steps: Optional[int] = None
    guidance: Optional[float] = None
    images: Optional[str] = None         # folder generator: where the images are
    base_size: int = BASE_SIZE           # upscale generator
    resample: str = RESAMPLERS[0]        # upscale generator: one of RESAMPLERS
    offload: bool = False                # model CPU offload for 4K generation on small GPUs
    vae: Optional[str] = None            # "f16", "f8", or a folder holding a trained (SC-)VAE
    partitions: int = PARTITIONS         # partitioned F16 VAE decode
    progress: bool = True                # False (--no-progress): no bars of the generator's libraries either
    extra: dict = field(default_factory=dict)
