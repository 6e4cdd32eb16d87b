"""Find a generator by name: built-ins, the ``aesthetic4k.generators`` entry points, ``module:attr``."""
from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points

from aesthetic4k.errors import UserError
from aesthetic4k.generators.base import GeneratorOptions

ENTRY_POINT_GROUP = "aesthetic4k.generators"

# name -> ("module:factory", one-line description). A factory is called as
# factory(argument, options) where argument is the text after "name:" (or None).
BUILTINS = {
    "folder": ("aesthetic4k.generators.folder:FolderGenerator",
               "pre-generated images in --images DIR, matched to the dataset by file stem"),
    "reference": ("aesthetic4k.generators.baselines:ReferenceGenerator",
                  "the dataset's own reference images (upper bound)"),
    "upscale": ("aesthetic4k.generators.baselines:UpscaleGenerator",
                "reference downscaled to --base-size then upscaled to --size (bicubic or lanczos)"),
    "flux-4k": ("aesthetic4k.generators.diffusion:flux_4k",
                "Diffusion-4K Flux-12B-WLF (zhang0jhon/flux_wavelet) with the partitioned F16 VAE"),
    "sd3-4k": ("aesthetic4k.generators.diffusion:sd3_4k",
               "SD3-2B fine-tuned with WLF, F16 VAE (hub id or folder after 'sd3-4k:')"),
    "flux": ("aesthetic4k.generators.diffusion:flux_base",
             "base FLUX.1-dev, F16 (default) or F8 VAE (--vae)"),
    "sd3": ("aesthetic4k.generators.diffusion:sd3_base",
            "base stable-diffusion-3-medium, F16 (default) or F8 VAE (--vae)"),
    "diffusers": ("aesthetic4k.generators.diffusion:any_pipeline",
                  "any diffusers text-to-image pipeline: diffusers:<hub-id-or-folder>"),
    "wlf": ("aesthetic4k.generators.diffusion:wlf_checkpoint",
            "a checkpoint written by a4k-train: wlf:<checkpoint-dir>"),
}


def _load(target: str, what: str):
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except ImportError as exc:
        raise UserError(f"generator {what}: cannot import {module_name} ({exc})") from None
    except AttributeError:
        raise UserError(f"generator {what}: {module_name} has no attribute {attr}") from None
    return obj


def _importable(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def plugin_entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """Name -> description of every generator this installation knows."""
    names = {name: desc for name, (_, desc) in BUILTINS.items()}
    for name, ep in plugin_entry_points().items():
        names.setdefault(name, f"plugin ({ep.value})")
    return names


def _instantiate(obj, argument, options, spec):
    # A plugin may be a ready generator object, a class, or a factory function.
    if hasattr(obj, "generate") and not isinstance(obj, type):
        return obj
    if not callable(obj):
        raise UserError(f"generator {spec}: {obj!r} is neither a generator nor a factory")
    try:
        return obj(argument, options)
    except TypeError:
        return obj()


def create(spec: str, options: GeneratorOptions | None = None):
    """Build the generator named by ``spec``: ``name``, ``name:argument`` or ``package.module:attr``."""
    options = options or GeneratorOptions()
    name, _, argument = spec.partition(":")
    argument = argument or None
    if name in BUILTINS:
        generator = _instantiate(_load(BUILTINS[name][0], spec), argument, options, spec)
    elif name in plugin_entry_points():
        try:
            obj = plugin_entry_points()[name].load()
        except Exception as exc:  # a broken plugin must not crash the CLI with a traceback
            raise UserError(f"generator {name}: plugin failed to load ({type(exc).__name__}: {exc})") from None
        generator = _instantiate(obj, argument, options, spec)
    elif argument and _importable(name):
        generator = _instantiate(_load(spec, spec), None, options, spec)
    else:
        raise UserError(f"unknown generator {spec!r}; available: {', '.join(available())}, "
                        "or module:attribute")
    if not hasattr(generator, "generate") or not hasattr(generator, "name"):
        raise UserError(f"generator {spec}: object has no name/generate (see the Generator protocol)")
    return generator
