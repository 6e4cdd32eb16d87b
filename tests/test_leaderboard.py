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
from aesthetic4k.results_schema import load_results
from aesthetic4k_metrics.registry import METRICS, PUBLISHED
from tests.csv_files import write_csv as write_rows

REPO = Path(__file__).resolve().parents[1]


def write_csv(path, rows, columns=COLUMNS):
    return write_rows(path, rows, columns)


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
    reported = write_csv(tmp_path / "reported.csv", [
        {"generator": "SD3-F16", "dataset": "aesthetic-4k", "size": "2048", "glcm_score": "0.75", "fid": "43.82",
         "clip_score": "31.50", "source": "Paper A, Table 1"},
        {"generator": "SD3-F16-WLF", "dataset": "aesthetic-4k", "size": "2048", "glcm_score": "0.79",
         "fid": "40.18", "clip_score": "34.04", "source": "Paper A, Table 1"},
    ], REPORTED_COLUMNS)
    out = tmp_path / "out"
    out.mkdir()
    return results, reported, out


def build(board):
    results, reported, out = board
    status = main(["--results", str(results), "--reported", str(reported), "--out", str(out)])
    return status, (out / "README.md").read_text(encoding="utf-8"), (out / "index.html").read_text(encoding="utf-8")


def markdown_tables(text):
    """Section title -> list of tables; a table is a list of {header: cell} dicts."""
    tables, current_title, header, rows = {}, None, None, None
    for line in text.splitlines() + [""]:
        if line.startswith("## ") or line.startswith("### "):
            current_title = line.lstrip("#").strip() if line.startswith("### ") else line[3:].strip()
            if line.startswith("## "):
                group = current_title
            else:
                current_title = f"{group} / {current_title}"
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
    assert list(tables) == ["Aesthetic-Eval@2048 / Measured by this toolkit",
                            "Aesthetic-Eval@2048 / Reported in papers (not measured by this toolkit)",
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
    reported = tables["Aesthetic-Eval@2048 / Reported in papers (not measured by this toolkit)"][0]
    assert [r["Generator"] for r in reported] == ["SD3-F16-WLF", "SD3-F16"]
    assert reported[1]["CLIPScore ↑"] == "31.50"              # the paper's digits, as printed
    assert reported[0]["CLIPScore ↑"] == "**34.04**"          # ranked among reported rows only
    assert all(r["Source"] == "Paper A, Table 1" for r in reported)
    measured_names = {r["Generator"] for r in tables["Aesthetic-Eval@2048 / Measured by this toolkit"][0]}
    assert not measured_names & {"SD3-F16", "SD3-F16-WLF"}
    kinds = re.findall(r'<tr class="main (measured|reported)">', html.split('id="results"', 1)[1].split("</table>")[0])
    assert kinds == ["measured"] * 4 + ["reported"] * 2          # never interleaved


def test_html_one_row_per_result_and_self_contained(board):
    _, _, html = build(board)
    body = html.split('id="results"', 1)[1].split("</table>", 1)[0]
    assert body.count('<tr class="main') == 6 and body.count('<tr class="detail"') == 6
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


def test_checked_in_reported_numbers_match_protocol():
    """Every number of leaderboards/reported.csv is one docs/protocol.md publishes for that model and metric."""
    rows = load_results(REPO / "leaderboards" / "reported.csv", REPORTED_COLUMNS)
    assert all(r.source for r in rows)
    assert {(r.generator, r.size) for r in rows} >= {("SD3-F16", 2048), ("SD3-F16-WLF", 2048), ("Flux-F16", 2048),
                                                     ("Flux-F16-WLF", 2048), ("SD3-F16", 4096),
                                                     ("SD3-F16-finetune", 4096), ("SD3-F16-WLF", 4096)}
    text = (REPO / "docs" / "protocol.md").read_text(encoding="utf-8")
    for r in rows:
        for name, cell in r.texts.items():
            assert cell in text, (r.generator, name, cell)


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
