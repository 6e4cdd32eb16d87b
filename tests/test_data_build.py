"""`a4k-data build`: decisions and reasons, resumability, determinism, captioners (fake HTTP server)."""
from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic4k.cli.data import main
from aesthetic4k.data import open_dataset, validate
from aesthetic4k.data.build import BuildOptions, build
from aesthetic4k.data.captioning import CAPTION_INSTRUCTION, CaptionerOptions
from aesthetic4k.data.scenes import render_scene
from aesthetic4k.errors import UserError


def photo(path: Path, index: int, size=(320, 280), caption: str | None = "auto", **save):
    """A distinct picture (a rendered scene, resized) with its sidecar caption."""
    scene = np.rot90(render_scene(index % 8, 256, seed=index // 8), k=index // 8)  # rotated: a new layout
    array = np.asarray(Image.fromarray(np.ascontiguousarray(scene)).resize(size, Image.BICUBIC))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save)
    if caption is not None:
        text = f"scene {index} with plenty of fine detail" if caption == "auto" else caption
        path.with_suffix(".txt").write_text(text, encoding="utf-8")
    return array


def options(source, out, **overrides) -> BuildOptions:
    settings = dict(source=Path(source), out=Path(out), min_short_side=256, eval_sizes=(256, 300), eval_count=2,
                    progress=False, workers=1)  # in this process, so monkeypatches apply; pools: test_data_scale
    settings.update(overrides)
    return BuildOptions(**settings)


def manifest(out: Path) -> dict:
    return {line["source"]: line for line in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}


@pytest.fixture
def mixed_source(tmp_path):
    """Good photos, a too-small one, a near-duplicate, an exact copy, broken files, odd modes, a name clash."""
    src = tmp_path / "photos"
    for index in range(6):
        photo(src / f"good{index}.jpg", index, quality=95)
    photo(src / "small.jpg", 6, size=(200, 150))
    array = photo(src / "nested" / "good0.png", 0, size=(300, 262))          # same picture, smaller, other name
    (src / "copy.jpg").write_bytes((src / "good1.jpg").read_bytes())          # byte-identical
    (src / "copy.txt").write_text("copy")
    (src / "zero.jpg").write_bytes(b"")
    (src / "text.png").write_text("hello")
    data = (src / "good2.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (src / "notes.md").write_text("not a photo")
    photo(src / "cmyk.jpg", 9, caption="a cmyk picture")
    Image.open(src / "cmyk.jpg").convert("CMYK").save(src / "cmyk.jpg", quality=95)
    deep = np.asarray(Image.fromarray(photo(src / "grey.jpg", 10, caption=None)).convert("L")).astype(np.uint16) * 257
    (src / "grey.jpg").unlink()
    Image.fromarray(deep).save(src / "deep16.png")
    (src / "deep16.txt").write_text("a sixteen bit grey picture")
    photo(src / "sub" / "good4.jpg", 11, caption="same name, different picture")  # name clash with good4.jpg
    photo(src / "nocaption.jpg", 12, caption=None)
    photo(src / "emptycaption.jpg", 13, caption="   ")
    photo(src / "longcaption.jpg", 14, caption="word " * 400)
    (src / "nested" / "loop").symlink_to(src)
    del array
    return src


def test_build_mixed_folder_explains_every_decision(tmp_path, mixed_source):
    out = tmp_path / "dataset"
    summary = build(options(mixed_source, out))
    lines = manifest(out)
    decision = {name: (line["decision"], line["reason"]) for name, line in lines.items()}
    assert decision["small.jpg"][0] == "skipped" and "too small: 200x150" in decision["small.jpg"][1]
    assert decision["nested/good0.png"][0] == "skipped" and "near-duplicate of good0.jpg" in decision["nested/good0.png"][1]
    assert decision["good1.jpg"] == ("skipped", "identical file to copy.jpg")  # the first path is kept
    assert "empty file" in decision["zero.jpg"][1]
    assert "not an image" in decision["text.png"][1]
    assert "truncated" in decision["truncated.jpg"][1]
    assert decision["notes.md"][0] == "ignored"
    assert decision["nested/loop"] == ("ignored", "symlink loop: folder already visited")
    assert "no sidecar caption" in decision["nocaption.jpg"][1]
    assert decision["emptycaption.jpg"] == ("skipped", "empty caption")
    assert "caption too long (400 words" in decision["longcaption.jpg"][1]
    kept = {name for name, (d, _) in decision.items() if d in ("train", "eval")}
    assert kept == {"good0.jpg", "copy.jpg", "good2.jpg", "good3.jpg", "good4.jpg", "good5.jpg", "cmyk.jpg",
                    "deep16.png", "sub/good4.jpg"}
    assert sum(d == "eval" for d, _ in decision.values()) == 2
    # every source file has a line; kept ones carry sha256, size, caption and outputs
    for name in kept:
        line = lines[name]
        assert len(line["sha256"]) == 64 and line["width"] >= 256 and line["caption"] and line["outputs"]
    # the two "good4" files get distinct stems with a hash suffix
    stems = {lines["good4.jpg"]["stem"], lines["sub/good4.jpg"]["stem"]}
    assert len(stems) == 2 and all(s.startswith("good4-") for s in stems)
    # re-encoded (CMYK, 16-bit) vs copied byte for byte
    cmyk_out = out / lines["cmyk.jpg"]["outputs"][0]
    if lines["cmyk.jpg"]["decision"] == "train":
        assert cmyk_out.suffix == ".png" and Image.open(cmyk_out).mode == "RGB"
    good = next(n for n in ("good0.jpg", "good2.jpg", "good3.jpg", "good5.jpg") if lines[n]["decision"] == "train")
    assert (out / lines[good]["outputs"][0]).read_bytes() == (mixed_source / good).read_bytes()
    # the result is a valid dataset in the published layout
    train = open_dataset(str(out), split="train")
    assert len(train) == summary["train"] == len(kept) - 2
    assert validate(train) == []
    evaluation = open_dataset(str(out), size=256)
    assert validate(evaluation) == []
    for record in evaluation.records():
        assert Image.open(record.image_path).size == (256, 256)
    # no kept image fits eval@300: no metadata.jsonl without entries (validate and a4k-eval refuse one)
    assert "eval/size_300: no image, so no metadata.jsonl" in summary["notes"]
    with pytest.raises(UserError, match="no eval set at size 300"):
        open_dataset(str(out), size=300)
    assert summary["settings"]["min_short_side"] == 256
    assert json.loads((out / "build.json").read_text())["decisions"] == summary["decisions"]


def test_eval_sizes_never_upscale(tmp_path):
    src = tmp_path / "src"
    photo(src / "a.jpg", 0, size=(280, 400))
    photo(src / "b.jpg", 1, size=(280, 400))
    out = tmp_path / "out"
    build(options(src, out, eval_sizes=(256, 300), eval_count=1, eval_format="jpg"))
    evaluated = [line for line in manifest(out).values() if line["decision"] == "eval"][0]
    assert evaluated["outputs"] == [f"eval/size_256/images/{evaluated['stem']}.jpg"]
    assert "not in eval@300: shorter side 280 < 300" in evaluated["notes"][0]
    assert not (out / "eval" / "size_300" / "metadata.jsonl").exists()


def test_rerun_is_resumable_and_deterministic(tmp_path, mixed_source, monkeypatch):
    out = tmp_path / "one"
    build(options(mixed_source, out))
    first = (out / "manifest.jsonl").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("images/*")}
    # a second run must not rescan or rewrite anything
    monkeypatch.setattr("aesthetic4k.data.build_work.scan_file", lambda *a: pytest.fail("rescanned"))
    monkeypatch.setattr("aesthetic4k.data.images.save_atomic", lambda *a, **k: pytest.fail("rewritten"))
    build(options(mixed_source, out))
    assert (out / "manifest.jsonl").read_bytes() == first
    assert {p: p.stat().st_mtime_ns for p in out.rglob("images/*")} == stamps
    monkeypatch.undo()
    # another output folder gets the same decisions and names
    other = tmp_path / "two"
    build(options(mixed_source, other))
    assert (other / "manifest.jsonl").read_bytes() == first
    for split in ("train", "eval/size_256"):
        assert (other / split / "metadata.jsonl").read_text() == (out / split / "metadata.jsonl").read_text()
    # a new seed moves images between splits; stale files of the old split are removed
    before = {r.image_path.name for r in open_dataset(str(out), size=256).records()}
    build(options(mixed_source, out, seed=5))
    listed = {r.image_path.name for r in open_dataset(str(out), size=256).records()}
    assert {p.name for p in (out / "eval/size_256/images").iterdir()} == listed
    assert len(listed) == 2 and listed != before


def test_interrupted_build_keeps_finished_work(tmp_path, mixed_source, monkeypatch):
    out = tmp_path / "out"
    import aesthetic4k.data.build_work as build_module

    real = build_module.scan_file
    calls = []

    def interrupting(path, max_pixels):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path, max_pixels)

    monkeypatch.setattr(build_module, "scan_file", interrupting)
    with pytest.raises(KeyboardInterrupt):
        build(options(mixed_source, out))
    assert not (out / "manifest.jsonl").exists() and not (out / "train" / "metadata.jsonl").exists()
    assert not (out / ".a4k-build" / "lock").exists()
    rescanned = []
    monkeypatch.setattr(build_module, "scan_file", lambda path, mp: rescanned.append(path) or real(path, mp))
    build(options(mixed_source, out))
    assert not set(rescanned) & set(calls[:4])  # the 4 finished scans were reused


def test_quality_filter_with_glcm(tmp_path, monkeypatch):
    from tests.glcm_reference import reference_glcm_score

    # the filter logic is under test, with the protocol's GLCM written in scikit-image (no numba compile)
    monkeypatch.setattr("aesthetic4k.data.build_work.glcm_function", lambda: reference_glcm_score)
    src = tmp_path / "src"
    sharp = photo(src / "sharp.png", 2, size=(320, 320))
    other = photo(src / "soft.png", 5, size=(320, 320), caption="a blurry picture")
    soft = np.asarray(Image.fromarray(other).resize((40, 40)).resize((320, 320), Image.BICUBIC))
    Image.fromarray(soft).save(src / "soft.png")
    sharp_score = reference_glcm_score(sharp)
    threshold = (sharp_score + reference_glcm_score(soft)) / 2
    out = tmp_path / "out"
    build(options(src, out, min_glcm=threshold, eval_count=0))
    lines = manifest(out)
    assert lines["sharp.png"]["decision"] == "train", lines["sharp.png"]["reason"]
    assert lines["sharp.png"]["scores"]["glcm_score"] == pytest.approx(sharp_score)
    assert lines["soft.png"]["decision"] == "skipped" and "below --min-glcm" in lines["soft.png"]["reason"]
    # asking for the aesthetics filter without its metric/weights: skipped with a note, build goes on
    monkeypatch.setattr("aesthetic4k_metrics.__getattr__", lambda name: (_ for _ in ()).throw(ImportError("no aesthetics")),
                        raising=False)
    summary = build(options(src, tmp_path / "out2", min_aesthetics=5.0, eval_count=0))
    assert any(note.startswith("aesthetics filter skipped") for note in summary["notes"])
    assert summary["train"] == 2


# ---------------------------------------------------------------- the openai captioner

class FakeOpenAI:
    """A chat-completions server on 127.0.0.1 whose answers the test scripts."""

    def __init__(self):
        self.requests = []
        self.script = []          # per request: (status, body dict) or ("sleep", seconds); last one repeats
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                step = fake.script[min(len(fake.requests) - 1, len(fake.script) - 1)]
                if step[0] == "sleep":
                    time.sleep(step[1])
                    step = (200, {"choices": [{"message": {"content": "too late"}}]})
                status, payload = step
                if callable(payload):
                    payload = payload(body)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai(monkeypatch):
    server = FakeOpenAI()
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    yield server
    server.close()


def answer(text):
    return (200, {"choices": [{"message": {"role": "assistant", "content": text}}]})


def caption_options(**overrides):
    settings = dict(timeout=2.0, retries=2, backoff=0.01)
    settings.update(overrides)
    return CaptionerOptions(**settings)


def test_openai_captioner_request_and_retries(tmp_path, fake_openai):
    src = tmp_path / "src"
    for index in range(3):
        photo(src / f"p{index}.jpg", index, caption=None)
    fake_openai.script = [(503, {"error": {"message": "busy"}}), answer('"A fox in snow."'),
                          (400, {"error": {"message": "image rejected"}}), answer("A harbour at dawn.")]
    out = tmp_path / "out"
    build(options(src, out, captioner="openai", caption=caption_options(model="gpt-test"), eval_count=0))
    first = fake_openai.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-test"
    body = first["body"]
    assert body["model"] == "gpt-test"
    content = body["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": CAPTION_INSTRUCTION}
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (320, 280)
    lines = manifest(out)
    captions = sorted(line.get("caption", "") for line in lines.values())
    assert captions == ["", "A fox in snow.", "A harbour at dawn."]  # quotes stripped; one image refused
    refused = [line for line in lines.values() if line["decision"] == "skipped"][0]
    assert "HTTP 400" in refused["reason"] and "image rejected" in refused["reason"]
    # re-running asks again only for the refused image (finished captions are kept)
    before = len(fake_openai.requests)
    fake_openai.script = [answer("A meadow.")]
    build(options(src, out, captioner="openai", caption=caption_options(model="gpt-test"), eval_count=0))
    assert len(fake_openai.requests) == before + 1
    assert sorted(line.get("caption") for line in manifest(out).values()) == \
        ["A fox in snow.", "A harbour at dawn.", "A meadow."]


def test_openai_captioner_failures_stop_and_resume(tmp_path, fake_openai):
    src = tmp_path / "src"
    for index in range(3):
        photo(src / f"p{index}.jpg", index, caption=None)
    out = tmp_path / "out"
    # first image captioned, then the service times out on every retry: the build stops with one line
    fake_openai.script = [answer("First caption."), ("sleep", 1.5)]
    with pytest.raises(UserError) as info:
        build(options(src, out, captioner="openai", caption=caption_options(timeout=0.5, retries=1),
                      eval_count=0))
    assert "failed 2 times (timed out)" in str(info.value) and "re-run" in str(info.value)
    assert not (out / "manifest.jsonl").exists()
    saved = (out / ".a4k-build" / "captions.jsonl").read_text()
    assert "First caption." in saved
    # a wrong key stops at once, without retries
    fake_openai.requests.clear()
    fake_openai.script = [(401, {"error": {"message": "bad key"}})]
    with pytest.raises(UserError, match="HTTP 401"):
        build(options(src, out, captioner="openai", caption=caption_options(), eval_count=0))
    assert len(fake_openai.requests) == 1
    # service back: only the two missing captions are requested
    fake_openai.requests.clear()
    fake_openai.script = [answer("Later caption.")]
    build(options(src, out, captioner="openai", caption=caption_options(), eval_count=0))
    assert len(fake_openai.requests) == 2
    assert sorted(line["caption"] for line in manifest(out).values()) == \
        ["First caption.", "Later caption.", "Later caption."]


def test_openai_needs_a_key_for_the_default_endpoint(monkeypatch):
    from aesthetic4k.data.captioning import create_captioner

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        create_captioner("openai")


class UpperCaptioner:
    """A third-party captioner used through module:attribute."""

    name = "upper"

    def __init__(self, argument=None, options=None):
        self.argument = argument

    def caption(self, path):
        if "bad" in path.name:
            raise RuntimeError("model crashed")
        return path.stem.upper()


def test_plugin_captioner_and_failures(tmp_path):
    src = tmp_path / "src"
    photo(src / "alpha.jpg", 0, caption=None)
    photo(src / "beta.jpg", 1, caption=None)
    out = tmp_path / "out"
    build(options(src, out, captioner="tests.test_data_build:UpperCaptioner", eval_count=0))
    assert sorted(line["caption"] for line in manifest(out).values()) == ["ALPHA", "BETA"]
    photo(src / "bad.jpg", 2, caption=None)
    with pytest.raises(UserError, match="failed on bad.jpg .RuntimeError: model crashed"):
        build(options(src, out, captioner="tests.test_data_build:UpperCaptioner", eval_count=0))
    with pytest.raises(UserError, match="unknown captioner 'nosuch'"):
        build(options(src, tmp_path / "x", captioner="nosuch"))


def test_none_captioner_gives_empty_prompts(tmp_path):
    src = tmp_path / "src"
    photo(src / "a.jpg", 0, caption=None)
    out = tmp_path / "out"
    build(options(src, out, captioner="none", eval_count=0))
    train = open_dataset(str(out), split="train")
    assert [r.prompt for r in train.records()] == [""]            # a prompt-free dataset: valid, with a warning
    assert [(p.kind, p.severity) for p in validate(train)] == [("no-captions", "warning")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_permissions_are_skipped(tmp_path):
    src = tmp_path / "src"
    photo(src / "ok.jpg", 0)
    photo(src / "locked.jpg", 1)
    (src / "locked.jpg").chmod(0)
    out = tmp_path / "out"
    try:
        build(options(src, out, eval_count=0))
    finally:
        (src / "locked.jpg").chmod(0o644)
    assert manifest(out)["locked.jpg"]["reason"] == "permission denied"


def test_cli_build_and_errors(tmp_path, mixed_source, capsys):
    out = tmp_path / "cli"
    code = main(["build", "--source", str(mixed_source), "--out", str(out), "--min-short-side", "256",
                 "--eval-sizes", "256", "--eval-count", "1", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "too small" in printed and "written to eval@256: 1" in printed
    assert main(["build", "--source", str(tmp_path / "absent"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"a4k-data: error: --source {tmp_path / 'absent'}: no such folder"
    assert main(["build", "--source", str(mixed_source), "--out", str(mixed_source)]) == 2
    (out / ".a4k-build" / "lock").write_text(str(os.getppid()))  # a live process holds the folder
    assert main(["build", "--source", str(mixed_source), "--out", str(out), "--quiet"]) == 2
    assert "another build" in capsys.readouterr().err
    (out / ".a4k-build" / "lock").write_text("999999999")  # a dead one: taken over
    assert main(["build", "--source", str(mixed_source), "--out", str(out), "--min-short-side", "256",
                 "--eval-sizes", "256", "--eval-count", "1", "--quiet"]) == 0
    assert main(["validate", str(out), "--size", "256"]) == 0
    assert main(["captioners"]) == 0 and "sidecar" in capsys.readouterr().out


def test_permission_denied_is_skipped_even_as_root(tmp_path, monkeypatch):
    # root ignores file modes, so the operating system's refusal is simulated at the decoder's door
    import PIL.Image

    src = tmp_path / "src"
    photo(src / "ok.jpg", 0)
    photo(src / "locked.jpg", 1)
    real_open = PIL.Image.open

    def guarded(path, *args, **kwargs):
        if str(path).endswith("locked.jpg"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", guarded)
    out = tmp_path / "out"
    build(options(src, out, eval_count=0))
    assert manifest(out)["locked.jpg"]["reason"] == "permission denied"
    assert manifest(out)["ok.jpg"]["decision"] == "train"
