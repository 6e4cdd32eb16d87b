"""Make a diffusers Flux or SD3 pipeline generate with the partitioned F16 VAE."""
from __future__ import annotations

from aesthetic4k import families
from aesthetic4k.errors import UserError
from aesthetic4k.wavelet import vae_f16


def pipeline_family(pipe) -> families.ModelFamily:
    """The family of ``pipe`` (its subclasses and img2img variants included); a UserError when none."""
    family = families.of_pipeline(pipe)
    if family is None:
        supported = " or ".join(f.pipeline_class for f in families.FAMILIES.values())
        raise UserError(f"{type(pipe).__name__} is not supported by the F16 VAE: use a {supported}")
    return family


def use_f16_vae(pipe, partitions: int = 2):
    """Switch ``pipe`` (SD3 or Flux) to the F16 VAE in place and return it.

    The VAE keeps its weights (see :mod:`aesthetic4k.wavelet.vae_f16`); the pipeline's
    ``vae_scale_factor`` becomes 16, so latents are ``size / 16`` (SD3) and packed
    Flux latents ``size / 32`` tokens a side, and its image processor is rebuilt for
    the new factor. Calling it again only changes ``partitions``.
    """
    pipeline_family(pipe)
    vae = getattr(pipe, "vae", None)
    if vae is None:
        raise UserError(f"{type(pipe).__name__} has no VAE to convert")
    old_factor = vae_f16.spatial_factor(vae)
    vae_f16.make_f16(vae, partitions)
    new_factor = vae_f16.spatial_factor(vae)
    if new_factor != old_factor or getattr(pipe, "vae_scale_factor", None) != new_factor:
        processor = pipe.image_processor
        # Flux's processor works at twice the VAE factor (2x2 latent packing): keep that ratio
        ratio = processor.config.vae_scale_factor / pipe.vae_scale_factor
        config = dict(processor.config)
        config["vae_scale_factor"] = int(round(new_factor * ratio))
        pipe.image_processor = type(processor).from_config(config)
        pipe.vae_scale_factor = new_factor
    return pipe
