"""Asking the Hugging Face hub and download URLs: one short timeout, no retry storms, one-line reasons.

huggingface_hub retries a file look-up that failed for want of a connection five times with
back-off when nothing is cached (about 25 s per file name when the hub is unreachable, several
minutes when it accepts connections and never answers), and some of its API calls have no
timeout at all. So before any download the toolkit asks once itself, with a short timeout and
no retry: :func:`check_hub_file` (a HEAD of the file, as huggingface_hub does) and
:func:`fetch_url`. An unreachable address, a missing repository or a missing file is then a
:class:`DownloadFailed` whose message names them, within seconds; an address that could not
be reached is not asked again for a minute in the same process.

The timeout is ``A4K_NET_TIMEOUT`` seconds (default 5), for connecting and for each answer;
the hub is huggingface_hub's endpoint (``HF_ENDPOINT``, default https://huggingface.co).
Nothing here imports torch.
"""
from __future__ import annotations

import os
import time
from typing import Optional
from urllib.parse import urlsplit

from aesthetic4k_metrics.errors import UserError, first_line

DEFAULT_TIMEOUT = 5.0
UNREACHABLE_MEMORY_S = 60.0
_UNREACHABLE: dict = {}     # origin -> (time, reason): addresses that just failed to connect or answer


class DownloadFailed(UserError):
    """A download cannot happen; the message is the reason (names the repository, file or address).

    ``unreachable`` says the address itself failed (another file from it would fail too);
    ``missing`` is what the address answered does not exist: "repository", "revision" or "file".
    """

    def __init__(self, reason: str, unreachable: bool = False, missing: str = ""):
        super().__init__(reason)
        self.unreachable = unreachable
        self.missing = missing


def net_timeout() -> float:
    """Seconds to wait for a connection or an answer (``A4K_NET_TIMEOUT``, default 5)."""
    value = os.environ.get("A4K_NET_TIMEOUT", "").strip()
    if not value:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise UserError(f"A4K_NET_TIMEOUT={value!r}: expected a positive number of seconds")
    return seconds


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def forget_unreachable() -> None:
    """Ask again addresses that failed before (tests; a long-running process after a network change)."""
    _UNREACHABLE.clear()


def _remembered(origin: str) -> Optional[str]:
    when, reason = _UNREACHABLE.get(origin, (0.0, ""))
    return reason if time.monotonic() - when < UNREACHABLE_MEMORY_S else None


def _causes(exc: BaseException):
    """The exception and those it was raised from, outermost first (libraries wrap the hub's errors)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


# Transport errors by class name, so that every huggingface_hub generation is understood
# (requests before 1.0, httpx after) without importing either.
_TIMEOUTS = {"TimeoutException", "Timeout", "TimeoutError"}
_NO_CONNECTION = {"NetworkError", "ConnectError", "ConnectionError", "ProxyError", "UnsupportedProtocol",
                  "SSLError", "gaierror"}


def describe_hub_failure(exc: BaseException, repo: str, filename: Optional[str] = None,
                         repo_type: str = "model") -> DownloadFailed:
    """What a failed hub call means, in a few words naming the repository and file."""
    endpoint = hub_endpoint()
    what = f"the {repo_type} repository {repo}" if repo_type != "model" else f"the repository {repo}"
    for cause in _causes(exc):
        names = {cls.__name__ for cls in type(cause).__mro__}
        if "GatedRepoError" in names:
            return DownloadFailed(f"{what} is gated: accept its licence on {endpoint}/{repo} and log in "
                                  "with `hf auth login`")
        if "RepositoryNotFoundError" in names:
            return DownloadFailed(f"{what} does not exist on {endpoint} (or is private)",
                                  missing="repository")
        if "RevisionNotFoundError" in names:
            return DownloadFailed(f"{what} has no such revision on {endpoint}", missing="revision")
        if type(cause).__name__ in ("RemoteEntryNotFoundError", "EntryNotFoundError"):  # not LocalEntry...
            name = f" {filename}" if filename else ""
            return DownloadFailed(f"{what} on {endpoint} has no file{name}", missing="file")
        if "OfflineModeIsEnabled" in names:
            return DownloadFailed("HF_HUB_OFFLINE is set", unreachable=True)
        if names & _TIMEOUTS:
            return DownloadFailed(f"the hub {endpoint} did not answer within {net_timeout():g} s "
                                  "(A4K_NET_TIMEOUT)", unreachable=True)
        if names & _NO_CONNECTION:
            return DownloadFailed(f"the hub {endpoint} cannot be reached ({first_line(cause)})", unreachable=True)
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if "HfHubHTTPError" in names and status is not None:
            return DownloadFailed(f"the hub {endpoint} answered HTTP {status} for {repo}"
                                  + (f"/{filename}" if filename else ""))
    return DownloadFailed(f"{type(exc).__name__}: {first_line(exc)[:200]}")


def check_hub_file(repo: str, filename: str, repo_type: str = "model") -> None:
    """Ask the hub once, briefly, whether ``repo`` has ``filename``; raise DownloadFailed if not."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = hub_endpoint()
    remembered = _remembered(endpoint)
    if remembered:
        raise DownloadFailed(remembered, unreachable=True)
    try:
        # No retry (huggingface_hub's default for this call); the redirect of a large file to its
        # CDN is not followed, so only the hub itself is asked.
        get_hf_file_metadata(hf_hub_url(repo, filename, repo_type=repo_type), timeout=net_timeout())
    except Exception as exc:  # classified below; anything unexpected is still one line
        failure = describe_hub_failure(exc, repo, filename, repo_type)
        if failure.unreachable:
            _UNREACHABLE[endpoint] = (time.monotonic(), str(failure))
        raise failure from None


def describe_url_failure(exc: BaseException, url: str) -> DownloadFailed:
    """What a failed ``urllib`` download means, in a few words."""
    import http.client
    import socket
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return DownloadFailed(f"{url} answered HTTP {exc.code} {exc.reason}", 
                              missing="file" if exc.code in (404, 410) else "")
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return DownloadFailed(f"{_origin(url)} did not answer within {net_timeout():g} s (A4K_NET_TIMEOUT)",
                              unreachable=True)
    if isinstance(reason, OSError):
        detail = reason.strerror or first_line(reason)
        return DownloadFailed(f"{_origin(url)} cannot be reached ({detail})", unreachable=True)
    if isinstance(exc, http.client.HTTPException):
        return DownloadFailed(f"the download from {url} broke off ({type(exc).__name__})")
    return DownloadFailed(f"{type(exc).__name__}: {first_line(exc)[:200]}")


def fetch_url(url: str, out) -> int:
    """Copy ``url``'s body into the binary file ``out``: one try, the short timeout, one-line failures.

    Returns the number of bytes; a body shorter than its Content-Length is a failure (http.client
    would end it silently).
    """
    import http.client
    import urllib.request

    origin = _origin(url)
    remembered = _remembered(origin)
    if remembered:
        raise DownloadFailed(remembered, unreachable=True)

    def failed(exc):
        failure = describe_url_failure(exc, url)
        if failure.unreachable:
            _UNREACHABLE[origin] = (time.monotonic(), str(failure))
        return failure

    try:
        response = urllib.request.urlopen(url, timeout=net_timeout())
    except (OSError, http.client.HTTPException) as exc:
        raise failed(exc) from None
    with response:
        expected = response.headers.get("Content-Length")
        received = 0
        while True:
            try:
                block = response.read(1 << 20)
            except (OSError, http.client.HTTPException) as exc:
                raise failed(exc) from None
            if not block:
                break
            out.write(block)    # a full disk is the caller's OSError, not a network failure
            received += len(block)
    if expected is not None and expected.isdigit() and int(expected) != received:
        raise DownloadFailed(f"the download from {url} broke off after {received} of {expected} bytes")
    return received


def silence_progress_bars() -> None:
    """No progress bars from the hub libraries in this process (``--no-progress``, ``--quiet``):
    huggingface_hub's downloads (set for imports to come as well), transformers' and diffusers'
    loading bars when they are imported."""
    import sys

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    hub = sys.modules.get("huggingface_hub")
    if hub is not None:
        hub.utils.disable_progress_bars()
    for name in ("diffusers", "transformers"):
        module = sys.modules.get(name)
        if module is not None:
            module.utils.logging.disable_progress_bar()
