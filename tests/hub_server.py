"""A stand-in for the Hugging Face hub on 127.0.0.1, so the network code is tested without a network.

It answers the part of the hub's HTTP API that ``huggingface_hub`` (``hf_hub_download``,
``snapshot_download``, ``model_info``) and diffusers' ``from_pretrained`` use:

- ``GET /api/{models,datasets}/<repo>[/revision/<rev>]``: the repository's id, commit ``sha`` and
  ``siblings``;
- ``GET /api/{models,datasets}/<repo>/tree/<rev>[/<folder>]``: the file listing (``oid``, ``size``,
  ``lfs`` for large files);
- ``HEAD``/``GET /[datasets/]<repo>/resolve/<rev>/<path>``: small files are answered directly with
  ``ETag`` (git blob id), ``X-Repo-Commit`` and ``Content-Length``; large ("LFS") files, as on the
  real hub, with a 302 to a second server (the "CDN", another port, hence another origin) carrying
  ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``;
- errors as the hub sends them: 404 with ``X-Error-Code`` ``RepoNotFound``, ``RevisionNotFound``
  or ``EntryNotFound`` (the last one with ``X-Repo-Commit``).

Plain URLs can be served too (``serve_url``), for the URL downloads of ``aesthetic4k_metrics.weights``.
Every request is logged (``requests``) so a test can count them (no retry storms).

``refused_endpoint()`` gives an address where nothing listens; ``SilentEndpoint`` one that
accepts connections and never answers; ``fail_with = 503`` makes the stand-in answer every
request with that status (a hub that is down). ``pointed_at(endpoint)`` points huggingface_hub in this
process at an endpoint (it reads ``HF_ENDPOINT`` once, at import, also into the ``HfApi`` behind
``model_info`` and the other module-level functions); a subprocess gets
``HF_ENDPOINT`` in its environment instead.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

# Files stored in git LFS on the hub (weights, images, archives) are redirected to the CDN.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".npz", ".jpg", ".jpeg", ".png")
KINDS = {"models": "model", "datasets": "dataset"}


def git_blob_id(data: bytes) -> str:
    """The id git gives a file's content: what the hub sends as the ETag of a small file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    files: dict = field(default_factory=dict)      # path in the repository -> bytes

    @property
    def sha(self) -> str:
        """A commit id that changes with the content, as a real commit would."""
        digest = hashlib.sha1()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + git_blob_id(self.files[path]).encode())
        return digest.hexdigest()


def is_lfs(path: str) -> bool:
    return path.lower().endswith(LFS_SUFFIXES)


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HubStandIn:
    """The stand-in hub: ``add`` repositories, ``start`` (or ``with``), then use ``endpoint``."""

    def __init__(self):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.urls: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_with = 0                      # an HTTP status every request gets (0: serve normally)
        self._servers: list[ThreadingHTTPServer] = []

    # -- content

    def add(self, repo_id: str, files: dict, kind: str = "model") -> str:
        """Publish ``files`` (path -> bytes or str) as repository ``repo_id``; returns its commit id."""
        repo = self.repos.setdefault((kind, repo_id), Repo())
        for path, data in files.items():
            repo.files[str(path)] = data.encode() if isinstance(data, str) else bytes(data)
        return repo.sha

    def add_folder(self, repo_id: str, folder, kind: str = "model", prefix: str = "") -> str:
        """Publish every file under ``folder`` (for example a saved pipeline) with its relative path."""
        folder = Path(folder)
        files = {prefix + p.relative_to(folder).as_posix(): p.read_bytes()
                 for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.add(repo_id, files, kind)

    def serve_url(self, path: str, data: bytes) -> str:
        """Serve ``data`` at a plain URL (no hub headers); returns the URL."""
        self.urls["/" + path.lstrip("/")] = bytes(data)
        return f"{self.endpoint}/{path.lstrip('/')}"

    def count(self, method: str = "", contains: str = "") -> int:
        return sum(1 for m, p in self.requests if (not method or m == method) and contains in p)

    # -- serving

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    def start(self) -> "HubStandIn":
        hub = self

        class Handler(_Handler):
            stand_in = hub

        for _ in range(2):  # the hub, then the CDN
            server = _Quiet(("127.0.0.1", 0), Handler)
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True, name="hub-stand-in").start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> "HubStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stand_in: HubStandIn

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    # -- routing

    def _answer(self, body: bool):
        hub = self.stand_in
        url = urlsplit(self.path)
        path = unquote(url.path)
        hub.requests.append((self.command, path))
        if hub.fail_with:
            return self._error(hub.fail_with, "", "Service unavailable", body)
        if path in hub.urls:
            return self._bytes(hub.urls[path], {}, body)
        if path.startswith("/cdn/"):
            return self._cdn(path[len("/cdn/"):], body)
        if path.startswith("/api/"):
            return self._api(path[len("/api/"):], parse_qs(url.query), body)
        kind = "model"
        if path.startswith("/datasets/"):
            kind, path = "dataset", path[len("/datasets"):]
        parts = path.lstrip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(kind, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
        self._error(404, "", "Not Found", body)

    def _repo(self, kind: str, repo_id: str, revision: str, body: bool):
        """The repository, or None after answering the hub's 404 for a missing repository or revision."""
        repo = self.stand_in.repos.get((kind, repo_id))
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", body)
            return None
        if revision not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, body, {"X-Repo-Commit": None})
            return None
        return repo

    def _api(self, rest: str, query: dict, body: bool):
        kind_plural, _, rest = rest.partition("/")
        kind = KINDS.get(kind_plural)
        parts = rest.split("/")
        if kind is None or len(parts) < 2:
            return self._error(404, "", "Not Found", body)
        repo_id, tail = "/".join(parts[:2]), parts[2:]
        if not tail or tail[0] == "revision":
            repo = self._repo(kind, repo_id, tail[1] if len(tail) > 1 else "main", body)
            if repo is not None:
                info = {"id": repo_id, "sha": repo.sha, "private": False, "disabled": False, "gated": False,
                        "siblings": [{"rfilename": p} for p in sorted(repo.files)]}
                self._json(info, body)
            return None
        if tail[0] == "tree" and len(tail) >= 2:
            repo = self._repo(kind, repo_id, tail[1], body)
            if repo is not None:
                folder = "/".join(tail[2:])
                recursive = query.get("recursive", ["False"])[0].lower() == "true"
                self._json(_listing(repo, folder, recursive), body)
            return None
        return self._error(404, "", "Not Found", body)

    def _resolve(self, kind: str, repo_id: str, revision: str, filename: str, body: bool):
        repo = self._repo(kind, repo_id, revision, body)
        if repo is None:
            return None
        data = repo.files.get(filename)
        if data is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist on \"{revision}\"", body,
                               {"X-Repo-Commit": repo.sha})
        headers = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
        if is_lfs(filename):
            sha256 = hashlib.sha256(data).hexdigest()
            headers.update({"Location": f"{self.stand_in.cdn}/cdn/{sha256}", "X-Linked-Etag": f'"{sha256}"',
                            "X-Linked-Size": str(len(data)), "ETag": f'"{git_blob_id(data)}"',
                            "Content-Length": "0"})
            return self._send(302, headers, b"", body)
        headers["ETag"] = f'"{git_blob_id(data)}"'
        return self._bytes(data, headers, body)

    def _cdn(self, sha256: str, body: bool):
        for repo in self.stand_in.repos.values():
            for data in repo.files.values():
                if hashlib.sha256(data).hexdigest() == sha256:
                    return self._bytes(data, {"ETag": f'"{sha256}"'}, body)
        return self._error(404, "", "Not Found", body)

    # -- answers

    def _bytes(self, data: bytes, headers: dict, body: bool):
        start = 0
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and wanted[6:].split("-")[0].isdigit():  # resume: "bytes=N-"
            start = min(int(wanted[6:].split("-")[0]), len(data))
            headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        return self._send(206 if start else 200, {**headers, "Content-Type": "application/octet-stream"},
                          data[start:], body)

    def _json(self, value, body: bool):
        self._send(200, {"Content-Type": "application/json"}, json.dumps(value).encode(), body)

    def _error(self, status: int, code: str, message: str, body: bool, extra: dict | None = None):
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        headers.update({k: v for k, v in (extra or {}).items() if v is not None})
        self._send(status, headers, json.dumps({"error": message}).encode(), body)

    def _send(self, status: int, headers: dict, payload: bytes, body: bool):
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and payload:
            self.wfile.write(payload)


def _listing(repo: Repo, folder: str, recursive: bool) -> list:
    """The tree API's entries under ``folder``: files with oid/size/lfs, and the folders on the way."""
    prefix = folder.rstrip("/") + "/" if folder else ""
    entries, folders = [], set()
    for path in sorted(repo.files):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):].split("/")
        for depth in range(1, len(rest)):
            if depth == 1 or recursive:
                folders.add(prefix + "/".join(rest[:depth]))
        if len(rest) > 1 and not recursive:
            continue
        data = repo.files[path]
        entry = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
        if is_lfs(path):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        entries.append(entry)
    return [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f}
            for f in sorted(folders)] + entries


# -- endpoints that fail ------------------------------------------------------------------------

@contextlib.contextmanager
def refused_endpoint():
    """An http address on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


class SilentEndpoint:
    """An http address that accepts connections and never answers; ``connections`` counts them."""

    def __init__(self):
        self.connections = 0
        self._held: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True, name="silent-endpoint")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self):
        while self._running:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the 0.2 s tick, or the listener closed
                continue
            self.connections += 1
            self._held.append(connection)   # read nothing, answer nothing

    def close(self):
        self._running = False
        self._thread.join()
        for connection in self._held:
            connection.close()
        self._listener.close()

    def __enter__(self) -> "SilentEndpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def pointed_at(endpoint: str):
    """Point huggingface_hub in this process at ``endpoint`` (what HF_ENDPOINT does at import)."""
    from huggingface_hub import constants, hf_api

    saved = constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint
    constants.ENDPOINT = hf_api.api.endpoint = endpoint.rstrip("/")
    constants.HUGGINGFACE_CO_URL_TEMPLATE = constants.ENDPOINT + "/{repo_id}/resolve/{revision}/{filename}"
    try:
        yield endpoint
    finally:
        constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, hf_api.api.endpoint = saved
