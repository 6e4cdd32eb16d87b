"""``a4k-check``: did a run get worse than its baseline, beyond noise and tolerance, on any metric?

Each metric is judged in its own direction (``aesthetic4k_metrics.registry``): a lower GLCM Score is worse, a
lower FID is better. "Worse by" is the change in the bad direction. When both rows point to their
per-image data (a4k-eval --per-image) over the same images, each difference gets the interval of a
paired bootstrap over those images (the same resamples for both runs): worse with an interval that
includes 0 is "worse, within noise"; a regression is worse with the interval excluding 0, and by more
than the metric's tolerance. Without per-image data the check falls back to the plain comparison (a
regression is worse by more than the tolerance). Tolerances are absolute (``glcm_score=0.01``) or
relative to the baseline value (``fid=2%``); a metric without one must not get worse at all.

Rows measured under different protocols (aesthetic4k.protocol) are refused, naming what differs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k.protocol import differences, recorded_parts
from aesthetic4k.results_schema import ResultRow, load_results
from aesthetic4k_metrics.errors import did_you_mean
from aesthetic4k_metrics.registry import METRICS, parse_metric_list

BETTER, SAME, WITHIN, REGRESSION = "better", "same", "worse, within tolerance", "REGRESSION"
NOISE = "worse, within noise"    # worse, but the interval of the paired difference includes 0
MISSING = "MISSING"      # a metric the baseline row has and the current row lacks: fails unless allowed


@dataclass(frozen=True)
class Tolerance:
    amount: float
    relative: bool = False     # amount is a percentage of the baseline value

    def allowed(self, baseline: float) -> float:
        return abs(baseline) * self.amount / 100.0 if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.relative else f"{self.amount:g}"


NO_TOLERANCE = Tolerance(0.0)
# relative differences below this are floating-point noise, not changes: the Inception and CLIP
# features of the same images move in their last float32 bits with the CPU and its thread count
# (measured: FID 35.1357 on the sample set moves by 9e-6, 3e-7 of its value, from 2 threads to 1)
NUMERIC_NOISE = 1e-5


def parse_tolerances(text: str) -> dict[str, Tolerance]:
    """``glcm_score=0.01,fid=2%`` -> {metric: Tolerance}; any syntax problem is a one-line UserError."""
    if not text.strip():
        raise UserError("--tolerance is empty; write e.g. --tolerance glcm_score=0.01,fid=2%")
    tolerances = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, amount_text = part.partition("=")
        name, amount_text = name.strip(), amount_text.strip()
        if not sep or not name or not amount_text:
            raise UserError(f"--tolerance: {part!r} is not METRIC=AMOUNT or METRIC=PERCENT% "
                            "(e.g. glcm_score=0.01,fid=2%)")
        if name not in METRICS:
            raise UserError(f"--tolerance: unknown metric {name!r}; available: {', '.join(METRICS)}")
        if name in tolerances:
            raise UserError(f"--tolerance: {name} given twice")
        relative = amount_text.endswith("%")
        number_text = amount_text[:-1].strip() if relative else amount_text
        try:
            amount = float(number_text)
        except ValueError:
            raise UserError(f"--tolerance: {name}={amount_text} is not a number") from None
        if not math.isfinite(amount) or amount < 0:
            raise UserError(f"--tolerance: {name}={amount_text} must be a finite number >= 0")
        tolerances[name] = Tolerance(amount, relative)
    if not tolerances:
        raise UserError("--tolerance is empty; write e.g. --tolerance glcm_score=0.01,fid=2%")
    return tolerances


@dataclass(frozen=True)
class Comparison:
    """One metric of one row against its baseline."""

    metric: str
    current: float
    baseline: float
    tolerance: Tolerance
    interval: object = None        # aesthetic4k_metrics.bootstrap.Interval of current - baseline, when resampled

    @property
    def difference(self) -> float:
        return self.current - self.baseline

    @property
    def worse_by(self) -> float:
        """How far the value moved in the bad direction (negative: it improved)."""
        return -self.difference if METRICS[self.metric].higher_is_better else self.difference

    @property
    def verdict(self) -> str:
        if abs(self.difference) <= NUMERIC_NOISE * max(1.0, abs(self.baseline)):
            return SAME
        if self.worse_by < 0:
            return BETTER
        if self.interval is not None and self.interval.defined and not self.interval.excludes(0.0):
            return NOISE
        return WITHIN if self.worse_by <= self.tolerance.allowed(self.baseline) else REGRESSION


@dataclass(frozen=True)
class RowCheck:
    current: ResultRow
    baseline: ResultRow
    comparisons: tuple
    skipped: tuple = ()        # baseline metrics the current row has no value for (MISSING: not compared)
    notes: tuple = ()          # how the differences were judged (paired bootstrap or plain), protocol notes

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == REGRESSION]

    @property
    def version_changes(self) -> list[str]:
        """``library baseline-version -> current-version`` for each number-moving library that both rows
        recorded (settings -> versions, aesthetic4k_metrics.versions) with different versions."""
        before, now = _recorded_versions(self.baseline), _recorded_versions(self.current)
        return [f"{name} {before[name]} -> {now[name]}" for name in sorted(before.keys() & now.keys())
                if before[name] != now[name]]


def _recorded_versions(row: ResultRow) -> dict:
    versions = row.settings.get("versions") if isinstance(row.settings, dict) else None
    return {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {}


DRIFT = "library versions differ from the baseline's (the regression may come from the environment, not the model)"


def pair_rows(current: list[ResultRow], baseline: list[ResultRow], row: str | None = None,
              baseline_row: str | None = None, baseline_path: str = "baseline") -> list[tuple]:
    """Which current row is compared with which baseline row."""
    by_key = {r.key: r for r in baseline}

    def find(rows, key, where):
        for r in rows:
            if r.key == key:
                return r
        raise UserError(f"{where} has no row {key}{did_you_mean(key, [r.key for r in rows])} "
                        f"(it has: {', '.join(r.key for r in rows)})")

    if row is not None:
        chosen = [find(current, row, current[0].path)]
    elif baseline_row is not None:
        if len(current) != 1:
            raise UserError(f"{current[0].path} has {len(current)} rows; name the one to check with --row "
                            f"(one of: {', '.join(r.key for r in current)})")
        chosen = current
    else:
        chosen = current
    pairs = []
    for r in chosen:
        if baseline_row is not None:
            pairs.append((r, find(baseline, baseline_row, baseline_path)))
        elif r.key in by_key:
            pairs.append((r, by_key[r.key]))
        else:
            raise UserError(f"{baseline_path} has no row {r.key} to compare with; it has: "
                            f"{', '.join(by_key) or 'no rows'} (name one with --baseline-row)")
    return pairs


def compare(current: ResultRow, baseline: ResultRow, metrics: list[str] | None,
            tolerances: dict[str, Tolerance]) -> RowCheck:
    """Compare the chosen metrics (default: every metric the baseline row has).

    A chosen metric the baseline lacks is an error; one the current row lacks is put in ``skipped``
    (the caller fails the check on it unless missing metrics are allowed). Each difference gets its
    paired bootstrap interval when both rows have per-image data over the same images.
    """
    names = [m for m in METRICS if m in baseline.values] if metrics is None else list(metrics)
    for name in names:
        if name not in baseline.values:
            why = f" (status: {baseline.status})" if baseline.status not in ("", "ok") else ""
            raise UserError(f"{baseline.where}: baseline row {baseline.key} has no {name} value{why}; "
                            "re-run that metric or leave it out with --metrics")
    if not names:
        raise UserError(f"{baseline.where}: baseline row {baseline.key} has no metric value to compare")
    compared = [name for name in names if name in current.values]
    intervals, notes = paired_intervals(current, baseline, compared)
    notes = protocol_notes(current, baseline) + notes
    comparisons = tuple(Comparison(name, current.values[name], baseline.values[name],
                                   tolerances.get(name, NO_TOLERANCE), intervals.get(name)) for name in compared)
    return RowCheck(current, baseline, comparisons, tuple(n for n in names if n not in current.values), tuple(notes))


def per_image_data(row: ResultRow):
    """(PerImageData, None) from the file the row's settings name, or (None, why not)."""
    from aesthetic4k.evaluation.intervals import PerImageData

    recorded = row.settings.get("per_image_data") if isinstance(row.settings, dict) else None
    if not isinstance(recorded, str) or not recorded:
        return None, f"{row.key} ({row.path}) has no per-image data (a4k-eval --per-image FILE keeps it)"
    beside = Path(row.path).parent
    # as written (from the current folder), then from the results file's folder, then by name beside it
    found = [path for path in (Path(recorded), beside / recorded, beside / Path(recorded).name) if path.is_file()]
    if not found:
        return None, f"{row.key}: its per-image data {recorded} is not there"
    path = found[0]
    return PerImageData.load(path), None


def paired_intervals(current: ResultRow, baseline: ResultRow, names: list[str]) -> tuple[dict, list[str]]:
    """(metric -> Interval of the difference, [the line saying how differences were judged])."""
    from aesthetic4k.evaluation.intervals import BootstrapSettings, disagreeing, paired_differences

    fallback = "falls back to the plain comparison (no significance)"
    now, why = per_image_data(current)
    before, why_before = per_image_data(baseline) if now is not None else (None, None)
    if now is None or before is None:
        return {}, [f"{why or why_before}: {fallback}"]
    settings = BootstrapSettings.of(current.settings)
    if settings.resamples <= 0:
        settings = BootstrapSettings()
    foreign = sorted(set(disagreeing(now, {n: current.values[n] for n in names if n in current.values}))
                     | set(disagreeing(before, {n: baseline.values[n] for n in names if n in baseline.values})))
    intervals = paired_differences(now, before, [name for name in names if name not in foreign], settings)
    if intervals is None:
        common = len(set(now.stems) & set(before.stems))
        return {}, [f"the runs cover different images ({now.n} and {before.n}, {common} in common by stem): {fallback}"]
    for name, interval in intervals.items():     # around the rows' own difference, as a row's interval is
        offset = (current.values[name] - baseline.values[name]) - interval.estimate
        intervals[name] = replace(interval, low=interval.low + offset, high=interval.high + offset,
                                  estimate=interval.estimate + offset)
    line = (f"differences judged by a paired bootstrap over the {now.n} images both runs cover "
            f"({round(100 * settings.level)}% {settings.method} interval, {settings.resamples} resamples, "
            f"seed {settings.seed})")
    plain = [name for name in names if name not in intervals and name not in foreign]
    if plain:
        line += f"; plain comparison for {', '.join(plain)} (no per-image data)"
    if foreign:
        line += f"; plain comparison for {', '.join(foreign)} (the per-image data does not give the row's value)"
    return intervals, [line]


def protocol_notes(current: ResultRow, baseline: ResultRow) -> list[str]:
    """Raise for rows measured differently; a note when a row carries no fingerprint to check."""
    now, before = recorded_parts(current.settings), recorded_parts(baseline.settings)
    if now is not None and before is not None:
        differing = differences(now, before)
        if differing:
            raise UserError(f"{current.key} (protocol {current.protocol or '?'}) and baseline {baseline.key} "
                            f"(protocol {baseline.protocol or '?'}) were measured differently: "
                            f"{'; '.join(differing)}; refusing to compare them")
        return []
    without = [label for label, parts in (("the run", now), ("the baseline", before)) if parts is None]
    return [f"{' and '.join(without)} carries no protocol fingerprint (written by an older a4k-eval): "
            "compared without checking that both were measured the same way"]


def run_check(results, baseline, tolerance: str | None = None, metrics: str | None = None,
              row: str | None = None, baseline_row: str | None = None) -> list[RowCheck]:
    """Everything ``a4k-check`` does but printing; raises UserError on bad input."""
    current_rows = load_results(results)          # first: the plugin metrics their rows declare are registered
    baseline_rows = load_results(baseline, what="baseline file")
    tolerances = parse_tolerances(tolerance) if tolerance is not None else {}
    names = parse_metric_list(metrics) if metrics is not None else None
    pairs = pair_rows(current_rows, baseline_rows, row, baseline_row, str(Path(baseline)))
    return [compare(cur, base, names, tolerances) for cur, base in pairs]


def _interval(c: Comparison) -> str:
    if c.interval is None or not c.interval.defined:
        return "-"
    return f"[{c.interval.low:+.3g}, {c.interval.high:+.3g}]"


def _number(value: float) -> str:
    return f"{value:.6g}"


def format_report(checks: list[RowCheck]) -> str:
    """Plain-text tables, one per compared row."""
    blocks = []
    header = ["metric", "better", "current", "baseline", "difference", "interval", "tolerance", "verdict"]
    for check in checks:
        title = f"{check.current.key} ({check.current.path})  vs  baseline {check.baseline.key} ({check.baseline.path})"
        rows = [header]
        for c in check.comparisons:
            info = METRICS[c.metric]
            rows.append([c.metric, info.better, _number(c.current),
                         _number(c.baseline), f"{c.difference:+.4g}", _interval(c), str(c.tolerance), c.verdict])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = [title]
        for index, r in enumerate(rows):
            lines.append("  ".join(cell.rjust(w) if 2 <= i <= 6 else cell.ljust(w)
                                   for i, (cell, w) in enumerate(zip(r, widths))).rstrip())
            if index == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines += list(check.notes)
        if check.skipped:
            lines.append(f"{MISSING}, not compared (no value in the current row): {', '.join(check.skipped)}"
                         + (f" (status: {check.current.status})" if check.current.status not in ("", "ok") else ""))
        if check.regressions and check.version_changes:
            lines += [DRIFT + ":"] + [f"  {change}" for change in check.version_changes]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_markdown(checks: list[RowCheck]) -> str:
    """The same tables as Markdown (for $GITHUB_STEP_SUMMARY)."""
    lines = []
    for check in checks:
        lines += [f"### a4k-check: `{check.current.key}` vs baseline `{check.baseline.key}`", "",
                  "| Metric | Current | Baseline | Difference | Interval of the difference | Tolerance | Verdict |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for c in check.comparisons:
            info = METRICS[c.metric]
            verdict = f"**{c.verdict}**" if c.verdict == REGRESSION else c.verdict
            lines.append(f"| {info.label} | {_number(c.current)} | "
                         f"{_number(c.baseline)} | {c.difference:+.4g} | {_interval(c)} | {c.tolerance} | {verdict} |")
        lines += ([""] + list(check.notes)) if check.notes else []
        if check.skipped:
            lines.append(f"\n**{MISSING}**, not compared (no value in the current row): {', '.join(check.skipped)}")
        if check.regressions and check.version_changes:
            lines += ["", DRIFT[0].upper() + DRIFT[1:] + ":", ""] + [f"- `{change}`" for change in check.version_changes]
        lines.append("")
    return "\n".join(lines)
