"""The leaderboard page and a run report in a real headless Chromium (Debian package `chromium`).

Loads the page from disk with the network unused, then: no console errors or uncaught exceptions,
one table row per result, a real mouse click on a header sorts the rows, the screenshot is not blank.
Skipped, with the reason, where no Chromium is installed (CI installs it: apt-get install chromium).
"""
import io
import json
import types

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.cli.leaderboard import main as leaderboard_main
from aesthetic4k.report import write_report
from tests.headless_chromium import Chromium, find_chromium
from tests.test_leaderboard import REPORTED_COLUMNS, result, write_csv

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="chromium is not installed (apt-get install chromium) - browser test skipped")


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=1300, height=900) as chromium:
        yield chromium


def column_values(browser, table_id, header_text):
    return browser.evaluate(f"""(function() {{
        var table = document.getElementById({json.dumps(table_id)});
        var index = Array.prototype.findIndex.call(table.tHead.rows[0].cells,
            function (th) {{ return th.textContent.trim().indexOf({json.dumps(header_text)}) === 0; }});
        return Array.prototype.map.call(table.tBodies[0].rows, function (row) {{
            return row.cells[index].getAttribute('data-value') !== null ?
                   row.cells[index].getAttribute('data-value') : row.cells[index].textContent.trim(); }});
    }})()""")


def header_selector(table_id, position):
    return f"#{table_id} thead th:nth-child({position})"


def header_position(browser, table_id, header_text):
    return browser.evaluate(f"""Array.prototype.findIndex.call(
        document.getElementById({json.dumps(table_id)}).tHead.rows[0].cells,
        function (th) {{ return th.textContent.trim().indexOf({json.dumps(header_text)}) === 0; }}) + 1""")


def assert_not_blank(png: bytes):
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 20                                          # not one flat colour
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200        # text, plots and colours drawn


def numbers(values):
    return [float(v) for v in values if v != ""]


def test_leaderboard_page_in_chromium(tmp_path, browser):
    results = tmp_path / "results"
    results.mkdir()
    write_csv(results / "runs.csv", [
        result("upscale", glcm_score=0.61, compression_ratio=13.2, fid=55.5, clip_score=30.9),
        result("reference", glcm_score=0.78, compression_ratio=10.4, fid=12.25, clip_score=29.8),
        result("mygen", glcm_score=0.70, compression_ratio=12.0, fid=40.0, clip_score=31.7),
        result("nofid", glcm_score=0.66, compression_ratio=12.6),
        result("upscale", size=4096, glcm_score=0.55, compression_ratio=14.0),
    ])
    reported = write_csv(tmp_path / "reported.csv", [
        {"generator": "SD3-F16", "dataset": "aesthetic-4k", "size": "2048", "glcm_score": "0.75",
         "compression_ratio": "11.23", "fid": "43.82", "clip_score": "31.50", "source": "Paper A, Table 1"},
    ], REPORTED_COLUMNS)
    assert leaderboard_main(["--results", str(results), "--reported", str(reported), "--out", str(tmp_path)]) == 0

    browser.errors.clear()
    browser.open(tmp_path / "index.html")
    assert browser.errors == []
    assert browser.evaluate("document.querySelectorAll('#results tbody tr').length") == 6
    assert browser.evaluate("document.querySelectorAll('svg').length") == 2

    # FID is lower-is-better: the first click puts the best (lowest) first; empty cells stay last.
    fid = header_position(browser, "results", "FID")
    browser.click(header_selector("results", fid))
    values = column_values(browser, "results", "FID")
    assert numbers(values) == sorted(numbers(values)) and numbers(values)[0] == 12.25
    assert values[-2:] == ["", ""]
    assert browser.evaluate(f"document.querySelector('{header_selector('results', fid)}')"
                            ".getAttribute('aria-sort')") == "ascending"
    browser.click(header_selector("results", fid))
    values = column_values(browser, "results", "FID")
    assert numbers(values) == sorted(numbers(values), reverse=True) and values[-2:] == ["", ""]

    # GLCM Score is higher-is-better: best first on the first click.
    browser.click(header_selector("results", header_position(browser, "results", "GLCM Score")))
    glcm = numbers(column_values(browser, "results", "GLCM Score"))
    assert glcm == sorted(glcm, reverse=True) and glcm[0] == 0.78

    # Text columns sort alphabetically.
    browser.click(header_selector("results", header_position(browser, "results", "Generator")))
    names = column_values(browser, "results", "Generator")
    assert names == sorted(names, key=str.lower)

    assert browser.errors == []
    assert_not_blank(browser.screenshot())


def test_run_report_in_chromium(tmp_path, browser):
    rng = np.random.default_rng(0)
    per_image = []
    for index in range(4):
        pixels = np.clip(rng.normal(120, 10 + 20 * index, (256, 320, 3)), 0, 255).astype(np.uint8)
        path = tmp_path / f"img{index}.jpg"
        Image.fromarray(pixels).save(path, quality=95)
        per_image.append({"stem": path.stem, "file": str(path), "width": 320, "height": 256,
                          "glcm_score": 0.4 + 0.1 * index, "jpeg_bytes": path.stat().st_size,
                          "clip_score": 31 - index})
    run = types.SimpleNamespace(row={"generator": "g", "dataset": "sample", "size": 256, "glcm_score": 0.55},
                                per_image=per_image, settings={"seed": 0})
    page = write_report(run, tmp_path / "report")

    browser.errors.clear()
    browser.open(page)
    assert browser.errors == []
    assert browser.evaluate("document.querySelectorAll('#per-image tbody tr').length") == 4
    assert browser.evaluate("Array.prototype.every.call(document.images, function (i) {"
                            " return i.complete && i.naturalWidth > 0; })")
    column = header_position(browser, "per-image", "GLCM Score")
    browser.click(header_selector("per-image", column))
    scores = numbers(column_values(browser, "per-image", "GLCM Score"))
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    assert browser.errors == []
    assert_not_blank(browser.screenshot())
