"""How images are decoded: odd modes are normalised, broken files are ImageErrors."""
import numpy as np
import pytest
from PIL import Image

from aesthetic4k.errors import ImageError
from metrics.image_input import read_image, read_rgb
from tests.images import natural, save


@pytest.fixture
def rgb():
    return natural(96, 128, seed=5)


def test_png_roundtrip_is_exact(tmp_path, rgb):
    assert (read_rgb(save(rgb, tmp_path / "a.png")) == rgb).all()


def test_grey_palette_rgba_and_16_bit(tmp_path, rgb):
    grey = rgb[:, :, 0]
    assert (read_rgb(save(grey, tmp_path / "g.png")) == grey[:, :, None]).all()
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert read_rgb(tmp_path / "p.png").shape == rgb.shape
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 10, np.uint8)])
    assert (read_rgb(save(rgba, tmp_path / "a.png")) == rgb).all()  # alpha dropped, not composited
    import cv2

    deep = grey.astype(np.uint16) * 257 + 3
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    assert (read_rgb(tmp_path / "d.png")[:, :, 0] == deep >> 8).all()  # 16-bit scaled to 8


def test_cmyk_jpeg_and_exif_rotation(tmp_path, rgb):
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert read_rgb(tmp_path / "c.jpg").shape == rgb.shape
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    image.save(tmp_path / "r.jpg", quality=95, exif=exif)
    assert read_rgb(tmp_path / "r.jpg").shape == (rgb.shape[1], rgb.shape[0], 3)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_files_are_errors(tmp_path, rgb, cut):
    for name, kwargs in (("t.jpg", {"quality": 95}), ("t.png", {})):
        path = save(rgb, tmp_path / name, **kwargs)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * cut)])
        with pytest.raises(ImageError):
            read_image(path)


def test_non_images_and_missing_files(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"this is not a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    for name, message in (("x.jpg", "not a readable image"), ("empty.png", "empty file"),
                          ("missing.png", "cannot read")):
        with pytest.raises(ImageError, match=message):
            read_image(tmp_path / name)
    with pytest.raises(ImageError, match="expected uint8"):
        read_image(np.zeros((4, 4, 3), np.float32))
