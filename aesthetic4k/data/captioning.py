"""Captioners for `a4k-data build`: ``sidecar``, ``openai``, ``none`` and third-party plugins.

A captioner is any object with ``name`` and ``caption(path) -> str`` (``path``: the source
image). It raises :class:`CaptionRejected` when this one image cannot get a caption (the build
skips the image and records why) and :class:`aesthetic4k.errors.UserError` when no image can
(bad key, service down after retries: the build stops; finished captions are kept). Set
``allows_empty = True`` on a captioner whose empty captions are intended.

Third-party captioners register under the entry-point group ``aesthetic4k.captioners``; the
object is called as ``factory(argument, options)`` (``argument``: text after ``name:``), or with
no arguments if it does not take them. ``package.module:attribute`` also works.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from aesthetic4k.plugins import Builtin, Registry, table

ENTRY_POINT_GROUP = "aesthetic4k.captioners"

# The instruction the paper gave GPT-4o (docs/protocol.md s1), verbatim: captions must match its style.
CAPTION_INSTRUCTION = ("Directly describe with brevity and as brief as possible the scene or characters without "
                       "any introductory phrase like 'This image shows', 'In the scene', 'This image depicts' or "
                       "similar phrases. Just start describing the scene please.")


class CaptionRejected(Exception):
    """This image gets no caption (the build skips it with this reason); other images may still work."""


@dataclass
class CaptionerOptions:
    model: str = "gpt-4o"
    base_url: Optional[str] = None       # default: $OPENAI_BASE_URL, else https://api.openai.com/v1
    api_key: Optional[str] = None        # default: $OPENAI_API_KEY
    timeout: float = 60.0                # seconds per request
    retries: int = 5                     # extra attempts after a transient failure
    backoff: float = 2.0                 # first wait in seconds, doubled each retry
    max_side: int = 1024                 # the image is sent downscaled to this longer side
    max_tokens: int = 300
    instruction: str = CAPTION_INSTRUCTION


def clean_caption(text: str) -> str:
    """One line, single spaces, no wrapping quotes (models sometimes quote their answer)."""
    text = re.sub(r"\s+", " ", text or "").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


class NoCaptioner:
    """Empty captions (prompt-free datasets, or captions to be added later)."""

    name = "none"
    allows_empty = True

    def caption(self, path: Path) -> str:
        return ""


class SidecarCaptioner:
    """A text file beside each image: ``photo.txt`` (or ``photo.jpg.txt``) next to ``photo.jpg``."""

    name = "sidecar"
    allows_empty = False

    def caption(self, path: Path) -> str:
        path = Path(path)
        for candidate in (path.with_suffix(".txt"), path.with_name(path.name + ".txt")):
            if candidate.is_file():
                try:
                    return candidate.read_text(encoding="utf-8-sig")
                except UnicodeDecodeError:
                    raise CaptionRejected(f"sidecar caption {candidate.name} is not UTF-8 text") from None
                except OSError as exc:
                    raise CaptionRejected(f"cannot read sidecar caption {candidate.name} "
                                          f"({exc.strerror or exc})") from None
        raise CaptionRejected(f"no sidecar caption ({path.with_suffix('.txt').name})")


BUILTINS = table([
    Builtin("sidecar", "aesthetic4k.data.captioning:SidecarCaptioner", "caption from a .txt file beside each image"),
    Builtin("openai", "aesthetic4k.data.openai_captioner:OpenAICaptioner",
            "any OpenAI-compatible chat endpoint with image input ($OPENAI_API_KEY, $OPENAI_BASE_URL), "
            "the paper's instruction"),
    Builtin("none", "aesthetic4k.data.captioning:NoCaptioner", "empty captions"),
])


REGISTRY = Registry("captioner", ENTRY_POINT_GROUP, BUILTINS, "caption")


def available() -> dict[str, str]:
    return REGISTRY.available()


def create_captioner(spec: str, options: CaptionerOptions | None = None):
    """The captioner named by ``spec``: a built-in, a plugin name, ``name:argument`` or ``module:attr``."""
    captioner = REGISTRY.create(spec, options or CaptionerOptions())
    if not getattr(captioner, "name", None):
        try:
            captioner.name = spec.partition(":")[0]
        except AttributeError:
            pass
    return captioner


def captioner_key(captioner, options: CaptionerOptions) -> str:
    """What identifies a caption's origin in the build cache: captions are reused only for the same key."""
    name = getattr(captioner, "name", type(captioner).__name__)
    if name == "openai":
        return f"openai:{options.model}"
    return str(name)


def env_default(value: Optional[str], variable: str, fallback: Optional[str] = None) -> Optional[str]:
    return value if value else os.environ.get(variable) or fallback
