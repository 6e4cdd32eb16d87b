"""The HTML report of one run (``a4k-eval --report DIR``): the numbers, and the pixels behind them.

4K detail is judged by looking closely, so after the summary cards and a sortable per-image
table, every image gets its prompt, a thumbnail with the inspected places outlined, a heat map of
its per-patch GLCM Score on a scale shared by all reports, and 256 x 256 crops at 1:1 of the
generated image next to the reference at the same coordinates, at the most detailed, the least
detailed and one random patch. Settings and the full status are folded away. Image files live in
``DIR/images/`` (loaded lazily); ``DIR/run.json`` keeps the run for ``a4k-report``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from aesthetic4k.html_page import escape, new_figure, page_head, page_tail, SORT_SCRIPT, svg_of
from aesthetic4k.report import html_parts as parts
from aesthetic4k.report.folder import ReportFolder
from aesthetic4k.report.glcm_scale import colour_bar_svg, scale_top
from aesthetic4k.report.run_data import register_plugins, run_settings, save_run
from aesthetic4k.report.views import build_view, per_image_budget
from aesthetic4k_metrics.registry import METRICS


def histograms_svg(per_image, names) -> str:
    from matplotlib.ticker import MaxNLocator

    columns = [(name, [v for v in (parts.number(e.get(name)) for e in per_image) if v is not None]) for name in names]
    ratio = [v for v in (parts.image_compression_ratio(e) for e in per_image) if v is not None]
    if ratio and "compression_ratio" not in names:
        columns.append(("compression_ratio", ratio))
    columns = [(name, values) for name, values in columns if values]
    if not columns:
        return ""
    figure = new_figure(3.1 * len(columns), 2.5)
    for index, (name, values) in enumerate(columns, start=1):
        axes = figure.add_subplot(1, len(columns), index)
        axes.hist(values, bins=min(30, max(5, int(len(values) ** 0.5) * 2)), color="#2f6fb2",
                  edgecolor="white", linewidth=0.6)
        mean = float(np.mean(values))
        axes.axvline(mean, color="#d9822b", linewidth=1.4)
        axes.set_title(f"{METRICS[name].label}   mean {mean:.4g}", fontsize=9)
        axes.tick_params(labelsize=7)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))          # counts of images
        for spine in ("top", "right"):
            axes.spines[spine].set_visible(False)
    figure.tight_layout()
    return svg_of(figure)


def summary_section(row: dict, n_images: int) -> str:
    tiles = [parts.metric_tile(name, value, parts.row_interval(row, name)) for name in METRICS
             if (value := parts.number(row.get(name))) is not None]
    facts = [("generator", row.get("generator")), ("dataset", row.get("dataset")), ("size", row.get("size")),
             ("images", row.get("n_images") or n_images), ("date", row.get("date")),
             ("toolkit", row.get("toolkit_version")), ("status", parts.status_line(row))]
    line = " · ".join(f"{escape(k)} <b>{escape(v)}</b>" for k, v in facts if v not in (None, ""))
    return ('<section class="summary"><h2>Summary</h2><div class="tiles">'
            + ("".join(tiles) or '<p class="note">No metric values in this run.</p>')
            + f'</div><p class="facts">{line}</p></section>')


def details_section(row: dict, settings: dict) -> str:
    return ('<section><details class="run" id="run-details"><summary>Run details: status and settings</summary>'
            + parts.run_details("This run", row, settings) + "</details></section>")


def table_section(per_image, views) -> str:
    metric, numeric, text = parts.value_columns(per_image)
    headers = ['<th class="num">#</th>', "<th>Image</th>", '<th class="num">Width</th>', '<th class="num">Height</th>']
    headers += [parts.metric_header(name) for name in metric]
    headers += ['<th class="num" data-better="lower">Compression Ratio ↓ (this image)</th>',
                '<th class="num">JPEG KB</th>', '<th class="num">Most detailed patch</th>',
                '<th class="num">Least detailed patch</th>']
    headers += [f'<th class="num">{escape(key)}</th>' for key in numeric]
    headers += [f"<th>{escape(key)}</th>" for key in text]
    rows = []
    for index, (entry, view) in enumerate(zip(per_image, views), start=1):
        image = view.runs[0]
        cells = [parts.num_cell(index, ".0f"), f'<td><a href="#img-{index}">{escape(view.stem)}</a></td>',
                 parts.num_cell(entry.get("width") or image.width or None, ".0f"),
                 parts.num_cell(entry.get("height") or image.height or None, ".0f")]
        cells += [parts.num_cell(entry.get(name)) for name in metric]
        size = parts.number(entry.get("jpeg_bytes"))
        cells += [parts.num_cell(parts.image_compression_ratio(entry), ".2f"),
                  parts.num_cell(None if size is None else size / 1000, ".0f")]
        grid = image.grid
        cells += [parts.num_cell(None if grid is None else float(grid.max()), ".3f"),
                  parts.num_cell(None if grid is None else float(grid.min()), ".3f")]
        cells += [parts.num_cell(entry.get(key)) for key in numeric]
        cells += [parts.text_cell(entry.get(key)) for key in text]
        rows.append(f'<tr data-card="img-{index}">' + "".join(cells) + "</tr>")
    return ('<section><h2>Per image</h2><p class="note">Click a header to sort (the image cards below follow '
            'the order); click a name to jump to its pictures.</p><div class="scroll tall">'
            '<table class="sortable" id="per-image"><thead><tr>' + "".join(headers) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div></section>")


def card(index: int, entry: dict, view) -> str:
    image = view.runs[0]
    scores = [f"{METRICS[name].title} {value:.4g}" for name in METRICS
              if (value := parts.number(entry.get(name))) is not None]
    title = (f'<h3>#{index} {escape(view.stem)}'
             + (f' <span class="score">{escape(" · ".join(scores))}</span>' if scores else "") + "</h3>")
    head = f'<article class="card" id="img-{index}" data-stem="{escape(view.stem)}">{title}'
    if image.error:
        return head + parts.prompt_block(view.prompt) + f'<p class="error">{escape(image.error)}</p></article>'
    rows, cols = image.grid.shape
    overview = ('<div class="overview">'
                + parts.thumb_figure(image, view.spots, f"{image.width} x {image.height} px")
                + parts.prompt_block(view.prompt)
                + parts.heat_figure(image, f"patch GLCM Score, {cols} x {rows} patches") + "</div>")
    lines = []
    for number, spot in enumerate(view.spots, start=1):
        score = float(image.grid[spot.row, spot.col])
        lines.append(parts.spot_label(number, spot, view.padded.get(spot.kind, False)))
        lines.append(parts.crop_figure(view.crops[(spot.kind, 0)], "generated", "generated", score))
        lines.append(parts.reference_crop(view, spot.kind))
    return head + '<div class="card-body">' + overview + parts.crops_box(view, lines, 2) + "</div></article>"


def write_report(run, out_dir, progress: bool = True) -> Path:
    """Write the report of ``run`` into ``out_dir`` (index.html, images/, run.json) and return the page.

    ``run`` has ``row`` (the results.csv row as a dict), ``per_image`` (dicts with ``stem``, ``file``,
    ``prompt``, ``reference``, ``width``, ``height``, ``glcm_score``, ``jpeg_bytes``, per-image metric
    values and any other per-image values; ``glcm_patches`` when the patch grid is already known) and
    ``settings`` (a dict; else the JSON in ``row["settings"]``). ``progress=False``: no progress bar.
    """
    from tqdm import tqdm

    per_image = list(getattr(run, "per_image", None) or [])
    row = dict(getattr(run, "row", None) or {})
    settings = run_settings(run)
    register_plugins(settings)
    with ReportFolder(out_dir) as folder:
        budget = per_image_budget(len(per_image))
        views = [build_view(index, [entry], folder, budget) for index, entry in
                 enumerate(tqdm(per_image, desc="report", unit="image", disable=not progress or len(per_image) < 2),
                           start=1)]
        save_run(run, folder.stage, [v.runs[0].grid for v in views])
        names = parts.value_columns(per_image)[0]
        title = f"{row.get('generator', 'run')} on {row.get('dataset', '?')} @ {row.get('size', '?')}"
        subtitle = escape(f"{len(per_image)} images" + (f" · {row['date']}" if row.get("date") else "")
                          + (f" · aesthetic4k {row['toolkit_version']}" if row.get("toolkit_version") else ""))
        histograms = histograms_svg(per_image, names)
        with open(folder.page, "w", encoding="utf-8", newline="") as handle:
            handle.write(page_head(f"Report: {title}", subtitle, parts.REPORT_STYLE))
            handle.write(summary_section(row, len(per_image)))
            handle.write(details_section(row, settings))
            if histograms:
                handle.write('<section><h2>Distribution over images</h2><figure class="hist">'
                             f"{histograms}<figcaption>Orange line: mean over images. The run's Compression "
                             "Ratio is a ratio of sums over all images (docs/protocol.md s4), not the mean of the "
                             "per-image ratios shown here.</figcaption></figure></section>")
            handle.write(table_section(per_image, views))
            handle.write('<section class="cards"><h2>Images</h2><p class="note">'
                         + escape(parts.HEAT_LEGEND.format(top=scale_top()))
                         + f'</p><div class="colourbar">{colour_bar_svg()}</div><div id="cards">')
            for index, (entry, view) in enumerate(zip(per_image, views), start=1):
                handle.write(card(index, entry, view))
            handle.write("</div></section>")
            handle.write(page_tail(SORT_SCRIPT + parts.CARD_ORDER_SCRIPT))
        return folder.publish()
