"""How images are decoded: odd modes are normalised like cv2.imread; every odd file is refused clearly."""
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from aesthetic4k.errors import ImageError
from aesthetic4k_metrics.detail import measure_files
from aesthetic4k_metrics.files import display_path
from aesthetic4k_metrics.image_input import DEFAULT_MAX_PIXELS, check_header, declared_size, read_image, read_rgb
from tests.images import natural, save
from tests.odd_files import HUGE_SIDE, encoded, huge_png, make_odd_files

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def rgb():
    return natural(96, 128, seed=5)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd")
    return folder, make_odd_files(folder)


def test_png_roundtrip_is_exact(tmp_path, rgb):
    assert (read_rgb(save(rgb, tmp_path / "a.png")) == rgb).all()


def test_decoding_equals_cv2_imread_on_every_readable_odd_file(odd, tmp_path):
    folder, cases = odd
    readable = [c for c in cases if c.expected == "ok"]
    assert len(readable) >= 15
    for case in readable:
        path = folder / case.name
        plain = tmp_path / "reference.img"  # cv2.imread crashes on names that are not UTF-8: read a copy
        plain.write_bytes(path.read_bytes())
        assert (read_image(path).bgr == cv2.imread(str(plain))).all(), case


def test_grey_palette_rgba_and_16_bit(tmp_path, rgb):
    grey = rgb[:, :, 0]
    assert (read_rgb(save(grey, tmp_path / "g.png")) == grey[:, :, None]).all()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 10, np.uint8)])
    assert (read_rgb(save(rgba, tmp_path / "a.png")) == rgb).all()  # alpha dropped, not composited
    deep = grey.astype(np.uint16) * 257 + 3
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    assert (read_rgb(tmp_path / "d.png")[:, :, 0] == deep >> 8).all()  # 16-bit scaled to 8


def test_exif_rotation_is_applied(tmp_path, rgb):
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    image.save(tmp_path / "r.jpg", quality=95, exif=exif)
    assert read_rgb(tmp_path / "r.jpg").shape == (rgb.shape[1], rgb.shape[0], 3)


def test_every_odd_file_has_its_outcome(odd):
    folder, cases = odd
    names = {c.name for c in cases}
    assert {"loop.jpg", "broken_link.jpg", "folder.jpg", "huge.png", "anim.gif", "corrupt.png"} <= names
    measured = list(measure_files([folder / c.name for c in cases], workers=2))
    for case, m in zip(cases, measured):
        if case.expected == "ok":
            assert m.error is None and m.glcm_score > 0 and m.jpeg_bytes > 0, (case, m.error)
        else:
            assert m.error is not None and case.reason in m.error, (case, m.error)
            assert "\n" not in m.error and "OpenCV(" not in m.error and "error:" not in m.error


def test_header_sizes_match_the_decoded_sizes(odd):
    folder, cases = odd
    for case in cases:
        path = folder / case.name
        if case.expected != "ok" or case.name == "rotated.jpg" or path.is_symlink():
            continue
        data = path.read_bytes()
        height, width = read_image(path).bgr.shape[:2]
        assert check_header(data) == (width, height), case.name


def test_bigtiff_and_os2_bmp_headers():
    big = b"II+\x00\x08\x00\x00\x00" + (16).to_bytes(8, "little")
    entries = [(256, 4, 3000), (257, 16, 2000)]
    ifd = len(entries).to_bytes(8, "little") + b"".join(
        tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + (1).to_bytes(8, "little") + value.to_bytes(8, "little")
        for tag, kind, value in entries)
    assert declared_size(big + ifd, "TIFF") == (3000, 2000)
    os2 = b"BM" + bytes(12) + (12).to_bytes(4, "little") + (640).to_bytes(2, "little") + (480).to_bytes(2, "little")
    assert declared_size(os2, "BMP") == (640, 480)


def test_pixel_limit_is_checked_before_decoding(tmp_path, rgb, monkeypatch):
    huge = tmp_path / "huge.png"
    huge.write_bytes(huge_png())
    decoded = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(a) or None)
    declared = f"{HUGE_SIDE}x{HUGE_SIDE} = 400,000,000 pixels, over the limit of 250,000,000"
    with pytest.raises(ImageError, match=declared):
        read_image(huge)
    assert decoded == []  # refused from the header alone
    monkeypatch.undo()
    small = save(rgb, tmp_path / "small.png")
    with pytest.raises(ImageError, match="over the limit of 10,000 pixels"):
        read_image(small, max_pixels=10_000)
    assert read_image(small, max_pixels=rgb.shape[0] * rgb.shape[1]).bgr.shape[:2] == rgb.shape[:2]
    assert DEFAULT_MAX_PIXELS == 250_000_000
    from aesthetic4k.data.images import DEFAULT_MAX_PIXELS as BUILD_LIMIT

    assert BUILD_LIMIT == DEFAULT_MAX_PIXELS


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_files_are_errors(tmp_path, rgb, cut):
    for name, kwargs in (("t.jpg", {"quality": 95}), ("t.png", {})):
        path = save(rgb, tmp_path / name, **kwargs)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * cut)])
        with pytest.raises(ImageError, match="truncated"):
            read_image(path)


def test_missing_and_array_inputs(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="file name too long"):
        read_image(tmp_path / ("x" * 5000 + ".jpg"))
    with pytest.raises(ImageError, match="expected uint8"):
        read_image(np.zeros((4, 4, 3), np.float32))


def test_fifo_is_refused_without_waiting(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(measure_files([fifo], workers=1).__next__()), daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # unblock the reader before failing
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert "FIFO" in outcome[0].error


def test_non_utf8_names_give_printable_messages(tmp_path):
    raw = os.path.join(os.fsencode(tmp_path), b"bad_\xff.jpg")
    try:
        with open(raw, "wb") as file:
            file.write(b"not an image")
    except OSError:
        pytest.skip("the file system refuses names that are not UTF-8")
    with pytest.raises(ImageError) as caught:
        read_image(os.fsdecode(raw))
    message = str(caught.value)
    message.encode("utf-8")  # printable: no lone surrogates
    assert "bad_\\xff.jpg" in message
    assert display_path(raw) == display_path(os.fsdecode(raw))


def test_library_messages_stay_off_stderr(odd):
    # libpng/libjpeg print some messages themselves; OpenCV's own warnings obey OPENCV_LOG_LEVEL
    folder, _ = odd
    script = ("import sys\nfrom pathlib import Path\nfrom aesthetic4k_metrics.detail import measure_files\n"
              "paths = [p for p in sorted(Path(sys.argv[1]).iterdir()) if p.name != 'fifo.png']\n"
              "bad = [m for m in measure_files(paths, workers=2) if m.error]\n"
              "sys.stderr.write('python-line\\n')\nprint(len(bad))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_LOG_LEVEL", "A4K_DECODER_MESSAGES")}
    done = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "python-line\n"  # Python's own stderr goes through, nothing else
    shown = subprocess.run([sys.executable, "-c", script, str(folder)], cwd=REPO, capture_output=True, text=True,
                           env={**env, "A4K_DECODER_MESSAGES": "show"}, timeout=300)
    assert "libpng" in shown.stderr and "Corrupt JPEG data" in shown.stderr  # the corpus does provoke them


def test_unsupported_content_is_named(tmp_path, rgb):
    (tmp_path / "a.jpg").write_bytes(encoded(rgb, "GIF"))
    with pytest.raises(ImageError, match="GIF images are not supported"):
        read_image(tmp_path / "a.jpg")
    (tmp_path / "b.png").write_bytes(b"%PDF-1.4 ...")
    with pytest.raises(ImageError, match="PDF images are not supported"):
        read_image(tmp_path / "b.png")


def test_stderr_is_restored_after_concurrent_decodes(tmp_path, rgb):
    # many threads decoding at once share one window; afterwards descriptor 2 is what it was
    before = os.fstat(2)
    paths = [save(rgb, tmp_path / f"{i}.png") for i in range(12)]
    results = list(measure_files(paths * 3, workers=6, glcm=False, jpeg_mode=None))
    assert all(m.error is None for m in results) and len(results) == 36
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
