"""Where a diffusers pipeline comes from: a local folder or a hub id, cache first, offline-safe.

A local folder must be a saved pipeline (``model_index.json``). A hub id is loaded from the
Hugging Face cache without touching the network; only when it is not cached, and the hub is
allowed (``HF_HUB_OFFLINE`` unset), is it downloaded. Every failure becomes one line that says
what to download or which folder to pass.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

from aesthetic4k.errors import UserError

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


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """Type and first line of an exception, cut short: libraries' messages run to paragraphs."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    if len(line) > limit:
        line = line[:limit].rstrip() + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


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
        return json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None


def _from_pretrained(source, torch_dtype, **kwargs):
    from diffusers import DiffusionPipeline

    with warnings.catch_warnings():
        # Newer diffusers renamed torch_dtype to dtype; the old name works everywhere we support.
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        return DiffusionPipeline.from_pretrained(source, torch_dtype=torch_dtype, **kwargs)


def load_pipeline(source: str, torch_dtype=None):
    """``DiffusionPipeline.from_pretrained`` on a folder or hub id, with one-line errors."""
    folder = local_folder(source)
    if folder is not None:
        try:
            return _from_pretrained(folder, torch_dtype, local_files_only=True)
        except Exception as exc:  # missing component, corrupt weights, unknown class...
            raise UserError(f"{folder}: cannot load the diffusers pipeline ({_first_line(exc)})") from None
    try:
        return _from_pretrained(source, torch_dtype, local_files_only=True)
    except Exception as exc:  # not (fully) cached: fall through to the hub when allowed
        cache_reason = _first_line(exc)
    if hub_offline():
        raise UserError(f"{source} is not in the Hugging Face cache and HF_HUB_OFFLINE is set "
                        f"({cache_reason}); {download_advice(source)}")
    try:
        return _from_pretrained(source, torch_dtype)
    except Exception as exc:  # no network, gated repository, missing repository
        raise UserError(f"{source} is not in the Hugging Face cache and could not be downloaded "
                        f"({_first_line(exc)}); {download_advice(source)}") from None
