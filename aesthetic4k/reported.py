"""Numbers that papers published on Aesthetic-4K: the schema of ``leaderboards/reported.csv`` and its reader.

Each row is one model at one size as one paper printed it, with the paper, arXiv id, table and row
name it was copied from, the table row's text as read (``quote``: every number of the row must appear
in it, so a typo between the two is caught on loading), and the evaluation protocol as the paper
states it. ``protocol`` is ``paper`` when the row follows the protocol this toolkit reproduces (the
Diffusion-4K paper's, docs/protocol.md), ``other`` when it differs or is not stated; then
``differences`` names what differs. Papers also report metrics this toolkit does not compute
(``NOT_MEASURED_HERE``): they are kept, and every table marks them as not measured here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k.results import KEY_COLUMNS, read_rows
from aesthetic4k.results_schema import ResultRow, parse_metric_cell, parse_size
from aesthetic4k_metrics.registry import METRICS


@dataclass(frozen=True)
class ReportedMetric:
    """A metric papers report and this toolkit does not compute; the same display fields as ``MetricInfo``."""

    name: str
    title: str
    higher_is_better: bool
    description: str

    @property
    def better(self) -> str:
        return "higher" if self.higher_is_better else "lower"

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def label(self) -> str:
        return f"{self.title} {self.arrow}"


NOT_MEASURED_HERE: dict[str, ReportedMetric] = {m.name: m for m in [
    ReportedMetric("longclip_score", "Long-CLIP score", True,
                   "CLIP score computed with Long-CLIP (long captions), not with CLIP ViT-B/16 as CLIPScore here"),
    ReportedMetric("fg_clip", "FG-CLIP", True, "fine-grained CLIP image-text score"),
    ReportedMetric("imagereward", "ImageReward", True, "human-preference reward model score"),
    ReportedMetric("hpsv3", "HPSv3", True, "Human Preference Score v3"),
    ReportedMetric("pickscore", "PickScore", True, "Pick-a-Pic preference score"),
    ReportedMetric("artimuse", "ArtiMuse", True, "ArtiMuse aesthetic score (MLLM based)"),
    ReportedMetric("q_align", "Q-Align", True, "Q-Align quality score (LMM based)"),
    ReportedMetric("musiq", "MUSIQ", True, "MUSIQ no-reference image quality"),
]}
NOT_MEASURED_MARK = "‡"


def metric_info(name: str):
    """Display information of a metric column: the registry's, or a reported-only metric's."""
    return METRICS[name] if name in METRICS else NOT_MEASURED_HERE[name]


PAPER_PROTOCOL, OTHER_PROTOCOL = "paper", "other"
PROTOCOL_COLUMNS = ["protocol", "differences", "resize", "patch_recipe", "fid_implementation"]
CITATION_COLUMNS = ["paper", "arxiv", "table", "paper_row", "quote"]
COLUMNS = KEY_COLUMNS + ["n_images", *METRICS, *NOT_MEASURED_HERE] + PROTOCOL_COLUMNS + CITATION_COLUMNS
REQUIRED = KEY_COLUMNS + ["protocol", *CITATION_COLUMNS]
ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}(v\d+)?")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
NOT_STATED = "not stated"


@dataclass(frozen=True)
class ReportedRow(ResultRow):
    """A results row copied from a paper, with the paper's stated protocol and where the numbers are."""

    protocol: str = ""
    differences: str = ""          # what differs from this toolkit's protocol ("" when protocol is "paper")
    resize: str = ""               # how the paper resized images for FID, in its words
    patch_recipe: str = ""         # crops per image, size, seed, same coordinates or not
    fid_implementation: str = ""
    paper: str = ""
    arxiv: str = ""
    table: str = ""
    paper_row: str = ""            # the row's name exactly as the paper prints it
    quote: str = ""                # the table row as read: the name and its numbers

    @property
    def follows_toolkit_protocol(self) -> bool:
        return self.protocol == PAPER_PROTOCOL

    @property
    def protocol_text(self) -> str:
        if self.follows_toolkit_protocol:
            return "the Diffusion-4K paper protocol this toolkit reproduces (docs/protocol.md)"
        return self.differences


def citation(paper: str, arxiv: str, table: str) -> str:
    return f"{paper}, arXiv {arxiv}, {table}"


def _cell(cells: dict, column: str) -> str:
    return (cells.get(column) or "").strip()


def _row(cells: dict, path, line: int) -> ReportedRow:
    where = f"{path}:{line}"
    for column in REQUIRED:
        if not _cell(cells, column):
            raise UserError(f"{where}: empty {column} (a reported number needs its paper, arXiv id, table, row "
                            "name, the quoted table row and the protocol)")
    size = parse_size(_cell(cells, "size"), where)
    if not isinstance(size, int):
        raise UserError(f"{where}: size must be the benchmark size in pixels, not {size!r}")
    protocol, differences = _cell(cells, "protocol"), _cell(cells, "differences")
    if protocol not in (PAPER_PROTOCOL, OTHER_PROTOCOL):
        raise UserError(f"{where}: protocol {protocol!r} must be {PAPER_PROTOCOL!r} (the protocol this toolkit "
                        f"reproduces) or {OTHER_PROTOCOL!r}")
    if (protocol == OTHER_PROTOCOL) != bool(differences):
        raise UserError(f"{where}: " + ("name what differs from this toolkit's protocol in 'differences'"
                                        if differences == "" else
                                        "a row with protocol 'paper' has no differences; use protocol 'other'"))
    if not ARXIV_ID.fullmatch(_cell(cells, "arxiv")):
        raise UserError(f"{where}: arxiv {_cell(cells, 'arxiv')!r} is not an arXiv id like 2503.18352 or 2511.18050v1")
    quoted = set(NUMBER.findall(_cell(cells, "quote")))
    values, texts = {}, {}
    for name in [*METRICS, *NOT_MEASURED_HERE]:
        value = parse_metric_cell(_cell(cells, name), f"{where}: {name}")
        if value is not None:
            if _cell(cells, name) not in quoted:
                raise UserError(f"{where}: {name} {_cell(cells, name)} is not in the quoted table row "
                                f"{_cell(cells, 'quote')!r}")
            values[name], texts[name] = value, _cell(cells, name)
    if not values:
        raise UserError(f"{where}: no metric value")
    n_images = None
    if _cell(cells, "n_images"):
        if not _cell(cells, "n_images").isdigit():
            raise UserError(f"{where}: n_images {_cell(cells, 'n_images')!r} is not a whole number")
        n_images = int(_cell(cells, "n_images"))
    return ReportedRow(
        generator=_cell(cells, "generator"), dataset=_cell(cells, "dataset"), size=size, values=values, texts=texts,
        n_images=n_images, source=citation(_cell(cells, "paper"), _cell(cells, "arxiv"), _cell(cells, "table")),
        path=str(path), line=line, protocol=protocol, differences=differences,
        **{c: _cell(cells, c) for c in ("resize", "patch_recipe", "fid_implementation", *CITATION_COLUMNS)})


def load_reported(path) -> list[ReportedRow]:
    """Read and check ``reported.csv``; raises ``UserError`` naming the file, line and cell of the first problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such reported-results file")
    header, rows = read_rows(path)
    if not header:
        raise UserError(f"{path}: empty reported-results file (no header)")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise UserError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; expected only {', '.join(COLUMNS)}")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    missing = [c for c in REQUIRED if c not in header]
    if duplicated or missing:
        raise UserError(f"{path}: " + (f"column(s) {', '.join(duplicated)} appear more than once" if duplicated
                                       else f"missing column(s) {', '.join(missing)}"))
    if not rows:
        raise UserError(f"{path}: reported-results file has a header but no rows")
    reported, first_line = [], {}
    for line, cells in enumerate(rows, start=2):
        row = _row(cells, path, line)
        identity = (row.key, row.arxiv)
        if identity in first_line:
            raise UserError(f"{path}:{line}: {row.key} from arXiv {row.arxiv} already on line {first_line[identity]}")
        first_line[identity] = line
        reported.append(row)
    return reported
