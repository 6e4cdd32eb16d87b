"""a4k-eval --report: the crops and heat map point at the right patches, the page stays small."""
import base64
import io
import re
import types

import numpy as np
import pytest
from PIL import Image

from aesthetic4k import report
from aesthetic4k.report import crop_around, patch_extremes, per_image_budget, write_report
from tests.glcm_reference import reference_patches as reference_patch_scores


def textured_image(height=256, width=320, seed=0):
    """Smooth background, one patch of strong noise, one perfectly flat patch, other patches in between."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (80 + 60 * np.sin(xx / 37.0) + 40 * np.cos(yy / 23.0)).astype(np.float64)
    image = np.repeat(base[:, :, None], 3, axis=2)
    image += rng.normal(0, 3, image.shape)
    image[64:128, 192:256] = rng.integers(0, 256, (64, 64, 3))          # patch (1, 3): most detailed
    image[128:192, 64:128] = 140.0                                       # patch (2, 1): flat
    return np.clip(image, 0, 255).astype(np.uint8)


def make_run(tmp_path, images, **row):
    per_image = []
    for index, pixels in enumerate(images):
        path = tmp_path / f"img{index:02d}.png"                          # lossless: the report sees these pixels
        Image.fromarray(pixels).save(path)
        jpeg = io.BytesIO()
        Image.fromarray(pixels).save(jpeg, format="JPEG", quality=95)
        per_image.append({"stem": path.stem, "file": str(path), "width": pixels.shape[1],
                          "height": pixels.shape[0], "glcm_score": 0.5 + index / 10,
                          "jpeg_bytes": len(jpeg.getvalue()), "clip_score": 30.0 + index})
    base_row = {"generator": "mygen", "dataset": "sample", "size": 256, "n_images": len(images),
                "glcm_score": 0.61, "compression_ratio": 12.5, "fid": 48.2, "clip_score": 30.5,
                "toolkit_version": "0.1.0", "date": "2025-07-01"}
    base_row.update(row)
    return types.SimpleNamespace(row=base_row, per_image=per_image,
                                 settings={"fid_protocol": "paper", "cr_mode": "jpeg95", "seed": 0})


def decode_uri(uri):
    payload = base64.b64decode(uri.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))


def test_crops_and_heat_map_follow_reference_patch_scores(tmp_path):
    pixels = textured_image()
    import cv2

    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    expected = reference_patch_scores(gray)
    best = np.unravel_index(np.argmax(expected), expected.shape)
    worst = np.unravel_index(np.argmin(expected), expected.shape)
    assert (best, worst) == ((1, 3), (2, 1))                            # the fixture does what it says

    html = write_report(make_run(tmp_path, [pixels]), tmp_path / "report").read_text(encoding="utf-8")
    patches = re.findall(r'<figure class="crop" data-patch="(\d+),(\d+)">', html)
    assert patches == [("1", "3"), ("2", "1")]

    crops = re.findall(r'<figure class="crop".*?<img src="(data:image/jpeg;base64,[^"]+)" width="(\d+)" '
                       r'height="(\d+)"', html)
    for (uri, width, height), (row, col) in zip(crops, [best, worst]):
        left, top, w, h = crop_around(row, col, pixels.shape[1], pixels.shape[0])
        shown = decode_uri(uri)
        source = pixels[top:top + h, left:left + w].astype(np.float64)
        assert shown.shape == source.shape == (int(height), int(width), 3)   # 1:1, not resampled
        correlation = np.corrcoef(shown.ravel().astype(np.float64), source.ravel())[0, 1]
        assert correlation > 0.95
        assert np.abs(shown - source).mean() < 6

    heat_uri = re.search(r'<img class="heat" src="(data:image/png;base64,[^"]+)"', html).group(1)
    heat = decode_uri(heat_uri).astype(np.float64)
    assert heat.shape[:2] == expected.shape
    brightness = heat @ [0.299, 0.587, 0.114]                          # magma: brightness rises with score
    assert np.unravel_index(np.argmax(brightness), brightness.shape) == best
    assert np.unravel_index(np.argmin(brightness), brightness.shape) == worst
    order = np.argsort(expected.ravel())
    assert np.all(np.diff(brightness.ravel()[order]) >= -1.0)           # monotonic up to rounding


def test_page_sections_table_and_summary(tmp_path):
    images = [textured_image(seed=s) for s in range(3)]
    run = make_run(tmp_path, images)
    html = write_report(run, tmp_path / "out").read_text(encoding="utf-8")
    body = html.split('id="per-image"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr>") == 3
    first = run.per_image[0]
    ratio = first["width"] * first["height"] * 3 / first["jpeg_bytes"]
    assert f"{ratio:.2f}" in body                                        # per-image compression ratio
    for text in ("GLCM Score", "FID", "48.2", "fid_protocol", "jpeg95", "mygen on sample @ 256"):
        assert text in html
    assert html.count('<article class="card"') == 3
    assert html.count("<svg") >= 2                                      # histograms and the colour bar
    for remote in ('src="http', 'href="http', "<link ", "@import"):
        assert remote not in html


def test_unreadable_image_does_not_stop_the_report(tmp_path):
    run = make_run(tmp_path, [textured_image()])
    run.per_image.append({"stem": "gone", "file": str(tmp_path / "gone.jpg"), "glcm_score": 0.4})
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    run.per_image.append({"stem": "broken", "file": str(broken)})
    html = write_report(run, tmp_path / "out").read_text(encoding="utf-8")
    assert html.count('<article class="card"') == 3
    assert html.count('class="error"') == 2 and "gone.jpg" in html and "broken.jpg" in html


def test_given_patch_grid_is_used_as_is(tmp_path):
    run = make_run(tmp_path, [textured_image()])
    grid = np.zeros((4, 5))
    grid[3, 4], grid[0, 2] = 2.0, -1.0
    run.per_image[0]["glcm_patches"] = grid
    html = write_report(run, tmp_path / "out").read_text(encoding="utf-8")
    assert re.findall(r'data-patch="(\d+),(\d+)"', html) == [("3", "4"), ("0", "2")]


def test_patch_helpers():
    assert patch_extremes(np.array([[1.0, 3.0], [3.0, 0.5]])) == ((0, 1), (1, 1))   # first of ties
    assert crop_around(0, 0, 4096, 4096) == (0, 0, 96, 96)
    assert crop_around(5, 7, 4096, 4096) == (7 * 64 - 32, 5 * 64 - 32, 128, 128)
    assert crop_around(63, 63, 4096, 4096) == (4032 - 32, 4032 - 32, 96, 96)


def test_200_images_at_4096_stay_under_20_mb(tmp_path, monkeypatch):
    """Worst case for JPEG (pure noise) at 4096: measure one image's share, extrapolate to 200."""
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (4096, 4096, 3), dtype=np.uint8)
    path = tmp_path / "noise.jpg"
    Image.fromarray(noise).save(path, quality=95)
    del noise
    grid = rng.random((64, 64))                                          # skip the GLCM: size is the point
    entry = {"stem": "noise", "file": str(path), "width": 4096, "height": 4096, "glcm_score": 0.9,
             "jpeg_bytes": path.stat().st_size, "glcm_patches": grid, "clip_score": 31.0, "aesthetics": 5.5}
    monkeypatch.setattr(report, "per_image_budget", lambda n: per_image_budget(200))
    run = types.SimpleNamespace(row={"generator": "g", "dataset": "aesthetic-4k", "size": 4096},
                                per_image=[entry], settings={})
    html = write_report(run, tmp_path / "out").read_text(encoding="utf-8")
    card = re.search(r'<article class="card".*?</article>', html, re.S).group(0)
    table_row = re.search(r'<tbody><tr>.*?</tr>', html.split('id="per-image"', 1)[1], re.S).group(0)
    per_image = len(card) + len(table_row)
    fixed = len(html) - per_image
    assert per_image > 10_000                                            # thumbnails and crops are really there
    assert fixed + 200 * per_image < 20_000_000, (fixed, per_image)


def test_budget_is_respected_on_detailed_images():
    rng = np.random.default_rng(2)
    detailed = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    crops = [report.Crop(0, 0, 1.0, *crop_around(3, 3, 1024, 1024))]
    for budget in (30_000, 60_000):
        thumb, size, encoded = report._encode_within(detailed, crops, budget)
        assert len(thumb) + sum(map(len, encoded)) <= budget
        assert max(size) <= report.THUMB_LONG_SIDE
    assert per_image_budget(10_000) * 10_000 <= report.IMAGE_BYTES_BUDGET or \
        per_image_budget(10_000) == report.PER_IMAGE_FLOOR


def test_report_into_a_file_path_is_a_user_error(tmp_path):
    from aesthetic4k.errors import UserError

    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(UserError, match="cannot create the report folder"):
        write_report(make_run(tmp_path, [textured_image()]), target)
