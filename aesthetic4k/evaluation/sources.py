"""Where a run's images come from: a folder of existing files, or a generator whose images are saved.

Both give ``Item``s for dataset records, and the items whose image does not exist yet.
``FolderImages`` serves files in place and accounts for every entry of the folder (a file that
is not an image, cannot be read or is not in the dataset is listed with its reason): nothing is
ever new. ``GeneratedImages`` generates the new ones when the run asks (``generate``), keeping
the in-memory pixels for the network metrics (the paper protocol) and their Pillow JPEG q95
encoding, which ``save`` writes as ``<stem>.jpg``; the run decides the order (evaluation/loop.py).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from aesthetic4k.data.records import Record
from aesthetic4k.errors import UserError
from aesthetic4k.generators.base import GeneratorHandle, GeneratorOptions
from aesthetic4k_metrics.defaults import JPEG_QUALITY
from aesthetic4k_metrics.errors import first_line, is_out_of_memory
from aesthetic4k_metrics.file_kinds import OUTSIDE_LINK, file_problem, inside_folder
from aesthetic4k_metrics.files import display_path
from aesthetic4k_metrics.image_input import IMAGE_SUFFIXES

# formats people save images in that the metrics' decoders do not read
UNSUPPORTED_IMAGE_SUFFIXES = {".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".ico", ".svg", ".psd", ".raw"}


@dataclass
class Item:
    """One image on its way through the metrics."""

    stem: str
    prompt: Optional[str]
    reference_path: Optional[Path]
    image_path: Path                              # the saved q95 JPEG / the folder image
    image: Optional[np.ndarray] = None            # H x W x 3 uint8 RGB in memory (just generated)
    jpeg: Optional[bytes] = None                  # its q95 encoding (just generated), written by ``save``
    detail: object = None                         # the fine-detail measurement (aesthetic4k_metrics.detail)
    features: dict = field(default_factory=dict)  # metric name -> features of the generated image


@dataclass(frozen=True)
class Skipped:
    """A file that was not scored, and why (listed in the per-image file and counted in the status)."""

    name: str
    reason: str
    kind: str = "bad"          # "bad": an image that cannot be used; "ignored": not an image file


class FolderImages:
    """Images generated elsewhere, in ``--images DIR``, matched to the dataset by file stem."""

    serves_files = True
    description = "pre-generated images in --images DIR, matched to the dataset by file stem"

    def __init__(self, argument=None, options: GeneratorOptions | None = None):
        options = options or GeneratorOptions()
        folder = argument or options.images
        if not folder:
            raise UserError("generator folder needs --images DIR (or --generator folder:DIR)")
        self.folder = Path(folder)
        if not self.folder.exists():
            raise UserError(f"{display_path(self.folder)}: folder does not exist")
        if not self.folder.is_dir():
            raise UserError(f"{display_path(self.folder)}: not a folder")
        shown = os.path.normpath(display_path(folder)).replace(os.sep, "/")
        self.name = f"folder:{shown}"          # the row key names what was scored
        self.defaults = {"images": shown}
        self.image_dir = self.folder
        self.skipped: list[Skipped] = []
        self._sizes = None
        self.files = self._index()
        if not self.files:
            raise UserError(f"{display_path(self.folder)}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def _index(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for entry in sorted(os.scandir(self.folder), key=lambda e: os.fsencode(e.name)):
            if entry.name.startswith("."):
                continue                                   # hidden files and the toolkit's own caches
            path = Path(entry.path)
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                problem = file_problem(path)            # never open a pipe, a folder or a dangling link
                if problem is None and not inside_folder(path, self.folder):
                    problem = OUTSIDE_LINK             # never read outside the folder the user named
                if problem:
                    self.skipped.append(Skipped(display_path(path.name), problem))
                    continue
                if path.stem in files:
                    raise UserError(f"{display_path(self.folder)}: two images share the stem {display_path(path.stem)!r} "
                                    f"({display_path(files[path.stem].name)}, {display_path(path.name)})")
                files[path.stem] = path
            elif suffix in UNSUPPORTED_IMAGE_SUFFIXES:
                self.skipped.append(Skipped(display_path(path.name), f"unsupported image format ({suffix})"))
            else:
                reason = "a folder" if entry.is_dir() else f"not an image file ({suffix or 'no suffix'})"
                self.skipped.append(Skipped(display_path(path.name), reason, "ignored"))
        return files

    def image_sizes(self) -> dict:
        """stem -> (width, height) as the decoders will see it (EXIF rotation applied), None if unreadable.

        Read from the file headers only, once.
        """
        if self._sizes is None:
            self._sizes = {stem: oriented_size(path) for stem, path in self.files.items()}
        return self._sizes

    def records(self, dataset) -> tuple[list[Record], list[str]]:
        """(records that have an image, notes). Without a dataset: every image, no prompt, no reference."""
        if dataset is None:
            return [Record(stem=stem, prompt="", image_path=None) for stem in self.files], []
        records = list(dataset.records())
        stems = {r.stem for r in records}
        found = [r for r in records if r.stem in self.files]
        missing = [r.stem for r in records if r.stem not in self.files]
        notes = []
        if missing:
            notes.append(f"missing {len(missing)} image(s) of the dataset")
            self.skipped.extend(Skipped(display_path(stem), "no image for this dataset entry", "missing") for stem in missing)
        for stem in sorted(s for s in self.files if s not in stems):
            self.skipped.append(Skipped(display_path(self.files[stem].name), "not in the dataset", "ignored"))
        if not found:
            raise UserError(f"no image in {display_path(self.folder)} matches a stem of dataset {dataset.name}")
        return found, notes

    def items(self, records: list[Record]) -> tuple[list[Item], list]:
        """(an item per record, the (record, item) pairs whose image is new: none in a folder)."""
        return [Item(r.stem, r.prompt or None, r.image_path, self.files[r.stem]) for r in records], []

    def release(self) -> None:
        pass


def oriented_size(path: Path) -> Optional[tuple[int, int]]:
    """(width, height) as the decoders show the image: Pillow's header size turned by its EXIF orientation
    (None if unreadable). Not ``image_input.declared_size``, which is the unrotated size in the header bytes."""
    if file_problem(path):
        return None
    try:
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except Exception:  # any unreadable header: the decoders will report the file properly
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def saved_image(path: Path, size: int) -> bool:
    """True when ``path`` holds an image this run can reuse (a size x size JPEG), False when there is none.

    Anything else there stops the run rather than being scored as this generator's image or
    overwritten: a file of another size (another --size, or not a generated image), another format,
    a folder, a FIFO, a broken link.
    """
    if not os.path.lexists(path):
        return False
    problem = file_problem(path)
    found = None
    if problem is None:
        try:
            from PIL import Image

            with Image.open(path) as image:
                found = f"a {image.format} of {image.width}x{image.height}"
                if image.format == "JPEG" and image.size == (size, size):
                    return True
        except Exception:  # noqa: BLE001 - any unreadable header
            found = "not a readable image"
    raise UserError(f"{display_path(path)}: {problem or found}, not the {size}x{size} JPEG this run saves; it was not "
                    "made by this run, so it is neither scored nor overwritten: remove it or choose another "
                    "--images-out")


def open_source(spec: str, options: GeneratorOptions):
    """``folder[:DIR]`` gives the folder source; anything else names a generator."""
    name, _, argument = spec.partition(":")
    if name == "folder":
        return FolderImages(argument or None, options)
    from aesthetic4k.generators.registry import create

    return create(spec, options)


class GeneratedImages:
    """A generator's images for the records, generated once and saved as ``<stem>.jpg`` (q95)."""

    serves_files = False

    def __init__(self, handle: GeneratorHandle, image_dir: Path, size: int, seed: int, batch_size: int = 1,
                 keep_pixels: bool = True):
        self.handle = handle
        self.name = handle.name
        self.defaults = handle.defaults
        self.image_dir = Path(image_dir)
        self.size = size
        self.seed = seed
        self.batch_size = max(1, int(batch_size))
        self.keep_pixels = keep_pixels
        self.generated = 0
        self.skipped: list[Skipped] = []     # a generator's images are never skipped before they exist

    def records(self, dataset) -> tuple[list[Record], list[str]]:
        if dataset is None:
            raise UserError(f"generator {self.name} needs prompts: give --dataset (aesthetic-4k, sample or a folder)")
        return list(dataset.records()), []

    def items(self, records: list[Record]) -> tuple[list[Item], list]:
        """(an item per record, the (record, item) pairs that have no saved image yet)."""
        items = [Item(r.stem, r.prompt, r.image_path, self.image_dir / f"{r.stem}.jpg") for r in records]
        new = [(r, it) for r, it in zip(records, items) if not saved_image(it.image_path, self.size)]
        return items, new

    def chunks(self, new: list) -> list[list]:
        """The new pairs in generation calls of ``batch_size`` prompts."""
        return [new[start:start + self.batch_size] for start in range(0, len(new), self.batch_size)]

    def generate(self, chunk: list) -> list[Item]:
        """One generation call for ``chunk``'s records: each item gets its pixels (unless not kept) and its
        q95 encoding, in memory; nothing is written (``save``)."""
        images = self._generate([r for r, _ in chunk])
        for (_, item), image in zip(chunk, images):
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
            item.jpeg = buffer.getvalue()
            item.image = np.array(image) if self.keep_pixels else None
        self.generated += len(chunk)
        return [item for _, item in chunk]

    def _generate(self, records: list[Record]) -> list:
        from PIL import Image

        try:
            images = self.handle.generate(records, self.size, self.seed)
        except (UserError, KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # a plugin's bug: name the generator, keep the one-line contract
            if is_out_of_memory(exc):
                raise
            raise UserError(f"generator {self.name} failed: {type(exc).__name__}: {first_line(exc)}") from None
        if images is None or len(images) != len(records):
            got = "nothing" if images is None else f"{len(images)} images"
            raise UserError(f"generator {self.name} returned {got} for {len(records)} prompts")
        checked = []
        for image in images:
            if isinstance(image, np.ndarray):
                image = Image.fromarray(image)
            if not isinstance(image, Image.Image):
                raise UserError(f"generator {self.name} returned {type(image).__name__}, expected PIL images")
            if image.size != (self.size, self.size):
                raise UserError(f"generator {self.name} returned a {image.width}x{image.height} image, "
                                f"expected {self.size}x{self.size}")
            checked.append(image.convert("RGB"))
        return checked

    def save(self, items) -> None:
        """Write the JPEGs generated for these items."""
        from aesthetic4k.atomic import atomic_path

        for item in items:
            if item.jpeg is not None and not item.image_path.exists():
                try:
                    with atomic_path(item.image_path) as tmp:
                        tmp.write_bytes(item.jpeg)
                except OSError as exc:     # a full disk, a quota, a folder made read-only meanwhile
                    raise UserError(f"{display_path(item.image_path)}: cannot write ({exc.strerror or exc}); the images "
                                    "saved so far are kept, run the same command again to resume") from None

    def release(self) -> None:
        self.handle.release()

