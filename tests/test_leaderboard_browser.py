"""The leaderboard page, a run report and a comparison in a real headless Chromium (Debian package `chromium`).

Pages are loaded from disk with the network unused, at 1280 px wide, then: no console errors or uncaught
exceptions, every image renders, a real mouse click on a header sorts the rows, tables fit their card,
rows are one line high, the screenshot is not blank. Skipped, with the reason, where no Chromium is
installed (CI installs it: apt-get install chromium).
"""
import io
import json
import types

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.cli.leaderboard import main as leaderboard_main
from aesthetic4k.report import write_comparison, write_report
from tests.headless_chromium import Chromium, find_chromium
from tests.test_leaderboard import REPORTED_COLUMNS, reported, result, write_csv

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="chromium is not installed (apt-get install chromium) - browser test skipped")
WIDTH = 1280


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=WIDTH, height=900) as chromium:
        yield chromium


def column_values(browser, table_id, header_text):
    return browser.evaluate(f"""(function() {{
        var table = document.getElementById({json.dumps(table_id)});
        var index = Array.prototype.findIndex.call(table.tHead.rows[0].cells,
            function (th) {{ return th.textContent.trim().indexOf({json.dumps(header_text)}) === 0; }});
        var rows = Array.prototype.filter.call(table.tBodies[0].rows,
            function (row) {{ return !row.classList.contains('detail'); }});
        return rows.map(function (row) {{
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


def assert_fits(browser, selector):
    """Nothing scrolls sideways: the element's content is no wider than its box, the page no wider than 1280."""
    widths = browser.evaluate(f"""(function() {{
        var box = document.querySelector({json.dumps(selector)});
        return [box.scrollWidth, box.clientWidth, document.documentElement.scrollWidth];
    }})()""")
    assert widths[0] <= widths[1] and widths[2] <= WIDTH, widths


def test_leaderboard_page_in_chromium(tmp_path, browser):
    results = tmp_path / "results"
    (results / "reports" / "mygen").mkdir(parents=True)
    (results / "reports" / "mygen" / "index.html").write_text("<!DOCTYPE html><title>report</title>")
    every = dict(kid=0.0123, kid_std=0.001, patch_fid=20.5, patch_kid=0.0099, aesthetics=6.1)
    write_csv(results / "runs.csv", [
        result("upscale", glcm_score=0.61, compression_ratio=13.2, fid=55.5, clip_score=30.9),
        result("reference", glcm_score=0.78, compression_ratio=10.4, fid=-0.0002, clip_score=29.8),
        dict(result("mygen", glcm_score=0.70, compression_ratio=12.0, fid=40.0, clip_score=31.7, **every),
             settings=json.dumps({"report": "reports/mygen", "fid_protocol": "paper"})),
        result("a-generator-with-a-rather-long-name-v2-finetuned-4k", glcm_score=0.66, compression_ratio=12.6),
        result("upscale", size=4096, glcm_score=0.55, compression_ratio=14.0),
        result("smoke", dataset="sample", glcm_score=0.83, compression_ratio=6.3),
    ])
    long_name = "Diffusion-4K (Zhang et al., CVPR 2025), a long paper name that would wrap over lines in a narrow cell"
    other = dict(protocol="other", paper="UltraFlux-like Paper B (Someone et al., 2025)", arxiv="2511.00001v1",
                 table="Table 2",
                 differences="its CLIP Score is computed with Long-CLIP; FID resize, implementation and image count "
                             "not stated, a long text that would wrap over three lines in a narrow cell")
    reported_file = write_csv(tmp_path / "reported.csv", [
        reported("SD3-F16", paper=long_name, glcm_score="0.75", compression_ratio="11.23", fid="43.82",
                 clip_score="31.50"),
        # another protocol, and every metric this toolkit does not compute: its own table, folded to fit
        reported("NewGen", size=4096, fid="143.11", patch_fid="24.008", longclip_score="34.62", fg_clip="28.64",
                 imagereward="1.09", hpsv3="11.47", pickscore="22.69", artimuse="68.36", q_align="4.85",
                 musiq="46.13", **other),
        reported("Diffusion-4K (Flux) as a later paper names it, a long name", size=4096, fid="152.43",
                 longclip_score="33.00", hpsv3="8.92", **other),
    ], REPORTED_COLUMNS)
    assert leaderboard_main(["--results", str(results), "--reported", str(reported_file), "--out", str(tmp_path)]) == 0

    browser.errors.clear()
    browser.open(tmp_path / "index.html")
    assert browser.errors == []
    assert browser.evaluate("document.querySelectorAll('#results tbody tr.main').length") == 6
    assert browser.evaluate("document.querySelectorAll('#smoke-results tbody tr.main').length") == 1
    assert browser.evaluate("document.querySelectorAll('svg').length") == 2

    # every column of the widest table fits its card at 1280 px; rows are one line high, reported or not
    assert_fits(browser, "#results")
    assert_fits(browser, "#results")
    assert browser.evaluate("document.getElementById('results').parentElement.scrollWidth <= "
                            "document.getElementById('results').parentElement.clientWidth")
    heights = browser.evaluate("Array.prototype.map.call(document.querySelectorAll('#results tr.main'), "
                               "function (r) { return Math.round(r.getBoundingClientRect().height); })")
    assert len(set(heights)) == 1 and heights[0] < 50, heights

    # noise below zero: 0.00, raw value on hover, not bold
    noise = browser.evaluate("""(function () { var c = document.querySelector('#results td.noise');
        return [c.textContent, c.title, getComputedStyle(c).fontWeight]; })()""")
    assert noise[0] == "0.00" and "-0.0002" in noise[1] and int(noise[2]) < 600

    # the report link is there and points to an existing file
    href = browser.evaluate("document.querySelector('#results td.report a').href")
    assert href.endswith("/results/reports/mygen/index.html")

    # the detail row opens under its row and stays with it when sorting
    browser.click("#results tr.main:nth-child(1) button.more")
    opened = browser.evaluate("""(function () { var b = document.querySelector('#results tr.main button.more');
        var d = document.getElementById(b.getAttribute('aria-controls'));
        return [d.hidden, d.previousElementSibling === b.closest('tr'), d.textContent]; })()""")
    assert opened[0] is False and opened[1] is True and "protocol" in opened[2]
    # the extra metrics that did not fit were folded into the detail rows, where their values show
    assert "fold-patch_kid" in browser.evaluate("document.getElementById('results').className")
    assert browser.evaluate("document.querySelector('#results th[data-metric=patch_kid]').offsetWidth") == 0
    browser.click("#results tr.main:nth-child(3) button.more")            # mygen: the row with every metric
    shown = browser.evaluate("document.querySelectorAll('#results tr.detail')[1].innerText")
    assert "patch-KID ↓" in shown and "0.009900" in shown

    # FID is lower-is-better: the first click puts the best (lowest) first; empty cells stay last.
    fid = header_position(browser, "results", "FID")
    browser.click(header_selector("results", fid))
    values = column_values(browser, "results", "FID")
    assert numbers(values) == sorted(numbers(values)) and numbers(values)[0] == 0.0
    assert values[-2:] == ["", ""]
    assert browser.evaluate(f"document.querySelector('{header_selector('results', fid)}')"
                            ".getAttribute('aria-sort')") == "ascending"
    browser.click(header_selector("results", fid))
    values = column_values(browser, "results", "FID")
    assert numbers(values) == sorted(numbers(values), reverse=True) and values[-2:] == ["", ""]
    assert browser.evaluate("""Array.prototype.every.call(document.querySelectorAll('#results tr.detail'),
        function (d) { var main = d.previousElementSibling;
            return main.querySelector('button.more').getAttribute('aria-controls') === d.id; })""")

    # GLCM Score is higher-is-better: best first on the first click.
    browser.click(header_selector("results", header_position(browser, "results", "GLCM Score")))
    glcm = numbers(column_values(browser, "results", "GLCM Score"))
    assert glcm == sorted(glcm, reverse=True) and glcm[0] == 0.78

    # Text columns sort alphabetically.
    browser.click(header_selector("results", header_position(browser, "results", "Generator")))
    names = column_values(browser, "results", "Generator")
    assert names == sorted(names, key=str.lower)

    # reported rows of another protocol: a table of their own that fits, one line per row, the metrics this
    # toolkit does not compute folded into the detail row with the quoted table row and the source
    assert browser.evaluate("document.querySelectorAll('#reported-apart tbody tr.main').length") == 2
    assert_fits(browser, "#reported-apart")
    assert browser.evaluate("document.getElementById('reported-apart').parentElement.scrollWidth <= "
                            "document.getElementById('reported-apart').parentElement.clientWidth")
    heights = browser.evaluate("Array.prototype.map.call(document.querySelectorAll('#reported-apart tr.main'), "
                               "function (r) { return Math.round(r.getBoundingClientRect().height); })")
    assert len(set(heights)) == 1 and heights[0] < 50, heights
    assert "fold-musiq" in browser.evaluate("document.getElementById('reported-apart').className")
    browser.click("#reported-apart tr.main:nth-child(1) button.more")
    shown = browser.evaluate("document.querySelectorAll('#reported-apart tr.detail')[0].innerText")
    assert "MUSIQ ↑ ‡" in shown and "46.13" in shown and "quoted table row" in shown
    assert "Paper B (Someone et al., 2025), arXiv 2511.00001v1, Table 2" in shown and "not measured here" in shown
    browser.click(header_selector("reported-apart", header_position(browser, "reported-apart", "FID")))
    assert numbers(column_values(browser, "reported-apart", "FID")) == [143.11, 152.43]

    assert browser.errors == []
    assert_not_blank(browser.screenshot())


def textured(seed, height=320, width=384):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 110 + 60 * np.sin(xx / (20.0 + seed)) + 40 * np.cos(yy / 23.0)
    pixels = np.repeat(base[:, :, None], 3, axis=2) + rng.normal(0, 4 + 8 * seed, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_run(folder, generator, noise_scale):
    per_image = []
    for index in range(4):
        pixels = textured(index + noise_scale)
        path = folder / f"{generator}{index}.jpg"
        Image.fromarray(pixels).save(path, quality=95)
        reference = folder / f"ref{index}.png"
        if not reference.exists():
            Image.fromarray(textured(10 + index, 400, 500)).save(reference)
        per_image.append({"stem": f"img{index}", "file": str(path), "reference": str(reference),
                          "prompt": f"a photograph number {index}", "width": 384, "height": 320,
                          "glcm_score": 0.4 + 0.1 * index, "jpeg_bytes": path.stat().st_size,
                          "clip_score": 31 - index,
                          # any grid will do here (tests/test_report.py checks the real ones): no GLCM run
                          "glcm_patches": np.random.default_rng(noise_scale * 10 + index).random((5, 6)) * 3})
    return types.SimpleNamespace(row={"generator": generator, "dataset": "sample", "size": 384, "glcm_score": 0.55,
                                      "status": "sample set: smoke test, not a benchmark"},
                                 per_image=per_image, settings={"seed": 0})


def check_report_page(browser, page, crops, sort_by="GLCM Score"):
    browser.errors.clear()
    browser.open(page)
    assert browser.errors == []
    assert browser.load_images() == 0                                   # every image (thumbs, maps, crops) loads
    assert browser.evaluate("Array.prototype.every.call(document.images, function (i) {"
                            " return i.complete && i.naturalWidth > 0; })")
    sizes = browser.evaluate("Array.prototype.map.call(document.querySelectorAll('img[data-crop]'), function (i) {"
                             " return [i.naturalWidth, i.naturalHeight, Math.round(i.getBoundingClientRect().width)]; })")
    assert len(sizes) == crops and all(s == [256, 256, 256] for s in sizes)          # shown at 1:1
    assert browser.evaluate("document.querySelector('main > section').className") == "summary"
    assert browser.evaluate("document.getElementById('run-details').open") is False
    assert_fits(browser, "main")
    assert browser.evaluate("document.querySelectorAll('#per-image tbody tr').length") == 4
    browser.click(header_selector("per-image", header_position(browser, "per-image", sort_by)))
    order = browser.evaluate("Array.prototype.map.call(document.querySelectorAll('#per-image tbody tr'),"
                             " function (r) { return r.getAttribute('data-card'); })")
    cards = browser.evaluate("Array.prototype.map.call(document.querySelectorAll('#cards > article'),"
                             " function (a) { return a.id; })")
    assert order == cards                                               # the cards follow the table
    assert browser.errors == []
    assert_not_blank(browser.screenshot())


def test_run_report_in_chromium(tmp_path, browser):
    page = write_report(make_run(tmp_path, "g", 0), tmp_path / "report")
    check_report_page(browser, page, crops=4 * 3 * 2)          # 3 places x (generated, reference) per image
    scores = numbers(column_values(browser, "per-image", "GLCM Score"))
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    assert browser.evaluate("document.querySelectorAll('img[data-crop=reference]').length") == 12


def test_comparison_in_chromium(tmp_path, browser):
    page = write_comparison(make_run(tmp_path, "a", 0), make_run(tmp_path, "b", 3), tmp_path / "cmp")
    html = page.read_text(encoding="utf-8")
    places = [card.count('class="spot-label"') for card in html.split('<article class="card"')[1:]]
    assert len(places) == 4 and all(3 <= n <= 4 for n in places)
    for card, n in zip(html.split('<article class="card"')[1:], places):   # A, B and the reference at each
        assert card.count('data-crop="generated" data-run="a"') == card.count('data-run="b"') == n
        assert card.count('data-crop="reference"') == n
    check_report_page(browser, page, crops=3 * sum(places), sort_by="B − A GLCM Score")
    runs = browser.evaluate("Array.prototype.map.call(document.querySelectorAll('img[data-crop=generated]'),"
                            " function (i) { return i.getAttribute('data-run'); })")
    assert runs == ["a", "b"] * (len(runs) // 2)
