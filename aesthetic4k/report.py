"""The HTML report of one run (``a4k-eval --report DIR``): numbers, and the pixels behind them.

4K detail is judged by zooming in, so next to the metric summary and a sortable per-image table,
every image gets a thumbnail, a heat map of its per-patch GLCM Score, and 1:1 crops (no
resampling) around its most and least detailed 64 x 64 patches. One image is decoded at a time;
only small encoded thumbnails, crops and patch-score grids are kept, so memory does not grow
with image size. Embedded images share a byte budget that keeps the page under 20 MB whatever
the number of images (200 images at 4096 included).
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aesthetic4k.errors import UserError
from aesthetic4k.html_page import data_uri, escape, new_figure, page_head, page_tail, svg_of, write_page
from metrics.registry import METRICS

PATCH = 64
THUMB_LONG_SIDE = 360
CROP_CONTEXT = 32            # pixels shown around the 64 x 64 patch in a 1:1 crop (128 x 128 in all)
REPORT_FILE = "index.html"
# Raw bytes for all embedded images; base64 adds a third, the rest of the page stays well under 1 MB.
IMAGE_BYTES_BUDGET = 13_500_000
PER_IMAGE_CEILING = 400_000
PER_IMAGE_FLOOR = 12_000
# (thumbnail quality, crop quality) tried in order until an image fits its share of the budget.
QUALITY_STEPS = ((85, 93), (75, 88), (65, 82), (55, 75), (45, 68), (35, 60), (30, 45))


@dataclass
class Crop:
    """A 1:1 crop around one patch: where the patch is, its score, the encoded pixels."""

    row: int
    col: int
    score: float
    left: int                # crop origin in image pixels
    top: int
    width: int
    height: int
    jpeg: bytes = b""

    @property
    def patch_offset(self) -> tuple[int, int]:
        return self.col * PATCH - self.left, self.row * PATCH - self.top


@dataclass
class ImageVisuals:
    """What the report keeps of one image once its pixels are gone."""

    stem: str
    width: int = 0
    height: int = 0
    thumb: bytes = b""
    thumb_size: tuple = (0, 0)
    grid: np.ndarray | None = None      # per-patch GLCM scores, patch rows x patch columns
    best: Crop | None = None
    worst: Crop | None = None
    heat: bytes = b""
    error: str = ""
    values: dict = field(default_factory=dict)


def patch_extremes(grid: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """(row, col) of the most and of the least detailed patch; ties go to the first in reading order."""
    grid = np.asarray(grid, dtype=np.float64)
    best = np.unravel_index(int(np.argmax(grid)), grid.shape)
    worst = np.unravel_index(int(np.argmin(grid)), grid.shape)
    return (int(best[0]), int(best[1])), (int(worst[0]), int(worst[1]))


def crop_around(row: int, col: int, image_width: int, image_height: int, context: int = CROP_CONTEXT):
    """The crop box (left, top, width, height) showing patch (row, col) with ``context`` pixels around it."""
    left = max(0, col * PATCH - context)
    top = max(0, row * PATCH - context)
    right = min(image_width, col * PATCH + PATCH + context)
    bottom = min(image_height, row * PATCH + PATCH + context)
    return left, top, right - left, bottom - top


def per_image_budget(n_images: int) -> int:
    return int(min(PER_IMAGE_CEILING, max(PER_IMAGE_FLOOR, IMAGE_BYTES_BUDGET / max(n_images, 1))))


def _jpeg(rgb: np.ndarray, quality: int, subsampling: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, subsampling=subsampling, optimize=True)
    return buffer.getvalue()


def _thumbnail(rgb: np.ndarray, long_side: int) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _encode_within(rgb, crops, budget: int):
    """Thumbnail and crops as JPEG, lowering quality (then thumbnail size) until they fit ``budget``.

    Best effort: two 128 x 128 crops of pure noise cannot go much under 20 kB; real images need far less.
    """
    long_side = THUMB_LONG_SIDE
    while True:
        small = _thumbnail(rgb, long_side)
        for thumb_quality, crop_quality in QUALITY_STEPS:
            thumb = _jpeg(small, thumb_quality, subsampling=2)
            # Crops keep full colour resolution (4:4:4): they are there to judge fine detail.
            encoded = [_jpeg(np.ascontiguousarray(rgb[c.top:c.top + c.height, c.left:c.left + c.width]),
                             crop_quality, subsampling=0) for c in crops]
            if len(thumb) + sum(map(len, encoded)) <= budget:
                break
        if len(thumb) + sum(map(len, encoded)) <= budget or long_side <= 120:
            return thumb, (small.shape[1], small.shape[0]), encoded
        long_side = int(long_side * 0.75)


def _number(value):
    """A float from a results/per-image value (float, int, numeric text); None when empty or not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def visualise(entry: dict, budget: int) -> ImageVisuals:
    """Decode one image, score its patches, keep its thumbnail and two 1:1 crops; drop the pixels."""
    from metrics.glcm import glcm_patch_scores
    from metrics.image_input import read_image, to_gray

    stem = str(entry.get("stem") or Path(str(entry.get("file", "?"))).stem)
    visuals = ImageVisuals(stem=stem)
    path = entry.get("file")
    if not path:
        visuals.error = "no image file recorded for this entry"
        return visuals
    try:
        decoded = read_image(path)
        grid = entry.get("glcm_patches")
        grid = np.asarray(grid, dtype=np.float64) if grid is not None else \
            np.asarray(glcm_patch_scores(to_gray(decoded.bgr)), dtype=np.float64)
    except UserError as exc:
        visuals.error = str(exc)
        return visuals
    rgb = decoded.rgb
    visuals.height, visuals.width = rgb.shape[:2]
    visuals.grid = grid
    (best_r, best_c), (worst_r, worst_c) = patch_extremes(grid)
    crops = []
    for row, col in ((best_r, best_c), (worst_r, worst_c)):
        left, top, width, height = crop_around(row, col, visuals.width, visuals.height)
        crops.append(Crop(row, col, float(grid[row, col]), left, top, width, height))
    visuals.thumb, visuals.thumb_size, encoded = _encode_within(rgb, crops, budget)
    for crop, payload in zip(crops, encoded):
        crop.jpeg = payload
    visuals.best, visuals.worst = crops
    return visuals


def heat_map_png(grid: np.ndarray, low: float, high: float) -> bytes:
    """The patch grid as a PNG with one pixel per patch (magma: dark = flat, bright = detailed)."""
    from matplotlib import colormaps
    from PIL import Image

    span = high - low if high > low else 1.0
    scaled = np.clip((np.asarray(grid, dtype=np.float64) - low) / span, 0.0, 1.0)
    rgb = (colormaps["magma"](scaled)[:, :, :3] * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def colour_scale(grids) -> tuple[float, float]:
    """One colour scale for every heat map of the run (2nd to 98th percentile of all patch scores)."""
    values = np.concatenate([g.ravel() for g in grids]) if grids else np.zeros(1)
    low, high = np.percentile(values, [2, 98])
    if high <= low:
        low, high = float(values.min()), float(values.max()) + 1e-9
    return float(low), float(high)


def colour_bar_svg(low: float, high: float) -> str:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    figure = new_figure(4.2, 0.62)
    axes = figure.add_axes([0.03, 0.52, 0.94, 0.3])
    bar = figure.colorbar(ScalarMappable(Normalize(low, high), "magma"), cax=axes, orientation="horizontal")
    bar.set_label("patch GLCM Score (flat → detailed)", fontsize=8)
    axes.tick_params(labelsize=7)
    return svg_of(figure)


# ----------------------------------------------------------------------------- page parts

def image_metric_names(per_image) -> list[str]:
    """Per-image metric columns present in the run, in the registry's order."""
    present = {key for entry in per_image for key, value in entry.items() if _number(value) is not None}
    return [name for name in METRICS if name in present]


def image_compression_ratio(entry: dict):
    """Raw RGB bytes over the image's JPEG q95 bytes (the per-image view of PROTOCOL.md s4)."""
    width, height, size = _number(entry.get("width")), _number(entry.get("height")), _number(entry.get("jpeg_bytes"))
    if not width or not height or not size:
        return None
    return width * height * 3 / size


def histograms_svg(per_image, names) -> str:
    from matplotlib.ticker import MaxNLocator

    columns = [(name, [v for v in (_number(e.get(name)) for e in per_image) if v is not None]) for name in names]
    ratio = [v for v in (image_compression_ratio(e) for e in per_image) if v is not None]
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
        info = METRICS[name]
        axes.set_title(f"{info.title} {'↑' if info.higher_is_better else '↓'}   mean {mean:.4g}", fontsize=9)
        axes.tick_params(labelsize=7)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))          # counts of images
        for spine in ("top", "right"):
            axes.spines[spine].set_visible(False)
    figure.tight_layout()
    return svg_of(figure)


def _summary_section(run, n_images: int) -> str:
    row = dict(getattr(run, "row", {}) or {})
    settings = getattr(run, "settings", None) or {}
    if not settings and isinstance(row.get("settings"), str) and row["settings"]:
        try:
            settings = json.loads(row["settings"])
        except json.JSONDecodeError:
            settings = {}
    tiles = []
    for name, info in METRICS.items():
        value = _number(row.get(name))
        if value is None:
            continue
        arrow = "higher is better" if info.higher_is_better else "lower is better"
        tiles.append(f'<div class="tile"><div class="label">{escape(info.title)}</div>'
                     f'<div class="value">{value:.4g}</div><div class="hint">{arrow}</div></div>')
    facts = [("generator", row.get("generator")), ("dataset", row.get("dataset")), ("size", row.get("size")),
             ("images", row.get("n_images") or n_images), ("toolkit", row.get("toolkit_version")),
             ("date", row.get("date")), ("status", row.get("status"))]
    fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts if v not in (None, ""))
    setting_rows = "".join(
        f"<tr><th>{escape(k)}</th><td><code>{escape(v if isinstance(v, str) else json.dumps(v, sort_keys=True))}"
        "</code></td></tr>" for k, v in sorted(settings.items()))
    return (
        '<section><h2>Summary</h2><div class="tiles">' + ("".join(tiles) or
                                                          '<p class="note">No metric values in this run.</p>')
        + '</div><div class="facts"><table class="kv">' + fact_rows + "</table>"
        + ('<table class="kv settings"><caption>settings</caption>' + setting_rows + "</table>" if setting_rows else "")
        + "</div></section>"
    )


def _table_section(per_image, visuals, names) -> str:
    headers = ['<th class="num">#</th>', "<th>Image</th>", '<th class="num">Width</th>', '<th class="num">Height</th>']
    for name in names:
        info = METRICS[name]
        headers.append(f'<th class="num" data-better="{"higher" if info.higher_is_better else "lower"}">'
                       f'{escape(info.title)} {"↑" if info.higher_is_better else "↓"}</th>')
    headers += ['<th class="num">JPEG KB</th>', '<th class="num" data-better="lower">Compression Ratio ↓</th>',
                '<th class="num" data-better="higher">Best patch</th>', '<th class="num">Flattest patch</th>']
    rows = []
    for index, (entry, vis) in enumerate(zip(per_image, visuals), start=1):
        cells = [f'<td class="num" data-value="{index}">{index}</td>',
                 f'<td><a href="#img-{index}">{escape(vis.stem)}</a></td>']
        for key in ("width", "height"):
            value = _number(entry.get(key)) or (vis.width if key == "width" else vis.height) or None
            cells.append(f'<td class="num" data-value="{"" if value is None else int(value)}">'
                         f'{"" if value is None else int(value)}</td>')
        for name in names:
            value = _number(entry.get(name))
            cells.append(f'<td class="num" data-value="{"" if value is None else repr(value)}">'
                         f'{"" if value is None else f"{value:.4g}"}</td>')
        size = _number(entry.get("jpeg_bytes"))
        ratio = image_compression_ratio(entry)
        cells.append(f'<td class="num" data-value="{"" if size is None else repr(size)}">'
                     f'{"" if size is None else f"{size / 1000:.0f}"}</td>')
        cells.append(f'<td class="num" data-value="{"" if ratio is None else repr(ratio)}">'
                     f'{"" if ratio is None else f"{ratio:.2f}"}</td>')
        for crop in (vis.best, vis.worst):
            cells.append(f'<td class="num" data-value="{"" if crop is None else repr(crop.score)}">'
                         f'{"" if crop is None else f"{crop.score:.3f}"}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ('<section><h2>Per image</h2><p class="note">Click a header to sort; click an image name to jump to '
            'its pictures.</p><div class="scroll"><table class="sortable" id="per-image"><thead><tr>'
            + "".join(headers) + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div></section>")


def _crop_figure(crop: Crop, label: str) -> str:
    x, y = crop.patch_offset
    return (f'<figure class="crop" data-patch="{crop.row},{crop.col}">'
            f'<div class="frame" style="width:{crop.width}px;height:{crop.height}px">'
            f'<img src="{data_uri(crop.jpeg, "image/jpeg")}" width="{crop.width}" height="{crop.height}" '
            f'alt="{escape(label)}"><span class="patch" style="left:{x}px;top:{y}px"></span></div>'
            f"<figcaption><b>{escape(label)}</b> {crop.score:.3f}<br>x={crop.col * PATCH}, y={crop.row * PATCH}"
            "</figcaption></figure>")


def _card(index: int, entry: dict, vis: ImageVisuals) -> str:
    title = f'<h3>#{index} {escape(vis.stem)}'
    glcm = _number(entry.get("glcm_score"))
    if glcm is not None:
        title += f' <span class="score">GLCM Score {glcm:.4f}</span>'
    title += "</h3>"
    if vis.error:
        return f'<article class="card" id="img-{index}">{title}<p class="error">{escape(vis.error)}</p></article>'
    tw, th = vis.thumb_size
    rows, cols = vis.grid.shape
    heat_w = round(cols * PATCH * tw / vis.width)
    heat_h = round(rows * PATCH * th / vis.height)
    return (
        f'<article class="card" id="img-{index}" data-stem="{escape(vis.stem)}">{title}<div class="visuals">'
        f'<figure><img class="thumb" src="{data_uri(vis.thumb, "image/jpeg")}" width="{tw}" height="{th}" '
        f'alt="{escape(vis.stem)}"><figcaption>{vis.width} x {vis.height} px</figcaption></figure>'
        f'<figure><div class="heatbox" style="width:{tw}px;height:{th}px">'
        f'<img class="heat" src="{data_uri(vis.heat, "image/png")}" width="{heat_w}" height="{heat_h}" '
        f'alt="GLCM heat map of {escape(vis.stem)}"></div><figcaption>patch GLCM Score, {cols} x {rows} patches'
        f"</figcaption></figure>"
        + '<div class="crops">' + _crop_figure(vis.best, "most detailed")
        + _crop_figure(vis.worst, "least detailed") + "</div></div></article>"
    )


REPORT_STYLE = """
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 14px; }
.tile { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.tile .label { color: var(--muted); font-size: 12px; }
.tile .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.tile .hint { color: var(--muted); font-size: 11px; }
.facts { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
table.kv { width: auto; }
table.kv th { background: none; position: static; color: var(--muted); font-weight: 500; }
table.kv td { white-space: normal; }
table.kv caption { text-align: left; font-weight: 600; padding: 4px 10px; }
.cards article.card { border-top: 1px solid var(--line); padding: 14px 0 6px; }
.cards h3 { font-size: 14px; margin: 0 0 8px; }
.cards h3 .score { color: var(--muted); font-weight: 500; margin-left: 8px; }
.visuals { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.visuals figure { margin: 0; }
.visuals img.thumb { display: block; border-radius: 4px; }
.heatbox { display: flex; align-items: flex-start; justify-content: flex-start; background: #111; border-radius: 4px; overflow: hidden; }
img.heat { image-rendering: pixelated; display: block; }
.crops { display: flex; gap: 14px; }
figure.crop { min-width: 140px; font-size: 12px; }
figure.crop figcaption { line-height: 1.35; }
.frame { position: relative; outline: 1px solid var(--line); transform-origin: top left; transition: transform .12s; }
.frame:hover { transform: scale(3); z-index: 5; box-shadow: 0 4px 18px rgba(0,0,0,.35); }
.colourbar svg { width: 420px; height: auto; }
figure.hist { margin: 0; }
figure.hist svg { width: auto; max-width: 100%; height: auto; }
.frame img { display: block; image-rendering: pixelated; }
.frame .patch { position: absolute; width: 64px; height: 64px; box-shadow: 0 0 0 1px rgba(255,255,255,.9), 0 0 0 2px rgba(0,0,0,.6); pointer-events: none; }
.error { color: var(--bad); }
#per-image td a { color: var(--accent); text-decoration: none; }
.scroll.tall { max-height: 520px; overflow-y: auto; }
"""


def write_report(run, out_dir) -> Path:
    """Write ``out_dir/index.html`` for one run and return its path.

    ``run`` has ``row`` (the results.csv row as a dict), ``per_image`` (dicts with ``stem``,
    ``file``, ``width``, ``height``, ``glcm_score``, ``jpeg_bytes`` and other per-image metric
    values; ``glcm_patches`` when the patch grid is already known) and ``settings`` (a dict).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot create the report folder ({exc.strerror or exc})") from None
    per_image = list(getattr(run, "per_image", None) or [])
    budget = per_image_budget(len(per_image))
    visuals = [visualise(entry, budget)
               for entry in tqdm(per_image, desc="report", unit="image", disable=len(per_image) < 2)]
    grids = [v.grid for v in visuals if v.grid is not None]
    low, high = colour_scale(grids)
    for vis in visuals:
        if vis.grid is not None:
            vis.heat = heat_map_png(vis.grid, low, high)

    names = image_metric_names(per_image)
    row = dict(getattr(run, "row", {}) or {})
    title = f"{row.get('generator', 'run')} on {row.get('dataset', '?')} @ {row.get('size', '?')}"
    subtitle = escape(f"{len(per_image)} images" + (f" · {row['date']}" if row.get("date") else "")
                      + (f" · aesthetic4k {row['toolkit_version']}" if row.get("toolkit_version") else ""))
    histograms = histograms_svg(per_image, names)

    def write(handle):
        handle.write(page_head(f"Report: {title}", subtitle, REPORT_STYLE))
        handle.write(_summary_section(run, len(per_image)))
        if histograms:
            handle.write('<section><h2>Distribution over images</h2><figure class="hist">'
                         f"{histograms}<figcaption>Orange line: mean over images. The run's Compression Ratio "
                         "is a ratio of sums over all images (PROTOCOL.md s4), not the mean of the per-image "
                         "ratios shown here.</figcaption></figure></section>")
        handle.write(_table_section(per_image, visuals, names))
        handle.write(f'<section class="cards"><h2>Images</h2><p class="note">Thumbnail, heat map of the '
                     "per-patch GLCM Score (one colour scale for the whole run), and 1:1 crops around the most "
                     "and least detailed 64 x 64 patch (outlined; hover a crop to magnify it 3x, pixel for pixel).</p>"
                     f'<div class="colourbar">{colour_bar_svg(low, high) if grids else ""}</div>')
        for index, (entry, vis) in enumerate(zip(per_image, visuals), start=1):
            handle.write(_card(index, entry, vis))
        handle.write("</section>")
        handle.write(page_tail())

    target = out_dir / REPORT_FILE
    write_page(target, write)
    return target
