"""Captions from any OpenAI-compatible chat-completions endpoint that accepts images (GPT-4o, vLLM, ...).

The image goes inline as a base64 JPEG data URL, downscaled to ``max_side``; the text part is the
paper's caption instruction. Standard library HTTP only (urllib), so no extra dependency.
Transient failures (connection errors, timeouts, HTTP 408/409/429/5xx) are retried with
exponential backoff, honouring ``Retry-After``; when retries run out the build stops with one
line (finished captions are already saved). HTTP 400/413/422 concern this image only: it is
skipped with the reason. 401/403/404 mean a wrong key, model or URL: the build stops at once.
"""
from __future__ import annotations

import base64
import io
import json
import random
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from aesthetic4k.data.captioning import CaptionerOptions, CaptionRejected, clean_caption, env_default
from aesthetic4k.errors import ImageError, UserError
from aesthetic4k_metrics.json_text import JSONProblem, parse

DEFAULT_BASE_URL = "https://api.openai.com/v1"
TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
IMAGE_STATUS = {400, 413, 415, 422}
MAX_WAIT = 120.0


class OpenAICaptioner:
    name = "openai"
    allows_empty = False

    def __init__(self, argument=None, options: CaptionerOptions | None = None):
        self.options = options or CaptionerOptions()
        if argument:  # "openai:<model>" picks the model
            self.options.model = argument
        self.base_url = env_default(self.options.base_url, "OPENAI_BASE_URL", DEFAULT_BASE_URL).rstrip("/")
        self.api_key = env_default(self.options.api_key, "OPENAI_API_KEY")
        if not self.api_key and self.base_url == DEFAULT_BASE_URL:
            raise UserError("captioner openai: set OPENAI_API_KEY (or OPENAI_BASE_URL for another "
                            "OpenAI-compatible server)")
        self.url = self.base_url + "/chat/completions"
        self.requests = 0

    def _image_data_url(self, path: Path) -> str:
        from aesthetic4k.data.images import open_rgb

        try:
            image = open_rgb(path, draft_size=self.options.max_side)
        except ImageError as exc:
            raise CaptionRejected(exc.reason) from None
        image.thumbnail((self.options.max_side, self.options.max_side))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    def _payload(self, path: Path) -> bytes:
        body = {
            "model": self.options.model,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": self.options.instruction},
                {"type": "image_url", "image_url": {"url": self._image_data_url(path)}},
            ]}],
            "max_tokens": self.options.max_tokens,
            "temperature": 0,
        }
        return json.dumps(body).encode("utf-8")

    @staticmethod
    def _text(response: dict) -> str:
        try:
            content = response["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise CaptionRejected("response has no choices[0].message.content") from None
        if isinstance(content, list):  # some servers return content parts
            content = " ".join(part["text"] for part in content if isinstance(part, dict)
                               and isinstance(part.get("text"), str))
        return content if isinstance(content, str) else ""

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.options.backoff * (2 ** attempt)
        if retry_after:
            try:
                delay = max(delay, float(retry_after))
            except ValueError:
                pass
        time.sleep(min(MAX_WAIT, delay) * (1 + 0.1 * random.random()))

    def caption(self, path: Path) -> str:
        payload = self._payload(Path(path))
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        retry_after = None  # the server's Retry-After from the previous attempt
        for attempt in range(self.options.retries + 1):
            if attempt:
                self._wait(attempt - 1, retry_after)
            retry_after = None
            request = urllib.request.Request(self.url, data=payload, headers=headers, method="POST")
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self.options.timeout) as reply:
                    raw = reply.read()
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code in TRANSIENT_STATUS:
                    last = f"HTTP {exc.code} {detail}".strip()
                    retry_after = exc.headers.get("Retry-After") if exc.headers else None
                    continue
                if exc.code in IMAGE_STATUS:
                    raise CaptionRejected(f"captioner refused this image (HTTP {exc.code} {detail})".strip()) from None
                status = f"HTTP {exc.code} {detail}".strip()
                raise UserError(f"captioner openai: {self.url} answered {status}; check OPENAI_API_KEY, "
                                "OPENAI_BASE_URL and --caption-model") from None
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = "timed out" if isinstance(reason, (socket.timeout, TimeoutError)) else str(reason)
                continue
            try:
                response = parse(raw.decode("utf-8"))
            except (UnicodeDecodeError, JSONProblem):
                last = "reply is not usable JSON"
                continue
            return clean_caption(self._text(response))
        raise UserError(f"captioner openai: {self.url} failed {self.options.retries + 1} times ({last}); "
                        "finished captions are saved, re-run the build to resume")


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = parse(exc.read().decode("utf-8", "replace"))
        message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else body.get("error")
        return f"({str(message)[:200]})" if message else ""
    except Exception:
        return ""
