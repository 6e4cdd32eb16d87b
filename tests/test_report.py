"""Run reports and comparisons: the crops show the right pixels of the generated and the reference image,
the heat-map scale is fixed and its top is a true bound, the page has what a reader needs, runs read back."""
import io
import json
import math
import re
import types

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.errors import UserError
from aesthetic4k.report import load_run, write_comparison, write_report
from aesthetic4k.report.crops import CROP, PATCH, FramedReference, encode_within, random_patch
from aesthetic4k.report.glcm_scale import entropy_bound, heat_map_png, max_patch_score
from aesthetic4k.report.views import per_image_budget
from tests.glcm_reference import reference_patches as reference_patch_scores


def textured_image(height=256, width=320, seed=0):
    """Smooth background, one patch of strong noise at (1, 3), one flat patch at (2, 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (80 + 60 * np.sin(xx / 37.0 + seed) + 40 * np.cos(yy / 23.0)).astype(np.float64)
    image = np.repeat(base[:, :, None], 3, axis=2)
    image += rng.normal(0, 3, image.shape)
    image[64:128, 192:256] = rng.integers(0, 256, (64, 64, 3))
    image[128:192, 64:128] = 140.0
    return np.clip(image, 0, 255).astype(np.uint8)


def gray_of(pixels):
    import cv2

    return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)


def make_run(folder, images, references=None, generator="mygen", prompts=None, computed=(), **row):
    """A run as a4k-eval hands it over; patch grids from scikit-image except for images in ``computed``."""
    per_image = []
    for index, pixels in enumerate(images):
        path = folder / f"{generator}-img{index:02d}.png"                # lossless: the report sees these pixels
        Image.fromarray(pixels).save(path)
        jpeg = io.BytesIO()
        Image.fromarray(pixels).save(jpeg, format="JPEG", quality=95)
        entry = {"stem": f"img{index:02d}", "file": str(path), "width": pixels.shape[1], "height": pixels.shape[0],
                 "glcm_score": 0.5 + index / 10, "jpeg_bytes": len(jpeg.getvalue()), "clip_score": 30.0 + index,
                 "prompt": (prompts or {}).get(index, f"prompt <b>{index}</b> & more"), "reference": None}
        if index not in computed:
            entry["glcm_patches"] = reference_patch_scores(gray_of(pixels))
        if references is not None:
            reference = folder / f"ref-img{index:02d}.png"
            if not reference.exists():
                Image.fromarray(references[index]).save(reference)
            entry["reference"] = str(reference)
        per_image.append(entry)
    base_row = {"generator": generator, "dataset": "sample", "size": 256, "n_images": len(images),
                "glcm_score": 0.61, "compression_ratio": 12.5, "fid": 48.2, "clip_score": 30.5,
                "status": "sample set: smoke test, not a benchmark; fid on 3 images: dominated by the sample size",
                "toolkit_version": "0.1.0", "date": "2025-07-01"}
    base_row.update(row)
    return types.SimpleNamespace(row=base_row, per_image=per_image,
                                 settings={"fid_protocol": "paper", "cr_mode": "jpeg95", "seed": 0})


def decode(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float64)


def expected_window(pixels, row, col):
    """The 256 x 256 window centred on patch (row, col); None where it leaves the image."""
    left, top = col * PATCH - (CROP - PATCH) // 2, row * PATCH - (CROP - PATCH) // 2
    out = np.full((CROP, CROP, 3), np.nan)
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(pixels.shape[0], top + CROP), min(pixels.shape[1], left + CROP)
    out[y0 - top:y1 - top, x0 - left:x1 - left] = pixels[y0:y1, x0:x1]
    return out


def crops_of(html, folder):
    """[(spot kind, data-crop, data-run or '', pixels)] in page order."""
    found = []
    for match in re.finditer(r'<img loading="lazy" data-crop="(\w+)"(?: data-run="(\w)")? src="([^"]+)" '
                             r'width="(\d+)" height="(\d+)"', html):
        crop, run, src, width, height = match.groups()
        assert (int(width), int(height)) == (CROP, CROP)
        kind = re.search(r"-(most-a|most-b|most|least|random|difference)-", src).group(1)
        found.append((kind, crop, run or "", decode(folder / src)))
    return found


def assert_shows(shown, expected):
    inside = ~np.isnan(expected[:, :, 0])
    assert shown.shape == (CROP, CROP, 3)                                # 1:1 and never narrower
    difference = np.abs(shown[inside] - expected[inside])
    assert difference.mean() < 4, difference.mean()                      # JPEG q92 4:4:4 of the same pixels
    if (~inside).any():                                                  # padding: the grey checkerboard
        outside = shown[~inside]
        assert np.all(np.abs(outside - outside.mean(axis=1, keepdims=True)) < 12)
        assert 80 < outside.mean() < 136


# ----------------------------------------------------------------------------- the colour scale


def test_bound_of_the_relaxed_problem_matches_brute_force_and_an_optimiser():
    """The closed form equals a generic optimiser's optimum and bounds every integer configuration."""
    from scipy.optimize import minimize

    cells, masses = 14, [7, 5]

    def entropy(parts):
        parts = np.asarray([p for p in parts if p > 0], dtype=np.float64) / cells
        return float(-(parts * np.log2(parts)).sum())

    def partitions(mass, largest=None):          # multisets of positive counts summing to mass
        largest = mass if largest is None else largest
        if mass == 0:
            yield []
            return
        for first in range(min(mass, largest), 0, -1):
            for rest in partitions(mass - first, first):
                yield [first] + rest

    best = 0.0
    for split_a in partitions(masses[0]):
        for split_b in partitions(masses[1]):
            filled = len(split_a) + len(split_b)
            if filled > cells:
                continue
            parts = [split_a.count(c) for c in set(split_a)] + [split_b.count(c) for c in set(split_b)]
            best = max(best, entropy(parts + [cells - filled]))
    bound = entropy_bound(cells, masses)
    assert best <= bound + 1e-12
    assert bound - best < 0.6                                            # and not absurdly loose

    top = 12
    counts = np.arange(1, top + 1)
    def negative_entropy(x):
        p = np.clip(x, 1e-12, None) / cells
        return float((p * np.log2(p)).sum())
    constraints = [{"type": "eq", "fun": lambda x, g=g: x[g * top:(g + 1) * top] @ counts - masses[g]}
                   for g in range(2)] + [{"type": "eq", "fun": lambda x: x.sum() - cells}]
    start = np.full(2 * top + 1, 0.2)
    start[-1] = cells - 0.2 * 2 * top
    solved = minimize(negative_entropy, start, constraints=constraints, bounds=[(1e-12, cells)] * start.size,
                      method="SLSQP", options={"maxiter": 500, "ftol": 1e-12})
    assert solved.success
    assert -solved.fun == pytest.approx(bound, abs=2e-4)


def test_max_patch_score_bounds_real_patches_and_is_nearly_reached():
    top = max_patch_score()
    assert top < math.log2(64 * 64 * 16)                                 # tighter than the trivial 16 bits
    rng = np.random.default_rng(3)
    patches = [rng.integers(0, 256, (64, 64)),                           # uniform noise: close to the optimum
               rng.integers(0, 64, (64, 64)) * 4 + rng.integers(0, 4, (64, 64)),
               np.clip(rng.normal(128, 40, (64, 64)), 0, 255),
               rng.integers(0, 2, (64, 64)) * 255,
               (np.add.outer(np.arange(64), np.arange(64)) * 7) % 256,
               np.full((64, 64), 77)]
    scores = [reference_patch_scores(p.astype(np.uint8))[0, 0] for p in patches]
    assert max(scores) <= top
    assert top - scores[0] < 0.15, (top, scores[0])


def test_heat_map_colours_are_fixed_not_relative_to_the_run():
    from matplotlib import colormaps

    top = max_patch_score()
    grid = np.array([[0.0, 1.0], [top / 2, 5.0]])
    shown = np.asarray(Image.open(io.BytesIO(heat_map_png(grid))).convert("RGB")).astype(int)
    for (r, c), value in np.ndenumerate(grid):
        expected = np.round(np.asarray(colormaps["magma"](min(value / top, 1.0))[:3]) * 255)
        assert np.abs(shown[r, c] - expected).max() <= 1
    # the same score gets the same colour whatever else is in the grid
    other = np.asarray(Image.open(io.BytesIO(heat_map_png(np.array([[1.0, 2.2]])))).convert("RGB"))
    assert (other[0, 0] == shown[0, 1]).all()


# ----------------------------------------------------------------------------- one run


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    folder = tmp_path_factory.mktemp("single")
    images = [textured_image(seed=s) for s in range(3)]
    references = [textured_image(seed=10 + s) for s in range(2)] + [textured_image(300, 450, seed=12)]
    run = make_run(folder, images, references, computed=(0,))          # image 0: the report computes its grid
    run.per_image[1]["clip_truncated"] = True
    run.per_image[2]["skipped_detail"] = "odd <note>"
    page = write_report(run, folder / "report")
    return run, images, references, folder, page


def test_crops_show_generated_and_reference_at_the_same_coordinates(single):
    run, images, references, folder, page = single
    html = page.read_text(encoding="utf-8")
    crops = crops_of(html, page.parent)
    assert [(kind, crop) for kind, crop, _, _ in crops] == \
        [(k, c) for k in ("most", "least", "random") for c in ("generated", "reference")] * 3
    for index, pixels in enumerate(images):
        expected = reference_patch_scores(gray_of(pixels))
        spots = {"most": np.unravel_index(np.argmax(expected), expected.shape),
                 "least": np.unravel_index(np.argmin(expected), expected.shape),
                 "random": random_patch(expected.shape, f"img{index:02d}",
                                        avoid=[np.unravel_index(np.argmax(expected), expected.shape),
                                               np.unravel_index(np.argmin(expected), expected.shape)])}
        assert spots["most"] == (1, 3) and spots["least"] == (2, 1)
        reference = references[index]
        if reference.shape != pixels.shape:              # 450 x 300: shorter side to 256, centre crop to 320
            framed = Image.fromarray(reference).resize((384, 256), Image.Resampling.LANCZOS)
            reference = np.asarray(framed.crop((32, 0, 352, 256)))
        for kind, crop, _, shown in crops[index * 6:(index + 1) * 6]:
            row, col = spots[kind]
            source = pixels if crop == "generated" else reference
            assert_shows(shown, expected_window(source.astype(np.float64), row, col))
        assert f"x={spots['random'][1] * PATCH}, y={spots['random'][0] * PATCH}" in html


def test_reference_framing_is_shorter_side_and_centre_crop():
    reference = np.random.default_rng(0).integers(0, 256, (300, 450, 3), dtype=np.uint8)
    framed = FramedReference(reference, 320, 256)
    expected = np.asarray(Image.fromarray(reference).resize((384, 256), Image.Resampling.LANCZOS)
                          .crop((32, 0, 352, 256))).astype(np.float64)
    assert framed.resized
    for left, top in ((-96, -96), (0, 0), (40, 10), (200, 100)):       # inside and past the edges
        shown = framed.window(left, top).astype(np.float64)
        wanted = expected_window(expected, 0, 0) if (left, top) == (-96, -96) else None
        if wanted is None:
            wanted = np.full((CROP, CROP, 3), np.nan)
            y0, x0, y1, x1 = max(0, top), max(0, left), min(256, top + CROP), min(320, left + CROP)
            wanted[y0 - top:y1 - top, x0 - left:x1 - left] = expected[y0:y1, x0:x1]
        inside = ~np.isnan(wanted)
        assert np.abs(shown[inside] - wanted[inside]).max() <= 1           # one grey level of rounding
    same = FramedReference(reference, 450, 300)
    assert not same.resized and (same.window(10, 20) == reference[20:276, 10:266]).all()


def test_random_patch_depends_on_the_stem_only():
    assert random_patch((32, 32), "0042") == random_patch((32, 32), "0042")
    assert len({random_patch((32, 32), f"{i:04d}") for i in range(20)}) > 10
    assert random_patch((2, 2), "x", avoid=[(0, 0), (0, 1), (1, 0)]) == (1, 1)


def test_page_order_prompt_values_and_folded_details(single):
    run, _, _, _, page = single
    html = page.read_text(encoding="utf-8")
    sections = re.findall(r'<section( class="[^"]+")?>', html)
    assert sections[0] == ' class="summary"'
    details = re.search(r'<details class="run" id="run-details">(.*?)</details>', html, re.S).group(1)
    for text in ("fid on 3 images: dominated by the sample size", "fid_protocol", "jpeg95"):
        assert text in details and html.count(text) == 1                 # only in the folded part
    summary = html.split('<section class="summary">', 1)[1].split("</section>", 1)[0]
    assert "2 notes (see run details)" in summary and "FID ↓" in summary and "48.2" in summary
    assert html.count("prompt &lt;b&gt;1&lt;/b&gt; &amp; more") == 1      # escaped, once per card
    table = html.split('id="per-image"', 1)[1].split("</table>", 1)[0]
    headers = re.findall(r"<th[^>]*>(.*?)</th>", table)
    assert "CLIPScore ↑" in headers and "clip_truncated" in headers and "skipped_detail" in headers
    assert 'title="odd &lt;note&gt;">odd &lt;note&gt;</td>' in table
    first = run.per_image[0]
    assert f"{first['width'] * first['height'] * 3 / first['jpeg_bytes']:.2f}" in table
    assert "3.61 bits" in html and "largest GLCM Score any patch can reach" in html
    for remote in ('src="http', 'href="http', "<link ", "@import"):
        assert remote not in html


def test_reports_are_byte_identical_and_read_back(single, tmp_path):
    run, _, _, folder, page = single
    again = write_report(run, tmp_path / "again").parent
    first = page.parent
    names = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    assert "run.json" in names and "patches.npz" in names and not any(n.startswith(".") for n in names)
    for name in names:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    loaded = load_run(first)
    assert loaded.row["generator"] == "mygen" and loaded.settings["cr_mode"] == "jpeg95"
    assert [e["stem"] for e in loaded.per_image] == ["img00", "img01", "img02"]
    assert loaded.per_image[1]["clip_truncated"] is True and loaded.per_image[0]["file"] == run.per_image[0]["file"]
    grid = reference_patch_scores(gray_of(np.asarray(Image.open(run.per_image[0]["file"]))))
    assert np.allclose(loaded.per_image[0]["glcm_patches"], grid, atol=1e-9)
    # a results row whose settings name the report folder leads to the same run
    from tests.csv_files import write_csv
    from aesthetic4k.results import COLUMNS

    csv = tmp_path / "results.csv"
    write_csv(csv, [{"generator": "mygen", "dataset": "sample", "size": "256",
                     "settings": json.dumps({"report": str(first)})},
                    {"generator": "other", "dataset": "sample", "size": "256"}], COLUMNS)
    assert load_run(f"{csv}:mygen/sample/256").per_image[2]["stem"] == "img02"
    with pytest.raises(UserError, match="has 2 rows; name one"):
        load_run(str(csv))
    with pytest.raises(UserError, match="other/sample/256 has no report folder"):
        load_run(f"{csv}:other/sample/256")
    with pytest.raises(UserError, match="no run.json"):
        load_run(str(tmp_path))


def test_unreadable_image_does_not_stop_the_report(tmp_path):
    run = make_run(tmp_path, [textured_image()])
    run.per_image.append({"stem": "gone", "file": str(tmp_path / "gone.jpg"), "glcm_score": 0.4})
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    run.per_image.append({"stem": "broken", "file": str(broken)})
    html = write_report(run, tmp_path / "out").read_text(encoding="utf-8")
    assert html.count('<article class="card"') == 3
    assert html.count('class="error"') == 2 and "gone.jpg" in html and "broken.jpg" in html
    assert html.count('data-crop="reference"') == 0 and "no reference image for this entry" in html


def test_given_patch_grid_is_used_as_is(tmp_path):
    run = make_run(tmp_path, [textured_image()])
    grid = np.zeros((4, 5))
    grid[3, 4], grid[0, 2] = 2.0, -1.0
    run.per_image[0]["glcm_patches"] = grid
    html = write_report(run, tmp_path / "out").read_text(encoding="utf-8")
    assert "patch x=256, y=192" in html and "patch x=128, y=0" in html


def test_a_failed_report_leaves_the_previous_one(tmp_path, monkeypatch):
    run = make_run(tmp_path, [textured_image()])
    page = write_report(run, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in page.parent.rglob("*") if p.is_file()}
    from aesthetic4k.report import single

    def explode(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(single, "table_section", explode)
    with pytest.raises(KeyboardInterrupt):
        write_report(make_run(tmp_path, [textured_image(seed=5)], generator="new"), tmp_path / "out")
    after = {p.name: p.read_bytes() for p in page.parent.rglob("*") if p.is_file()}
    assert after == before and not list(page.parent.glob(".*"))


def test_report_into_a_file_path_is_a_user_error(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(UserError, match="cannot create the report folder"):
        write_report(make_run(tmp_path, [textured_image()]), target)


def test_image_bytes_stay_within_the_budget_at_4096(tmp_path, monkeypatch):
    """Worst case for JPEG (pure noise) at 4096: one image's files fit its share of a 200-image report."""
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (4096, 4096, 3), dtype=np.uint8)
    path = tmp_path / "noise.jpg"
    Image.fromarray(noise).save(path, quality=95)
    Image.fromarray(noise[::2, ::2]).save(tmp_path / "ref.png")
    del noise
    entry = {"stem": "noise", "file": str(path), "reference": str(tmp_path / "ref.png"), "width": 4096,
             "height": 4096, "glcm_score": 0.9, "jpeg_bytes": path.stat().st_size,
             "glcm_patches": rng.random((64, 64))}
    run = types.SimpleNamespace(row={"generator": "g", "dataset": "aesthetic-4k", "size": 4096},
                                per_image=[entry], settings={})
    from aesthetic4k.report import single, views

    budget = per_image_budget(200)
    monkeypatch.setattr(single, "per_image_budget", lambda n, runs=1: budget)
    page = write_report(run, tmp_path / "out")
    images = sum(p.stat().st_size for p in (page.parent / "images").iterdir())
    assert 6 * 10_000 < images <= budget
    assert 200 * budget <= views.IMAGE_BYTES_BUDGET
    assert page.stat().st_size < 60_000


def test_encoding_meets_its_budget():
    detailed = np.random.default_rng(2).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    crops = [detailed[:CROP, :CROP]] * 3
    for budget in (120_000, 300_000):
        thumbs, sizes, encoded = encode_within([detailed], crops, budget)
        assert sum(map(len, thumbs)) + sum(map(len, encoded)) <= budget
        assert max(sizes[0]) <= 360


# ----------------------------------------------------------------------------- two runs


def test_comparison_shows_both_runs_and_the_reference_at_the_same_places(tmp_path):
    references = [textured_image(seed=20 + s) for s in range(3)]
    run_a = make_run(tmp_path, [textured_image(seed=s) for s in range(3)], references, generator="alpha")
    flat_b = []
    for s in range(3):
        pixels = textured_image(seed=s)
        pixels[0:64, 0:64] = np.random.default_rng(s).integers(0, 256, (64, 64, 3))   # B's most detailed: (0, 0)
        pixels[64:128, 192:256] = 120                                                   # A's most detailed, flat in B
        flat_b.append(pixels)
    run_b = make_run(tmp_path, flat_b + [textured_image(seed=9)], references + [references[0]], generator="beta",
                     glcm_score=0.7, fid=30.0)
    page = write_comparison(load_run(write_report(run_a, tmp_path / "ra").parent), run_b, tmp_path / "cmp")
    html = page.read_text(encoding="utf-8")
    assert "Only in B (1): img03" in html and html.count('<article class="card"') == 3
    crops = crops_of(html, page.parent)
    kinds = [(kind, crop, run) for kind, crop, run, _ in crops]
    per_spot = [("generated", "a"), ("generated", "b"), ("reference", "")]
    # A's most detailed patch is also where the runs differ most: one place, shown once
    assert kinds[:9] == [(k, c, r) for k in ("most-a", "most-b", "random") for c, r in per_spot]
    assert "most detailed in A, largest difference" in html
    places = {"most-a": (1, 3), "most-b": (0, 0)}
    for kind, crop, run, shown in crops[:9]:
        source = {"a": textured_image(seed=0), "b": flat_b[0], "": references[0]}[run]
        row, col = places.get(kind) or random_patch((4, 5), "img00", avoid=[(1, 3), (0, 0), (1, 3)])
        assert_shows(shown, expected_window(source.astype(np.float64), row, col))
    tiles = dict(re.findall(r'<div class="tile" data-metric="(\w+)">.*?<div class="hint verdict (\w*)">', html))
    assert tiles["fid"] == "better" and tiles["glcm_score"] == "better" and tiles["clip_score"] == "same"
    assert "B − A GLCM Score ↑" in html


def test_comparison_needs_the_same_dataset_and_size(tmp_path):
    run_a = make_run(tmp_path, [textured_image()])
    for change in ({"dataset": "aesthetic-4k"}, {"size": 512}):
        run_b = make_run(tmp_path, [textured_image()], generator="b", **change)
        with pytest.raises(UserError, match="not comparable"):
            write_comparison(run_a, run_b, tmp_path / "cmp")
    other = make_run(tmp_path, [textured_image()], generator="c")
    other.per_image[0]["stem"] = "elsewhere"
    with pytest.raises(UserError, match="no image in common"):
        write_comparison(run_a, other, tmp_path / "cmp")


def test_a4k_report_command(tmp_path, capsys):
    from aesthetic4k.cli.report import main

    write_report(make_run(tmp_path, [textured_image()]), tmp_path / "a")
    write_report(make_run(tmp_path, [textured_image(seed=3)], generator="other"), tmp_path / "b")
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    assert "Comparison: A: mygen vs B: other" in (tmp_path / "cmp" / "index.html").read_text(encoding="utf-8")
    assert not (tmp_path / "cmp" / "run.json").exists()
    assert main([str(tmp_path / "a"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "run.json").exists()
    capsys.readouterr()
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"a4k-report: error: {tmp_path / 'nothing'}: no such report folder"]
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a"), "--ot", "x"])
    assert "unrecognized argument --ot; did you mean --out?" in capsys.readouterr().err
