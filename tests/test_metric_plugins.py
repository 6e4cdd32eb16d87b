"""Metric plugins: the README's example run exactly as written, then through every tool that reads results."""
from __future__ import annotations

import configparser
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.cli.check import main as check_main
from aesthetic4k.cli.eval import main as eval_main
from aesthetic4k_metrics.registry import METRICS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def readme_blocks() -> dict[str, list[str]]:
    """The fenced blocks of the README section "Your own metric (plugin)", by language."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Your own metric (plugin)\n", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, list[str]] = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        blocks.setdefault(language, []).append(body)
    return blocks


@pytest.fixture(autouse=True)
def registry_restored(tmp_path, monkeypatch):
    """A plugin registered by one test is not seen by the next; the run's caches are the test's own."""
    from aesthetic4k_metrics.cache import cache_root

    kernels = cache_root() / "kernels"
    kernels.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "kernels").symlink_to(kernels)
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    saved = dict(METRICS)
    yield
    METRICS.clear()
    METRICS.update(saved)


@pytest.fixture
def plugin_folder(tmp_path, monkeypatch):
    """The README's sharpness.py, byte for byte, importable; and a folder gen/ of images beside it."""
    (tmp_path / "sharpness.py").write_text(readme_blocks()["python"][0], encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("sharpness", None)
    gen = tmp_path / "gen"
    gen.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        smooth = np.repeat(np.repeat(rng.integers(0, 256, (12, 15, 3)), 6, 0), 6, 1)[:70, :90]
        noisy = np.clip(smooth + rng.normal(0, 4 + 20 * i, smooth.shape), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(gen / f"img{i}.png")
    yield tmp_path
    sys.modules.pop("sharpness", None)


def reference_sharpness(path: Path) -> float:
    """The variance of the Laplacian by scipy (an independent formula), on the image's interior."""
    from scipy import ndimage

    rgb = np.asarray(Image.open(path).convert("RGB"), np.float64)
    grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return float(ndimage.laplace(grey)[1:-1, 1:-1].var())


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def env_with(folder: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), str(ROOT)]),
               PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    return env


def test_the_readme_command_runs_as_written(plugin_folder):
    (command,) = [line for line in readme_blocks()["bash"][0].splitlines() if line.startswith("a4k-eval")]
    done = subprocess.run(command, shell=True, cwd=plugin_folder, env=env_with(plugin_folder),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (row,) = read(plugin_folder / "r.csv")
    images = sorted((plugin_folder / "gen").iterdir())
    expected = np.mean([reference_sharpness(p) for p in images])
    assert float(row["laplacian_variance"]) == pytest.approx(expected, rel=1e-9)
    assert float(row["glcm_score"]) > 0
    declared = json.loads(row["settings"])["metric_plugins"]["laplacian_variance"]
    assert declared == {"spec": "sharpness:LaplacianVariance", "title": "Laplacian variance", "better": "higher",
                        "version": "1",
                        "description": "variance of the 4-neighbour Laplacian of the grey image (sharpness)"}


def test_a_plugin_reaches_per_image_json_report_check_and_leaderboard(plugin_folder, capsys):
    out, per, report = plugin_folder / "r.csv", plugin_folder / "per.csv", plugin_folder / "report"
    args = ["--no-progress", "--workers", "1", "--generator", "folder", "--images", str(plugin_folder / "gen"),
            "--metrics", "sharpness:LaplacianVariance,glcm_score", "--out", str(out)]
    assert eval_main([*args, "--per-image", str(per), "--report", str(report), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.splitlines()[0])
    rows = read(per)
    for entry in rows:
        assert float(entry["laplacian_variance"]) == pytest.approx(
            reference_sharpness(plugin_folder / "gen" / Path(entry["file"]).name), rel=1e-9)
    assert payload["row"]["laplacian_variance"] == pytest.approx(np.mean([float(r["laplacian_variance"])
                                                                          for r in rows]), rel=1e-12)
    page = (report / "index.html").read_text(encoding="utf-8")
    assert "Laplacian variance ↑" in page
    METRICS.pop("laplacian_variance")           # a4k-report later, without the plugin: from the declaration
    from aesthetic4k.cli.report import main as report_main

    assert report_main([str(report), "--out", str(plugin_folder / "again")]) == 0
    assert "Laplacian variance ↑" in (plugin_folder / "again" / "index.html").read_text(encoding="utf-8")
    header = list(read(out)[0])
    assert header.index("laplacian_variance") < header.index("status")

    # a later process that never imported the plugin reads the row: direction from the row's declaration
    METRICS.pop("laplacian_variance")
    sys.modules.pop("sharpness", None)
    baseline = plugin_folder / "baseline.csv"
    (row,) = read(out)
    row["laplacian_variance"] = repr(float(row["laplacian_variance"]) * 1.1)
    with open(baseline, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row), lineterminator="\n")
        writer.writeheader()
        writer.writerow(row)
    capsys.readouterr()
    assert check_main([str(out), "--baseline", str(baseline)]) == 1       # higher is better: 10% less regressed
    assert "laplacian_variance  higher" in capsys.readouterr().out
    assert check_main([str(out), "--baseline", str(baseline), "--tolerance", "laplacian_variance=15%"]) == 0

    from aesthetic4k.cli.leaderboard import main as leaderboard_main

    results = plugin_folder / "results"
    results.mkdir()
    (results / "run.csv").write_bytes(out.read_bytes())
    assert leaderboard_main(["--results", str(results), "--out", str(plugin_folder / "board")]) == 0
    assert "Laplacian variance" in (plugin_folder / "board" / "README.md").read_text(encoding="utf-8")


def test_an_installed_entry_point_is_listed_and_named_like_a_builtin(plugin_folder):
    ini = configparser.ConfigParser()
    ini.read_string(readme_blocks()["ini"][0])
    lines = [line.strip() for line in ini["options.entry_points"]["aesthetic4k.metrics"].splitlines() if line.strip()]
    info = plugin_folder / "sharpness_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sharpness-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[aesthetic4k.metrics]\n" + "\n".join(lines) + "\n")
    env = env_with(plugin_folder)
    listed = subprocess.run([str(BIN / "a4k-eval"), "--list-metrics"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^laplacian_variance\s+higher is better: variance of the 4-neighbour", listed.stdout, re.M)
    done = subprocess.run([str(BIN / "a4k-eval"), "--no-progress", "--generator", "folder", "--images", "gen",
                           "--metrics", "laplacian_variance", "--out", "r.csv"], cwd=plugin_folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert float(read(plugin_folder / "r.csv")[0]["laplacian_variance"]) > 0


BROKEN = '''
import numpy as np


class Taken:
    name = "glcm_score"
    higher_is_better = True

    def score(self, image):
        return 1.0


class Raises:
    name = "raises"
    higher_is_better = False

    def score(self, image):
        raise RuntimeError("boom\\nsecond line")


class NotFinite:
    name = "not_finite"
    higher_is_better = False

    def score(self, image):
        return float("nan")


class Files:
    name = "files"
    higher_is_better = False
    reads = "file"

    def score(self, image):
        return 0.0


class NoDirection:
    name = "no_direction"

    def score(self, image):
        return 0.0
'''


@pytest.mark.parametrize("attribute, message", [
    ("Taken", "the name glcm_score is taken by a built-in metric"),
    ("Raises", "metric raises (broken_metrics:Raises) failed on img0: RuntimeError: boom"),
    ("NotFinite", "metric not_finite (broken_metrics:NotFinite) gave nan for img0"),
    ("Files", "reads 'file'; a plugin metric reads pixels"),
    ("NoDirection", "not a metric plugin"),
    ("Missing", "broken_metrics has no attribute Missing"),
])
def test_a_broken_plugin_is_one_line_and_exit_2(plugin_folder, capsys, attribute, message):
    (plugin_folder / "broken_metrics.py").write_text(BROKEN)
    sys.modules.pop("broken_metrics", None)
    out = plugin_folder / "r.csv"
    code = eval_main(["--no-progress", "--workers", "1", "--generator", "folder", "--images",
                      str(plugin_folder / "gen"), "--metrics", f"broken_metrics:{attribute}", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()
