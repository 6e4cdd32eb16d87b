"""The intervals of a run's row: per-image state kept during the run, the bootstrap statistics built from it.

Every metric of a row gets ``<metric>_low`` / ``<metric>_high``: a seeded bootstrap over images
(aesthetic4k_metrics.bootstrap, method "centred", docs/metrics-holistic.md "Intervals"), the same
resamples for every metric. What resampling needs is collected here and nowhere else:

- per-image values from the gathered per-image rows (GLCM Score, CLIPScore, Aesthetics; raw and
  JPEG byte counts of the Compression Ratio, a ratio of sums);
- per-image Inception features of the FID family, kept by :class:`FeatureKeeper` while the run adds
  them (generated side, and the paired references of a dataset; an unpaired reference is kept whole
  and held fixed).

Rank 0 builds :class:`PerImageData` from every process's part, in the order of the gathered rows
(sorted by stem), so the intervals do not depend on how the images were sharded. ``--per-image FILE``
saves it beside FILE (``FILE`` with suffix ``.features.npz``) for ``a4k-check``'s paired bootstrap.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

import numpy as np

from aesthetic4k.errors import UserError
from aesthetic4k.results import interval_columns
from aesthetic4k_metrics import bootstrap
from aesthetic4k_metrics.registry import METRICS

METHOD = "centred"              # keeps the FID family's intervals around the row's value (see bootstrap.interval_of)
DIGITS = 4                      # significant digits of an interval cell, rounded outwards: same bits on every run
FEATURES_SUFFIX = ".features.npz"
FORMAT = "aesthetic4k-per-image-data"
# metric -> how it is recomputed on a resampled set (set-level metrics are recomputed, not averaged)


def features_path(per_image: Path) -> Path:
    """Where ``--per-image FILE`` keeps the per-image data: FILE with the suffix .features.npz."""
    per_image = Path(per_image)
    return per_image.with_name(per_image.stem + FEATURES_SUFFIX)


def rounded(value: float, direction) -> float:
    """``value`` at DIGITS significant digits, rounded down (ROUND_FLOOR) or up (ROUND_CEILING)."""
    if not math.isfinite(value) or value == 0:
        return value
    exponent = math.floor(math.log10(abs(value))) - (DIGITS - 1)
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(exponent), rounding=direction))


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int = bootstrap.DEFAULT_RESAMPLES      # 0: no intervals
    seed: int = bootstrap.DEFAULT_SEED
    level: float = bootstrap.DEFAULT_LEVEL
    method: str = METHOD

    def record(self) -> dict:
        """The row's settings entry."""
        return {"resamples": self.resamples, "seed": self.seed, "level": self.level, "method": self.method,
                "unit": "image"}

    @classmethod
    def of(cls, settings: dict) -> "BootstrapSettings":
        """The bootstrap a row recorded (the defaults where it recorded none)."""
        recorded = settings.get("bootstrap") if isinstance(settings, dict) else None
        if not isinstance(recorded, dict) or not recorded.get("resamples"):
            return cls()
        try:
            chosen = cls(int(recorded["resamples"]), int(recorded.get("seed", bootstrap.DEFAULT_SEED)),
                         float(recorded.get("level", bootstrap.DEFAULT_LEVEL)), str(recorded.get("method", METHOD)))
        except (TypeError, ValueError):
            return cls()                        # a hand-edited entry: the defaults, not a traceback
        usable = (chosen.resamples > 0 and chosen.seed >= 0 and 0 < chosen.level < 1
                  and chosen.method in bootstrap.METHODS)
        return chosen if usable else cls()


# ---------------------------------------------------------------- during the run


class FeatureKeeper:
    """The FID family's per-image features, as NetworkScoring adds them (this process's images only)."""

    def __init__(self, digests: dict):
        self.digests = {name: digest for name, digest in digests.items() if METRICS[name].resampled in ("frechet", "kernel")}
        self.generated: dict = {}      # stem -> {digest: (P, d) float32}
        self.paired: dict = {}         # stem -> {digest: (P, d) float32}: the image's dataset reference
        self.fixed: dict = {}          # digest -> [rows]: an unpaired reference, held fixed

    def keep(self, items, real: dict | None) -> None:
        """A batch as added to the metrics; ``real``: its paired references (digest -> list in item order)."""
        wanted = set(self.digests.values())
        if not wanted:
            return
        for index, item in enumerate(items):
            self.generated[item.stem] = {d: _array(item.features[d]) for d in wanted if d in item.features}
            if real:
                self.paired[item.stem] = {d: _array(real[d][index]) for d in wanted if d in real}

    def keep_fixed(self, real: dict) -> None:
        for digest, values in real.items():
            if digest in self.digests.values():
                self.fixed.setdefault(digest, []).extend(_array(v) for v in values)

    def keep_stats(self, stats, recipes: dict) -> None:
        """Saved reference statistics: their features, as each metric takes them (digest -> recipe)."""
        for digest in set(self.digests.values()):
            if recipes.get(digest) is not None:
                self.fixed[digest] = [np.asarray(stats.features_for(recipes[digest]), np.float32)]

    def part(self) -> tuple:
        return self.generated, self.paired, self.fixed


def _array(value) -> np.ndarray:
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    return np.asarray(array, np.float32)


# ---------------------------------------------------------------- the data and its statistics


@dataclass
class PerImageData:
    """What every metric of a row needs to be recomputed on resampled image sets, in one image order."""

    stems: list
    values: dict = field(default_factory=dict)      # per-image arrays: metric values, raw_bytes, jpeg_bytes
    features: dict = field(default_factory=dict)    # key -> (N, P, d) float32, or (R, d) for a fixed reference
    metrics: dict = field(default_factory=dict)     # metric -> how to rebuild its statistic (JSON-able)

    @property
    def n(self) -> int:
        return len(self.stems)

    def statistics(self, names=None, order=None) -> dict:
        """metric -> bootstrap Statistic on the images at ``order`` (default: all, in this order)."""
        from aesthetic4k_metrics.bootstrap_distances import FrechetStatistic, KIDStatistic

        order = np.arange(self.n) if order is None else np.asarray(order, np.int64)
        out = {}
        for name, how in self.metrics.items():
            if names is not None and name not in names:
                continue
            kind = how["kind"]
            if kind == "mean":
                out[name] = bootstrap.Mean(self.values[name][order])
            elif kind == "ratio":
                out[name] = bootstrap.RatioOfSums(self.values["raw_bytes"][order], self.values["jpeg_bytes"][order])
            else:
                generated = self.features[how["generated"]][order]
                reference = self.features[how["reference"]]
                if how["paired"]:
                    reference = reference[order]
                if kind == "frechet":
                    out[name] = FrechetStatistic(generated, reference, paired=how["paired"])
                else:
                    out[name] = KIDStatistic(generated, reference, paired=how["paired"], subsets=how["subsets"],
                                             subset_size=how["subset_size"], seed=how["seed"])
        return out

    # -- the file beside --per-image

    def save(self, path: Path) -> None:
        """An .npz (np.load reads it) whose bytes depend on the data only: entries in a fixed order, fixed dates."""
        import io
        import zipfile

        meta = {"format": FORMAT, "version": 1, "metrics": self.metrics}
        arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), "stems": np.array(self.stems, dtype=str)}
        arrays.update({f"value__{k}": v for k, v in sorted(self.values.items())})
        arrays.update({f"features__{k}": np.ascontiguousarray(v, np.float32) for k, v in sorted(self.features.items())})
        with open(path, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
                archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> "PerImageData":
        import zipfile

        from aesthetic4k_metrics.file_kinds import open_regular
        from aesthetic4k_metrics.json_text import parse

        try:
            with open_regular(path) as handle, np.load(handle, allow_pickle=False) as data:
                meta = parse(str(data["meta"]))
                stems = [str(s) for s in data["stems"]]
                values = {k[len("value__"):]: np.asarray(data[k]) for k in data.files if k.startswith("value__")}
                features = {k[len("features__"):]: np.asarray(data[k], np.float32)
                            for k in data.files if k.startswith("features__")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: not a per-image data file ({type(exc).__name__})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("metrics"), dict):
            raise UserError(f"{path}: not an aesthetic4k per-image data file (a4k-eval --per-image writes one)")
        data = cls(stems, values, features, meta["metrics"])
        for name, how in data.metrics.items():
            needed = ([name] if how.get("kind") == "mean" else ["raw_bytes", "jpeg_bytes"]
                      if how.get("kind") == "ratio" else [])
            keys = [how.get("generated"), how.get("reference")] if how.get("kind") in ("frechet", "kid") else []
            sizes_wrong = any(k in features and features[k].shape[0] != len(stems)
                              for k in keys[:1 + bool(how.get("paired"))])
            if any(v not in values or len(values[v]) != len(stems) for v in needed) or \
                    any(k not in features for k in keys) or sizes_wrong:
                raise UserError(f"{path}: per-image data for {name} is incomplete; write it again with a4k-eval")
        return data


def collect(rows: list, metrics: dict, network, parts: list, kid_settings: dict) -> PerImageData:
    """The run's per-image data in the order of ``rows`` (gathered, sorted by stem) from every process's part."""
    stems = [row["stem"] for row in rows]
    data = PerImageData(stems)
    for name in metrics:
        resampled = METRICS[name].resampled              # a plugin's: "mean" of its per-image scores
        if resampled == "mean":
            data.values[name] = np.array([_number(row.get(name)) for row in rows], np.float64)
            data.metrics[name] = {"kind": "mean"}
        elif resampled == "ratio":
            data.values["raw_bytes"] = np.array([int(row["width"]) * int(row["height"]) * 3 for row in rows], np.int64)
            data.values["jpeg_bytes"] = np.array([int(row["jpeg_bytes"]) for row in rows], np.int64)
            data.metrics[name] = {"kind": "ratio"}
    if network is None:
        return data
    generated, paired, fixed = {}, {}, {}
    for part_generated, part_paired, part_fixed in parts:
        generated.update(part_generated)
        paired.update(part_paired)
        for digest, rows_kept in part_fixed.items():
            fixed.setdefault(digest, []).extend(rows_kept)
    for name, digest in network.kept.digests.items():
        if name not in metrics or any(digest not in generated.get(stem, {}) for stem in stems):
            continue
        key = digest[:16]
        if key not in data.features:
            data.features[key] = np.stack([generated[stem][digest] for stem in stems])
        if all(digest in paired.get(stem, {}) for stem in stems):
            reference, is_paired = f"{key}-reference", True
            data.features.setdefault(reference, np.stack([paired[stem][digest] for stem in stems]))
        elif fixed.get(digest):
            reference, is_paired = f"{key}-fixed-reference", False
            data.features.setdefault(reference, np.concatenate([r.reshape(-1, r.shape[-1]) for r in fixed[digest]]))
        else:
            continue
        how = {"kind": "frechet" if METRICS[name].resampled == "frechet" else "kid", "generated": key, "reference": reference,
               "paired": is_paired}
        if METRICS[name].resampled == "kernel":
            how.update(kid_settings[name])
        data.metrics[name] = how
    return data


def _number(value) -> float:
    return math.nan if value is None or value == "" else float(value)


def interval_cells(data: PerImageData, settings: BootstrapSettings, row: dict) -> tuple[dict, dict]:
    """(results cells ``<metric>_low/_high``, the Interval of each metric) on one set of resamples.

    Each interval is placed around the row's own value: the bootstrap's fast FID path and the row's full
    matrix square root differ by rounding noise (1e-5 relative, or -0.0002 against 0 on identical sets),
    and an interval must contain the number it is printed beside.
    """
    intervals = bootstrap.row_intervals(data.statistics(), settings.resamples, settings.seed, settings.level,
                                        settings.method)
    cells = {}
    for name, interval in intervals.items():
        low, high = interval_columns(name)
        offset = _number(row.get(name)) - interval.estimate
        defined = interval.defined and math.isfinite(offset)
        cells[low] = rounded(interval.low + offset, ROUND_FLOOR) if defined else math.nan
        cells[high] = rounded(interval.high + offset, ROUND_CEILING) if defined else math.nan
    return cells, intervals


def small_set_notes(data: PerImageData, intervals: dict, row: dict) -> list[str]:
    """FID below its feature dimension mostly measures N: say so, with the width of its interval when it has one."""
    notes = []
    for name in [n for n, info in METRICS.items() if info.resampled == "frechet"]:
        how = data.metrics.get(name)
        if how is None:
            continue
        _, crops, dim = data.features[how["generated"]].shape
        if data.n * crops < dim:
            samples = f"{data.n} images" + (f" x {crops} crops" if crops > 1 else "")
            note = f"{name}: {samples}, fewer than its {dim} feature dimensions: unstable"
            interval, value = intervals.get(name), row.get(name)
            if interval is not None and interval.defined:
                share = f", {100 * interval.width / abs(value):.0f}% of its value" if value else ""
                note += f", {round(100 * interval.level)}% interval {interval.width:.3g} wide{share}"
            notes.append(note)
    return notes


def add_intervals(row: dict, run_settings: dict, notes: list, rows: list, metrics: dict, network, ranks,
                  settings: BootstrapSettings, per_image=None):
    """Put the intervals (and the bootstrap settings) into a finished row on rank 0; returns the per-image data
    (None on the other ranks). With ``per_image`` (--per-image FILE) the row names the file it is saved to.

    A collective: every process calls it (each sends its kept features to rank 0).
    """
    parts = ranks.gather(network.kept.part() if network is not None else ({}, {}, {}))
    if not ranks.main:
        return None
    kid_settings = {name: {"subsets": m.subsets, "subset_size": m.subset_size, "seed": m.seed}
                    for name, m in metrics.items() if METRICS[name].resampled == "kernel"}
    data = collect(rows, metrics, network, parts, kid_settings)
    if per_image:
        from aesthetic4k_metrics.files import display_path

        run_settings["per_image_data"] = display_path(features_path(per_image))
    if settings.resamples <= 0:
        run_settings["bootstrap"] = {"resamples": 0}
        notes.extend(small_set_notes(data, {}, row))
        return data
    cells, intervals = interval_cells(data, settings, row)
    row.update(cells)
    run_settings["bootstrap"] = settings.record()
    notes.extend(small_set_notes(data, intervals, row))
    return data


def disagreeing(data: PerImageData, values: dict) -> list[str]:
    """The metrics whose value on ``data``'s whole set is not the row's value ``values[name]``: per-image data
    that does not describe the row (a row edited by hand, a file of another run) must not judge it.
    Means and ratios agree to rounding; FID and KID to the fast path's noise (see interval_cells)."""
    out = []
    for name, statistic in data.statistics([n for n in values if n in data.metrics]).items():
        value, estimate = _number(values[name]), statistic.estimate()
        exact = data.metrics[name]["kind"] in ("mean", "ratio")
        allowed = 1e-9 * abs(value) if exact else max(1e-4 * abs(value), 1e-3)
        if not abs(value - estimate) <= allowed:
            out.append(name)
    return out


def paired_differences(current: PerImageData, baseline: PerImageData, names, settings: BootstrapSettings):
    """metric -> Interval of ``current - baseline`` on the same resamples of the images both cover (by stem).

    None when the two runs do not cover the same images (then no paired bootstrap is possible).
    """
    first, second = bootstrap.paired_positions(current.stems, baseline.stems)
    if not (len(first) == current.n == baseline.n) or current.n < bootstrap.MIN_IMAGES:
        return None
    names = [name for name in names if name in current.metrics and name in baseline.metrics]
    now, before = current.statistics(names, first), baseline.statistics(names, second)
    indices = bootstrap.resample_indices(current.n, max(1, settings.resamples), settings.seed)
    return {name: bootstrap.bootstrap_interval(bootstrap.Difference(now[name], before[name]), indices,
                                               settings.level, settings.method, settings.seed) for name in names}
