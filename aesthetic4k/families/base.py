"""What a model family is: the facts and operations that differ between SD3, Flux and later models.

A family is one object (see :mod:`aesthetic4k.families`) that both the generators and the
trainers ask, instead of branching on a name: the pipeline class it loads as, the paper's
generation settings, the upstream training defaults, how latents are scaled and laid out,
how prompts are encoded, how the transformer is called and how its output becomes an x0
estimate. Nothing here imports torch at import time.

Both families shipped today are rectified-flow transformers (``noisy = sigma * noise +
(1 - sigma) * x0``, the model predicts the velocity ``noise - x0``), so that part lives in
this base class; a family with another parameterisation overrides :meth:`x0_estimate`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

TIMESTEP_SAMPLINGS = ("uniform", "logit_normal", "mode")
LATENT_SHIFTS = ("none", "subtract")


@dataclass(frozen=True)
class GenerationDefaults:
    """The paper's generation protocol for a family (a4k-eval's defaults)."""

    steps: int
    guidance: float
    max_sequence_length: int


@dataclass(frozen=True)
class TrainingDefaults:
    """What the authors' training script for a family does when given no option (a4k-train's defaults).

    ``latent_shift``: ``subtract`` trains on ``(sample - shift_factor) * scaling_factor``,
    ``none`` on ``sample * scaling_factor``. ``batch_per_device`` x ``processes`` is the batch
    of the paper's run (upstream shell script and accelerate config), for the documentation.
    """

    timestep_sampling: str
    latent_shift: str
    guidance: Optional[float]          # value of a guidance embedding during training (None: the model has none)
    max_sequence_length: int
    batch_per_device: int
    processes: int


class ModelFamily:
    """Base of the families: subclasses set the class attributes and the three model-specific methods."""

    name: str = ""
    pipeline_class: str = ""                  # the diffusers pipeline class a checkpoint of the family saves as
    class_prefixes: tuple = ()                # pipeline classes of the family (img2img, inpaint, ...) start so
    generation: GenerationDefaults
    training: TrainingDefaults
    latents_per_token: int = 1                # latent pixels per token side on top of the transformer patch

    def __repr__(self) -> str:
        return f"<model family {self.name}>"

    # -- which pipelines belong to the family --------------------------------------------------

    def owns_class(self, class_name: Optional[str]) -> bool:
        """Is ``class_name`` (a pipeline class, or one of its bases) of this family?"""
        return bool(class_name) and any(class_name.startswith(p) for p in self.class_prefixes)

    # -- latent geometry ----------------------------------------------------------------------

    def patch_size(self, transformer) -> int:
        """Latent pixels per token side: the transformer's patch times the family's own packing."""
        patch = int(getattr(transformer.config, "patch_size", 1) or 1)
        return patch * self.latents_per_token

    def to_latents(self, sample, vae_config, latent_shift: str):
        """Diffusion-space latents from a VAE posterior sample: ``(sample [- shift]) * scale``."""
        scale = float(vae_config.scaling_factor)
        if latent_shift == "subtract":
            return (sample - float(getattr(vae_config, "shift_factor", None) or 0.0)) * scale
        if latent_shift == "none":
            return sample * scale
        raise ValueError(f"latent_shift must be one of {', '.join(LATENT_SHIFTS)}, not {latent_shift!r}")

    # -- the rectified-flow parameterisation ---------------------------------------------------

    def x0_estimate(self, output, noisy, sigmas):
        """Precondition the model output to an estimate of x0 (velocity: ``output * (-sigma) + noisy``)."""
        from aesthetic4k.wavelet.loss import x0_from_prediction

        return x0_from_prediction(output, noisy, sigmas)

    def guidance_value(self, transformer, value: Optional[float]) -> Optional[float]:
        """The guidance embedding value to feed, or None when the transformer has no such embedding."""
        return value if bool(getattr(transformer.config, "guidance_embeds", False)) else None

    # -- model specific -----------------------------------------------------------------------

    def encode_prompts(self, pipe, prompts: list, device, max_sequence_length: int) -> tuple:
        """(prompt_embeds N x S x D, pooled N x P) from the pipeline's frozen text encoders."""
        raise NotImplementedError

    def predict(self, transformer, noisy, timesteps, cond: dict, guidance: Optional[float] = None):
        """The transformer's output for ``noisy`` (N x C x H x W) at ``timesteps`` (0..1000), as N x C x H x W.

        ``cond`` holds ``prompt_embeds`` and ``pooled`` (see :meth:`encode_prompts`).
        """
        raise NotImplementedError
