"""Two runs of the same dataset side by side (``a4k-report A B --out DIR``).

Images are matched by stem. For each, both runs' thumbnails and heat maps, the prompt, and 1:1
crops of run A, run B and the reference at the same coordinates: where A is most detailed, where
B is most detailed, where their patch scores differ most, and one random patch (the same one the
single-run reports show). The summary cards give both values and which run is better in each
metric's own direction; the per-image table gives A, B and B - A, sortable.
"""
from __future__ import annotations

from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k.html_page import SORT_SCRIPT, escape, page_head, page_tail
from aesthetic4k.report import html_parts as parts
from aesthetic4k.report.folder import ReportFolder
from aesthetic4k.report.glcm_scale import colour_bar_svg, scale_top
from aesthetic4k.report.run_data import register_plugins, run_settings
from aesthetic4k.report.views import build_view, entry_stem, per_image_budget
from aesthetic4k_metrics.registry import METRICS

RUN_NAMES = ("A", "B")


def run_labels(row_a: dict, row_b: dict) -> tuple[str, str]:
    return tuple(f"{name}: {row.get('generator', '?')}" for name, row in zip(RUN_NAMES, (row_a, row_b)))


def check_comparable(row_a: dict, row_b: dict) -> None:
    for key, what in (("dataset", "dataset"), ("size", "size")):
        a, b = str(row_a.get(key, "")), str(row_b.get(key, ""))
        if a != b:
            raise UserError(f"the runs are not comparable: A has {what} {a or '?'}, B has {b or '?'} "
                            "(compare two runs of the same dataset at the same size)")


def verdict(name: str, a: float, b: float) -> tuple[str, str]:
    """(css class, text) saying which run is better on this metric, in the metric's direction."""
    info = METRICS[name]
    if a == b:
        return "same", "same value"
    b_better = (b > a) == info.higher_is_better
    return ("better" if b_better else "worse"), f"{'B' if b_better else 'A'} better ({info.better} is better)"


def summary_section(row_a: dict, row_b: dict, labels, n_images: int) -> str:
    tiles = []
    for name in METRICS:
        a, b = parts.number(row_a.get(name)), parts.number(row_b.get(name))
        if a is None and b is None:
            continue
        shown = " · ".join(f"{'–' if v is None else f'{v:.4g}'} <small>{n}</small>" for v, n in zip((a, b), RUN_NAMES))
        css, text = verdict(name, a, b) if a is not None and b is not None else ("", "one run only")
        intervals = [(n, parts.row_interval(row, name)) for n, row in zip(RUN_NAMES, (row_a, row_b))]
        ranges = " · ".join(f"{n} [{i[0]:.4g}, {i[1]:.4g}]" for n, i in intervals if i)
        ranges = (f'<div class="interval" title="each run\'s 95% bootstrap interval over images (a4k-check '
                  f'judges the difference by a paired bootstrap)">{ranges}</div>' if ranges else "")
        tiles.append(f'<div class="tile" data-metric="{name}"><div class="label">{escape(METRICS[name].label)}</div>'
                     f'<div class="value">{shown}</div>{ranges}<div class="hint verdict {css}">{escape(text)}</div>'
                     "</div>")
    facts = [("A", labels[0].split(": ", 1)[1]), ("B", labels[1].split(": ", 1)[1]),
             ("dataset", row_a.get("dataset")), ("size", row_a.get("size")), ("images compared", n_images),
             ("status A", parts.status_line(row_a)), ("status B", parts.status_line(row_b))]
    line = " · ".join(f"{escape(k)} <b>{escape(v)}</b>" for k, v in facts if v not in (None, ""))
    return ('<section class="summary"><h2>Summary</h2><div class="tiles">'
            + ("".join(tiles) or '<p class="note">No metric values in these runs.</p>')
            + f'</div><p class="facts">{line}</p></section>')


def details_section(rows, settings, labels) -> str:
    differs = {k for k in set(settings[0]) | set(settings[1]) if settings[0].get(k) != settings[1].get(k)}
    return ('<section><details class="run" id="run-details"><summary>Run details: status and settings '
            f'(highlighted: {len(differs)} setting(s) that differ)</summary><div class="run-columns">'
            + "".join(parts.run_details(label, row, s, differs) for label, row, s in zip(labels, rows, settings))
            + "</div></details></section>")


def table_section(pairs, views) -> str:
    metric, _, _ = parts.value_columns([e for pair in pairs for e in pair])
    headers = ['<th class="num">#</th>', "<th>Image</th>"]
    for name in metric:
        headers += [parts.metric_header(name, "A "), parts.metric_header(name, "B "),
                    parts.metric_header(name, "B − A ")]
    headers += ['<th class="num" data-better="lower">A Compression Ratio ↓ (this image)</th>',
                '<th class="num" data-better="lower">B Compression Ratio ↓ (this image)</th>']
    rows = []
    for index, ((a, b), view) in enumerate(zip(pairs, views), start=1):
        cells = [parts.num_cell(index, ".0f"), f'<td><a href="#img-{index}">{escape(view.stem)}</a></td>']
        for name in metric:
            va, vb = parts.number(a.get(name)), parts.number(b.get(name))
            cells += [parts.num_cell(va), parts.num_cell(vb),
                      parts.num_cell(None if va is None or vb is None else vb - va, "+.4g")]
        cells += [parts.num_cell(parts.image_compression_ratio(a), ".2f"),
                  parts.num_cell(parts.image_compression_ratio(b), ".2f")]
        rows.append(f'<tr data-card="img-{index}">' + "".join(cells) + "</tr>")
    return ('<section><h2>Per image</h2><p class="note">Click a header to sort (the image cards below follow '
            'the order). B − A: the difference of the per-image values.</p><div class="scroll tall">'
            '<table class="sortable" id="per-image"><thead><tr>' + "".join(headers) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div></section>")


def card(index: int, view, labels) -> str:
    head = (f'<article class="card" id="img-{index}" data-stem="{escape(view.stem)}">'
            f"<h3>#{index} {escape(view.stem)}</h3>")
    thumbs, heats = [], []                   # a 2 x 2 grid: thumbnails above, heat maps below
    for label, image in zip(labels, view.runs):
        if image.error:
            thumbs.append(f'<div class="run-image"><b>{escape(label)}</b><p class="error">{escape(image.error)}</p></div>')
            heats.append("<div></div>")
            continue
        rows, cols = image.grid.shape
        thumbs.append(parts.thumb_figure(image, view.spots, f"{label}, {image.width} x {image.height} px"))
        heats.append(parts.heat_figure(image, f"{label}: patch GLCM Score, {cols} x {rows} patches"))
    overview = thumbs + heats + [parts.prompt_block(view.prompt)]
    lines = []
    for number, spot in enumerate(view.spots, start=1):
        lines.append(parts.spot_label(number, spot, view.padded.get(spot.kind, False)))
        for column, (label, image) in enumerate(zip(labels, view.runs)):
            picture = view.crops.get((spot.kind, column))
            if picture is None:
                lines.append(parts.missing_crop(f"{label}: no image"))
            else:
                lines.append(parts.crop_figure(picture, "generated", label, float(image.grid[spot.row, spot.col]),
                                               run=RUN_NAMES[column].lower()))
        lines.append(parts.reference_crop(view, spot.kind))
    crops = parts.crops_box(view, lines, 3) if view.spots else ""
    return (head + '<div class="card-body"><div class="overview pair">' + "".join(overview) + "</div>"
            + crops + "</div></article>")


def write_comparison(run_a, run_b, out_dir, progress: bool = True) -> Path:
    """Write the side-by-side page of two runs of one dataset into ``out_dir``; returns the page.

    Each run has ``row``, ``per_image`` and ``settings`` as for ``write_report`` (a RunResult, or a
    run read back with ``load_run``). ``progress=False``: no progress bar.
    """
    from tqdm import tqdm

    rows = [dict(getattr(r, "row", None) or {}) for r in (run_a, run_b)]
    check_comparable(*rows)
    settings = [run_settings(r) for r in (run_a, run_b)]
    for each in settings:
        register_plugins(each)
    by_stem_b = {entry_stem(e): e for e in run_b.per_image}
    pairs = [(a, by_stem_b[entry_stem(a)]) for a in run_a.per_image if entry_stem(a) in by_stem_b]
    stems_a = {entry_stem(e) for e in run_a.per_image}
    only_a = sorted(stems_a - set(by_stem_b))
    only_b = sorted(set(by_stem_b) - stems_a)
    if not pairs:
        raise UserError("the runs have no image in common (images are matched by file stem)")
    labels = run_labels(*rows)
    with ReportFolder(out_dir) as folder:
        budget = per_image_budget(len(pairs), runs=2)
        views = [build_view(index, list(pair), folder, budget) for index, pair in
                 enumerate(tqdm(pairs, desc="compare", unit="image", disable=not progress or len(pairs) < 2), start=1)]
        title = f"{labels[0]} vs {labels[1]} on {rows[0].get('dataset', '?')} @ {rows[0].get('size', '?')}"
        unmatched = "".join(f"<p class=\"note\">Only in {name} ({len(stems)}): {escape(', '.join(stems[:20]))}"
                            f"{' ...' if len(stems) > 20 else ''}</p>"
                            for name, stems in (("A", only_a), ("B", only_b)) if stems)
        with open(folder.page, "w", encoding="utf-8", newline="") as handle:
            handle.write(page_head(f"Comparison: {title}", escape(f"{len(pairs)} images compared"),
                                   parts.REPORT_STYLE))
            handle.write(summary_section(rows[0], rows[1], labels, len(pairs)))
            handle.write(details_section(rows, settings, labels))
            handle.write(table_section(pairs, views))
            handle.write('<section class="cards"><h2>Images</h2><p class="note">'
                         + escape(parts.HEAT_LEGEND.format(top=scale_top()))
                         + f'</p>{unmatched}<div class="colourbar">{colour_bar_svg()}</div><div id="cards">')
            for index, view in enumerate(views, start=1):
                handle.write(card(index, view, labels))
            handle.write("</div></section>")
            handle.write(page_tail(SORT_SCRIPT + parts.CARD_ORDER_SCRIPT))
        return folder.publish()
