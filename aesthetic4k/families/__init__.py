"""Model families: the one place that knows how SD3 and Flux differ.

    from aesthetic4k import families

    family = families.get("flux")            # or families.of_pipeline(pipe), families.of_class_name(name)
    family.generation.steps                  # 50: the paper's protocol
    family.training.timestep_sampling        # "uniform": what the authors' training script does
    embeds, pooled = family.encode_prompts(pipe, prompts, device, 512)
    velocity = family.predict(transformer, noisy, timesteps, {"prompt_embeds": embeds, "pooled": pooled}, 3.5)

The generators (:mod:`aesthetic4k.generators.diffusion`), the WLF trainer
(:mod:`aesthetic4k.wavelet.train`) and the F16 VAE (:mod:`aesthetic4k.wavelet.pipeline`) ask a
family object instead of testing names. Where pipelines and VAEs are loaded from is
:mod:`aesthetic4k.families.loading`.

A new family: a module with a :class:`~aesthetic4k.families.base.ModelFamily` subclass (its
pipeline class, defaults, ``encode_prompts`` and ``predict``), added to ``FAMILIES`` below.
"""
from __future__ import annotations

from typing import Optional

from aesthetic4k.errors import UserError
from aesthetic4k.families.base import LATENT_SHIFTS, TIMESTEP_SAMPLINGS, ModelFamily
from aesthetic4k.families.flux import Flux
from aesthetic4k.families.sd3 import SD3

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (SD3(), Flux())}

__all__ = ["FAMILIES", "LATENT_SHIFTS", "TIMESTEP_SAMPLINGS", "ModelFamily", "get", "names", "of_class_name",
           "of_pipeline"]


def names() -> list[str]:
    return list(FAMILIES)


def get(name: str) -> ModelFamily:
    """The family called ``name`` (``sd3``, ``flux``); a UserError lists the known ones."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


def of_class_name(class_name: Optional[str]) -> Optional[ModelFamily]:
    """The family whose pipelines are called ``class_name`` (its variants included), or None."""
    for family in FAMILIES.values():
        if family.owns_class(class_name):
            return family
    return None


def of_pipeline(pipe) -> Optional[ModelFamily]:
    """The family of a loaded pipeline, from its class or a base class, or None."""
    for cls in type(pipe).__mro__:
        family = of_class_name(cls.__name__)
        if family is not None:
            return family
    return None
