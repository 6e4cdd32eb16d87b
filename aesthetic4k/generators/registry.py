"""Find a generator by name: built-ins, the ``aesthetic4k.generators`` entry points, ``module:attr``."""
from __future__ import annotations

from aesthetic4k.errors import UserError
from aesthetic4k.generators.base import GeneratorOptions
from aesthetic4k.plugins import Builtin, Registry, table

ENTRY_POINT_GROUP = "aesthetic4k.generators"

# A factory is called as factory(argument, options) where argument is the text after "name:" (or None).
BUILTINS = table([
    Builtin("reference", "aesthetic4k.generators.baselines:ReferenceGenerator",
            "the dataset's own reference images (upper bound)"),
    Builtin("upscale", "aesthetic4k.generators.baselines:UpscaleGenerator",
            "reference downscaled to --base-size then upscaled to --size (bicubic or lanczos)"),
    Builtin("flux-4k", "aesthetic4k.generators.diffusion:flux_4k",
            "Diffusion-4K Flux-12B-WLF (zhang0jhon/flux_wavelet) with the partitioned F16 VAE"),
    Builtin("sd3-4k", "aesthetic4k.generators.diffusion:sd3_4k",
            "SD3-2B fine-tuned with WLF, F16 VAE (hub id or folder after 'sd3-4k:')"),
    Builtin("flux", "aesthetic4k.generators.diffusion:flux_base", "base FLUX.1-dev, F16 (default) or F8 VAE (--vae)"),
    Builtin("sd3", "aesthetic4k.generators.diffusion:sd3_base",
            "base stable-diffusion-3-medium, F16 (default) or F8 VAE (--vae)"),
    Builtin("diffusers", "aesthetic4k.generators.diffusion:any_pipeline",
            "any diffusers text-to-image pipeline: diffusers:<hub-id-or-folder>"),
    Builtin("wlf", "aesthetic4k.generators.diffusion:wlf_checkpoint",
            "a checkpoint written by a4k-train: wlf:<checkpoint-dir>"),
])


# "folder" (existing images, no generator) is served by aesthetic4k.evaluation.sources before this registry
REGISTRY = Registry("generator", ENTRY_POINT_GROUP, BUILTINS, "generate", also_known=("folder",))


def available() -> dict[str, str]:
    """Name -> description of every generator this installation knows."""
    return REGISTRY.available()


def create(spec: str, options: GeneratorOptions | None = None):
    """Build the generator named by ``spec``: ``name``, ``name:argument`` or ``package.module:attr``."""
    generator = REGISTRY.create(spec, options or GeneratorOptions())
    if not hasattr(generator, "name"):
        raise UserError(f"generator {spec}: object has no name (see the Generator protocol)")
    return generator
