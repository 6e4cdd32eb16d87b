"""Keep the messages libpng and libjpeg print straight to file descriptor 2 off the terminal.

OpenCV's own warnings obey ``OPENCV_LOG_LEVEL``, but the image libraries inside it write some
messages themselves ("libpng error: IDAT: incorrect data check", "Corrupt JPEG data: premature
end of data segment"), with no file name, beside the toolkit's own one-line reason. While a
decode runs, :func:`decoder_messages_hidden` points descriptor 2 at a pipe; a thread copies
everything that arrives to the real stderr except lines that start like one of those library
messages. Python's own writes to ``sys.stderr`` (progress bars, warnings) pass through
unchanged, partial lines included. Overlapping decodes on several threads share one window.

Set ``A4K_DECODER_MESSAGES=show`` to leave descriptor 2 alone (the messages then appear).
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

# How the library messages start (libpng's default handlers; libjpeg-turbo's warning table).
_LIBRARY_PREFIXES = (
    b"libpng warning:", b"libpng error:",
    b"Corrupt JPEG data", b"Premature end of JPEG file", b"Invalid SOS parameters",
    b"Inconsistent progression sequence", b"Unknown Adobe color transform", b"Warning: unknown JFIF",
    b"Warning: thumbnail image size", b"Application transferred too",
)
_lock = threading.Lock()
_users = 0
_window = None  # (saved descriptor of the real stderr, forwarding thread) while hidden


def _may_become_library_line(partial: bytes) -> bool:
    return any(p.startswith(partial) or partial.startswith(p) for p in _LIBRARY_PREFIXES)


def _forward(read_end: int, real_stderr: int) -> None:
    """Copy the pipe to the real stderr, dropping library lines; closes both descriptors at the end."""
    pending = b""
    try:
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not line.startswith(_LIBRARY_PREFIXES))
            if pending and not _may_become_library_line(pending):
                out, pending = out + pending, b""
            if out:
                os.write(real_stderr, out)
        if pending and not pending.startswith(_LIBRARY_PREFIXES):
            os.write(real_stderr, pending)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(real_stderr)


def _open_window() -> None:
    global _window
    sys.stderr.flush()
    real_stderr = os.dup(2)
    read_end, write_end = os.pipe()
    thread = threading.Thread(target=_forward, args=(read_end, real_stderr), name="a4k-stderr", daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    _window = (real_stderr, thread)


def _close_window() -> None:
    global _window
    real_stderr, thread = _window
    _window = None
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(real_stderr, 2)  # the pipe's last writer is gone: the thread drains it and stops
    thread.join(timeout=1.0)  # a child process that inherited the pipe may keep it open: do not wait on it


@contextmanager
def decoder_messages_hidden():
    """While inside, native library messages on descriptor 2 are dropped; everything else goes through."""
    global _users
    if os.environ.get("A4K_DECODER_MESSAGES") == "show":
        yield
        return
    with _lock:
        if _users == 0 and _window is None:
            try:
                _open_window()
            except OSError:  # no descriptor 2, or out of descriptors: decode anyway
                pass
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _window is not None:
                _close_window()
