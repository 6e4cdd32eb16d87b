"""a4k-check: verdicts in each metric's direction, tolerances, exit codes, and every bad-input case."""
import json
import subprocess
import sys

import pytest

from aesthetic4k.check import (BETTER, REGRESSION, SAME, WITHIN, Comparison, Tolerance, parse_tolerances,
                               run_check)
from aesthetic4k.cli.check import main
from aesthetic4k.errors import UserError
from aesthetic4k.results import COLUMNS
from aesthetic4k_metrics.registry import METRICS
from tests.csv_files import write_csv

BASE = {"glcm_score": 0.75, "compression_ratio": 11.0, "fid": 50.0, "clip_score": 31.0, "aesthetics": 5.9}


def write_results(path, rows, columns=None):
    return write_csv(path, rows, columns or COLUMNS)


def row(generator="mygen", dataset="sample", size=2048, **values):
    cells = {"generator": generator, "dataset": dataset, "size": str(size), "n_images": "8",
             "settings": json.dumps({"fid_protocol": "paper"}), "toolkit_version": "0.1.0", "date": "2025-07-01"}
    cells.update({k: repr(v) if isinstance(v, float) else v for k, v in values.items()})
    return cells


@pytest.fixture
def files(tmp_path):
    def make(current_values, baseline_values=BASE, current_key=(), baseline_rows=None):
        current = write_results(tmp_path / "results.csv", [row(*current_key, **current_values)])
        baseline = write_results(tmp_path / "baseline.csv", baseline_rows or [row(**baseline_values)])
        return str(current), str(baseline)
    return make


def expected_verdict(name, current, baseline, allowed):
    """The rule written out directly: worsening in the metric's bad direction against the allowance."""
    change = current - baseline
    if change == 0:
        return SAME
    worse = change < 0 if METRICS[name].higher_is_better else change > 0
    if not worse:
        return BETTER
    return WITHIN if abs(change) <= allowed else REGRESSION


@pytest.mark.parametrize("name", list(BASE))
@pytest.mark.parametrize("factor", [0.9, 0.999, 1.0, 1.001, 1.1])
def test_verdict_follows_metric_direction(name, factor):
    baseline = BASE[name]
    current = baseline * factor
    tolerance = Tolerance(0.5, relative=True)          # 0.5% of the baseline
    comparison = Comparison(name, current, baseline, tolerance)
    assert comparison.verdict == expected_verdict(name, current, baseline, abs(baseline) * 0.005)


def test_directions_spelled_out(files, capsys):
    # GLCM Score down (worse), FID down (better), Compression Ratio up (worse), CLIPScore up (better).
    current, baseline = files({**BASE, "glcm_score": 0.70, "fid": 45.0, "compression_ratio": 12.0, "clip_score": 32.0})
    checks = run_check(current, baseline)
    verdicts = {c.metric: c.verdict for c in checks[0].comparisons}
    assert verdicts == {"glcm_score": REGRESSION, "compression_ratio": REGRESSION, "fid": BETTER,
                        "clip_score": BETTER, "aesthetics": SAME}
    assert main([current, "--baseline", baseline]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "glcm_score (mygen/sample/2048)" in out


def test_no_regression_exits_zero(files, capsys):
    current, baseline = files({**BASE, "glcm_score": 0.76, "fid": 49.0})
    assert main([current, "--baseline", baseline]) == 0
    out = capsys.readouterr().out
    for column in ("current", "baseline", "difference", "verdict"):
        assert column in out
    assert "OK, no regression (5 metric value(s) compared)" in out


def test_absolute_and_relative_tolerances(files):
    # GLCM 0.745 is 0.005 worse: allowed by 0.01 absolute. FID 50.9 is 1.8% worse: allowed by 2%.
    current, baseline = files({**BASE, "glcm_score": 0.745, "fid": 50.9})
    assert main([current, "--baseline", baseline, "--tolerance", "glcm_score=0.01,fid=2%"]) == 0
    assert main([current, "--baseline", baseline, "--tolerance", "glcm_score=0.001,fid=2%"]) == 1
    assert main([current, "--baseline", baseline, "--tolerance", "glcm_score=0.01,fid=1.5%"]) == 1
    checks = run_check(current, baseline, "glcm_score=0.01,fid=2%")
    verdicts = {c.metric: c.verdict for c in checks[0].comparisons}
    assert verdicts["glcm_score"] == WITHIN and verdicts["fid"] == WITHIN


def test_metrics_option_limits_the_comparison(files):
    current, baseline = files({**BASE, "fid": 80.0})
    assert main([current, "--baseline", baseline]) == 1
    assert main([current, "--baseline", baseline, "--metrics", "glcm_score,clip_score"]) == 0


def test_rows_paired_by_key_and_named_rows(tmp_path, capsys):
    current = write_results(tmp_path / "r.csv", [row("a", **BASE), row("b", **{**BASE, "fid": 60.0})])
    baseline = write_results(tmp_path / "b.csv", [row("b", **BASE), row("a", **BASE), row("old", **BASE)])
    assert main([str(current), "--baseline", str(baseline)]) == 1                      # b regressed
    assert main([str(current), "--baseline", str(baseline), "--row", "a/sample/2048"]) == 0
    assert main([str(current), "--baseline", str(baseline), "--row", "b/sample/2048",
                 "--baseline-row", "old/sample/2048", "--metrics", "glcm_score"]) == 0
    out = capsys.readouterr().out
    assert "b/sample/2048" in out and "old/sample/2048" in out


def test_dataset_path_with_slashes_in_row_key(tmp_path):
    current = write_results(tmp_path / "r.csv", [row("g", "/data/my set", 4096, **BASE)])
    assert main([str(current), "--baseline", str(current), "--row", "g//data/my set/4096"]) == 0


def test_markdown_summary_is_appended(files, tmp_path):
    current, baseline = files({**BASE, "glcm_score": 0.5})
    summary = tmp_path / "summary.md"
    summary.write_text("# before\n")
    assert main([current, "--baseline", baseline, "--markdown", str(summary)]) == 1
    text = summary.read_text()
    assert text.startswith("# before\n") and "| GLCM Score ↑ |" in text and "**REGRESSION**" in text


def bad_cases(tmp_path):
    good = write_results(tmp_path / "good.csv", [row(**BASE)])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = write_results(tmp_path / "header.csv", [])
    unknown = write_results(tmp_path / "unknown.csv", [dict(row(**BASE), bogus="1")], COLUMNS + ["bogus"])
    nan = write_results(tmp_path / "nan.csv", [row(**{**BASE, "fid": "nan"})])
    inf = write_results(tmp_path / "inf.csv", [row(**{**BASE, "glcm_score": "inf"})])
    text = write_results(tmp_path / "text.csv", [row(**{**BASE, "fid": "abc"})])
    missing_metric = write_results(tmp_path / "missing.csv",
                                   [row(**{**BASE, "fid": ""}, status="fid unavailable: no inception weights")])
    other_row = write_results(tmp_path / "other.csv", [row("someone-else", **BASE)])
    bad_size = write_results(tmp_path / "size.csv", [row(size="big", **BASE)])
    duplicate = write_results(tmp_path / "dup.csv", [row(**BASE), row(**BASE)])
    bad_settings = write_results(tmp_path / "settings.csv", [dict(row(**BASE), settings="{not json")])
    g = str(good)
    return {
        "missing results": ([str(tmp_path / "nope.csv"), "--baseline", g], "no such results file"),
        "missing baseline": ([g, "--baseline", str(tmp_path / "nope.csv")], "no such baseline file"),
        "empty results": ([str(empty), "--baseline", g], "empty results file"),
        "header only": ([str(header_only), "--baseline", g], "no rows"),
        "unknown column": ([str(unknown), "--baseline", g], "unknown column(s) 'bogus'"),
        "nan": ([str(nan), "--baseline", g], "not a finite number"),
        "inf baseline": ([g, "--baseline", str(inf)], "not a finite number"),
        "not a number": ([str(text), "--baseline", g], "'abc' is not a number"),
        "asked metric missing in baseline": ([g, "--baseline", str(missing_metric), "--metrics", "fid"],
                                             "baseline row mygen/sample/2048 has no fid value"),
        "no matching baseline row": ([g, "--baseline", str(other_row)], "has no row mygen/sample/2048"),
        "named row absent": ([g, "--baseline", g, "--row", "x/sample/2048"], "has no row x/sample/2048"),
        "bad row syntax": ([g, "--baseline", g, "--row", "justaname"], "has no row justaname (it has: mygen/sample/2048)"),
        "bad size": ([str(bad_size), "--baseline", g], "size 'big' is not a whole number"),
        "duplicate rows": ([str(duplicate), "--baseline", g], "already on line 2"),
        "bad settings": ([str(bad_settings), "--baseline", g], "settings is not valid JSON"),
        "tolerance no equals": ([g, "--baseline", g, "--tolerance", "fid"], "is not METRIC=AMOUNT"),
        "tolerance unknown metric": ([g, "--baseline", g, "--tolerance", "sharpness=1"], "unknown metric 'sharpness'"),
        "tolerance not a number": ([g, "--baseline", g, "--tolerance", "fid=two%"], "fid=two% is not a number"),
        "tolerance negative": ([g, "--baseline", g, "--tolerance", "fid=-1"], "must be a finite number >= 0"),
        "tolerance nan": ([g, "--baseline", g, "--tolerance", "fid=nan"], "must be a finite number >= 0"),
        "tolerance twice": ([g, "--baseline", g, "--tolerance", "fid=1,fid=2"], "fid given twice"),
        "tolerance empty": ([g, "--baseline", g, "--tolerance", ""], "--tolerance is empty"),
        "unknown --metrics": ([g, "--baseline", g, "--metrics", "glcm_score,nope"], "unknown metric(s) nope"),
        "folder as results": ([str(tmp_path), "--baseline", g], "is a folder"),
    }


def test_every_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for name, (argv, expected) in bad_cases(tmp_path).items():
        status = main(argv)
        captured = capsys.readouterr()
        assert status == 2, name
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, (name, captured.err)
        assert lines[0].startswith("a4k-check: error: "), name
        assert expected in lines[0], (name, lines[0])
        assert "Traceback" not in captured.err


def test_parse_tolerances():
    assert parse_tolerances("glcm_score=0.01, fid=2%") == {"glcm_score": Tolerance(0.01), "fid": Tolerance(2.0, True)}
    assert Tolerance(2.0, True).allowed(-50.0) == 1.0
    with pytest.raises(UserError):
        parse_tolerances("fid=inf")


def test_console_script_help_is_light():
    # --help must not import torch (nor matplotlib): a CI job calls it before installing models.
    code = ("import sys; from aesthetic4k.cli.check import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, 'heavy import'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--tolerance" in result.stdout and "Exit status" in result.stdout


@pytest.mark.parametrize("vanished", [["fid"], ["fid", "clip_score"], list(BASE)])
def test_a_metric_that_vanished_from_the_run_fails_the_check(tmp_path, capsys, vanished):
    """A metric the baseline row has and the run lacks exits 1 naming it (a CI gate must not pass then),
    whether the comparison is the default one or named with --metrics; --allow-missing lists it instead."""
    baseline = write_results(tmp_path / "base.csv", [row(**BASE)])
    partial = {**BASE, **{name: "" for name in vanished}, "status": f"{vanished[0]}: no weights"}
    current = write_results(tmp_path / "current.csv", [row(**partial)])
    for extra in ([], ["--metrics", ",".join(vanished)]):
        assert main([str(current), "--baseline", str(baseline), *extra]) == 1
        out = capsys.readouterr().out
        assert f"MISSING: {vanished[0]} (mygen/sample/2048)" in out and "OK" not in out
        assert f"status: {vanished[0]}: no weights" in out
    kept = [name for name in BASE if name not in vanished]
    status = main([str(current), "--baseline", str(baseline), "--allow-missing"])
    captured = capsys.readouterr()
    if kept:
        assert status == 0
        assert f"not compared (no value in the current row): {', '.join(vanished)}" in captured.out
        assert f"OK, no regression ({len(kept)} metric value(s) compared)" in captured.out
    else:                                              # nothing left to compare: bad input, not a pass
        assert status == 2 and "no metric value in common" in captured.err


def test_a_missing_metric_is_named_in_the_markdown_summary_and_a_regression_still_counts(tmp_path, capsys):
    baseline = write_results(tmp_path / "base.csv", [row(**BASE)])
    current = write_results(tmp_path / "current.csv", [row(**{**BASE, "fid": "", "glcm_score": 0.5})])
    summary = tmp_path / "summary.md"
    assert main([str(current), "--baseline", str(baseline), "--markdown", str(summary)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION: glcm_score" in out and "MISSING: fid" in out
    assert "**MISSING**, not compared (no value in the current row): fid" in summary.read_text()
    assert main([str(current), "--baseline", str(baseline), "--allow-missing"]) == 1    # the regression stays


def test_floating_point_noise_is_not_a_regression(tmp_path, capsys):
    baseline = write_results(tmp_path / "base.csv", [row(**BASE)])
    noisy = dict(BASE)
    noisy["fid"] = BASE["fid"] * (1 + 3e-7)          # what another thread count does to FID
    current = write_results(tmp_path / "current.csv", [row(**noisy)])
    assert main([str(current), "--baseline", str(baseline)]) == 0
    assert "REGRESSION" not in capsys.readouterr().out
    worse = dict(BASE)
    worse["fid"] = BASE["fid"] * (1 + 1e-4)          # a change, however small, above the noise
    current = write_results(tmp_path / "worse.csv", [row(**worse)])
    assert main([str(current), "--baseline", str(baseline)]) == 1


def versioned(versions, **values):
    cells = row(**values)
    cells["settings"] = json.dumps({"fid_protocol": "paper", "versions": versions})
    return cells


OLD = {"opencv-python": "5.0.0.93", "numpy": "2.4.6", "torch": "2.14.1", "pillow": "12.0.0"}
NEW = {"opencv-python": "5.1.0.95", "numpy": "2.4.6", "torch": "2.14.1", "numba": "0.68.1", "pillow": "13.0.0"}


@pytest.mark.parametrize("worse", [True, False])
def test_a_regression_names_the_libraries_whose_versions_changed(tmp_path, capsys, worse):
    current = write_results(tmp_path / "results.csv",
                            [versioned(NEW, **{**BASE, "glcm_score": 0.70 if worse else 0.80})])
    baseline = write_results(tmp_path / "baseline.csv", [versioned(OLD, **BASE)])
    summary = tmp_path / "summary.md"
    assert main([str(current), "--baseline", str(baseline), "--markdown", str(summary)]) == (1 if worse else 0)
    out, markdown = capsys.readouterr().out, summary.read_text()
    changes = ["opencv-python 5.0.0.93 -> 5.1.0.95", "pillow 12.0.0 -> 13.0.0"]
    if not worse:   # no regression to explain: the versions are not mentioned
        assert "->" not in out and "->" not in markdown
        return
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("library versions differ"))
    assert [line.strip() for line in lines[start + 1:start + 3]] == changes   # one line per library, sorted
    assert "numba" not in out and "numpy 2.4.6" not in out   # recorded by one row only, or unchanged
    assert "Library versions differ" in markdown and all(f"- `{change}`" in markdown for change in changes)


def test_rows_without_recorded_versions_check_as_before(files, capsys):
    current, baseline = files({**BASE, "fid": 60.0})
    assert main([current, "--baseline", baseline]) == 1
    assert "versions differ" not in capsys.readouterr().out
