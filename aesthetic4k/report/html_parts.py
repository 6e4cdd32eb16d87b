"""Page pieces shared by the run report and the comparison: cards, folded details, cells, crops, style."""
from __future__ import annotations

import json
import math

from aesthetic4k.html_page import escape
from aesthetic4k.report.crops import CROP, PATCH
from aesthetic4k_metrics.registry import METRICS

# Keys of a per-image entry that are not values to tabulate (or get their own columns).
LAYOUT_KEYS = {"stem", "file", "prompt", "reference", "glcm_patches", "patches_key", "width", "height",
               "jpeg_bytes"}
SPOT_COLOURS = {"most": "#3ddc84", "most-a": "#3ddc84", "most-b": "#36c5f0", "least": "#4a8dff",
                "difference": "#ff6b6b", "random": "#ffd24a"}


def number(value):
    """A float from a row or per-image value (float, int, numeric text); None when empty, bool or not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def image_compression_ratio(entry: dict):
    """Raw RGB bytes over the image's JPEG bytes (the per-image view of docs/protocol.md s4)."""
    width, height, size = (number(entry.get(k)) for k in ("width", "height", "jpeg_bytes"))
    if not width or not height or not size:
        return None
    return width * height * 3 / size


def value_columns(per_image) -> tuple[list[str], list[str], list[str]]:
    """(registered metrics with per-image values, other numeric keys, text keys) present in the entries."""
    metric, numeric, text = [], [], []
    keys = sorted({k for entry in per_image for k in entry} - LAYOUT_KEYS)
    for key in keys:
        values = [entry.get(key) for entry in per_image if entry.get(key) not in (None, "")]
        if not values:
            continue
        if key in METRICS and all(number(v) is not None for v in values):
            metric.append(key)
        elif all(isinstance(v, bool) or number(v) is not None for v in values):
            numeric.append(key)
        else:
            text.append(key)
    order = list(METRICS)
    return sorted(metric, key=order.index), numeric, text


def num_cell(value, digits: str = ".4g", extra: str = "") -> str:
    if isinstance(value, bool):
        value = int(value)
    value = number(value)
    if value is None:
        return f'<td class="num{extra}" data-value=""></td>'
    return f'<td class="num{extra}" data-value="{value!r}">{value:{digits}}</td>'


def text_cell(value) -> str:
    text = "" if value is None else str(value)
    return f'<td class="text" title="{escape(text)}">{escape(text)}</td>'


def metric_header(name: str, prefix: str = "") -> str:
    info = METRICS[name]
    return (f'<th class="num" data-better="{info.better}" title="{escape(info.description)}">'
            f"{escape(prefix)}{escape(info.label)}</th>")


def metric_tile(name: str, value: float, interval: tuple | None = None) -> str:
    """A metric's summary card; ``interval``: its (low, high) bootstrap interval, shown under the value."""
    info = METRICS[name]
    shown = (f'<div class="interval" title="95% bootstrap interval over images">[{interval[0]:.4g}, '
             f'{interval[1]:.4g}]</div>' if interval else "")
    return (f'<div class="tile" data-metric="{name}"><div class="label">{escape(info.label)}</div>'
            f'<div class="value">{value:.4g}</div>{shown}<div class="hint">{info.better} is better</div></div>')


def row_interval(row: dict, name: str) -> tuple | None:
    """(low, high) of a metric from its results cells, or None when the row has no interval for it."""
    from aesthetic4k.results import interval_columns

    low, high = (number(row.get(column)) for column in interval_columns(name))
    return None if low is None or high is None else (low, high)


def status_notes(row: dict) -> list[str]:
    status = str(row.get("status") or "").strip()
    return [] if status in ("", "ok") else [part.strip() for part in status.split(";") if part.strip()]


def status_line(row: dict) -> str:
    notes = status_notes(row)
    if not notes:
        return "ok"
    return f"{len(notes)} note{'s' if len(notes) > 1 else ''} (see run details)"


def settings_table(settings: dict, highlight=()) -> str:
    rows = []
    for key, value in sorted(settings.items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        mark = ' class="differs"' if key in highlight else ""
        rows.append(f"<tr{mark}><th>{escape(key)}</th><td><code>{escape(text)}</code></td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>" if rows else '<p class="note">no settings recorded</p>'


def run_details(title: str, row: dict, settings: dict, highlight=()) -> str:
    notes = status_notes(row)
    status = "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>" if notes else "<p>ok</p>"
    return (f'<div class="run-details"><h3>{escape(title)}</h3><h4>Status</h4>{status}'
            f"<h4>Settings</h4>{settings_table(settings, highlight)}</div>")


def thumb_figure(image, spots, caption: str) -> str:
    """The thumbnail with the crop windows outlined and numbered."""
    thumb = image.thumb
    scale = thumb.width / image.width
    marks = []
    for number_, spot in enumerate(spots, start=1):
        left, top = spot.origin
        style = (f"left:{left * scale:.1f}px;top:{top * scale:.1f}px;width:{CROP * scale:.1f}px;"
                 f"height:{CROP * scale:.1f}px;border-color:{SPOT_COLOURS.get(spot.kind, '#fff')}")
        marks.append(f'<span class="marker" style="{style}"><i>{number_}</i></span>')
    return (f'<figure class="thumb"><div class="thumbbox" style="width:{thumb.width}px;height:{thumb.height}px">'
            f'<img loading="lazy" src="{escape(thumb.src)}" width="{thumb.width}" height="{thumb.height}" '
            f'alt="thumbnail">{"".join(marks)}</div><figcaption>{escape(caption)}</figcaption></figure>')


def heat_figure(image, caption: str) -> str:
    thumb, heat = image.thumb, image.heat
    rows, cols = image.grid.shape
    width = round(cols * PATCH * thumb.width / image.width)
    height = round(rows * PATCH * thumb.height / image.height)
    return (f'<figure class="heat"><div class="heatbox" style="width:{thumb.width}px;height:{thumb.height}px">'
            f'<img loading="lazy" class="heat" src="{escape(heat.src)}" width="{width}" height="{height}" '
            f'alt="GLCM heat map"></div><figcaption>{escape(caption)}</figcaption></figure>')


def crop_figure(picture, kind: str, caption: str, score=None, run: str = "") -> str:
    """A 256 x 256 crop at 1:1 with the 64 x 64 patch outlined; ``kind`` is generated or reference."""
    offset = (CROP - PATCH) // 2
    run_attr = f' data-run="{run}"' if run else ""
    scored = "" if score is None else f" · patch {score:.3f}"
    return (f'<figure class="crop"><div class="frame"><img loading="lazy" data-crop="{kind}"{run_attr} '
            f'src="{escape(picture.src)}" width="{CROP}" height="{CROP}" alt="{escape(caption)} crop">'
            f'<span class="patch" style="left:{offset}px;top:{offset}px"></span></div>'
            f"<figcaption>{escape(caption)}{scored}</figcaption></figure>")


def missing_crop(text: str) -> str:
    return f'<figure class="crop missing"><div class="frame empty">{escape(text)}</div></figure>'


def reference_crop(view, kind: str) -> str:
    """The reference crop of one spot, or why there is none."""
    picture = view.crops.get((kind, "reference"))
    return crop_figure(picture, "reference", "reference") if picture is not None else missing_crop(view.reference_note)


def crops_box(view, cells: list, columns: int) -> str:
    """The grid of spot labels and crops (``columns`` crops a row), with the reference note under it."""
    note = f'<p class="note">{escape(view.reference_note)}</p>' if view.reference_note and \
        any(k[1] == "reference" for k in view.crops) else ""
    widths = " ".join(["256px"] * columns)
    return (f'<div class="crops-box"><div class="crops" style="grid-template-columns: auto {widths}">'
            + "".join(cells) + f"</div>{note}</div>")


def spot_label(number_: int, spot, padded: bool) -> str:
    x, y = spot.patch_xy
    colour = SPOT_COLOURS.get(spot.kind, "#888")
    return (f'<div class="spot-label"><b><i style="background:{colour}">{number_}</i> {escape(spot.label)}</b>'
            f"<br>patch x={x}, y={y}" + ("<br><span class=\"note\">window padded at the edge</span>" if padded else "")
            + "</div>")


def prompt_block(prompt) -> str:
    if not prompt:
        return '<p class="prompt none">no prompt</p>'
    return f'<p class="prompt"><span>prompt</span> {escape(prompt)}</p>'


HEAT_LEGEND = (
    "Heat maps: one cell per 64 x 64 patch, magma colours on one fixed scale for every report, from 0 to "
    "{top:.2f} bits, the largest GLCM Score any patch can reach (its histogram of distinct co-occurrence "
    "values cannot be spread wider over 65,536 cells and about 62,500 pixel pairs; log2(65536) = 16 is the "
    "trivial bound). Crops: 256 x 256 windows at 1:1 (no resampling) centred on the outlined patch; the "
    "checkerboard marks pixels beyond the image edge.")

REPORT_STYLE = """
.tiles { display: flex; flex-wrap: wrap; gap: 12px; }
.tile { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .value small { font-size: 13px; color: var(--muted); font-weight: 500; }
.tile .hint { color: var(--muted); font-size: 11px; }
.tile .interval { color: var(--muted); font-size: 12px; font-variant-numeric: tabular-nums; }
.tile .verdict.better { color: var(--good); } .tile .verdict.worse { color: var(--bad); }
p.facts { margin: 12px 0 0; color: var(--muted); }
p.facts b { color: var(--ink); font-weight: 600; }
details.run > summary { cursor: pointer; font-weight: 600; }
.run-columns { display: flex; flex-wrap: wrap; gap: 24px; }
.run-details { flex: 1 1 420px; min-width: 0; }
.run-details h3 { font-size: 14px; margin: 12px 0 4px; } .run-details h4 { font-size: 12px; margin: 10px 0 4px; color: var(--muted); }
table.kv { width: auto; max-width: 100%; }
table.kv th { background: none; position: static; color: var(--muted); font-weight: 500; vertical-align: top; }
table.kv td { white-space: normal; word-break: break-word; }
table.kv tr.differs th, table.kv tr.differs td { background: #fff4d6; }
table.sortable thead th { white-space: normal; vertical-align: bottom; }
td.text { max-width: 240px; overflow: hidden; text-overflow: ellipsis; }
.scroll.tall { max-height: 560px; overflow: auto; }
#per-image td a { color: var(--accent); text-decoration: none; }
.cards article.card { border-top: 1px solid var(--line); padding: 16px 0 8px; }
.cards h3 { font-size: 14px; margin: 0 0 10px; }
.cards h3 .score { color: var(--muted); font-weight: 500; margin-left: 8px; }
.card-body { display: flex; flex-wrap: wrap; gap: 22px; align-items: flex-start; }
.overview { display: flex; flex-direction: column; gap: 10px; max-width: 370px; }
.overview.pair { display: grid; grid-template-columns: repeat(2, max-content); gap: 10px 18px; max-width: none; }
.overview.pair p.prompt { grid-column: 1 / -1; max-width: 740px; }
.run-image { max-width: 360px; }
.overview figure, figure.crop { margin: 0; }
.thumbbox { position: relative; overflow: hidden; border-radius: 4px; }
.thumbbox img { display: block; }
.marker { position: absolute; border: 2px solid; box-shadow: 0 0 0 1px rgba(0,0,0,.55); pointer-events: none; }
.marker i { position: absolute; left: 1px; top: 0; font: 600 10px/1.2 system-ui, sans-serif; font-style: normal; color: #000; background: rgba(255,255,255,.85); padding: 0 3px; }
.heatbox { background: #111; border-radius: 4px; overflow: hidden; }
img.heat { image-rendering: pixelated; display: block; }
p.prompt { margin: 0; font-size: 13px; max-width: 360px; }
p.prompt span { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .4px; margin-right: 4px; }
p.prompt.none { color: var(--muted); font-style: italic; }
.crops { display: grid; gap: 10px 12px; align-items: start; }
.spot-label { font-size: 12px; line-height: 1.4; width: 150px; }
.spot-label i { display: inline-block; min-width: 16px; text-align: center; font-style: normal; color: #000; border-radius: 3px; margin-right: 2px; }
.frame { position: relative; width: 256px; height: 256px; outline: 1px solid var(--line); }
.frame img { display: block; image-rendering: pixelated; }
.frame.empty { display: flex; align-items: center; justify-content: center; color: var(--muted); font-size: 12px; background: var(--soft); text-align: center; padding: 10px; }
.frame .patch { position: absolute; width: 64px; height: 64px; box-shadow: 0 0 0 1px rgba(255,255,255,.9), 0 0 0 2px rgba(0,0,0,.6); pointer-events: none; }
figure.crop figcaption { font-size: 12px; }
.colourbar svg { width: 460px; max-width: 100%; height: auto; }
figure.hist { margin: 0; } figure.hist svg { width: auto; max-width: 100%; height: auto; }
.error { color: var(--bad); }
"""

# Keeps the image cards in the order of the per-image table after each sort.
CARD_ORDER_SCRIPT = """
(function () {
  var table = document.getElementById('per-image');
  var cards = document.getElementById('cards');
  if (!table || !cards) { return; }
  table.addEventListener('sorted', function () {
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var card = document.getElementById(row.getAttribute('data-card'));
      if (card) { cards.appendChild(card); }
    });
  });
})();
"""
