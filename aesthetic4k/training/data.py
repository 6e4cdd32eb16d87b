"""Training images: records of a dataset, pixels as tensors, a resumable shuffled stream per process."""
from __future__ import annotations

from pathlib import Path

from aesthetic4k.errors import ImageError, UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def fit_crop(image, height: int, width: int):
    """Resize (keeping the aspect ratio) until the image covers height x width, then center-crop."""
    from PIL import Image

    w, h = image.size
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.LANCZOS)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    if (new_w, new_h) != (width, height):
        image = image.crop((left, top, left + width, top + height))
    return image


def to_tensor(image):
    """An RGB Pillow image as a 3 x H x W float tensor in [-1, 1]."""
    import numpy as np
    import torch

    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def open_image_file(path, draft_size: int):
    """A training image file decoded by the toolkit's rules (EXIF, colour, bomb guard; JPEG draft
    decoding down to about ``draft_size``); ImageError when unusable."""
    from aesthetic4k.data.images import open_rgb

    if path is None:
        raise ImageError("(no image)", "the record has no image file")
    if not Path(path).is_file():
        raise ImageError(path, "missing file")
    return open_rgb(path, draft_size=draft_size)


def load_pixels(path, height: int, width: int):
    """An image file, covered and center-cropped to height x width, in [-1, 1] (ImageError when unusable)."""
    return fitted_pixels(open_image_file(path, max(height, width)), height, width)


def fitted_pixels(image, height: int, width: int):
    """A decoded image covered and center-cropped to height x width, in [-1, 1]: the WLF training view."""
    return to_tensor(fit_crop(image, height, width))


def random_crop_draws(generator) -> tuple:
    """The three numbers one random crop needs (left, top, flip), drawn from ``generator`` in the
    calling thread so that decoding in worker threads cannot change the order of draws."""
    import torch

    return tuple(torch.rand(3, generator=generator).tolist())


def random_crop(image, size: int, draws: tuple):
    """The shorter side resized to ``size`` (bilinear), a ``size`` x ``size`` crop at the offsets that
    ``draws`` pick, flipped horizontally when ``draws[2] < 0.5``: the SC-VAE's training view."""
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = int(draws[0] * (new_w - size + 1)), int(draws[1] * (new_h - size + 1))
    image = image.crop((left, top, left + size, top + size))
    if draws[2] < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    return to_tensor(image)


def next_usable(stream, count: int, prepare, pool, on_bad_image: str, report_skip, data: str) -> list:
    """``count`` (record, value) pairs from ``stream`` whose ``prepare(record)()`` gave no ImageError.

    ``prepare(record)`` runs here and returns the job run in ``pool`` (decoding, a cache read).
    A bad image stops the run (``on_bad_image="stop"``) or is passed to ``report_skip(record,
    error)`` and replaced by the next record.
    """
    examples, failures = [], 0
    while len(examples) < count:
        records = stream.take(count - len(examples))
        jobs = [pool.submit(prepare(record)) for record in records]
        for record, job in zip(records, jobs):
            value = job.result()
            if isinstance(value, ImageError):
                if on_bad_image == "stop":
                    raise UserError(f"{value} (line {record.line}); fix or remove it, or pass --on-bad-image skip")
                report_skip(record, value)
                failures += 1
                if failures > 2 * len(stream.records):  # bad runs can span an epoch boundary
                    raise UserError(f"dataset {data}: no usable training image")
                continue
            failures = 0  # only a run of bad images longer than two epochs means none is usable
            examples.append((record, value))
    return examples


def read_records(data: str, images_only: bool = False) -> list:
    """The training records (lazy: prompt + image path; no image decoded).

    ``data`` is a dataset (the published layout, a folder with ``metadata.jsonl``, a ``.jsonl``
    file, ``aesthetic-4k``); with ``images_only`` a plain folder of images also works (every image
    under it, in name order, without prompts).
    """
    from aesthetic4k.data.datasets import open_dataset

    try:
        records = list(open_dataset(data, split="train").records())
    except UserError:
        folder = Path(data).expanduser()
        if not (images_only and folder.is_dir()):
            raise
        records = _image_folder_records(folder)
    if not records:
        raise UserError(f"dataset {data}: no training records")
    return records


def _image_folder_records(folder: Path) -> list:
    from aesthetic4k.data.records import Record

    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return [Record(stem=str(p.relative_to(folder).with_suffix("")).replace("/", "__"), prompt="", image_path=p,
                   line=0) for p in paths]


class RecordStream:
    """This process's endless share of a shuffled record order, resumable by position.

    Global position ``g`` is epoch ``g // n``, entry ``permutation(seed, epoch)[g % n]``;
    process ``rank`` of ``world`` reads positions ``rank, rank + world, ...``. ``position``
    counts the entries this process has consumed, bad images included.
    """

    def __init__(self, records: list, seed: int, rank: int = 0, world: int = 1, position: int = 0):
        self.records, self.seed, self.rank, self.world = records, seed, rank, world
        self.position = position
        self._orders: dict[int, list] = {}

    def record_at(self, position: int):
        import torch

        index = position * self.world + self.rank
        epoch, offset = divmod(index, len(self.records))
        if epoch not in self._orders:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            # two epochs kept: looking ahead across an epoch boundary must not recompute them in turn
            self._orders = {e: o for e, o in self._orders.items() if e == epoch - 1}
            self._orders[epoch] = torch.randperm(len(self.records), generator=generator).tolist()
        return self.records[self._orders[epoch][offset]]

    def take(self, count: int) -> list:
        """The next ``count`` records of this process (the position moves past them)."""
        records = self.peek(count)
        self.position += count
        return records

    def peek(self, count: int) -> list:
        """The next ``count`` records of this process, without moving past them (to fetch ahead)."""
        return [self.record_at(p) for p in range(self.position, self.position + count)]
