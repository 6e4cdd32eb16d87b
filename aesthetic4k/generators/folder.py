"""``folder``: images generated elsewhere, matched to the dataset by file stem (the CI use case)."""
from __future__ import annotations

from pathlib import Path

from aesthetic4k.data.records import Record
from aesthetic4k.errors import UserError
from aesthetic4k.generators.base import GeneratorOptions
from metrics.image_input import is_image_file


class FolderGenerator:
    """Serves existing files instead of generating: ``a4k-eval`` scores them in place."""

    def __init__(self, argument=None, options: GeneratorOptions | None = None):
        options = options or GeneratorOptions()
        folder = argument or options.images
        if not folder:
            raise UserError("generator folder needs --images DIR (or --generator folder:DIR)")
        self.folder = Path(folder)
        if not self.folder.exists():
            raise UserError(f"{self.folder}: folder does not exist")
        if not self.folder.is_dir():
            raise UserError(f"{self.folder}: not a folder")
        self.name = "folder"
        self.defaults = {"images": str(self.folder)}
        self.files = self._index()
        if not self.files:
            raise UserError(f"{self.folder}: no image files (.jpg, .jpeg, .png, .webp, .bmp, .tif)")

    def _index(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for path in sorted(self.folder.iterdir()):
            if not path.is_file() or not is_image_file(path):
                continue
            if path.stem in files:
                raise UserError(f"{self.folder}: two images share the stem {path.stem!r} "
                                f"({files[path.stem].name}, {path.name})")
            files[path.stem] = path
        return files

    def own_records(self) -> list[Record]:
        """Records for a run without a dataset: every image, no prompt, no reference."""
        return [Record(stem=stem, prompt="", image_path=None) for stem in self.files]

    def image_path(self, record: Record) -> Path | None:
        return self.files.get(record.stem)

    def match(self, records: list[Record]) -> tuple[list[Record], list[str], list[str]]:
        """(records with an image, stems without an image, image stems not in the dataset)."""
        stems = {r.stem for r in records}
        found = [r for r in records if r.stem in self.files]
        missing = [r.stem for r in records if r.stem not in self.files]
        extra = sorted(s for s in self.files if s not in stems)
        return found, missing, extra

    def generate(self, prompts, size, seed):
        raise UserError("the folder generator serves existing files; it cannot generate from prompts")
