"""Where pipelines and VAEs come from: a local folder or a hub id, cache first, offline-safe.

A local folder must be a saved pipeline (``model_index.json``). A hub id is loaded from the
Hugging Face cache without touching the network; only when it is not cached, and the hub is
allowed (``HF_HUB_OFFLINE`` unset), is it downloaded. Every failure becomes one line that says
what to download or which folder to pass.

A VAE folder (``--vae DIR`` of a4k-eval, ``--vae DIR`` of a4k-train, the output of
a4k-train-vae) is a diffusers ``AutoencoderKL`` folder, a folder holding one in ``vae/``, or an
a4k-train-vae checkpoint; its ``a4k_vae.json`` marker says how it decodes (see :class:`VaeFolder`).
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k.json_files import read_json_object
from aesthetic4k_metrics.errors import first_line
from aesthetic4k_metrics.files import sha256_update
from aesthetic4k_metrics.json_text import parse

MODEL_INDEX = "model_index.json"
# owner/name as the hub spells repository ids (no path separators beyond the one slash).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Repositories whose licence must be accepted on the hub before a download works.
GATED = {"black-forest-labs/FLUX.1-dev", "stabilityai/stable-diffusion-3-medium-diffusers"}


def hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return False


def download_advice(repo_id: str) -> str:
    gated = (f"accept the licence at https://huggingface.co/{repo_id} and log in with `hf auth login`, then "
             if repo_id in GATED else "")
    return (f"{gated}download it on a connected machine with `hf download {repo_id} --local-dir <folder>` "
            "and pass that folder instead of the hub id, or point HF_HOME at a Hugging Face cache that holds it")


def local_folder(source: str) -> Path | None:
    """The folder ``source`` names, or None when it is a hub id; a path that is not a pipeline is an error."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / MODEL_INDEX).is_file():
            raise UserError(f"{path}: not a diffusers pipeline folder (no {MODEL_INDEX}); pass a folder written "
                            "by pipeline.save_pretrained, a4k-train, or `hf download <repo> --local-dir`")
        return path
    if path.exists():
        raise UserError(f"{path}: is a file, expected a diffusers pipeline folder or a hub id (owner/name)")
    if not _HUB_ID.match(source) or source.startswith((".", "~")):
        raise UserError(f"{source}: no such folder, and not a hub id of the form owner/name")
    return None


def pipeline_class_name(source: str) -> str | None:
    """``_class_name`` from the pipeline's model_index.json, read locally or from the cache, no network."""
    folder = local_folder(source)
    if folder is not None:
        index = folder / MODEL_INDEX
    else:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        cached = try_to_load_from_cache(source, MODEL_INDEX)
        if not isinstance(cached, str):
            return None
        index = Path(cached)
    try:
        return parse(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None


def _from_pretrained(source, torch_dtype, **kwargs):
    from diffusers import DiffusionPipeline

    with warnings.catch_warnings():
        # Newer diffusers renamed torch_dtype to dtype; the old name works everywhere we support.
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        return DiffusionPipeline.from_pretrained(source, torch_dtype=torch_dtype, **kwargs)


def _vae_from_pretrained(source, torch_dtype, **kwargs):
    from diffusers import AutoencoderKL

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        return AutoencoderKL.from_pretrained(source, torch_dtype=torch_dtype, **kwargs)


def _cache_then_hub(load, source: str, required: str):
    """``load(source, local_files_only=...)`` from the cache first, then the hub when allowed.

    Before the download the hub is asked once, briefly, for ``required`` (see
    ``aesthetic4k_metrics.network``): an unreachable hub or a missing repository or file is one line within
    seconds instead of huggingface_hub's retries.
    """
    from aesthetic4k_metrics import network

    try:
        return load(source, local_files_only=True)
    except Exception as exc:  # not (fully) cached: fall through to the hub when allowed
        cache_reason = first_line(exc, 160, typed=True)
    if hub_offline():
        raise UserError(f"{source} is not in the Hugging Face cache and HF_HUB_OFFLINE is set "
                        f"({cache_reason}); {download_advice(source)}")
    try:
        network.check_hub_file(source, required)
    except network.DownloadFailed as exc:
        raise UserError(f"{source} is not in the Hugging Face cache and cannot be downloaded ({exc}); "
                        f"{download_advice(source)}") from None
    try:
        return load(source)
    except Exception as exc:  # the hub failed during the download, a file of the pipeline is missing...
        reason = network.describe_hub_failure(exc, source)
        if not (reason.missing or reason.unreachable):
            reason = first_line(exc, 160, typed=True)
        raise UserError(f"{source} is not in the Hugging Face cache and could not be downloaded "
                        f"({reason}); {download_advice(source)}") from None


def load_pipeline(source: str, torch_dtype=None):
    """``DiffusionPipeline.from_pretrained`` on a folder or hub id, with one-line errors."""
    folder = local_folder(source)
    if folder is not None:
        try:
            return _from_pretrained(folder, torch_dtype, local_files_only=True)
        except Exception as exc:  # missing component, corrupt weights, unknown class...
            raise UserError(f"{folder}: cannot load the diffusers pipeline ({first_line(exc, 160, typed=True)})") from None
    return _cache_then_hub(lambda s, **kw: _from_pretrained(s, torch_dtype, **kw), source, MODEL_INDEX)


# -- VAE folders --------------------------------------------------------------------------------

VAE_MARKER = "a4k_vae.json"
VAE_MODES = ("f16", "f8")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class VaeFolder:
    """A VAE on disk: ``weights`` holds its ``config.json`` and weights; ``mode`` is how it decodes.

    ``mode`` comes from the ``a4k_vae.json`` marker beside the weights or one folder up (an
    a4k-train-vae checkpoint keeps the VAE in ``vae/``); without a marker it is ``f16``: the
    VAEs this toolkit swaps in (SC-VAE, the one of ``flux_wavelet_v2_sc``) are F16 VAEs stored
    with the F8 parameter layout, converted again after loading.
    """

    weights: Path
    mode: str
    marker: dict

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the weight files: two folders decode alike only when it matches."""
        digest = hashlib.sha256()
        for path in sorted(self.weights.iterdir()):
            if path.suffix in _WEIGHT_SUFFIXES and path.is_file():
                digest.update(path.name.encode())
                sha256_update(digest, path)
        return digest.hexdigest()[:16]

    def load(self, torch_dtype=None):
        try:
            return _vae_from_pretrained(self.weights, torch_dtype, local_files_only=True)
        except Exception as exc:  # missing or corrupt weights
            raise UserError(f"{self.weights}: cannot load the VAE ({first_line(exc, 160, typed=True)})") from None


def _is_autoencoder(folder: Path) -> bool:
    config = folder / "config.json"
    if not config.is_file():
        return False
    try:
        return parse(config.read_text(encoding="utf-8")).get("_class_name") == "AutoencoderKL"
    except (OSError, ValueError, AttributeError):
        return False


def vae_folder(path) -> VaeFolder:
    """The VAE that ``path`` names (see :class:`VaeFolder`), checked without loading it."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(f"--vae {path}: no such folder (expected f16, f8 or a VAE folder)")
    weights = next((f for f in (folder, folder / "vae") if _is_autoencoder(f)), None)
    if weights is None:
        raise UserError(f"--vae {path}: no diffusers AutoencoderKL in it (config.json with _class_name "
                        "AutoencoderKL, here or in vae/); pass an a4k-train-vae checkpoint or a VAE folder")
    marker: dict = {}
    for candidate in (weights / VAE_MARKER, weights.parent / VAE_MARKER):
        if candidate.is_file():
            marker = read_json_object(candidate, "VAE marker", 'a JSON object like {"vae": "f16"}')
            break
    mode = str(marker.get("vae", "f16")).lower()
    if mode not in VAE_MODES:
        raise UserError(f"{weights}: its {VAE_MARKER} says vae {marker.get('vae')!r}, expected 'f16' or 'f8'")
    return VaeFolder(weights, mode, marker)


def load_base_vae(source: str, torch_dtype=None):
    """The VAE of a pipeline (folder or hub id, its ``vae/``), or a VAE folder itself."""
    path = Path(source).expanduser()
    if path.is_dir() and not (path / MODEL_INDEX).is_file():
        return vae_folder(path).load(torch_dtype)
    folder = local_folder(source)
    if folder is not None:
        return vae_folder(folder / "vae").load(torch_dtype)
    return _cache_then_hub(lambda s, **kw: _vae_from_pretrained(s, torch_dtype, subfolder="vae", **kw),
                           source, "vae/config.json")


def check_vae_fits(pipe, vae, where: str) -> None:
    """Refuse a VAE whose latent space differs from the pipeline's own (another model's VAE)."""
    own = getattr(pipe, "vae", None)
    if own is None:
        raise UserError(f"{where}: {type(pipe).__name__} has no VAE to replace")
    for key in ("latent_channels", "scaling_factor", "shift_factor"):
        mine, theirs = getattr(own.config, key, None), getattr(vae.config, key, None)
        if key == "shift_factor":
            mine, theirs = mine or 0.0, theirs or 0.0
        if mine != theirs:
            raise UserError(f"{where}: the VAE has {key} {theirs}, the pipeline's own VAE {mine}; "
                            "it belongs to another model family")
