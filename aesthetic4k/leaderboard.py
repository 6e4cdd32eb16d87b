"""The leaderboard: every checked-in results.csv (plus the paper's reported numbers) as Markdown and HTML.

Inputs are ``leaderboards/results/*.csv`` (rows written by ``a4k-eval``) and
``leaderboards/reported.csv`` (numbers copied from papers, each with its source). Measured and
reported rows are never mixed in one table, so nobody mistakes a number from a paper for one this
toolkit produced. The output depends on the input files only (no clock, fixed plot ids), so a
change to the README is a reviewable diff.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k.html_page import escape, new_figure, page, svg_of, write_page
from aesthetic4k.results_schema import ResultRow, load_results
from metrics.registry import METRICS, PUBLISHED

DEFAULT_RESULTS_DIR = Path("leaderboards/results")
DEFAULT_REPORTED = Path("leaderboards/reported.csv")
DEFAULT_OUT_DIR = Path("leaderboards")
REPORTED_COLUMNS = ["generator", "dataset", "size", *METRICS, "source"]
MISSING = "–"
LEADERBOARD_STYLE = "td.source { white-space: normal; min-width: 300px; font-size: 12px; }"


@dataclass
class Collection:
    """What went into a leaderboard: usable rows, and a line per file that could not be used."""

    measured: list = field(default_factory=list)
    reported: list = field(default_factory=list)
    problems: list = field(default_factory=list)


@dataclass(frozen=True)
class Group:
    """One table of the leaderboard: a dataset at one size."""

    dataset: str
    size: int
    measured: tuple
    reported: tuple

    @property
    def title(self) -> str:
        if self.dataset == "aesthetic-4k":
            return f"Aesthetic-Eval@{self.size}"
        return f"{self.dataset} @ {self.size}"

    @property
    def anchor(self) -> str:
        return "".join(ch if ch.isalnum() else "-" for ch in f"{self.dataset}-{self.size}").lower()


def collect(results_dir=DEFAULT_RESULTS_DIR, reported_path=DEFAULT_REPORTED) -> Collection:
    """Load every ``*.csv`` of ``results_dir`` (None: no measured rows) and the reported file.

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
    if reported_path is not None and Path(reported_path).exists():
        try:
            reported = load_results(reported_path, REPORTED_COLUMNS, what="reported-results file")
            unsourced = [r for r in reported if not r.source]
            if unsourced:
                raise UserError(f"{unsourced[0].where}: a reported row needs its source (paper, table)")
            collection.reported = reported
        except UserError as exc:
            collection.problems.append(f"skipped {exc}")
    return collection


def _score_order(row: ResultRow):
    # Best GLCM Score first (the benchmark's detail metric), then by name: a stable order.
    glcm = row.values.get("glcm_score")
    return (glcm is None, -(glcm or 0.0), row.generator.lower(), row.source)


def groups_of(collection: Collection) -> list[Group]:
    keys = {(r.dataset, r.size) for r in collection.measured + collection.reported}
    ordered = sorted(keys, key=lambda k: (k[0] != "aesthetic-4k", k[0], k[1]))
    groups = []
    for dataset, size in ordered:
        measured = sorted((r for r in collection.measured if (r.dataset, r.size) == (dataset, size)),
                          key=_score_order)
        reported = sorted((r for r in collection.reported if (r.dataset, r.size) == (dataset, size)),
                          key=_score_order)
        groups.append(Group(dataset, size, tuple(measured), tuple(reported)))
    return groups


def metric_columns(rows) -> list[str]:
    """The five published metrics always, extra metrics only when some row has them."""
    rows = list(rows)
    extras = [name for name in METRICS if name not in PUBLISHED and any(name in r.values for r in rows)]
    return list(PUBLISHED) + extras


def metric_heading(name: str) -> str:
    info = METRICS[name]
    return f"{info.title} {'↑' if info.higher_is_better else '↓'}"


def format_number(value: float) -> str:
    """Four significant digits, trailing zeros kept: 0.7512, 11.23, 31.00, 0.001234."""
    if abs(value) >= 10000:
        return f"{value:.0f}"
    return f"{value:#.4g}".rstrip(".")


def display_value(row: ResultRow, name: str) -> str:
    if name not in row.values:
        return MISSING
    # Reported numbers keep the digits the paper printed ("31.50"), measured ones are rounded.
    return row.texts[name] if row.source else format_number(row.values[name])


def best_values(rows, names) -> dict[str, float]:
    """Best value of each metric among ``rows``; only where two or more rows can be compared."""
    best = {}
    for name in names:
        present = [r.values[name] for r in rows if name in r.values]
        if len(present) >= 2:
            best[name] = max(present) if METRICS[name].higher_is_better else min(present)
    return best


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


def _md_metric_cells(row, names, best) -> list[str]:
    cells = []
    for name in names:
        text = display_value(row, name)
        if name in best and row.values.get(name) == best[name]:
            text = f"**{text}**"
        cells.append(text)
    return cells


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
        "of one table (measured and reported rows are ranked separately). Metric definitions: "
        "PROTOCOL.md sections 3-7. An interactive, sortable version with plots is in `index.html`.",
        "",
    ]
    if not groups:
        lines += ["No results yet: add `a4k-eval ... --out leaderboards/results/NAME.csv` files.", ""]
    for group in groups:
        lines += [f"## {group.title}", "", f"Dataset `{group.dataset}`, size {group.size} px.", ""]
        names = metric_columns(group.measured + group.reported)
        lines += ["### Measured by this toolkit", ""]
        if group.measured:
            best = best_values(group.measured, names)
            header = ["Generator", "Images"] + [metric_heading(n) for n in names] + \
                     ["Protocol", "Toolkit", "Date"]
            align = ["l", "r"] + ["r"] * len(names) + ["l", "l", "l"]
            rows = [[r.generator, "" if r.n_images is None else str(r.n_images)]
                    + _md_metric_cells(r, names, best)
                    + [protocol_label(r.settings) or MISSING, r.toolkit_version or MISSING,
                       display_date(r.date) or MISSING]
                    for r in group.measured]
            lines += _md_table(header, align, rows)
            notes = [f"- {r.generator}: {r.status}" for r in group.measured if r.status not in ("", "ok")]
            if notes:
                lines += ["", "Status of metrics that did not run:", ""] + notes
        else:
            lines += ["No measured results yet."]
        lines.append("")
        if group.reported:
            lines += ["### Reported in papers (not measured by this toolkit)", ""]
            best = best_values(group.reported, names)
            header = ["Generator"] + [metric_heading(n) for n in names] + ["Source"]
            align = ["l"] + ["r"] * len(names) + ["l"]
            rows = [[r.generator] + _md_metric_cells(r, names, best) + [r.source] for r in group.reported]
            lines += _md_table(header, align, rows) + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------- HTML

def _plot(groups, x_name: str, y_name: str) -> str:
    """Scatter of two metrics, one colour per dataset/size; filled = measured, hollow = reported."""
    from matplotlib.lines import Line2D

    figure = new_figure(6.4, 4.4)
    axes = figure.add_subplot(1, 1, 1)
    palette = ["#2f6fb2", "#d9822b", "#2e9958", "#b23a48", "#7a52a6", "#8c6d31", "#3a8f9c", "#6b6b6b"]
    handles, plotted = [], 0
    for index, group in enumerate(groups):
        colour = palette[index % len(palette)]
        used = False
        for rows, marker, filled in ((group.measured, "o", True), (group.reported, "D", False)):
            points = [(r.values[x_name], r.values[y_name], r.generator) for r in rows
                      if x_name in r.values and y_name in r.values]
            for x, y, label in points:
                axes.scatter([x], [y], s=46, marker=marker, zorder=3, linewidths=1.6,
                             facecolors=colour if filled else "white", edgecolors=colour)
                axes.annotate(label, (x, y), xytext=(5, 4), textcoords="offset points", fontsize=7.5,
                              color="#333333")
                used = True
                plotted += 1
        if used:
            handles.append(Line2D([], [], marker="s", linestyle="", color=colour, label=group.title))
    handles += [Line2D([], [], marker="o", linestyle="", color="#555555", label="measured"),
                Line2D([], [], marker="D", linestyle="", markerfacecolor="white", color="#555555",
                       label="reported in a paper")]
    if plotted == 0:
        axes.text(0.5, 0.5, "no result has both values yet", ha="center", va="center",
                  transform=axes.transAxes, color="#777777")
    for name, set_label in ((x_name, axes.set_xlabel), (y_name, axes.set_ylabel)):
        info = METRICS[name]
        set_label(f"{info.title} ({'higher' if info.higher_is_better else 'lower'} is better)")
    axes.grid(True, color="#e3e7ec", linewidth=0.8, zorder=0)
    axes.margins(0.12)
    for spine in ("top", "right"):
        axes.spines[spine].set_visible(False)
    axes.legend(handles=handles, fontsize=8, frameon=False, loc="best")
    return svg_of(figure)


def _html_row(row: ResultRow, group: Group, names, best) -> str:
    kind = "reported" if row.source else "measured"
    cells = [f'<td><span class="badge {kind}">{kind}</span></td>',
             f'<td data-value="{escape(group.title)}">{escape(group.title)}</td>',
             f"<td>{escape(row.generator)}</td>",
             f'<td class="num" data-value="{"" if row.n_images is None else row.n_images}">'
             f'{"" if row.n_images is None else row.n_images}</td>']
    for name in names:
        if name in row.values:
            is_best = name in best and row.values[name] == best[name]
            cells.append(f'<td class="num{" best" if is_best else ""}" data-value="{row.values[name]!r}">'
                         f"{escape(display_value(row, name))}</td>")
        else:
            cells.append(f'<td class="num" data-value="" title="{escape(row.status)}">{MISSING}</td>')
    cells += [f"<td>{escape(protocol_label(row.settings))}</td>",
              f"<td>{escape(row.toolkit_version)}</td>",
              f"<td>{escape(display_date(row.date))}</td>",
              f'<td class="source">{escape(row.source)}</td>']
    return f'<tr class="{kind}">' + "".join(cells) + "</tr>"


def render_html(collection: Collection) -> str:
    groups = groups_of(collection)
    everything = collection.measured + collection.reported
    names = metric_columns(everything)
    latest = latest_date(collection.measured)
    headers = ['<th>Kind</th>', '<th>Benchmark</th>', '<th>Generator</th>', '<th class="num">Images</th>']
    for name in names:
        info = METRICS[name]
        headers.append(f'<th class="num" data-metric="{name}" data-better='
                       f'"{"higher" if info.higher_is_better else "lower"}" title="{escape(info.description)}">'
                       f"{escape(metric_heading(name))}</th>")
    headers += ["<th>Protocol</th>", "<th>Toolkit</th>", "<th>Date</th>", "<th>Source</th>"]
    body_rows = []
    # Measured rows first, reported ones after: the default order never interleaves the two.
    for kind in ("measured", "reported"):
        for group in groups:
            rows = getattr(group, kind)
            best = best_values(rows, names)
            body_rows += [_html_row(r, group, names, best) for r in rows]
    plots = ""
    if everything:
        plots = (
            '<section><h2>Detail and fidelity</h2><div class="plots">'
            f"<figure>{_plot(groups, 'compression_ratio', 'glcm_score')}"
            "<figcaption>GLCM Score against Compression Ratio: more local texture is up and to the left."
            "</figcaption></figure>"
            f"<figure>{_plot(groups, 'fid', 'clip_score')}"
            "<figcaption>FID against CLIPScore: closer to the real images (left) and to the prompt (up)."
            "</figcaption></figure></div></section>"
        )
    table = (
        '<section><h2>All results</h2><p class="note">Click a column header to sort; click again to '
        "reverse. <b>Bold</b>: best value of its benchmark among measured rows (reported rows ranked "
        "separately). Rows marked <span class=\"badge reported\">reported</span> are numbers printed in "
        "papers, not measured by this toolkit.</p><div class=\"scroll\">"
        '<table class="sortable" id="results"><thead><tr>' + "".join(headers) + "</tr></thead><tbody>"
        + "".join(body_rows) + "</tbody></table></div></section>"
    )
    versions = sorted({r.toolkit_version for r in collection.measured if r.toolkit_version})
    subtitle = (f"{len(collection.measured)} measured and {len(collection.reported)} reported results"
                f" &middot; latest measured result {escape(latest or 'none yet')}"
                + (f" &middot; toolkit {escape(', '.join(versions))}" if versions else ""))
    return page("Aesthetic-4K leaderboard", subtitle, plots + table, extra_style=LEADERBOARD_STYLE)


def build(results_dir=DEFAULT_RESULTS_DIR, reported_path=DEFAULT_REPORTED, out_dir=DEFAULT_OUT_DIR) -> Collection:
    """Write ``README.md`` and ``index.html`` into ``out_dir``; returns what was used and what was skipped."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: output folder does not exist")
    collection = collect(results_dir, reported_path)
    markdown = render_markdown(collection)
    html = render_html(collection)
    write_page(out_dir / "README.md", lambda handle: handle.write(markdown))
    write_page(out_dir / "index.html", lambda handle: handle.write(html))
    return collection
