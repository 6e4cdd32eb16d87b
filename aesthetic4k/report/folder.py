"""A report folder that appears whole or not at all.

Everything (``index.html``, ``images/``, ``run.json``) is written into a hidden staging folder
beside the report; only when the page is complete are the pieces moved into place, the page
last. A failure or Ctrl-C leaves the previous report as it was, and files of an earlier report
that the new one does not have (stale crops, a run.json under a comparison) are removed.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from aesthetic4k.errors import UserError
from aesthetic4k.report.run_data import PATCHES_FILE, REPORT_FILE, RUN_FILE

IMAGES = "images"
OWNED_FILES = (RUN_FILE, PATCHES_FILE)          # removed when the new report does not write them


def safe_name(text: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:limit].strip("._") or "image"


class ReportFolder:
    """Use as a context manager; ``publish()`` moves the finished report into ``out_dir``."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{self.out_dir}: cannot create the report folder ({exc.strerror or exc})") from None
        self.stage = self.out_dir / f".report-{os.getpid()}.tmp"
        shutil.rmtree(self.stage, ignore_errors=True)
        try:
            (self.stage / IMAGES).mkdir(parents=True)
        except OSError as exc:
            raise UserError(f"{self.out_dir}: cannot write into the report folder ({exc.strerror or exc})") from None
        self.image_bytes = 0

    def add_image(self, name: str, payload: bytes) -> str:
        """Store one image file; returns its path relative to the page."""
        (self.stage / IMAGES / name).write_bytes(payload)
        self.image_bytes += len(payload)
        return f"{IMAGES}/{name}"

    @property
    def page(self) -> Path:
        return self.stage / REPORT_FILE

    def publish(self) -> Path:
        images = self.out_dir / IMAGES
        if images.exists() and not images.is_dir():
            raise UserError(f"{images}: is a file; the report needs this name for its image folder")
        retired = self.out_dir / f".images-old-{os.getpid()}.tmp"
        if images.exists():
            os.replace(images, retired)
        os.replace(self.stage / IMAGES, images)
        for name in OWNED_FILES:
            if (self.stage / name).exists():
                os.replace(self.stage / name, self.out_dir / name)
            else:
                (self.out_dir / name).unlink(missing_ok=True)
        os.replace(self.page, self.out_dir / REPORT_FILE)
        shutil.rmtree(retired, ignore_errors=True)
        shutil.rmtree(self.stage, ignore_errors=True)
        return self.out_dir / REPORT_FILE

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        shutil.rmtree(self.stage, ignore_errors=True)
        return False
