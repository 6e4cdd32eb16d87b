"""Pieces shared by the self-contained HTML pages (leaderboard, run report).

The pages load nothing from the network: style, script, plots and images are all inline.
Plots are drawn with matplotlib (Agg, no display) into SVG with a fixed id salt and no date,
so the same numbers always give the same bytes.
"""
from __future__ import annotations

import html
import io

# The sortable-table behaviour: click (or Enter on) a header to sort by that column; click again to
# reverse. Cells sort by their data-value (numbers) or their text; empty cells always sort last.
# A header with data-better="higher" sorts best-first on the first click. A row of class "detail"
# (an expandable detail row) travels with the row above it; a header with data-nosort is left
# alone. After sorting, the table fires a "sorted" event.
SORT_SCRIPT = """
(function () {
  function cellKey(cell) {
    var raw = cell.getAttribute('data-value');
    if (raw === null) { raw = cell.textContent.trim(); }
    if (raw === '') { return null; }
    var number = Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }
  function sortTable(table, index, th) {
    var state = th.getAttribute('aria-sort');
    var ascending;
    if (state === 'ascending') { ascending = false; }
    else if (state === 'descending') { ascending = true; }
    else { ascending = th.getAttribute('data-better') !== 'higher'; }
    var body = table.tBodies[0];
    var rows = Array.prototype.filter.call(body.rows, function (row) { return !row.classList.contains('detail'); });
    rows.forEach(function (row, position) {
      var next = row.nextElementSibling;
      row.__position = position;
      row.__detail = next && next.classList.contains('detail') ? next : null;
    });
    rows.sort(function (a, b) {
      var x = cellKey(a.cells[index]), y = cellKey(b.cells[index]);
      if (x === null && y === null) { return a.__position - b.__position; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var order = 0;
      if (typeof x === typeof y) { order = x < y ? -1 : (x > y ? 1 : 0); }
      else { order = typeof x === 'number' ? -1 : 1; }
      if (!ascending) { order = -order; }
      return order !== 0 ? order : a.__position - b.__position;
    });
    rows.forEach(function (row) { body.appendChild(row); if (row.__detail) { body.appendChild(row.__detail); } });
    Array.prototype.forEach.call(th.parentNode.cells, function (other) { other.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
    table.dispatchEvent(new CustomEvent('sorted', {detail: {column: index, ascending: ascending}}));
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      if (th.hasAttribute('data-nosort')) { return; }
      th.tabIndex = 0;
      th.addEventListener('click', function () { sortTable(table, index, th); });
      th.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); sortTable(table, index, th); }
      });
    });
  });
})();
"""

BASE_STYLE = """
:root { --ink: #1d232b; --muted: #5d6875; --line: #dde2e8; --accent: #2f6fb2; --paper: #ffffff;
        --soft: #f4f6f9; --good: #1d7a46; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: var(--soft); }
header.top { background: #18202a; color: #f3f5f8; padding: 22px 32px 18px; }
header.top h1 { margin: 0 0 4px; font-size: 22px; font-weight: 650; letter-spacing: .2px; }
header.top p { margin: 0; color: #b9c3cf; }
main { padding: 20px 32px 40px; max-width: 1500px; margin: 0 auto; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
          margin: 0 0 20px; }
h2 { font-size: 16px; margin: 0 0 12px; }
.note { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; }
thead th { background: #eef1f5; position: sticky; top: 0; z-index: 1; font-weight: 600; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th[data-nosort] { cursor: default; }
table.sortable thead th:hover { background: #e2e8ef; }
table.sortable thead th[aria-sort=ascending]::after { content: " \\25B2"; color: var(--accent); font-size: 10px; }
table.sortable thead th[aria-sort=descending]::after { content: " \\25BC"; color: var(--accent); font-size: 10px; }
tbody tr:hover { background: #f7f9fc; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 11px; font-weight: 600; }
.badge.measured { background: #e3f1e8; color: var(--good); }
.badge.reported { background: #fdf0dc; color: #8a5300; }
tr.reported td { color: #4b5560; font-style: italic; }
.best { font-weight: 700; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
.plots figure { margin: 0; flex: 1 1 460px; }
.plots svg { width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.scroll { overflow-x: auto; }
"""


def escape(text) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def svg_of(figure) -> str:
    """The figure as inline SVG text (no XML prolog), identical bytes for identical figures."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "aesthetic4k", "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buffer.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def new_figure(width_in: float, height_in: float, **kwargs):
    """A figure on the Agg canvas (never a GUI backend, never pyplot's global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=100, **kwargs)
    FigureCanvasAgg(figure)
    return figure


def page_head(title: str, subtitle: str, extra_style: str = "") -> str:
    """Everything up to the page body; ``subtitle`` is HTML (already escaped by the caller)."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>{BASE_STYLE}{extra_style}</style>\n</head>\n<body>\n"
        f"<header class=\"top\"><h1>{escape(title)}</h1><p>{subtitle}</p></header>\n<main>\n"
    )


def page_tail(script: str = SORT_SCRIPT) -> str:
    return f"</main>\n<script>{script}</script>\n</body>\n</html>\n"


def page(title: str, subtitle: str, body: str, extra_style: str = "", script: str = SORT_SCRIPT) -> str:
    return page_head(title, subtitle, extra_style) + body + "\n" + page_tail(script)


def write_page(path, write) -> None:
    """Write a generated page atomically (``atomic.write_atomic``)."""
    from aesthetic4k.atomic import write_atomic
    from aesthetic4k.errors import UserError

    try:
        write_atomic(path, write)
    except (PermissionError, FileNotFoundError, NotADirectoryError) as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None
