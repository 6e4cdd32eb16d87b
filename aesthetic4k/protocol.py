"""The protocol fingerprint of a results row: everything that changes a number by definition.

Two rows compare only when they were measured the same way: the same FID protocol and resize,
crops, Compression Ratio mode and encoder, network weights, image count and size. Library versions
are not part of it (they move numbers by accident, not by definition: ``a4k-check`` names them
as drift). Every row carries the short fingerprint (column ``protocol``, 12 hex digits) and its
readable parts (settings -> ``protocol``), so a refusal can say what differs.

Parts belong to the metrics that ran (no FID, no Inception weights), so two rows are comparable
when every part that both of them have is equal (:func:`differences`); equal fingerprints imply it.
"""
from __future__ import annotations

import hashlib
import json

# settings keys (written by the metrics' provenance and the run) that change a number by definition
SETTINGS_PARTS = (
    "fid_protocol", "fid_size", "fid_resize", "inception_sha256", "reference",
    "patch_count", "patch_seed", "patch_size", "patch_recipe",
    "kid_kernel", "kid_subsets", "kid_subset_size", "kid_seed",
    "glcm", "cr_mode", "encoder", "quality", "subsampling", "optimize", "image_encoder",
    "clip_model", "clip_weights", "clip_context_length", "clip_score_formula",
    "aesthetics_model", "aesthetics_clip_weights", "aesthetics_precision", "aesthetic_head",
)
ROW_PARTS = ("dataset", "size", "n_images")                   # results cells
ENCODER_PARTS = ("encoder", "quality", "subsampling", "optimize")  # of image_encoder (not its library versions)
LENGTH = 12


def parts_of(row: dict, settings: dict) -> dict:
    """The readable parts of a row's protocol: {part: value} for those the row has."""
    parts = {name: row[name] for name in ROW_PARTS if row.get(name) not in (None, "")}
    for name in SETTINGS_PARTS:
        value = settings.get(name)
        if value is None:
            continue
        if name == "image_encoder" and isinstance(value, dict):
            value = {k: value[k] for k in ENCODER_PARTS if k in value}
        parts[name] = value
    return {name: (str(value) if name in ROW_PARTS else value) for name, value in parts.items()}


def fingerprint(parts: dict) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:LENGTH]


def stamp(row: dict, settings: dict) -> None:
    """Give a finished row its fingerprint cell and its readable parts (settings -> "protocol")."""
    parts = parts_of(row, settings)
    settings["protocol"] = parts
    row["protocol"] = fingerprint(parts)


def recorded_parts(settings: dict) -> dict | None:
    """The parts a row recorded, or None for a row written before fingerprints (or reported, not measured)."""
    parts = settings.get("protocol") if isinstance(settings, dict) else None
    return parts if isinstance(parts, dict) else None


def differences(first: dict, second: dict) -> list[str]:
    """``part first-value vs second-value`` for every part both have with different values."""
    return [f"{name} {_shown(first[name])} vs {_shown(second[name])}" for name in sorted(first.keys() & second.keys())
            if first[name] != second[name]]


def _shown(value) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def split_comparable(rows) -> tuple[list, list]:
    """(ranked, apart) of results rows (``.settings``) that a leaderboard would rank together.

    The reference is the row comparable with the most rows (ties: the earliest in ``rows``); the others
    join it in their order while they agree with every part of the rows ranked so far (comparability
    is not transitive: patch_count 4 and 8 both agree with a row without patch metrics), else they go
    apart as (row, what differs). Ranked rows keep their order. A row without recorded parts (written
    before fingerprints) cannot be checked and is ranked as before.
    """
    recorded = [(row, recorded_parts(row.settings)) for row in rows]
    known = [index for index, (_, parts) in enumerate(recorded) if parts is not None]
    if not known:
        return list(rows), []
    reach = [sum(not differences(recorded[i][1], recorded[j][1]) for j in known) for i in known]
    first = known[reach.index(max(reach))]
    merged = dict(recorded[first][1])          # every part of the ranked rows, which all agree
    apart = {}
    for index in known:
        differing = differences(recorded[index][1], merged)
        if differing:
            apart[index] = "; ".join(differing)
        else:
            merged.update(recorded[index][1])
    return ([row for index, (row, _) in enumerate(recorded) if index not in apart],
            [(recorded[index][0], text) for index, text in sorted(apart.items())])
