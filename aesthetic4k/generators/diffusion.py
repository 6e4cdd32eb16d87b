"""Diffusers text-to-image generators: Flux-4K, SD3-4K, the base models, any pipeline, a4k-train checkpoints.

All of them are one class, :class:`DiffusersGenerator`, configured by the factories that the
registry names (``flux_4k``, ``sd3_4k``, ``flux_base``, ``sd3_base``, ``any_pipeline``,
``wlf_checkpoint``). The generation protocol of the paper is the default: every prompt starts
from the same seed on a CPU ``torch.Generator`` (so the batch size never changes an image),
Flux runs 50 steps with 512 T5 tokens, SD3 28 steps with 77 tokens, and the 4K models decode
with the partitioned F16 VAE of ``aesthetic4k.wavelet.pipeline``.

The pipeline is loaded on the first ``generate`` (or an explicit ``load()``), so building the
generator to inspect its defaults or to resume a finished run costs nothing.
"""
from __future__ import annotations

import inspect
from pathlib import Path

from aesthetic4k import families
from aesthetic4k.errors import UserError
from aesthetic4k.families.loading import (
    check_vae_fits, load_pipeline, local_folder, pipeline_class_name, vae_folder,
)
from aesthetic4k.generators.base import DTYPE_CHOICES, VAE_CHOICES, GeneratorOptions
from aesthetic4k.json_files import read_json_object

FLUX_4K_MODEL = "zhang0jhon/flux_wavelet"
FLUX_BASE_MODEL = "black-forest-labs/FLUX.1-dev"
SD3_BASE_MODEL = "stabilityai/stable-diffusion-3-medium-diffusers"
WLF_MARKER = "a4k_wlf.json"

DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
          "half": "float16", "fp32": "float32", "float32": "float32", "float": "float32"}
OOM_ADVICE = "use a smaller --batch-size (1 at 4K), --offload (model CPU offload) and the F16 VAE (--vae f16)"


def _dtype_name(options: GeneratorOptions) -> str:
    if options.dtype is None:
        return "bfloat16" if str(options.device).startswith("cuda") else "float32"
    name = DTYPES.get(str(options.dtype).lower())
    if name is None:
        raise UserError(f"--dtype {options.dtype}: unknown; choose {', '.join(DTYPE_CHOICES)}")
    return name


def _offload_mode(options: GeneratorOptions) -> str:
    """``none``, ``model`` or ``sequential``; offloading means nothing when the device is the CPU."""
    value = options.offload
    if value in (False, None, "", "none", "no", "off"):
        return "none"
    mode = "model" if value in (True, "model", "yes", "on") else str(value).lower()
    if mode not in ("model", "sequential"):
        raise UserError(f"--offload {value}: unknown; choose model or sequential")
    return "none" if str(options.device).startswith("cpu") else mode


class DiffusersGenerator:
    """A diffusers pipeline behind the Generator protocol.

    ``family`` (``flux``/``sd3``, see :mod:`aesthetic4k.families`) is what the pipeline must be,
    and brings the paper's settings for it; None accepts any pipeline and runs it with its own
    defaults. ``vae`` is ``f16`` (partitioned F16 VAE, Flux/SD3 only), ``f8`` (the pipeline's own
    VAE) or a VAE folder (an a4k-train-vae checkpoint, an SC-VAE): its weights replace the
    pipeline's VAE, which then decodes as the folder's ``a4k_vae.json`` says (F16 by default).

    ``defaults`` holds what determines the images and never depends on whether the model is
    cached or loaded yet (a4k-eval keys its image cache on it); after loading, the settings a
    foreign pipeline chose itself are added.
    """

    # what can change the images for the same weights and seed: the denoising loop and the text encoders'
    # tokenisation (safetensors only reads the weight files)
    libraries = ("torch", "diffusers", "transformers", "tokenizers", "accelerate", "numpy", "pillow")

    def __init__(self, name: str, source: str, options: GeneratorOptions, *, family: str | None = None,
                 vae: str = "f8", extra_defaults: dict | None = None):
        from aesthetic4k_metrics.extras import require

        require(f"generator {name}", "generators")
        self.name = name
        self.source = str(source)
        self.options = options
        self.expected_family = families.get(family) if family else None
        self.vae_folder = None
        chosen = str(options.vae or vae)
        if chosen.lower() in VAE_CHOICES:
            self.vae = chosen.lower()
        elif Path(chosen).expanduser().is_dir():
            self.vae_folder = vae_folder(chosen)
            self.vae = self.vae_folder.mode
            self._vae_digest = self.vae_folder.fingerprint()  # hashed once: defaults are rebuilt after loading
        else:
            raise UserError(f"--vae {options.vae}: unknown; choose f16 (partitioned F16 VAE), f8 (original) "
                            "or a VAE folder (an a4k-train-vae checkpoint)")
        self.partitions = 2 if options.partitions is None else options.partitions
        if not isinstance(self.partitions, int) or isinstance(self.partitions, bool) or self.partitions < 1:
            raise UserError(f"--partitions {options.partitions}: must be a positive integer")
        self.dtype = _dtype_name(options)
        self.offload = _offload_mode(options)
        self.class_name = None
        self.family = family  # the family's name; known for certain once loaded
        found = pipeline_class_name(self.source)  # validates a local folder; reads the cache only
        if self.expected_family and found and found != self.expected_family.pipeline_class:
            raise UserError(self._wrong_family_message(found))
        self._extra_defaults = dict(extra_defaults or {})
        self.pipe = None
        self.defaults = self._describe()

    # -- settings ---------------------------------------------------------------------------

    def _wrong_family_message(self, class_name: str) -> str:
        return (f"{self.name}: {self.source} holds a {class_name}, expected a "
                f"{self.expected_family.pipeline_class}; "
                "use --generator diffusers:<folder> for other pipelines")

    def _setting(self, key: str):
        """The value used for steps/guidance/max_sequence_length: option, else paper default, else None."""
        given = {"steps": self.options.steps, "guidance": self.options.guidance,
                 "max_sequence_length": (self.options.extra or {}).get("max_sequence_length")}[key]
        if given is not None:
            return given
        if self.expected_family is None:
            return None
        return getattr(self.expected_family.generation, key)

    def _describe(self) -> dict:
        defaults = {
            "model": self.source,
            "pipeline": self.class_name or (self.expected_family and self.expected_family.pipeline_class),
            "steps": self._setting("steps"),
            "guidance": self._setting("guidance"),
            "max_sequence_length": self._setting("max_sequence_length"),
            "dtype": self.dtype,
            "vae": self.vae,
            **self._vae_folder_defaults(),
            "seed_generator": "cpu, same seed every prompt",
        }
        # Offload, partitions and batch size change memory, not images: they stay out of the
        # defaults so that a run resumed with --offload after running out of memory keeps its images.
        if self.pipe is not None:
            # Record what an unknown pipeline actually runs with: its own call defaults.
            params = inspect.signature(self.pipe.__call__).parameters
            for key, param in (("steps", "num_inference_steps"), ("guidance", "guidance_scale"),
                               ("max_sequence_length", "max_sequence_length")):
                if defaults[key] is None and param in params:
                    default = params[param].default
                    defaults[key] = None if default is inspect.Parameter.empty else default
        defaults.update(self._extra_defaults)
        return {key: value for key, value in defaults.items() if value is not None}

    def _vae_folder_defaults(self) -> dict:
        """A swapped-in VAE changes the images: its folder, weights digest and training step are recorded."""
        if self.vae_folder is None:
            return {}
        recorded = {"vae_folder": str(self.vae_folder.weights.resolve()), "vae_sha256": self._vae_digest}
        if "step" in self.vae_folder.marker:
            recorded["vae_train_step"] = self.vae_folder.marker["step"]
        return recorded

    # -- loading ----------------------------------------------------------------------------

    def load(self):
        """Load the pipeline (once), apply the F16 VAE, and place it on the device."""
        if self.pipe is not None:
            return self.pipe
        import torch

        device = self._device(torch)
        if not self.options.progress:
            import diffusers  # noqa: F401 - imported now so that its bars are switched off before loading

            from aesthetic4k_metrics.network import silence_progress_bars

            silence_progress_bars()
        pipe = load_pipeline(self.source, torch_dtype=getattr(torch, self.dtype))
        self.class_name = type(pipe).__name__
        if self.expected_family and self.class_name != self.expected_family.pipeline_class:
            raise UserError(self._wrong_family_message(self.class_name))
        found = self.expected_family or families.of_pipeline(pipe)
        self.family = found.name if found else None
        if self.vae_folder is not None:
            self._swap_vae(pipe, torch)
        if self.vae == "f16":
            pipe = self._use_f16_vae(pipe)
        if self.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif self.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.to(device)
        # One bar per batch of denoising steps that disappears when done; a4k-eval shows the image bar.
        pipe.set_progress_bar_config(leave=False, desc=f"{self.name} steps", disable=not self.options.progress)
        self.pipe = pipe
        self.defaults = self._describe()
        return pipe

    def _device(self, torch):
        try:
            device = torch.device(self.options.device)
        except (RuntimeError, TypeError):
            raise UserError(f"--device {self.options.device}: not a torch device (cpu, cuda, cuda:1, ...)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {self.options.device}: CUDA is not available here; use --device cpu")
        return device

    def _swap_vae(self, pipe, torch):
        vae = self.vae_folder.load(torch_dtype=getattr(torch, self.dtype))
        check_vae_fits(pipe, vae, f"--vae {self.vae_folder.weights}")
        pipe.register_modules(vae=vae)

    def _use_f16_vae(self, pipe):
        if self.family is None:
            raise UserError(f"{self.name}: the F16 VAE works with Flux and SD3 pipelines, not {self.class_name}; "
                            "use --vae f8")
        try:
            from aesthetic4k.wavelet.pipeline import use_f16_vae
        except ImportError as exc:
            raise UserError(f"{self.name}: the F16 VAE is unavailable ({exc}); use --vae f8") from None
        converted = use_f16_vae(pipe, partitions=self.partitions)
        return pipe if converted is None else converted

    def release(self):
        """Drop the pipeline and give its device memory back (a4k-eval calls this before scoring)."""
        self.pipe = None
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    # -- generation -------------------------------------------------------------------------

    def size_multiple(self) -> int:
        """Side lengths must be a multiple of this: VAE scale factor x transformer patch (2x2 packing for Flux)."""
        pipe = self.load()
        scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        if self.family is not None and getattr(pipe, "transformer", None) is not None:
            return scale * families.get(self.family).patch_size(pipe.transformer)
        for name in ("transformer", "unet"):
            model = getattr(pipe, name, None)
            if model is not None:
                return scale * int(getattr(model.config, "patch_size", 1) or 1)
        return scale

    def _check_size(self, size: int):
        multiple = self.size_multiple()
        if size <= 0 or size % multiple:
            raise UserError(f"--size {size}: {self.name} needs a multiple of {multiple} "
                            f"(VAE scale factor x patch size); try {max(multiple, round(size / multiple) * multiple)}")
        transformer = getattr(self.pipe, "transformer", None)
        limit = getattr(getattr(transformer, "config", None), "pos_embed_max_size", None)
        if limit and size // multiple > limit:
            raise UserError(f"--size {size}: larger than this transformer's position table allows "
                            f"({limit * multiple} px with the {self.vae.upper()} VAE); "
                            + ("use --vae f16" if self.vae == "f8" else "choose a smaller --size"))

    def _call_arguments(self) -> dict:
        params = inspect.signature(self.pipe.__call__).parameters
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        arguments = {}
        for key, param in (("steps", "num_inference_steps"), ("guidance", "guidance_scale"),
                           ("max_sequence_length", "max_sequence_length")):
            value = self._setting(key)
            if value is not None and (param in params or open_ended):
                arguments[param] = value
        return arguments

    def generate(self, prompts: list[str], size: int, seed: int) -> list:
        """One ``size`` x ``size`` RGB image per prompt, each from ``torch.Generator('cpu').manual_seed(seed)``."""
        prompts = list(prompts)
        if not prompts:
            return []
        import torch

        pipe = self.load()
        self._check_size(int(size))
        # One generator per prompt, all at the same seed: image i does not depend on its batch.
        generators = [torch.Generator("cpu").manual_seed(int(seed)) for _ in prompts]
        try:
            output = pipe(prompt=prompts, height=int(size), width=int(size), generator=generators,
                          output_type="pil", **self._call_arguments())
        except torch.cuda.OutOfMemoryError:
            self._free_cuda(torch)
            raise UserError(f"{self.name}: out of memory on {self.options.device} generating {len(prompts)} "
                            f"image(s) at {size} px; {OOM_ADVICE}") from None
        except RuntimeError as exc:
            if "out of memory" not in str(exc).lower():
                raise
            self._free_cuda(torch)
            raise UserError(f"{self.name}: out of memory on {self.options.device} at {size} px; "
                            f"{OOM_ADVICE}") from None
        except UserError:
            raise
        except ValueError as exc:  # the pipeline's own argument checks
            raise UserError(f"{self.name}: the pipeline rejected the request ({str(exc).splitlines()[0]})") from None
        return self._checked(getattr(output, "images", output), len(prompts), int(size))

    @staticmethod
    def _free_cuda(torch):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _checked(self, images, count: int, size: int) -> list:
        from PIL import Image

        images = list(images) if isinstance(images, (list, tuple)) else [images]
        if len(images) != count:
            raise UserError(f"{self.name}: the pipeline returned {len(images)} image(s) for {count} prompt(s)")
        checked = []
        for image in images:
            if not isinstance(image, Image.Image):
                raise UserError(f"{self.name}: the pipeline returned {type(image).__name__}, expected PIL images")
            if image.size != (size, size):
                raise UserError(f"{self.name}: the pipeline returned a {image.size[0]}x{image.size[1]} image, "
                                f"expected {size}x{size}")
            checked.append(image if image.mode == "RGB" else image.convert("RGB"))
        return checked


# -- factories named by the registry ---------------------------------------------------------

def _spec(name: str, argument: str | None, default: str | None) -> str:
    return name if argument in (None, default) else f"{name}:{argument}"


def flux_4k(argument: str | None, options: GeneratorOptions) -> DiffusersGenerator:
    """Flux-12B-WLF (``zhang0jhon/flux_wavelet``, or the hub id / folder after ``flux-4k:``), F16 VAE."""
    source = argument or FLUX_4K_MODEL
    return DiffusersGenerator(_spec("flux-4k", argument, FLUX_4K_MODEL), source, options, family="flux", vae="f16")


def sd3_4k(argument: str | None, options: GeneratorOptions) -> DiffusersGenerator:
    """SD3-2B fine-tuned at 4K (a hub id or folder after ``sd3-4k:``), F16 VAE.

    No SD3 WLF weights were released with the paper, so the checkpoint must be named.
    """
    if not argument:
        raise UserError("sd3-4k needs a checkpoint: --generator sd3-4k:<hub-id-or-folder> (no SD3-4K weights "
                        "were released; train one with a4k-train, or use --generator sd3 for the base model)")
    return DiffusersGenerator(f"sd3-4k:{argument}", argument, options, family="sd3", vae="f16")


def flux_base(argument: str | None, options: GeneratorOptions) -> DiffusersGenerator:
    """Base FLUX.1-dev (or another Flux pipeline after ``flux:``), F16 VAE by default, ``--vae f8`` for the original."""
    source = argument or FLUX_BASE_MODEL
    return DiffusersGenerator(_spec("flux", argument, FLUX_BASE_MODEL), source, options, family="flux", vae="f16")


def sd3_base(argument: str | None, options: GeneratorOptions) -> DiffusersGenerator:
    """Base stable-diffusion-3-medium (or another SD3 pipeline after ``sd3:``), F16 VAE by default."""
    source = argument or SD3_BASE_MODEL
    return DiffusersGenerator(_spec("sd3", argument, SD3_BASE_MODEL), source, options, family="sd3", vae="f16")


def any_pipeline(argument: str | None, options: GeneratorOptions) -> DiffusersGenerator:
    """Any diffusers text-to-image pipeline: ``diffusers:<hub-id-or-folder>``, run as it was saved (F8)."""
    if not argument:
        raise UserError("the diffusers generator needs a pipeline: --generator diffusers:<hub-id-or-folder>")
    return DiffusersGenerator(f"diffusers:{argument}", argument, options, vae="f8")


def read_wlf_marker(folder) -> dict:
    """The ``a4k_wlf.json`` marker of an a4k-train checkpoint, validated."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"{folder}: no such checkpoint folder")
    marker_path = folder / WLF_MARKER
    if not marker_path.is_file():
        raise UserError(f"{folder}: not an a4k-train checkpoint (no {WLF_MARKER}); "
                        "for a plain pipeline folder use --generator diffusers:<folder>")
    marker = read_json_object(marker_path, "checkpoint marker", "a JSON object with family, vae, partitions")
    # "model" is what checkpoints written before the family rename call it
    family = marker.get("family", marker.get("model"))
    if family not in families.FAMILIES:
        raise UserError(f"{marker_path}: family is {family!r}, expected "
                        + " or ".join(repr(name) for name in families.FAMILIES))
    marker["family"] = family
    if str(marker.get("vae", "f8")).lower() not in VAE_CHOICES:
        raise UserError(f"{marker_path}: vae is {marker.get('vae')!r}, expected 'f16' or 'f8'")
    partitions = marker.get("partitions", 2)
    if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
        raise UserError(f"{marker_path}: partitions is {partitions!r}, expected a positive integer")
    return marker


def wlf_checkpoint(argument: str | None, options: GeneratorOptions) -> DiffusersGenerator:
    """A checkpoint written by ``a4k-train`` (``wlf:<dir>``): pipeline folder + ``a4k_wlf.json`` marker."""
    if not argument:
        raise UserError("the wlf generator needs a checkpoint: --generator wlf:<checkpoint-dir>")
    marker = read_wlf_marker(argument)
    local_folder(argument)  # the marker alone is not enough: it must be a saved pipeline
    extra = {"trained_vae": marker.get("vae", "f8")}
    for key in ("step", "steps", "global_step"):
        if key in marker:
            extra["train_step"] = marker[key]
            break
    return DiffusersGenerator(f"wlf:{argument}", argument, options, family=marker["family"],
                              vae=str(marker.get("vae", "f8")).lower(), extra_defaults=extra)
