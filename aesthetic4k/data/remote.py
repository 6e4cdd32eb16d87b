"""Where streamed training files come from, and the bounded local cache they pass through.

A store holds a dataset in the hub layout (``train/metadata.jsonl`` and the images it names):
:class:`HubStore` reads a Hugging Face dataset repository over HTTP (the ``/resolve/`` URLs that
``hf download`` uses, with the user's token), :class:`FolderStore` a folder, for example a
network mount or a local copy. :class:`FileCache` keeps fetched files on local disk up to a size
limit, dropping the least recently used ones, so a dataset larger than the disk can be read
epoch after epoch.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Optional

from aesthetic4k.atomic import atomic_path
from aesthetic4k.data.paths import OutsidePath, inside, shorten
from aesthetic4k.errors import UserError

DEFAULT_ENDPOINT = "https://huggingface.co"


class MissingFile(Exception):
    """The store has no such file (this one sample is skipped)."""


def clean_name(name: str) -> str:
    """A store path with "/" separators that cannot leave the store's root (else OutsidePath)."""
    text = name.replace("\\", "/")
    pure = PurePosixPath(text)
    if pure.is_absolute() or any(part == ".." for part in pure.parts) or (len(text) > 1 and text[1] == ":"):
        raise OutsidePath(f"{shorten(name)} leaves the dataset folder")
    parts = [part for part in pure.parts if part not in ("", ".")]
    if not parts:
        raise OutsidePath(f"{shorten(name)} names no file")
    return "/".join(parts)


class FolderStore:
    """Files below a folder (a mounted share, or a local folder in the hub layout)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{shorten(self.root)}: no such folder")
        digest = hashlib.sha1(os.fsencode(self.root.resolve())).hexdigest()[:16]
        self.key = f"folder-{digest}"  # the cache folder of this store

    def describe(self, name: str) -> str:
        return shorten(self.root / name)

    def read_text(self, name: str) -> str:
        try:
            path = inside(self.root, name)
        except OutsidePath as exc:
            raise UserError(f"{self.describe(name)}: {exc.reason}; refused") from None
        try:
            return path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise UserError(f"{self.describe(name)}: not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{self.describe(name)}: cannot read ({exc})") from None

    def fetch(self, name: str, target: Path) -> None:
        source = inside(self.root, name)  # symlinks pointing out of the folder are refused
        if not source.is_file():
            raise MissingFile(f"{self.describe(name)}: not found")
        shutil.copyfile(source, target)


class _NoAuthAcrossHosts(urllib.request.HTTPRedirectHandler):
    """Follow redirects (the hub sends LFS files to a CDN) without carrying the token to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.headers.pop("Authorization", None)
            new.unredirected_hdrs.pop("Authorization", None)
        return new


class HubStore:
    """A dataset repository on the Hugging Face hub (or a mirror given by HF_ENDPOINT / ``endpoint``)."""

    def __init__(self, repo: str, revision: str = "main", endpoint: Optional[str] = None,
                 token: Optional[str] = None, timeout: float = 30.0, retries: int = 3):
        self.repo, self.revision = repo, revision
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        self.token = token if token is not None else _hub_token()
        self.timeout, self.retries = timeout, retries
        self.key = f"hub-{repo.replace('/', '--')}-{revision}"

    @property
    def opener(self):
        return urllib.request.build_opener(_NoAuthAcrossHosts())

    def url(self, name: str) -> str:
        quoted = urllib.parse.quote(clean_name(name), safe="/", errors="surrogateescape")
        return f"{self.endpoint}/datasets/{self.repo}/resolve/{urllib.parse.quote(self.revision, safe='')}/{quoted}"

    def describe(self, name: str) -> str:
        return f"{self.repo}/{shorten(name)}"

    def _open(self, name: str):
        request = urllib.request.Request(self.url(name), headers={"User-Agent": "aesthetic4k"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        delay = 1.0
        for attempt in range(self.retries + 1):
            try:
                return self.opener.open(request, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise MissingFile(f"{self.describe(name)}: not in the repository (HTTP 404)") from None
                if exc.code in (401, 403):
                    raise UserError(f"{self.describe(name)}: HTTP {exc.code}; the dataset may be gated or private: "
                                    "accept its terms on the hub and log in (hf auth login) or set HF_TOKEN") from None
                if exc.code not in (408, 429) and exc.code < 500 or attempt == self.retries:
                    raise UserError(f"{self.describe(name)}: HTTP {exc.code} from {self.endpoint}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.retries:
                    reason = getattr(exc, "reason", exc)
                    raise UserError(f"cannot reach {self.endpoint} for {self.describe(name)} ({reason}) after "
                                    f"{self.retries + 1} tries; files already cached stay usable") from None
            time.sleep(delay)
            delay *= 2

    def read_text(self, name: str) -> str:
        try:
            with self._open(name) as response:
                return response.read().decode("utf-8-sig")
        except MissingFile as exc:
            raise UserError(str(exc)) from None
        except UnicodeDecodeError:
            raise UserError(f"{self.describe(name)}: not UTF-8 text") from None

    def fetch(self, name: str, target: Path) -> None:
        with self._open(name) as response, open(target, "wb") as handle:
            shutil.copyfileobj(response, handle, 1 << 20)


def _hub_token() -> Optional[str]:
    try:
        from huggingface_hub import get_token
    except ImportError:
        return os.environ.get("HF_TOKEN")
    try:
        return get_token()
    except Exception:  # a broken token file must not stop an anonymous download
        return os.environ.get("HF_TOKEN")


def _touch(path: Path) -> None:
    now = time.time_ns()  # finer than the kernel's file-time clock, so use order is kept
    os.utime(path, ns=(now, now))


class FileCache:
    """Files of one store in ``folder``, at most ``limit`` bytes, least recently used dropped first.

    Several processes (ranks, loader workers) may share the folder: files appear by atomic
    rename, and a file dropped by another process is simply fetched again. Files handed out and
    not yet released (the prefetch window) are never dropped by this process, so the folder can
    exceed the limit by the size of that window.
    """

    def __init__(self, folder: str | os.PathLike, limit: int):
        if limit <= 0:
            raise UserError(f"the cache limit must be positive, got {limit} bytes")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.limit = int(limit)
        self.lock = threading.Lock()
        self.in_use: dict[str, int] = {}
        self.fetching: dict[str, threading.Lock] = {}
        self.size = sum(size for _, size, _ in self._files())

    def __getstate__(self):  # for DataLoader workers started by spawn: locks and holds stay per process
        state = dict(self.__dict__)
        state.update(lock=None, in_use={}, fetching={})
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lock = threading.Lock()

    def _files(self):
        for directory, _, names in os.walk(self.folder):
            for name in names:
                if name.startswith("."):
                    continue  # temporary files of a download in progress
                path = Path(directory) / name
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue
                yield path, info.st_size, info.st_mtime_ns

    def path(self, name: str) -> Path:
        return self.folder / clean_name(name)

    def get(self, name: str, fetch) -> Path:
        """The local copy of ``name``, fetched with ``fetch(name, temporary_path)`` when absent; held until released."""
        path = self.path(name)
        with self.lock:
            self.in_use[name] = self.in_use.get(name, 0) + 1
            fetching = self.fetching.setdefault(name, threading.Lock())
        try:
            with fetching:  # one download per file in this process (temporary names are per process)
                try:
                    _touch(path)  # recently used: dropped last
                    return path
                except FileNotFoundError:
                    pass
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    fetch(name, tmp)
                _touch(path)
                size = path.stat().st_size
            with self.lock:
                self.size += size
                over = self.size > self.limit
            if over:
                self.shrink()
            return path
        except BaseException:
            self.release(name)
            raise

    def release(self, name: str) -> None:
        with self.lock:
            count = self.in_use.get(name, 0) - 1
            if count <= 0:
                self.in_use.pop(name, None)
                self.fetching.pop(name, None)
            else:
                self.in_use[name] = count

    def shrink(self) -> None:
        """Drop least recently used files (not those in use here) until the folder fits the limit."""
        with self.lock:
            held = {self.path(name) for name in self.in_use}
            files = sorted(self._files(), key=lambda entry: entry[2])
            total = sum(size for _, size, _ in files)
            for path, size, _ in files:
                if total <= self.limit:
                    break
                if path in held:
                    continue
                path.unlink(missing_ok=True)
                total -= size
            self.size = total
