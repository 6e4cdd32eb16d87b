"""The leaderboard as one self-contained HTML page: plots of the benchmark, sortable tables.

The plots and the main table hold benchmark rows only; the sample set (a smoke test) has its own
small table after them. Every row shows the key, the metrics and a link to the run's report, one
line high whatever its content; a toggle opens a detail row with protocol, toolkit, date, status
and source. A table that is wider than its card folds its optional columns (the extra metrics,
then the image count) into the detail rows, one at a time, until it fits; it unfolds them again
when the window grows.

:func:`build` writes the leaderboard's two files, this page and the Markdown table.
"""
from __future__ import annotations

import os
from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k.html_page import SORT_SCRIPT, escape, new_figure, page, svg_of, write_page
from aesthetic4k.leaderboard import (DEFAULT_OUT_DIR, DEFAULT_REPORTED, DEFAULT_RESULTS_DIR, MISSING,
                                     NOT_MEASURED_NOTE, NUMERICAL_NOISE, Collection, Group, best_per_paper,
                                     best_values, collect, display_date, display_value, groups_of, interval_text,
                                     is_best, is_noise, latest_date, metric_columns, metric_heading, protocol_label,
                                     render_markdown, reported_source, stated_protocol)
from aesthetic4k.reported import NOT_MEASURED_HERE, metric_info
from aesthetic4k.results_schema import ResultRow
from aesthetic4k_metrics.registry import METRICS, PUBLISHED

STYLE = """
table.board { table-layout: auto; }
table.board small.interval { color: #6b7280; font-size: 11px; white-space: nowrap; }
table.board td, table.board th { padding: 6px 8px; }
table.board thead th { white-space: normal; vertical-align: bottom; line-height: 1.25; }
table.board tbody tr.main td { height: 36px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
table.board td.generator { max-width: 200px; }
table.board td.benchmark { max-width: 190px; }
table.board td.differs { max-width: 200px; }
table.board td.paper { max-width: 120px; }
td.noise { text-decoration: underline dotted; cursor: help; }
button.more { border: 1px solid var(--line); background: var(--paper); border-radius: 4px; width: 24px;
              height: 22px; padding: 0; cursor: pointer; color: var(--muted); font-size: 11px; }
button.more[aria-expanded=true] { background: var(--soft); color: var(--ink); }
tr.detail td { background: var(--soft); white-space: normal; font-size: 12px; padding: 8px 14px 10px 44px; }
tr.detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 0; }
tr.detail dt { color: var(--muted); } tr.detail dd { margin: 0; }
tr.detail .folded-value { display: none; }
td.report a { color: var(--accent); text-decoration: none; }
section.smoke { font-size: 13px; }
section.smoke h2 { font-size: 15px; }
"""

DETAIL_SCRIPT = """
(function () {
  // Fold optional columns (lowest priority first) into the detail rows until the table fits its card.
  function fit(table) {
    var order = (table.getAttribute('data-fold-order') || '').split(' ').filter(Boolean);
    order.forEach(function (column) { table.classList.remove('fold-' + column); });
    var box = table.parentElement;
    for (var i = 0; i < order.length && box.scrollWidth > box.clientWidth; i++) {
      table.classList.add('fold-' + order[i]);
    }
  }
  var tables = document.querySelectorAll('table[data-fold-order]');
  function fitAll() { Array.prototype.forEach.call(tables, fit); }
  fitAll();
  window.addEventListener('resize', fitAll);
  Array.prototype.forEach.call(document.querySelectorAll('button.more'), function (button) {
    button.addEventListener('click', function (event) {
      event.stopPropagation();
      var row = document.getElementById(button.getAttribute('aria-controls'));
      var open = button.getAttribute('aria-expanded') !== 'true';
      row.hidden = !open;
      button.setAttribute('aria-expanded', open ? 'true' : 'false');
      button.textContent = open ? '\\u25BE' : '\\u25B8';
    });
  });
})();
"""


def _plot(groups, x_name: str, y_name: str) -> str:
    """Scatter of two metrics, one colour per benchmark and size; filled = measured, hollow = reported."""
    from matplotlib.lines import Line2D

    figure = new_figure(6.4, 4.4)
    axes = figure.add_subplot(1, 1, 1)
    palette = ["#2f6fb2", "#d9822b", "#2e9958", "#b23a48", "#7a52a6", "#8c6d31", "#3a8f9c", "#6b6b6b"]
    handles, plotted = [], 0
    for index, group in enumerate(groups):
        colour = palette[index % len(palette)]
        used = False
        for rows, marker, filled in ((group.measured, "o", True), (group.comparable, "D", False)):
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
                       label="reported in a paper, same protocol")]
    if plotted == 0:
        axes.text(0.5, 0.5, "no benchmark result has both values yet", ha="center", va="center",
                  transform=axes.transAxes, color="#777777")
    for name, set_label in ((x_name, axes.set_xlabel), (y_name, axes.set_ylabel)):
        info = metric_info(name)
        set_label(f"{info.title} ({info.better} is better)")
    axes.grid(True, color="#e3e7ec", linewidth=0.8, zorder=0)
    axes.margins(0.12)
    for spine in ("top", "right"):
        axes.spines[spine].set_visible(False)
    axes.legend(handles=handles, fontsize=8, frameon=False, loc="best")
    return svg_of(figure)


IMAGES = "images"


def foldable(names) -> list[str]:
    """Columns a narrow table may fold into its detail rows, first folded first: the extras, then Images."""
    return [name for name in reversed(names) if name not in PUBLISHED] + [IMAGES]


def fold_style(columns) -> str:
    rules = [f"table.fold-{c} [data-col={c}] {{ display: none; }} "
             f"table.fold-{c} tr.detail .folded-value[data-col={c}] {{ display: contents; }}" for c in columns]
    return "\n".join(rules)


def _metric_cell(row: ResultRow, name: str, best: dict, column: str) -> str:
    if name not in row.values:
        return f'<td class="num"{column} data-value="" title="{escape(row.status)}">{MISSING}</td>'
    value = row.values[name]
    if is_noise(name, value):
        return (f'<td class="num noise"{column} data-value="0.0" title="raw value {value!r}: numerical noise '
                f'(between -{NUMERICAL_NOISE[name]} and 0 for a metric that cannot be negative)">'
                f"{escape(display_value(row, name))}</td>")
    best_class = " best" if is_best(row, name, best) else ""
    interval = interval_text(row, name)
    shown = escape(display_value(row, name)) + (f' <small class="interval" title="95% bootstrap interval over '
                                                f'images">{escape(interval)}</small>' if interval else "")
    return f'<td class="num{best_class}"{column} data-value="{value!r}">{shown}</td>'


def _details(row: ResultRow, folded) -> str:
    """The detail row: the values of foldable columns (shown once folded), then protocol, toolkit, date, ...

    A reported row shows its protocol as the paper states it, the difference from the toolkit's, and
    where the numbers are: paper, arXiv id, table, the row's name and the quoted table row."""
    order = [*METRICS, *NOT_MEASURED_HERE]
    values = []
    for column in sorted(folded, key=lambda c: (c == IMAGES, c in order and order.index(c))):
        label = "Images" if column == IMAGES else metric_heading(column)
        text = ("" if row.n_images is None else str(row.n_images)) if column == IMAGES else display_value(row, column)
        values.append(f'<div class="folded-value" data-col="{column}"><dt>{escape(label)}</dt>'
                      f"<dd>{escape(text or MISSING)}</dd></div>")
    if row.source:
        items = [("protocol" if row.follows_toolkit_protocol else "differs from this toolkit's protocol",
                  row.protocol_text), ("as the paper states it", stated_protocol(row)),
                 ("source", reported_source(row)), ("quoted table row", row.quote)]
        if any(name in NOT_MEASURED_HERE for name in row.values):
            items.append(("note", NOT_MEASURED_NOTE))
    else:
        items = [("protocol", protocol_label(row.settings)), ("protocol fingerprint", row.protocol),
                 ("toolkit", row.toolkit_version),
                 ("date", display_date(row.date)), ("status", row.status), ("results file", row.path)]
    return ("<dl>" + "".join(values) + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items if v)
            + "</dl>")


def _rows(row: ResultRow, group: Group, names, best, links, row_id: str, differs: bool) -> str:
    kind = "reported" if row.source else "measured"
    link = links.get(row.key)
    report = f'<a href="{escape(link)}">report</a>' if link else ""
    cells = [f'<td><button type="button" class="more" aria-expanded="false" aria-controls="{row_id}" '
             f'title="protocol, toolkit, date, status, source">&#9656;</button></td>',
             # the table of other protocols holds reported rows only: it names each row's paper instead
             (f'<td class="paper" data-value="{escape(row.arxiv)}" title="{escape(row.paper)}, arXiv '
              f'{escape(row.arxiv)}">{escape(row.paper.split(" (")[0])}</td>' if differs
              else f'<td><span class="badge {kind}">{kind}</span></td>'),
             f'<td class="benchmark" data-value="{escape(group.title)}" title="{escape(group.title)}">'
             f"{escape(group.title)}</td>",
             f'<td class="generator" title="{escape(row.generator)}">{escape(row.generator)}</td>',
             f'<td class="num" data-col="{IMAGES}" data-value="{"" if row.n_images is None else row.n_images}">'
             f'{"" if row.n_images is None else row.n_images}</td>']
    folded = foldable(names)
    cells += [_metric_cell(row, name, best, f' data-col="{name}"' if name in folded else "") for name in names]
    if differs:
        cells.append(f'<td class="differs" title="{escape(row.differences)}">{escape(row.differences)}</td>')
    else:
        cells.append(f'<td class="report" data-value="{escape(link or "")}">{report}</td>')
    return (f'<tr class="main {kind}">' + "".join(cells) + "</tr>"
            f'<tr class="detail" id="{row_id}" hidden><td colspan="{len(cells)}">{_details(row, folded)}</td></tr>')


def _table(table_id: str, blocks, names, links, differs: bool = False) -> str:
    """One sortable table. ``blocks``: (group, rows, best) in display order, ``best(row)`` its ranking's best
    values; ``differs``: a column naming each row's difference from the toolkit's protocol, instead of Report."""
    folded = foldable(names)
    headers = ['<th data-nosort aria-label="details"></th>', "<th>Paper</th>" if differs else "<th>Kind</th>",
               "<th>Benchmark</th>",
               "<th>Generator</th>", f'<th class="num" data-col="{IMAGES}">Images</th>']
    for name in names:
        info = metric_info(name)
        column = f' data-col="{name}"' if name in folded else ""
        note = f" ({NOT_MEASURED_NOTE})" if name in NOT_MEASURED_HERE else ""
        headers.append(f'<th class="num"{column} data-metric="{name}" data-better="{info.better}" '
                       f'title="{escape(info.description + note)}">{escape(metric_heading(name))}</th>')
    headers.append("<th>Differs from this toolkit's protocol</th>" if differs else "<th>Report</th>")
    body, count = [], 0
    for group, rows, best in blocks:
        for row in rows:
            count += 1
            body.append(_rows(row, group, names, best(row), links, f"{table_id}-detail-{count}", differs))
    return (f'<div class="scroll"><table class="sortable board" id="{table_id}" data-fold-order="{" ".join(folded)}">'
            "<thead><tr>" + "".join(headers)
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>")


def _blocks(groups, kind: str, names) -> list:
    """(group, rows, best) for one kind of row: measured rows ranked among measured rows of their benchmark,
    reported rows ("comparable", "apart") only among rows of the same paper."""
    blocks = []
    for group in groups:
        rows = getattr(group, kind)
        if kind == "measured":
            best = best_values(rows, names)
            blocks.append((group, rows, lambda row, best=best: best))
        else:
            per_paper = best_per_paper(rows, names)
            blocks.append((group, rows, lambda row, per_paper=per_paper: per_paper[row.arxiv]))
    return blocks


def render_html(collection: Collection) -> str:
    groups = groups_of(collection)
    benchmark = [g for g in groups if g.is_benchmark]
    smoke = [g for g in groups if not g.is_benchmark]
    latest = latest_date(collection.measured)
    links = collection.reports
    parts = []
    if any(g.measured or g.comparable for g in benchmark):
        parts.append(
            '<section><h2>Detail and fidelity (benchmark results)</h2><div class="plots">'
            f"<figure>{_plot(benchmark, 'compression_ratio', 'glcm_score')}"
            "<figcaption>GLCM Score against Compression Ratio: more local texture is up and to the left."
            "</figcaption></figure>"
            f"<figure>{_plot(benchmark, 'fid', 'clip_score')}"
            "<figcaption>FID against CLIPScore: closer to the real images (left) and to the prompt (up). "
            "Reported rows of another protocol are not plotted.</figcaption></figure></div></section>")
    legend = ("Click a column header to sort; click again to reverse; &#9656; opens a row's protocol, toolkit, "
              "date, status and source, and the columns that did not fit the window. <b>Bold</b>: best value of "
              "its benchmark among measured rows (a reported number is ranked only against rows of the same "
              "paper). Rows marked <span class=\"badge reported\">reported</span> are numbers printed in papers "
              "that follow the protocol this toolkit reproduces, not measured by this toolkit. A dotted 0.00 is a "
              "value a hair below zero (numerical noise; hover for the raw value), never ranked best.")
    if benchmark:
        names = metric_columns([r for g in benchmark for r in g.measured + g.comparable])
        blocks = _blocks(benchmark, "measured", names) + _blocks(benchmark, "comparable", names)
        parts.append(f'<section><h2>Benchmark results</h2><p class="note">{legend}</p>'
                     + _table("results", blocks, names, links) + "</section>")
    else:
        parts.append('<section><h2>Benchmark results</h2><p class="note">No benchmark results yet.</p></section>')
    measured_apart = [g for g in groups if g.measured_apart]
    if measured_apart:
        names = metric_columns([r for g in measured_apart for r, _ in g.measured_apart])
        blocks = [(g, tuple(r for r, _ in g.measured_apart), lambda row: {}) for g in measured_apart]
        listed = "".join(f"<li>{escape(g.title)}, {escape(r.generator)}: {escape(differs)}</li>"
                         for g in measured_apart for r, differs in g.measured_apart)
        parts.append('<section><h2>Measured under another protocol</h2><p class="note">Rows measured by this '
                     "toolkit with settings that change the numbers by definition (protocol fingerprint), "
                     "compared with the rows ranked above; they are not ranked with them. What differs:</p>"
                     f'<ul class="note">{listed}</ul>'
                     + _table("measured-apart", blocks, names, links) + "</section>")
    apart = [g for g in benchmark if g.apart]
    if apart:
        names = metric_columns([r for g in apart for r in g.apart])
        parts.append('<section><h2>Reported with another or unstated protocol</h2><p class="note">'
                     "Numbers printed in later papers whose evaluation protocol differs from the one this toolkit "
                     "reproduces, or is not stated: they are not comparable with the table above, and each row "
                     "names the difference. A paper's rows are ranked only against each other. &#9656; opens the "
                     "protocol as the paper states it, the paper, table and row, and the quoted table row. "
                     f"{escape(NOT_MEASURED_NOTE)}.</p>"
                     + _table("reported-apart", _blocks(apart, "apart", names), names, links, differs=True)
                     + "</section>")
    if smoke:
        names = metric_columns([r for g in smoke for r in g.measured + g.reported])
        blocks = _blocks(smoke, "measured", names) + _blocks(smoke, "comparable", names)
        parts.append('<section class="smoke"><h2>Sample set (smoke test, not a benchmark)</h2><p class="note">'
                     "Runs on the built-in sample set check that the toolkit works; with a handful of images "
                     "their numbers say nothing about a model, so they are neither plotted nor ranked with "
                     "the benchmark.</p>" + _table("smoke-results", blocks, names, links) + "</section>")
    versions = sorted({r.toolkit_version for r in collection.measured if r.toolkit_version})
    subtitle = (f"{len(collection.measured)} measured and {len(collection.reported)} reported results"
                f" &middot; latest measured result {escape(latest or 'none yet')}"
                + (f" &middot; toolkit {escape(', '.join(versions))}" if versions else ""))
    every = metric_columns(collection.measured + collection.reported)
    return page("Aesthetic-4K leaderboard", subtitle, "".join(parts), extra_style=STYLE + fold_style(foldable(every)),
                script=SORT_SCRIPT + DETAIL_SCRIPT)


def report_links(collection: Collection, out_dir) -> dict:
    """Row key -> link (relative to ``out_dir``, or a URL) to the report its settings name, where one exists."""
    from aesthetic4k.report.run_data import REPORT_FILE, find_report

    links = {}
    for row in collection.measured:
        found = find_report(row.settings.get("report"), row.path)
        if isinstance(found, str):
            links[row.key] = found
        elif found is not None:
            links[row.key] = Path(os.path.relpath(found / REPORT_FILE, out_dir)).as_posix()
    return links


def build(results_dir=DEFAULT_RESULTS_DIR, reported_path=DEFAULT_REPORTED, out_dir=DEFAULT_OUT_DIR) -> Collection:
    """Write ``README.md`` and ``index.html`` into ``out_dir`` (created); returns what was used and the warnings."""
    out_dir = Path(out_dir)
    collection = collect(results_dir, reported_path)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from None
    collection.reports = report_links(collection, out_dir)
    markdown = render_markdown(collection)
    html = render_html(collection)
    write_page(out_dir / "README.md", lambda handle: handle.write(markdown))
    write_page(out_dir / "index.html", lambda handle: handle.write(html))
    return collection
