"""What kind of thing a path names, found without opening it; and opening only regular files.

Every file the toolkit reads or writes because a user named it (images, results files,
baselines, run reports, metadata, statistics, Markdown summaries) must be a regular file, or,
for an output, nothing yet. A FIFO would block the reader, ``/dev/zero`` would never end, and a
folder, socket or device is not a file at all. The kind is read with ``stat`` (links followed),
so nothing is opened to find out; :func:`open_regular` checks again on the opened descriptor,
opened non-blocking, so a FIFO put in place in between is not waited on either.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Optional


class FileKindError(OSError):
    """A path that cannot be read as a regular file; ``reason`` says why in a few words."""

    def __init__(self, path, reason: str):
        super().__init__(reason)
        self.strerror = reason
        self.filename = os.fspath(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        self.reason = reason


def kind_problem(mode: int) -> Optional[str]:
    """Why a ``st_mode`` is not a regular file (None when it is)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a regular file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    return "is not a regular file"


def os_reason(exc: OSError) -> str:
    """A few words for an OSError met while looking at or opening a path."""
    reasons = {errno.ELOOP: "symbolic link loop", errno.ENAMETOOLONG: "file name too long",
               errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.ENOTDIR: "a part of the path is not a folder"}
    return reasons.get(exc.errno) or f"cannot read ({exc.strerror or exc})"


def missing_reason(path) -> str:
    """"broken symbolic link" when ``path`` is a link to nothing, else "file not found"."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return "broken symbolic link (its target does not exist)"
    except (OSError, ValueError):
        pass
    return "file not found"


def file_problem(path) -> Optional[str]:
    """Why ``path`` cannot be read as a regular file, found without opening it (None: it can)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return missing_reason(path)
    except OSError as exc:
        return os_reason(exc)
    except ValueError:  # an embedded NUL byte
        return "file name contains a NUL byte"
    return kind_problem(info.st_mode)


def output_problem(path) -> Optional[str]:
    """Why ``path`` cannot be written as a file: None for a regular file or for nothing there yet
    (a link to nothing included: its target is created)."""
    problem = file_problem(path)
    if problem is None or problem == "file not found" or problem.startswith("broken symbolic link"):
        return None
    return problem


def open_regular(path, mode: str = "rb", encoding: Optional[str] = None, newline: Optional[str] = None):
    """Open a regular file for reading; anything else raises :class:`FileKindError` and is not waited on."""
    if "r" not in mode or any(flag in mode for flag in "wax+"):
        raise ValueError(f"open_regular reads only, got mode {mode!r}")
    problem = file_problem(path)
    if problem:
        raise FileKindError(path, problem)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileKindError(path, missing_reason(path)) from None
    except OSError as exc:
        raise FileKindError(path, os_reason(exc)) from None
    try:
        problem = kind_problem(os.fstat(fd).st_mode)   # it may have been replaced since the stat above
    except OSError as exc:
        os.close(fd)
        raise FileKindError(path, os_reason(exc)) from None
    if problem:
        os.close(fd)
        raise FileKindError(path, problem)
    return open(fd, mode, encoding=encoding, newline=newline, closefd=True)


def read_bytes(path) -> bytes:
    with open_regular(path) as handle:
        return handle.read()


def read_text(path, encoding: str = "utf-8-sig") -> str:
    """The text of a regular file (a UTF-8 byte-order mark is dropped)."""
    with open_regular(path, "r", encoding=encoding) as handle:
        return handle.read()


def named_output(path, folder: bool = False) -> Path:
    """The file (``folder``: the folder) a user named as an output: a symbolic link is followed to
    its target, so that the target is locked and replaced, not the link. A link to something that
    cannot be such an output (a device, a loop) is returned as it is, so that the refusal names
    what the user typed."""
    path = Path(path)
    if os.path.islink(path):
        target = Path(os.path.realpath(path))
        usable = (target.is_dir() or not os.path.lexists(target)) if folder else output_problem(target) is None
        if usable:
            return target
    return path


OUTSIDE_LINK = "symbolic link to a file outside the folder; refused (copy or hard-link the file into it)"


def inside_folder(path, folder) -> bool:
    """True when ``path``, every symbolic link followed, lies inside ``folder`` (also resolved)."""
    try:
        real, root = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    except (OSError, ValueError):
        return False
    return real == root or root in real.parents
