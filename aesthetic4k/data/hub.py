"""The published Aesthetic-4K dataset from the Hugging Face hub, one split at a time.

Only the requested split is fetched (``allow_patterns``), into the standard Hugging Face cache
(``HF_HOME`` / ``HF_HUB_CACHE``); huggingface_hub skips files already there and resumes partial
ones, so an interrupted download continues where it stopped. Offline, the cached copy is used;
with no cached copy the user gets one message saying what to download and how to point the
toolkit at it.
"""
from __future__ import annotations

import os
from pathlib import Path

from aesthetic4k.data.metadata import METADATA_NAME
from aesthetic4k.errors import UserError

HUB_REPO = "zhang0jhon/Aesthetic-4K"


def split_folder(split: str, size: int) -> str:
    """Path of a split inside the published layout."""
    return "train" if split == "train" else f"eval/size_{size}"


def _offline() -> bool:
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except ImportError:
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download_instructions(split: str, size: int) -> str:
    part = split_folder(split, size)
    return (f"download it on a connected machine with `hf download {HUB_REPO} --repo-type dataset "
            f"--include '{part}/*' --local-dir Aesthetic-4K` and pass the folder instead "
            "(--dataset Aesthetic-4K), or point HF_HOME at a Hugging Face cache that holds it")


def cache_storage(folder: Path) -> tuple:
    """Where the files of a folder inside a Hugging Face cache snapshot really are: ``blobs/``.

    Snapshot files are symlinks into their repository's ``blobs/`` folder, so path checks
    must accept it; any other folder (``--local-dir`` downloads included) needs nothing more.
    """
    folder = Path(folder)
    for snapshot in (folder, *folder.parents):
        repo = snapshot.parent.parent
        if snapshot.parent.name == "snapshots" and repo.name.startswith("datasets--") and (repo / "blobs").is_dir():
            return (repo / "blobs",)
    return ()


def hub_folder(split: str, size: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """Local snapshot folder holding ``split`` (downloading only that split when online).

    Online, the hub is first asked once, briefly, for the split's metadata file (see
    ``aesthetic4k_metrics.network``): an unreachable hub, a missing repository or a missing split is known
    within seconds, and the cache is used instead when it holds the split.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise UserError(f"the {HUB_REPO} dataset needs the huggingface_hub package (pip install "
                        "'aesthetic4k[data]'); or " + download_instructions(split, size)) from None
    from aesthetic4k_metrics import network

    part = split_folder(split, size)
    required = f"{part}/{METADATA_NAME}"
    options = dict(repo_type="dataset", allow_patterns=[f"{part}/*"], cache_dir=cache_dir)
    folder = None
    reason = ""
    if not _offline():
        try:
            network.check_hub_file(HUB_REPO, required, repo_type="dataset")
            folder = Path(snapshot_download(HUB_REPO, etag_timeout=network.net_timeout(), **options))
        except network.DownloadFailed as exc:
            reason = str(exc)
        except Exception as exc:  # the hub failed during the download: fall back to the cache, then explain
            reason = str(network.describe_hub_failure(exc, HUB_REPO, repo_type="dataset"))
    if folder is None:
        try:
            folder = Path(snapshot_download(HUB_REPO, local_files_only=True, **options))
        except Exception:
            where = f"cannot be downloaded ({reason})" if not _offline() else "HF_HUB_OFFLINE is set"
            raise UserError(f"{HUB_REPO} ({part}) is not in the Hugging Face cache and {where}; "
                            + download_instructions(split, size)) from None
    if not (folder / required).is_file():
        raise UserError(f"{HUB_REPO}: the snapshot {folder} has no {required}; "
                        + download_instructions(split, size))
    return folder
