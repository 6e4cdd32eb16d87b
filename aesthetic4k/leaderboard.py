"""The leaderboard: every checked-in results.csv (plus the numbers papers published) as Markdown and HTML.

Inputs are ``leaderboards/results/*.csv`` (rows written by ``a4k-eval``) and
``leaderboards/reported.csv`` (numbers copied from papers, each with its paper, table and stated
protocol; ``aesthetic4k.reported``; it ships with the package as ``aesthetic4k.paper_results``,
so outside a checkout the papers' rows are still shown). Measured and reported rows are never
mixed in one table, so nobody mistakes a number from a paper for one this toolkit produced; reported rows whose protocol
differs from the toolkit's (or is not stated) get a table of their own with the difference named,
and a reported number is only ever ranked against rows of the same paper. Measured rows are ranked
only with rows of the same protocol (aesthetic4k.protocol); the others follow, unranked, with what
differs. Measured values carry their bootstrap interval when the row has one. Rows of the built-in
sample set (a smoke test, not a benchmark) get their own sections after the benchmarks and never
share a plot with them. The output depends on the input files only (no clock, fixed plot ids), so a
change to the README is a reviewable diff.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k.protocol import split_comparable
from aesthetic4k.reported import COLUMNS as REPORTED_COLUMNS  # noqa: F401 (the reported.csv columns, by their old name)
from aesthetic4k.reported import NOT_MEASURED_HERE, NOT_MEASURED_MARK, NOT_STATED, load_reported, metric_info
from aesthetic4k.results_schema import ResultRow, load_results
from aesthetic4k_metrics.registry import METRICS, PUBLISHED

DEFAULT_RESULTS_DIR = Path("leaderboards/results")
DEFAULT_REPORTED = Path("leaderboards/reported.csv")   # relative: a checkout's, or a project's own leaderboard
DEFAULT_OUT_DIR = Path("leaderboards")
MISSING = "–"
SMOKE_DATASETS = ("sample",)        # the built-in sample set: a smoke test, not a benchmark
NOISE_SHOWN_AS = "0.00"
# FID and patch-FID are squared distances, >= 0 in exact arithmetic; the matrix square root leaves
# them slightly negative on (near-)identical sets (-0.0002 for the reference baseline). A value in
# (-tolerance, 0) is that numerical noise: shown as 0.00 with the raw value on hover, never the best.
# KID's unbiased estimator is legitimately negative, so it has no tolerance; nor has any other metric.
NUMERICAL_NOISE = {"fid": 0.01, "patch_fid": 0.01}


@dataclass
class Collection:
    """What went into a leaderboard: usable rows, and a line per file that could not be used."""

    measured: list = field(default_factory=list)
    reported: list = field(default_factory=list)
    problems: list = field(default_factory=list)    # warnings: files skipped, duplicate rows merged
    reports: dict = field(default_factory=dict)     # row key -> link to its run report (from the output folder)


@dataclass(frozen=True)
class Group:
    """One table of the leaderboard: a dataset at one size."""

    dataset: str
    size: int
    measured: tuple                  # measured rows ranked together: one protocol (aesthetic4k.protocol)
    reported: tuple
    measured_apart: tuple = ()       # (row, what differs): measured under another protocol, not ranked with them

    @property
    def comparable(self) -> tuple:
        """Reported rows that follow the protocol this toolkit reproduces."""
        return tuple(r for r in self.reported if r.follows_toolkit_protocol)

    @property
    def apart(self) -> tuple:
        """Reported rows whose protocol differs from the toolkit's, or is not stated."""
        return tuple(r for r in self.reported if not r.follows_toolkit_protocol)

    @property
    def title(self) -> str:
        if self.dataset == "aesthetic-4k":
            return f"Aesthetic-Eval@{self.size}"
        return f"{self.dataset} @ {self.size}"

    @property
    def anchor(self) -> str:
        return "".join(ch if ch.isalnum() else "-" for ch in f"{self.dataset}-{self.size}").lower()

    @property
    def is_benchmark(self) -> bool:
        """False for the sample set (and any group whose measured rows all say "not a benchmark")."""
        if self.dataset in SMOKE_DATASETS:
            return False
        return bool(not self.measured or self.reported
                    or not all("not a benchmark" in r.status for r in self.measured))


def shipped_reported() -> Path:
    """The papers' numbers as installed with the package (``leaderboards/reported.csv`` of the repository)."""
    from importlib.resources import files

    try:
        return Path(str(files("aesthetic4k.paper_results").joinpath("reported.csv")))
    except ModuleNotFoundError:     # an editable install made before the data package existed: reinstall
        return DEFAULT_REPORTED


def default_reported() -> Path:
    """``leaderboards/reported.csv`` of the current folder when there is one, else the shipped papers' numbers."""
    return DEFAULT_REPORTED if DEFAULT_REPORTED.is_file() else shipped_reported()


def collect(results_dir=DEFAULT_RESULTS_DIR, reported_path=DEFAULT_REPORTED) -> Collection:
    """Load every ``*.csv`` of ``results_dir`` (None: no measured rows) and the reported file.

    The default reported file is :func:`default_reported`; None: no reported rows.

    A file that fails validation becomes a problem line; the other files are still used.
    """
    if results_dir is not None and not Path(results_dir).is_dir():
        raise UserError(f"{results_dir}: no such folder; put a4k-eval results.csv files there "
                        "(a4k-eval ... --out leaderboards/results/NAME.csv)")
    collection = Collection()
    newest: dict[str, ResultRow] = {}
    for path in sorted(Path(results_dir).glob("*.csv")) if results_dir is not None else []:
        try:
            rows = load_results(path)
        except UserError as exc:
            collection.problems.append(f"skipped {exc}")
            continue
        for row in rows:
            previous = newest.get(row.key)
            if previous is not None:
                kept, dropped = (row, previous) if row.date >= previous.date else (previous, row)
                collection.problems.append(
                    f"{dropped.where}: {row.key} is also in {kept.where}; kept the newer row ({kept.where})")
                row = kept
            newest[row.key] = row
    collection.measured = list(newest.values())
    if reported_path is DEFAULT_REPORTED:
        reported_path = default_reported()
    if reported_path is not None and Path(reported_path).exists():
        try:
            collection.reported = load_reported(reported_path)
        except UserError as exc:
            collection.problems.append(f"skipped {exc}")
    return collection


def _score_order(row: ResultRow):
    # Best GLCM Score first (the benchmark's detail metric), then by name: a stable order.
    glcm = row.values.get("glcm_score")
    return (glcm is None, -(glcm or 0.0), row.generator.lower(), row.source)


def _reported_order(row):
    # One paper's rows together (papers by arXiv id), in the order the paper prints them (the file's).
    return (row.arxiv, row.line)


def groups_of(collection: Collection) -> list[Group]:
    """One group per dataset and size: the benchmark first, the sample set last."""
    keys = {(r.dataset, r.size) for r in collection.measured + collection.reported}
    ordered = sorted(keys, key=lambda k: (k[0] in SMOKE_DATASETS, k[0] != "aesthetic-4k", k[0], k[1]))
    groups = []
    for dataset, size in ordered:
        measured = sorted((r for r in collection.measured if (r.dataset, r.size) == (dataset, size)),
                          key=_score_order)
        reported = sorted((r for r in collection.reported if (r.dataset, r.size) == (dataset, size)),
                          key=_reported_order)
        ranked, apart = split_comparable(measured)
        groups.append(Group(dataset, size, tuple(ranked), tuple(reported), tuple(apart)))
    return groups


def metric_columns(rows) -> list[str]:
    """The five published metrics always; the toolkit's other metrics, then metrics only papers report
    (``NOT_MEASURED_HERE``), when some row has them."""
    rows = list(rows)
    extras = [name for name in [*METRICS, *NOT_MEASURED_HERE]
              if name not in PUBLISHED and any(name in r.values for r in rows)]
    return list(PUBLISHED) + extras


def metric_heading(name: str) -> str:
    """The column heading; a metric this toolkit does not compute carries the not-measured-here mark."""
    label = metric_info(name).label
    return f"{label} {NOT_MEASURED_MARK}" if name in NOT_MEASURED_HERE else label


NOT_MEASURED_NOTE = (f"{NOT_MEASURED_MARK} not measured here: a metric this toolkit does not compute, "
                     "shown as the paper printed it")


def format_number(value: float) -> str:
    """Four significant digits, trailing zeros kept: 0.7512, 11.23, 31.00, 0.001234."""
    if abs(value) >= 10000:
        return f"{value:.0f}"
    return f"{value:#.4g}".rstrip(".")


def is_noise(name: str, value: float) -> bool:
    """A value just below zero of a metric that cannot be negative (``NUMERICAL_NOISE``)."""
    return -NUMERICAL_NOISE.get(name, 0.0) < value < 0.0


def display_value(row: ResultRow, name: str) -> str:
    if name not in row.values:
        return MISSING
    if is_noise(name, row.values[name]):
        return NOISE_SHOWN_AS
    # Reported numbers keep the digits the paper printed ("31.50"), measured ones are rounded.
    return row.texts[name] if row.source else format_number(row.values[name])


def interval_text(row: ResultRow, name: str) -> str:
    """A measured value's 95% bootstrap interval, "[low, high]", or "" for a row without one."""
    if name not in row.intervals:
        return ""
    low, high = row.intervals[name]
    return f"[{format_number(low)}, {format_number(high)}]"


def best_values(rows, names) -> dict[str, float]:
    """Best value of each metric among ``rows``; only where two or more rows can be compared.

    Numerical noise counts as 0 here, so a noise value below zero never beats a true 0.
    """
    best = {}
    for name in names:
        present = [0.0 if is_noise(name, r.values[name]) else r.values[name] for r in rows if name in r.values]
        if len(present) >= 2:
            best[name] = max(present) if metric_info(name).higher_is_better else min(present)
    return best


def best_per_paper(rows, names) -> dict:
    """arXiv id -> best values among that paper's rows: a reported number is ranked only within its paper,
    whose rows share one protocol, never against another paper's."""
    papers = sorted({r.arxiv for r in rows})
    return {paper: best_values([r for r in rows if r.arxiv == paper], names) for paper in papers}


def is_best(row: ResultRow, name: str, best: dict) -> bool:
    value = row.values.get(name)
    return value is not None and name in best and value == best[name] and not is_noise(name, value)


def protocol_label(settings: dict) -> str:
    """How the numbers were measured, short: the FID resize protocol and the Compression Ratio mode.

    Looks at top-level settings and one level down (settings grouped per metric), e.g.
    ``{"protocol": "paper", "cr_mode": "jpeg95"}`` -> ``fid=paper, cr=jpeg95``.
    """
    def find(*keys):
        for key in keys:
            if isinstance(settings.get(key), (str, int, float)) and settings[key] != "":
                return settings[key]
        for value in settings.values():
            if isinstance(value, dict):
                for key in keys:
                    if isinstance(value.get(key), (str, int, float)) and value[key] != "":
                        return value[key]
        return None

    parts = []
    for label, keys in (("fid", ("fid_protocol", "protocol")), ("cr", ("cr_mode",))):
        found = find(*keys)
        if found is not None:
            parts.append(f"{label}={found}")
    return ", ".join(parts)


def display_date(date: str) -> str:
    """The calendar day of an ISO date or timestamp; other text as written."""
    if len(date) >= 10 and date[4] == "-" and date[7] == "-":
        return date[:10]
    return date


def latest_date(rows) -> str:
    dates = [display_date(r.date) for r in rows if r.date]
    return max(dates) if dates else ""


# ----------------------------------------------------------------------------- Markdown

def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _md_metric_cells(row, names, best, notes) -> list[str]:
    cells = []
    for name in names:
        text = display_value(row, name)
        if is_best(row, name, best):
            text = f"**{text}**"
        if interval_text(row, name):
            text += f" {interval_text(row, name)}"
        elif name in row.values and is_noise(name, row.values[name]):
            text += "†"
            notes.append(f"- † {row.generator}: {metric_info(name).title} is {row.values[name]!r} in its results "
                         f"file, numerical noise (between -{NUMERICAL_NOISE[name]} and 0 for a metric that "
                         "cannot be negative), shown as 0.00")
        cells.append(text)
    return cells


def _md_generator(row: ResultRow, reports: dict) -> str:
    link = reports.get(row.key)
    return f"[{_md_cell(row.generator)}]({link})" if link else row.generator


def render_markdown(collection: Collection) -> str:
    groups = groups_of(collection)
    latest = latest_date(collection.measured)
    lines = [
        "# Aesthetic-4K leaderboard",
        "",
        "Generated by `make leaderboard` (`a4k-leaderboard`) from `leaderboards/results/*.csv` and "
        "`leaderboards/reported.csv`; edit those files, not this one.",
        "",
        f"Latest measured result: {latest or 'none yet'}. "
        "↑ higher is better, ↓ lower is better. **Bold**: the best value of a column among the rows "
        "of one table (measured and reported rows are ranked separately; a reported number only against "
        "rows of the same paper). A linked generator name "
        "opens that run's report. Metric definitions: docs/protocol.md sections 3-7. An interactive, "
        "sortable version with plots is in `index.html`.",
        "",
    ]
    if not groups:
        lines += ["No results yet: add `a4k-eval ... --out leaderboards/results/NAME.csv` files.", ""]
    for group in groups:
        heading = group.title if group.is_benchmark else f"{group.title} (smoke test, not a benchmark)"
        lines += [f"## {heading}", "", f"Dataset `{group.dataset}`, size {group.size} px."
                  + ("" if group.is_benchmark else " The built-in sample set checks that the toolkit runs; "
                     "its numbers say nothing about a model."), ""]
        names = metric_columns(group.measured + group.comparable)
        lines += ["### Measured by this toolkit", ""]
        if group.measured:
            best = best_values(group.measured, names)
            header = ["Generator", "Images"] + [metric_heading(n) for n in names] + \
                     ["Protocol", "Toolkit", "Date"]
            align = ["l", "r"] + ["r"] * len(names) + ["l", "l", "l"]
            notes = []
            rows = [[_md_generator(r, collection.reports), "" if r.n_images is None else str(r.n_images)]
                    + _md_metric_cells(r, names, best, notes)
                    + [protocol_label(r.settings) or MISSING, r.toolkit_version or MISSING,
                       display_date(r.date) or MISSING]
                    for r in group.measured]
            lines += _md_table(header, align, rows)
            if notes:
                lines += [""] + notes
            if any(r.intervals for r in group.measured):
                lines += ["", INTERVAL_NOTE]
            status = [f"- {r.generator}: {r.status}" for r in group.measured if r.status not in ("", "ok")]
            if status:
                lines += ["", "Status of the runs (metrics that did not run, notes):", ""] + status
        else:
            lines += ["No measured results yet."]
        lines.append("")
        if group.measured_apart:
            lines += ["### Measured by this toolkit under another protocol (not ranked with the table above)", ""]
            lines += _md_apart_table(group.measured_apart, names, collection.reports) + [""]
        if group.comparable:
            lines += ["### Reported in papers, same protocol as this toolkit (not measured by this toolkit)", ""]
            lines += _md_comparable_table(group.comparable, names) + [""]
        if group.apart:
            lines += ["### Reported in papers, other or unstated protocol (not comparable with the tables above)",
                      "", "One table per paper, with what differs from the protocol this toolkit reproduces; a "
                      "paper's rows are ranked only against each other.", ""]
            for arxiv in dict.fromkeys(r.arxiv for r in group.apart):
                lines += _md_paper_table([r for r in group.apart if r.arxiv == arxiv]) + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


INTERVAL_NOTE = ("[low, high]: the 95% interval of a seeded bootstrap over the run's images (the same resamples "
                 "for every metric), the size of the number's sample noise.")


def _md_apart_table(apart, names, reports) -> list[str]:
    """Measured rows of another protocol: each with what differs from the ranked rows' protocol, unranked."""
    header = ["Generator", "Images"] + [metric_heading(n) for n in names] + ["Differs from the ranked rows"]
    body = [[_md_generator(r, reports), "" if r.n_images is None else str(r.n_images)]
            + _md_metric_cells(r, names, {}, []) + [differs] for r, differs in apart]
    return _md_table(header, ["l", "r"] + ["r"] * len(names) + ["l"], body)


def reported_source(row) -> str:
    """Paper, arXiv id, table and the row's name as printed: where to find the number."""
    return f'{row.source}, row "{row.paper_row}"'


def _md_comparable_table(rows, names) -> list[str]:
    best = best_per_paper(rows, names)
    header = ["Generator"] + [metric_heading(n) for n in names] + ["Source"]
    body = [[r.generator] + _md_metric_cells(r, names, best[r.arxiv], []) + [reported_source(r)] for r in rows]
    return _md_table(header, ["l"] + ["r"] * len(names) + ["l"], body)


def stated_protocol(row) -> str:
    """Resize, patch recipe, FID implementation and image count, as the paper states them."""
    parts = [f"resize: {row.resize or NOT_STATED}", f"FID implementation: {row.fid_implementation or NOT_STATED}",
             f"images: {row.n_images if row.n_images is not None else NOT_STATED}"]
    if row.patch_recipe:
        parts.insert(1, f"patch recipe: {row.patch_recipe}")
    return "; ".join(parts)


def shared_differences(rows) -> tuple[str, list[str]]:
    """The differences all ``rows`` share (leading "; "-separated parts), and what each row adds to them."""
    split = [r.differences.split("; ") for r in rows]
    shared = 0
    while all(len(parts) > shared and parts[shared] == split[0][shared] for parts in split):
        shared += 1
    return "; ".join(split[0][:shared]), ["; ".join(parts[shared:]) for parts in split]


def _md_paper_table(rows) -> list[str]:
    """One paper's rows: its stated protocol and shared differences once, then the table."""
    names = [name for name in metric_columns(rows) if any(name in r.values for r in rows)]
    best = best_per_paper(rows, names)[rows[0].arxiv]
    shared, own = shared_differences(rows)
    stated = list(dict.fromkeys(stated_protocol(r) for r in rows))
    lines = [f"#### {rows[0].paper}, arXiv {rows[0].arxiv}", "", f"As the paper states it: {' | '.join(stated)}.", ""]
    if shared:
        lines += [f"Differs from this toolkit's protocol: {shared}.", ""]
    extra = any(own)
    header = ["Generator"] + [metric_heading(n) for n in names] + (["Also differs"] if extra else []) + ["Table, row"]
    body = [[r.generator] + _md_metric_cells(r, names, best, []) + ([text or MISSING] if extra else [])
            + [f'{r.table}, row "{r.paper_row}"'] for r, text in zip(rows, own)]
    lines += _md_table(header, ["l"] + ["r"] * len(names) + ["l"] * (2 if extra else 1), body)
    if any(n in NOT_MEASURED_HERE for n in names):
        lines += ["", f"- {NOT_MEASURED_NOTE}"]
    return lines
