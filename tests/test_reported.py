"""leaderboards/reported.csv: the published numbers of Aesthetic-4K papers, each traceable to its paper's table row.

The reader refuses a number that is not in the row's quoted table text, a row without paper, arXiv id, table,
row name or protocol, and an "other" protocol without its named difference; the checked-in file is read with it
and its Diffusion-4K rows are checked against the numbers docs/protocol.md publishes.
"""
import re
from pathlib import Path

import pytest

from aesthetic4k.cli.leaderboard import main
from aesthetic4k.errors import UserError
from aesthetic4k.leaderboard import shared_differences
from aesthetic4k.reported import COLUMNS, NOT_MEASURED_HERE, OTHER_PROTOCOL, PAPER_PROTOCOL, load_reported
from aesthetic4k_metrics.registry import METRICS
from tests.csv_files import write_csv
from tests.test_leaderboard import reported

REPO = Path(__file__).resolve().parents[1]
CHECKED_IN = REPO / "leaderboards" / "reported.csv"
DIFFUSION_4K = "2503.18352"


def test_checked_in_file_reads_and_every_number_is_in_its_quoted_table_row():
    rows = load_reported(CHECKED_IN)
    assert len(rows) >= 30
    for row in rows:
        quoted = re.findall(r"-?\d+(?:\.\d+)?", row.quote)
        assert row.paper_row in row.quote or row.paper_row.split(" ")[0] in row.quote, row.where
        for name, text in row.texts.items():
            assert text in quoted, (row.where, name, text)
        assert row.source.startswith(f"{row.paper}, arXiv {row.arxiv}, {row.table}")
    assert {r.arxiv for r in rows} == {DIFFUSION_4K, "2506.00433", "2510.20661", "2510.20766v2", "2511.18050v1"}


def test_only_diffusion4k_rows_follow_the_toolkit_protocol_and_match_docs_protocol():
    """The toolkit reproduces the Diffusion-4K protocol: its rows are the comparable ones, and the numbers
    docs/protocol.md publishes for them (GLCM, CR, FID, CLIPScore, Aesthetics @2048; GLCM, CR @4096) agree."""
    rows = load_reported(CHECKED_IN)
    assert {r.protocol for r in rows if r.arxiv == DIFFUSION_4K} == {PAPER_PROTOCOL}
    assert {r.protocol for r in rows if r.arxiv != DIFFUSION_4K} == {OTHER_PROTOCOL}
    assert all(r.differences for r in rows if r.arxiv != DIFFUSION_4K)
    protocol = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    published = {2048: ("glcm_score", "compression_ratio", "fid", "clip_score", "aesthetics"),
                 4096: ("glcm_score", "compression_ratio")}
    checked = 0
    for row in rows:
        if row.arxiv != DIFFUSION_4K:
            continue
        for name in published[row.size]:
            if name in row.texts:
                assert row.texts[name] in protocol, (row.where, name)
                checked += 1
    assert checked == 4 * 5 + 3 * 2
    at_4096 = {r.generator: r for r in rows if r.arxiv == DIFFUSION_4K and r.size == 4096}
    assert {g: at_4096[g].texts["compression_ratio"] for g in ("SD3-F16", "SD3-F16-finetune", "SD3-F16-WLF")} == \
        {"SD3-F16": "11.97", "SD3-F16-finetune": "11.41", "SD3-F16-WLF": "10.50"}


def test_reported_only_metrics_are_not_the_toolkit_metrics():
    assert not set(NOT_MEASURED_HERE) & set(METRICS)
    assert all(c in COLUMNS for c in [*METRICS, *NOT_MEASURED_HERE])
    assert all(m.label.endswith(("↑", "↓")) for m in NOT_MEASURED_HERE.values())


GOOD = dict(generator="Gen", fid="150.5", hpsv3="11.2", protocol="other", differences="resize not stated",
            paper="Paper B", arxiv="2511.00001v1", table="Table 2")


@pytest.mark.parametrize("change, message", [
    (dict(quote="Gen 150.5"), "hpsv3 11.2 is not in the quoted table row"),
    (dict(differences=""), "name what differs from this toolkit's protocol"),
    (dict(protocol="paper"), "a row with protocol 'paper' has no differences"),
    (dict(protocol="clean"), "protocol 'clean' must be 'paper'"),
    (dict(arxiv="arXiv:2511.1"), "is not an arXiv id"),
    (dict(paper=""), "empty paper"),
    (dict(quote=""), "empty quote"),
    (dict(fid="", hpsv3="", quote="Gen"), "no metric value"),
    (dict(size="mixed"), "size must be the benchmark size"),
    (dict(fid="nan", quote="Gen nan 11.2"), "fid: 'nan' is not a finite number"),
    (dict(n_images="about 195"), "n_images 'about 195' is not a whole number"),
])
def test_a_bad_row_is_refused_with_its_line_and_cell(tmp_path, change, message):
    row = reported(**{k: v for k, v in GOOD.items() if k not in ("fid", "hpsv3")}, fid="150.5", hpsv3="11.2")
    row.update(change)
    path = write_csv(tmp_path / "reported.csv", [reported("Fine", fid="1.5"), row], COLUMNS)
    with pytest.raises(UserError) as exc:
        load_reported(path)
    assert str(exc.value).startswith(f"{path}:3: ") and message in str(exc.value), str(exc.value)


@pytest.mark.parametrize("columns, rows, message", [
    (COLUMNS + ["source"], [reported("Gen", fid="1.5")], "unknown column(s) 'source'"),
    ([c for c in COLUMNS if c != "quote"], [reported("Gen", fid="1.5")], "missing column(s) quote"),
    (COLUMNS, [], "has a header but no rows"),
    (COLUMNS, [reported("Gen", fid="1.5"), reported("Gen", fid="2.5")], "Gen/aesthetic-4k/2048 from arXiv "
                                                                         "2503.18352 already on line 2"),
])
def test_a_bad_file_is_refused(tmp_path, columns, rows, message):
    path = write_csv(tmp_path / "reported.csv", rows, columns)
    with pytest.raises(UserError) as exc:
        load_reported(path)
    assert message in str(exc.value)


def test_the_same_model_from_two_papers_is_two_rows(tmp_path):
    path = write_csv(tmp_path / "reported.csv", [reported("Gen", fid="1.5"),
                                                 reported("Gen", fid="2.5", **{k: GOOD[k] for k in (
                                                     "protocol", "differences", "paper", "arxiv", "table")})], COLUMNS)
    assert [r.source for r in load_reported(path)] == ["Paper A, arXiv 2503.18352, Table 1",
                                                       "Paper B, arXiv 2511.00001v1, Table 2"]


def test_a_bad_reported_file_is_skipped_with_a_warning_and_the_rest_builds(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    path = write_csv(tmp_path / "reported.csv", [dict(reported("Gen", fid="1.5"), quote="Gen 9.9")], COLUMNS)
    assert main(["--results", str(tmp_path / "results"), "--reported", str(path), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"a4k-leaderboard: warning: skipped {path}:2: fid 1.5 is not in")
    assert main(["--results", str(tmp_path / "results"), "--reported", str(path), "--out", str(tmp_path),
                 "--strict"]) == 1


def test_shared_differences_are_named_once():
    class Row:
        def __init__(self, differences):
            self.differences = differences
    shared, own = shared_differences([Row("a; b; c"), Row("a; b"), Row("a; b; d; e")])
    assert shared == "a; b" and own == ["c", "", "d; e"]
    assert shared_differences([Row("x"), Row("y")]) == ("", ["x", "y"])
