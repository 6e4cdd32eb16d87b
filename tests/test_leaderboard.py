"""make leaderboard: tables per dataset/size, directions, bold best, reported rows apart, the sample set apart,
numerical noise, report links, bad files, exit status, determinism."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aesthetic4k.cli.leaderboard import main
from aesthetic4k.leaderboard import REPORTED_COLUMNS, collect, render_markdown
from aesthetic4k.leaderboard_page import render_html
from aesthetic4k.results import COLUMNS
from aesthetic4k_metrics.registry import METRICS, PUBLISHED
from tests.csv_files import write_csv as write_rows

REPO = Path(__file__).resolve().parents[1]


def write_csv(path, rows, columns=COLUMNS):
    return write_rows(path, rows, columns)


def reported(generator, size=2048, paper="Paper A", arxiv="2503.18352", table="Table 1", protocol="paper",
             differences="", **values):
    """A reported.csv row: every value quoted in the table row, as the reader requires."""
    texts = {name: str(value) for name, value in values.items()}
    return {"generator": generator, "dataset": "aesthetic-4k", "size": str(size), **texts, "protocol": protocol,
            "differences": differences, "paper": paper, "arxiv": arxiv, "table": table, "paper_row": generator,
            "quote": " ".join([generator, *texts.values()])}


def result(generator, dataset="aesthetic-4k", size=2048, date="2025-07-01T09:30:00", **values):
    cells = {"generator": generator, "dataset": dataset, "size": str(size), "n_images": "8",
             "settings": json.dumps({"fid_protocol": "paper", "cr_mode": "jpeg95"}),
             "toolkit_version": "0.1.0", "date": date}
    cells.update({k: repr(v) if isinstance(v, float) else str(v) for k, v in values.items()})
    return cells


@pytest.fixture
def board(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    write_csv(results / "baselines.csv", [
        result("upscale", glcm_score=0.61, compression_ratio=13.2, fid=55.5, clip_score=30.9, aesthetics=5.5),
        result("reference", glcm_score=0.78, compression_ratio=10.4, fid=12.25, clip_score=29.8,
               date="2025-07-03"),
        result("upscale", size=4096, glcm_score=0.55, compression_ratio=14.0, status="fid unavailable: no weights"),
    ])
    write_csv(results / "mine.csv", [
        result("mygen", glcm_score=0.70, compression_ratio=12.0, fid=40.0, clip_score=31.7, aesthetics=6.1,
               kid=0.0123, date="2025-07-02"),
    ])
    write_csv(results / "smoke.csv", [
        result("smokegen", dataset="sample", glcm_score=0.83, compression_ratio=6.3, fid=-0.0002,
               status="sample set: smoke test, not a benchmark"),
    ])
    reported_file = write_csv(tmp_path / "reported.csv", [
        reported("SD3-F16", glcm_score="0.75", fid="43.82", clip_score="31.50"),
        reported("SD3-F16-WLF", glcm_score="0.79", fid="40.18", clip_score="34.04"),
        # two later papers with their own protocols: shown apart, each ranked only within itself
        reported("NewGen", paper="Paper B", arxiv="2511.00001v1", table="Table 2", protocol="other",
                 differences="CLIP is Long-CLIP; resize not stated", fid="150.5", longclip_score="35.1", hpsv3="11.2"),
        reported("SD3-F16-WLF", paper="Paper B", arxiv="2511.00001v1", table="Table 2", protocol="other",
                 differences="CLIP is Long-CLIP; resize not stated; model variant not stated", fid="152.4",
                 longclip_score="33.0", hpsv3="8.9"),
        reported("OtherGen", paper="Paper C", arxiv="2510.00002", table="Table 4", protocol="other",
                 differences="patch recipe not stated", fid="140.0", patch_fid="24.0"),
    ], REPORTED_COLUMNS)
    out = tmp_path / "out"
    out.mkdir()
    return results, reported_file, out


def build(board):
    results, reported, out = board
    status = main(["--results", str(results), "--reported", str(reported), "--out", str(out)])
    return status, (out / "README.md").read_text(encoding="utf-8"), (out / "index.html").read_text(encoding="utf-8")


def markdown_tables(text):
    """Section title -> list of tables; a table is a list of {header: cell} dicts."""
    tables, current_title, header, rows, titles = {}, None, None, None, []
    for line in text.splitlines() + [""]:
        level = len(line) - len(line.lstrip("#"))
        if 2 <= level <= 4 and line[level:level + 1] == " ":
            titles = (titles if level > 2 else [])[:level - 2] + [line[level:].strip()]
            current_title = " / ".join(titles)
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if header is None:
                header, rows = cells, []
            elif not set("".join(cells)) <= set("-: "):
                rows.append(dict(zip(header, cells)))
        elif header is not None:
            tables.setdefault(current_title, []).append(rows)
            header = None
    return tables


def test_markdown_tables_per_dataset_and_size(board):
    status, readme, _ = build(board)
    assert status == 0
    tables = markdown_tables(readme)
    apart = "Aesthetic-Eval@2048 / Reported in papers, other or unstated protocol (not comparable with the tables above)"
    assert list(tables) == ["Aesthetic-Eval@2048 / Measured by this toolkit",
                            "Aesthetic-Eval@2048 / Reported in papers, same protocol as this toolkit (not measured by "
                            "this toolkit)",
                            f"{apart} / Paper C, arXiv 2510.00002",
                            f"{apart} / Paper B, arXiv 2511.00001v1",
                            "Aesthetic-Eval@4096 / Measured by this toolkit",
                            "sample @ 2048 (smoke test, not a benchmark) / Measured by this toolkit"]
    measured = tables["Aesthetic-Eval@2048 / Measured by this toolkit"][0]
    assert [r["Generator"] for r in measured] == ["reference", "mygen", "upscale"]      # by GLCM Score
    for name in PUBLISHED + ["kid"]:
        info = METRICS[name]
        assert f"{info.title} {'↑' if info.higher_is_better else '↓'}" in measured[0]
    by_name = {r["Generator"]: r for r in measured}
    # Best in bold honours the direction: highest GLCM/CLIP/Aesthetics, lowest FID/CR.
    assert by_name["reference"]["GLCM Score ↑"] == "**0.7800**"
    assert by_name["reference"]["Compression Ratio ↓"] == "**10.40**"
    assert by_name["reference"]["FID ↓"] == "**12.25**"
    assert by_name["mygen"]["CLIPScore ↑"] == "**31.70**"
    assert by_name["mygen"]["Aesthetics ↑"] == "**6.100**"
    assert by_name["upscale"]["FID ↓"] == "55.50"
    assert by_name["reference"]["Aesthetics ↑"] == "–"
    # Protocol, toolkit version and date on every row.
    assert by_name["mygen"]["Protocol"] == "fid=paper, cr=jpeg95"
    assert {r["Toolkit"] for r in measured} == {"0.1.0"}
    assert by_name["upscale"]["Date"] == "2025-07-01" and by_name["reference"]["Date"] == "2025-07-03"
    assert "Latest measured result: 2025-07-03" in readme
    # A single row in a table has nothing to beat: no bold.
    lone = tables["Aesthetic-Eval@4096 / Measured by this toolkit"][0]
    assert lone[0]["GLCM Score ↑"] == "0.5500"
    assert "- upscale: fid unavailable: no weights" in readme


def test_reported_rows_are_apart_and_keep_their_source(board):
    _, readme, html = build(board)
    tables = markdown_tables(readme)
    same = tables["Aesthetic-Eval@2048 / Reported in papers, same protocol as this toolkit (not measured by this "
                  "toolkit)"][0]
    assert [r["Generator"] for r in same] == ["SD3-F16", "SD3-F16-WLF"]      # in the paper's (the file's) order
    assert same[0]["CLIPScore ↑"] == "31.50"                   # the paper's digits, as printed
    assert same[1]["CLIPScore ↑"] == "**34.04**"               # ranked among reported rows only
    assert [r["Source"] for r in same] == [f'Paper A, arXiv 2503.18352, Table 1, row "{g}"'
                                           for g in ("SD3-F16", "SD3-F16-WLF")]
    measured_names = {r["Generator"] for r in tables["Aesthetic-Eval@2048 / Measured by this toolkit"][0]}
    assert not measured_names & {"SD3-F16", "SD3-F16-WLF", "NewGen", "OtherGen"}
    main_table = html.split('id="results"', 1)[1].split("</table>")[0]
    kinds = re.findall(r'<tr class="main (measured|reported)">', main_table)
    assert kinds == ["measured"] * 4 + ["reported"] * 2           # never interleaved; other protocols not here
    assert "NewGen" not in main_table and "OtherGen" not in main_table


def test_other_protocols_are_apart_named_and_ranked_within_their_paper(board):
    _, readme, html = build(board)
    tables = markdown_tables(readme)
    apart = "Aesthetic-Eval@2048 / Reported in papers, other or unstated protocol (not comparable with the tables above)"
    paper_b = tables[f"{apart} / Paper B, arXiv 2511.00001v1"][0]
    paper_c = tables[f"{apart} / Paper C, arXiv 2510.00002"][0]
    # each paper's own columns; metrics this toolkit does not compute are marked
    assert list(paper_b[0]) == ["Generator", "FID ↓", "Long-CLIP score ↑ ‡", "HPSv3 ↑ ‡", "Also differs", "Table, row"]
    assert list(paper_c[0]) == ["Generator", "FID ↓", "patch-FID ↓", "Table, row"]
    assert "‡ not measured here" in readme
    # ranked within the paper: Paper B's best FID is bold although Paper C has a lower one
    assert paper_b[0]["FID ↓"] == "**150.5**" and paper_b[1]["FID ↓"] == "152.4" and paper_c[0]["FID ↓"] == "140.0"
    # the shared difference is named once, what a row adds in its own column
    section = readme.split("#### Paper B", 1)[1].split("####", 1)[0]
    assert "Differs from this toolkit's protocol: CLIP is Long-CLIP; resize not stated." in section
    assert paper_b[1]["Also differs"] == "model variant not stated" and paper_b[0]["Also differs"] == "–"
    assert "As the paper states it: resize: not stated; FID implementation: not stated; images: not stated." in section
    # the page: a table of its own, with the difference in a column, the quote and the source in the detail row
    apart_table = html.split('id="reported-apart"', 1)[1].split("</table>")[0]
    assert re.findall(r'<td class="generator" title="([^"]+)"', apart_table) == ["OtherGen", "NewGen", "SD3-F16-WLF"]
    assert "Differs from this toolkit&#x27;s protocol" in apart_table or "Differs from this toolkit's protocol" in apart_table
    assert '<td class="differs" title="patch recipe not stated">' in apart_table
    assert "quoted table row</dt><dd>NewGen 150.5 35.1 11.2</dd>" in apart_table
    assert 'data-metric="hpsv3"' in apart_table and "not measured here" in apart_table
    # the plots hold measured rows and reported rows of the same protocol only
    plots = html.split('<div class="plots">', 1)[1].split("</section>", 1)[0]
    assert "SD3-F16" in plots and "NewGen" not in plots and "OtherGen" not in plots


def test_html_one_row_per_result_and_self_contained(board):
    _, _, html = build(board)
    body = html.split('id="results"', 1)[1].split("</table>", 1)[0]
    assert body.count('<tr class="main') == 6 and body.count('<tr class="detail"') == 6
    apart = html.split('id="reported-apart"', 1)[1].split("</table>", 1)[0]
    assert apart.count('<tr class="main') == 3 and apart.count('<tr class="detail"') == 3
    assert html.count("<svg") == 2                             # the two plots, inline
    for remote in ('src="http', "src='http", 'href="http', "@import", "url(http", "<link "):
        assert remote not in html, remote
    for name in ("glcm_score", "compression_ratio", "fid", "clip_score"):
        assert f'data-metric="{name}"' in html


def test_bad_file_is_named_and_the_others_still_build(board, capsys):
    results, reported, out = board
    (results / "empty.csv").write_text("")
    write_csv(results / "nan.csv", [result("x", glcm_score="nan")])
    write_csv(results / "unknown.csv", [dict(result("y"), extra="1")], COLUMNS + ["extra"])
    (results / "notes.txt").write_text("ignored: not a .csv")
    status, readme, html = build(board)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 0                                         # the output was written: warnings only
    assert len(err) == 3 and all(line.startswith("a4k-leaderboard: warning: skipped ") for line in err)
    assert any("empty.csv: empty results file" in line for line in err)
    assert any("nan.csv:2: glcm_score: 'nan' is not a finite number" in line for line in err)
    assert any("unknown.csv: unknown column(s) 'extra'" in line for line in err)
    assert "| mygen |" in readme and "| x |" not in readme
    assert html.split('id="results"', 1)[1].split("</table>")[0].count('<tr class="main') == 6
    results, reported, out = board
    assert main(["--results", str(results), "--reported", str(reported), "--out", str(out), "--strict"]) == 1


def test_same_key_in_two_files_keeps_the_newer(board, capsys):
    results, _, _ = board
    write_csv(results / "rerun.csv", [result("mygen", glcm_score=0.72, date="2025-07-09")])
    status, readme, _ = build(board)
    assert status == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("a4k-leaderboard: warning: ") and "kept the newer row" in err[0]
    assert readme.count("| mygen |") == 1 and "0.7200" in readme


def test_output_is_deterministic_across_processes(board, tmp_path):
    """Same inputs, same bytes: here, and in another process with another hash seed."""
    results, reported, out = board
    build(board)
    again = tmp_path / "again"
    again.mkdir()
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-m", "aesthetic4k.cli.leaderboard", "--results", str(results),
                    "--reported", str(reported), "--out", str(again)], check=True, env=env, cwd=REPO,
                   capture_output=True, timeout=120)
    for name in ("README.md", "index.html"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    assert b"<dc:date>" not in (again / "index.html").read_bytes()
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "index.html").stat().st_mode & 0o777 == 0o666 & ~mask      # shareable, not 0600


def test_missing_results_folder_is_exit_2(tmp_path, capsys):
    assert main(["--results", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder" in err[0]


def test_empty_results_folder_still_builds(tmp_path):
    (tmp_path / "results").mkdir()
    assert main(["--results", str(tmp_path / "results"), "--reported", str(tmp_path / "none.csv"),
                 "--out", str(tmp_path)]) == 0
    assert "No results yet" in (tmp_path / "README.md").read_text()


def test_collect_reads_the_repository_layout():
    collection = collect(REPO / "leaderboards" / "results", REPO / "leaderboards" / "reported.csv")
    assert not collection.problems, collection.problems
    assert render_markdown(collection).startswith("# Aesthetic-4K leaderboard")
    assert "<table" in render_html(collection)


def test_default_results_folder_may_be_absent(tmp_path, monkeypatch, capsys):
    (tmp_path / "leaderboards").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["--reported", str(REPO / "leaderboards" / "reported.csv")]) == 0
    assert "only reported rows" in capsys.readouterr().err
    readme = (tmp_path / "leaderboards" / "README.md").read_text(encoding="utf-8")
    assert "## Aesthetic-Eval@2048" in readme and "No measured results yet." in readme


def test_imports_stay_light():
    code = ("import sys\nimport aesthetic4k.cli.leaderboard, aesthetic4k.leaderboard, aesthetic4k.report\n"
            "from aesthetic4k.cli.leaderboard import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'matplotlib', 'cv2', 'diffusers') if m in sys.modules]\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "--results" in result.stdout


def test_sample_set_is_neither_plotted_nor_ranked_with_the_benchmark(board):
    _, readme, html = build(board)
    plots = html.split('<div class="plots">', 1)[1].split("</section>", 1)[0]
    assert "mygen" in plots and "SD3-F16" in plots and "smokegen" not in plots
    main_table = html.split('id="results"', 1)[1].split("</table>", 1)[0]
    smoke_table = html.split('id="smoke-results"', 1)[1].split("</table>", 1)[0]
    assert "smokegen" not in main_table and "mygen" in main_table
    assert "smokegen" in smoke_table and smoke_table.count('<tr class="main') == 1
    assert html.index('id="results"') < html.index("Sample set (smoke test, not a benchmark)")
    assert readme.index("## Aesthetic-Eval@4096") < readme.index("## sample @ 2048 (smoke test, not a benchmark)")


def test_numerical_noise_below_zero_is_shown_as_zero_and_never_best(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    write_csv(results / "runs.csv", [
        result("identical", fid=-0.0002074, patch_fid=-0.0001, kid=-0.105, glcm_score=0.8),
        result("other", fid=12.5, patch_fid=30.0, kid=0.02, glcm_score=0.7),
        result("broken", size=4096, fid=-0.5, glcm_score=0.6),          # beyond the tolerance: shown as is
        result("fine", size=4096, fid=3.0, glcm_score=0.5),
    ])
    assert main(["--results", str(results), "--reported", str(tmp_path / "none.csv"), "--out", str(tmp_path)]) == 0
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    rows = {r["Generator"]: r for r in markdown_tables(readme)["Aesthetic-Eval@2048 / Measured by this toolkit"][0]}
    assert rows["identical"]["FID ↓"] == "0.00†" and rows["identical"]["patch-FID ↓"] == "0.00†"
    assert rows["other"]["FID ↓"] == "12.50"                     # the true best is 0: nobody is bold
    assert rows["identical"]["KID ↓"] == "**-0.1050**"           # KID's estimator may be negative: a value
    assert "FID is -0.0002074 in its results file, numerical noise" in readme
    noise = re.findall(r'<td class="num noise"(?: data-col="\w+")? data-value="0.0" title="raw value ([^ "]+): '
                       r'numerical noise', html)
    assert noise == ["-0.0002074", "-0.0001"]
    assert not re.search(r'class="num best[^"]*" data-value="-0.000', html)
    four = {r["Generator"]: r for r in markdown_tables(readme)["Aesthetic-Eval@4096 / Measured by this toolkit"][0]}
    assert four["broken"]["FID ↓"] == "**-0.5000**" and four["fine"]["FID ↓"] == "3.000"


def test_out_folder_is_created(tmp_path, capsys):
    out = tmp_path / "a" / "b" / "site"
    assert main(["--results", str(REPO / "leaderboards" / "results"), "--out", str(out),
                 "--reported", str(REPO / "leaderboards" / "reported.csv")]) == 0
    assert (out / "README.md").exists() and (out / "index.html").exists()
    taken = tmp_path / "file"
    taken.write_text("x")
    assert main(["--results", str(REPO / "leaderboards" / "results"), "--out", str(taken / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create the output folder" in err[0]


def test_measured_rows_link_to_their_reports(tmp_path):
    results = tmp_path / "results"
    (results / "reports" / "mygen").mkdir(parents=True)
    (results / "reports" / "mygen" / "index.html").write_text("<html></html>")
    def with_report(row, report):
        row["settings"] = json.dumps({"report": report})
        return row
    write_csv(results / "runs.csv", [
        with_report(result("mygen", glcm_score=0.7), "reports/mygen"),                 # relative to the csv
        with_report(result("gone", glcm_score=0.6), "reports/gone"),                   # no such folder
        with_report(result("remote", glcm_score=0.5), "https://example.org/run/7/"),   # a URL as given
        result("plain", glcm_score=0.4),
    ])
    out = tmp_path / "site"
    assert main(["--results", str(results), "--reported", str(tmp_path / "none.csv"), "--out", str(out)]) == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'<td class="report" data-value="[^"]*">(?:<a href="([^"]+)">report</a>)?</td>', html)
    assert links == ["../results/reports/mygen/index.html", "", "https://example.org/run/7/", ""]
    assert (out / links[0]).resolve() == (results / "reports" / "mygen" / "index.html").resolve()
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "| [mygen](../results/reports/mygen/index.html) |" in readme
    assert "| gone |" in readme and "| [remote](https://example.org/run/7/) |" in readme


def test_mistyped_option_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--reslts", "x"])
    assert exc.value.code == 2
    assert "unrecognized argument --reslts; did you mean --results?" in capsys.readouterr().err
