"""The metrics/ folder is installed as ``aesthetic4k_metrics``: a user's own ``metrics`` cannot shadow it."""
import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.images import natural, save

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "metrics").glob("*.py") if p.stem != "__init__")
# `import metrics`, `from metrics import x`, `from metrics.glcm import x`, "metrics.detail:GLCMScore", metrics.glcm_score(...)
OLD_NAME = re.compile(r"^\s*(import|from)\s+metrics\b|(?<![\w./-])metrics\.(" + "|".join(MODULES) + r"|glcm_score|"
                      r"jpeg_size|FID|KID|PatchFID|PatchKID|CLIPScore|Aesthetics|GLCMScore|CompressionRatio|"
                      r"measure_files|compute_fid|compute_kid|save_reference_stats|as_torchmetric)\b", re.M)


def tracked_text_files():
    listed = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.cfg", "*.toml", "Makefile", ".ci/*"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def test_no_code_test_or_doc_uses_the_folder_name_as_import_name():
    offenders = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OLD_NAME.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("shadow", ["module", "package"])
def test_python_m_eval_works_from_a_project_with_its_own_metrics(tmp_path, shadow):
    project = tmp_path / "project"
    project.mkdir()
    if shadow == "module":
        (project / "metrics.py").write_text("raise RuntimeError('the user project metrics.py was imported')\n")
    else:
        (project / "metrics").mkdir()
        (project / "metrics" / "__init__.py").write_text("raise RuntimeError('the user metrics package was imported')\n")
        (project / "metrics" / "errors.py").write_text("UserError = None\n")
    images = project / "gen"
    images.mkdir()
    for i in range(2):
        save(natural(128, 160, seed=i), images / f"g{i}.jpg", quality=95)
    done = subprocess.run([sys.executable, "-m", "aesthetic4k.cli.eval", "--generator", "folder", "--images", "gen",
                           "--metrics", "glcm_score,compression_ratio", "--out", "r.csv", "--no-progress"],
                          cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with open(project / "r.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["n_images"] == "2" and float(row["glcm_score"]) > 0
