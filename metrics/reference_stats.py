"""Reference statistics: the real side of FID / KID / patch-FID / patch-KID, saved once and shared.

A ``.npz`` file holds the Inception features of a set of real images (``full``: one row per
image; ``patches``: P rows per image, when patch metrics were asked for) and a JSON ``meta``
record of everything they depend on: protocol, evaluation size, patch recipe, image count,
the Inception weights' sha256 and the toolkit version. Features rather than mean/covariance
are kept because KID needs them (8 KB per image and crop, float32); FID is computed from them
exactly. Loading checks ``meta`` against the metric and refuses a mismatch with a message that
names both values.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from aesthetic4k_metrics.errors import UserError
from aesthetic4k_metrics.file_kinds import open_regular
from aesthetic4k_metrics.json_text import parse

FORMAT = "aesthetic4k-reference-stats"
VERSION = 1
# meta fields a metric's recipe must agree with (the metric's keyword arguments of the same names)
_CHECKED = ("protocol", "size", "weights", "patch_count", "patch_seed")


def toolkit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aesthetic4k")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class ReferenceStats:
    meta: dict
    features: dict = field(default_factory=dict)   # "full" / "patches" -> (rows, 2048) float32

    @property
    def count(self) -> int:
        return int(self.meta.get("count", 0))

    def save(self, path) -> None:
        """Write the file atomically (a temporary sibling renamed into place)."""
        import os

        path = Path(path)
        if not path.parent.is_dir():
            raise UserError(f"{path}: folder {path.parent} does not exist")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                np.savez(handle, meta=np.array(json.dumps(self.meta, sort_keys=True)),
                         **{k: np.ascontiguousarray(v, np.float32) for k, v in self.features.items()})
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path) -> "ReferenceStats":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such reference statistics file")
        try:
            with open_regular(path) as handle, np.load(handle, allow_pickle=False) as data:
                meta = parse(str(data["meta"]))
                features = {k: np.asarray(data[k], np.float32) for k in data.files if k != "meta"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: not a reference statistics file ({type(exc).__name__})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise UserError(f"{path}: not an aesthetic4k reference statistics file "
                            "(ReferenceStats.save writes one)")
        if meta.get("version") != VERSION:
            raise UserError(f"{path}: reference statistics version {meta.get('version')}, this toolkit reads "
                            f"{VERSION}; save them again")
        count = meta.get("count", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise UserError(f"{path}: reference statistics with a count of {count!r} images; save them again")
        for kind, rows in features.items():
            if rows.ndim != 2 or not np.isfinite(rows).all():
                raise UserError(f"{path}: reference statistics {kind!r} are not a finite (rows, features) array; "
                                "save them again")
        meta["path"] = str(path)
        return cls(meta, features)

    def features_for(self, recipe: dict) -> np.ndarray:
        """The real features matching a metric's feature recipe, or a UserError naming what differs."""
        where = self.meta.get("path", "reference statistics")
        kind = "patches" if recipe.get("patch_count") else "full"
        for name in _CHECKED:
            if name not in recipe:
                continue
            if self.meta.get(name) != recipe[name]:
                raise UserError(f"{where}: saved with {name}={self.meta.get(name)!r} but this run uses "
                                f"{recipe[name]!r} ({name}); save the statistics again with the same settings")
        if kind not in self.features:
            raise UserError(f"{where}: holds no {kind} features (saved without patch metrics); save it again "
                            "with patch_fid or patch_kid among the metrics")
        return self.features[kind]


def new_meta(recipe: dict, count: int, source: str, patches: Optional[dict] = None) -> dict:
    """``meta`` of a statistics file from a full-image feature recipe (see InceptionMetric.feature_recipe)."""
    meta = {"format": FORMAT, "version": VERSION, "protocol": recipe["protocol"], "size": recipe["size"],
            "weights": recipe["weights"], "count": int(count), "source": source,
            "toolkit_version": toolkit_version()}
    if patches:
        meta.update(patch_count=patches["patch_count"], patch_seed=patches["patch_seed"])
    return meta
