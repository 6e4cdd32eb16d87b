"""`a4k-eval` under faults: odd files, bad outputs, concurrent writers, argument mistakes (issue 12)."""
import csv
import multiprocessing
import os
import sys
from pathlib import Path

import pytest

from aesthetic4k import results
from aesthetic4k.cli.eval import main
from tests.images import natural, save


def run(*args):
    return main(["--no-progress", "--workers", "1", *map(str, args)])


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        save(natural(128, 128, seed=i), images / f"good{i}.png")
    return images


def test_every_odd_entry_of_a_folder_is_accounted_for(folder, tmp_path):
    """Broken links, loops, folders, FIFOs, unsupported formats, other files, undecodable names: all listed."""
    (folder / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    (folder / "dir.jpg").mkdir()
    os.mkfifo(folder / "pipe.png")
    (folder / "anim.gif").write_bytes(b"GIF89a" + b"\0" * 20)
    (folder / "notes.txt").write_text("hello")
    (folder / ".hidden.jpg").write_bytes(b"ignored on purpose: hidden")
    odd_name = os.fsdecode(b"caf\xe9.png")                   # not UTF-8: Latin-1 e-acute
    save(natural(128, 128, seed=7), folder / odd_name)
    out, per = tmp_path / "r.csv", tmp_path / "per.csv"
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score,compression_ratio",
               "--skip-bad", "--out", out, "--per-image", per) == 0
    (row,) = read(out)
    assert row["n_images"] == "3"                                    # good0, good1 and the odd name
    assert "skipped 5 bad file(s), 1 other file(s) not scored (listed in per.csv)" in row["status"]
    listed = {r["file"]: r["status"] for r in read(per)}
    assert listed["broken.jpg"] == "skipped: broken symbolic link (its target does not exist)"
    assert listed["loop.jpg"] == "skipped: symbolic link loop"
    assert listed["dir.jpg"].startswith("skipped: is a folder")
    assert listed["pipe.png"] == "skipped: is a FIFO (named pipe), not a regular file"
    assert listed["anim.gif"] == "skipped: unsupported image format (.gif)"
    assert listed["notes.txt"] == "ignored: not an image file (.txt)"
    assert any(name.endswith("caf\\xe9.png") and status == "ok" for name, status in listed.items())
    assert ".hidden.jpg" not in listed


def test_without_skip_bad_the_first_bad_file_stops_the_run(folder, tmp_path, capsys):
    (folder / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score", "--out", tmp_path / "r.csv") == 2
    line = one_error_line(capsys)
    assert "broken.jpg: broken symbolic link" in line and "--skip-bad" in line
    assert not (tmp_path / "r.csv").exists()


def test_skip_bad_names_every_skipped_file(folder, tmp_path):
    for i in range(8):
        (folder / f"zero{i}.png").write_bytes(b"")
    out = tmp_path / "r.csv"
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score", "--skip-bad", "--out", out) == 0
    status = read(out)[0]["status"]
    assert all(f"zero{i}.png" in status for i in range(8))


@pytest.mark.parametrize("flag, value, message", [
    ("--out", "missing-folder/r.csv", "folder missing-folder does not exist"),
    ("--per-image", "missing-folder/p.csv", "folder missing-folder does not exist"),
    ("--report", "a-file", "is a file, expected a folder"),
    ("--save-reference-stats", "missing-folder/s.npz", "folder missing-folder does not exist"),
])
def test_outputs_are_checked_before_any_work(tmp_path, monkeypatch, capsys, flag, value, message):
    """A bad output path fails at once: nothing generated, no results row changed."""
    from tests.plugin_generators import Solid

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "r.csv"
    args = {"--out": str(out), flag: value}
    Solid.made = []
    assert run("--generator", "tests.plugin_generators:Solid", "--dataset", "sample", "--size", "256",
               "--metrics", "glcm_score", *[x for pair in args.items() for x in pair]) == 2
    assert message in one_error_line(capsys)
    assert Solid.made == [] and not out.exists()


def test_outputs_are_committed_together(folder, tmp_path, monkeypatch, capsys):
    """The report failing leaves results.csv and the per-image file as they were."""
    import aesthetic4k.report

    out, per = tmp_path / "r.csv", tmp_path / "per.csv"
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score", "--out", out) == 0
    before = out.read_bytes()

    def failing_report(result, folder, progress=True):
        Path(folder).mkdir()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(aesthetic4k.report, "write_report", failing_report)
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score,compression_ratio",
               "--out", out, "--per-image", per, "--report", tmp_path / "report") == 2
    assert "No space left on device" in one_error_line(capsys)
    assert out.read_bytes() == before and not per.exists() and not (tmp_path / "report").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.csv.lock", "images", "r.csv"]


def test_read_only_results_file_is_refused(folder, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write read-only files; the permission check cannot be seen")
    out = tmp_path / "r.csv"
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score", "--out", out) == 0
    out.chmod(0o444)
    assert run("--generator", "folder", "--images", folder, "--metrics", "glcm_score", "--out", out) == 2
    assert "read-only" in one_error_line(capsys)


def _writer(path, name, count, barrier):
    barrier.wait()
    for i in range(count):
        results.upsert_row(path, {"generator": name, "dataset": "sample", "size": 2048 + i, "n_images": 1})


def test_concurrent_writers_lose_no_row(tmp_path):
    """Several processes updating one large results file at once: every row is there, the file is valid."""
    path = tmp_path / "r.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=results.COLUMNS, lineterminator="\n")
        writer.writeheader()
        for i in range(3000):
            writer.writerow({"generator": f"old{i}", "dataset": "sample", "size": "2048", "n_images": "1"})
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    workers = [context.Process(target=_writer, args=(path, f"w{k}", 6, barrier)) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    header, rows = results.read_rows(path)
    keys = {results.row_key(r) for r in rows}
    assert len(rows) == len(keys) == 3000 + 4 * 6
    assert {(f"w{k}", "sample", str(2048 + i)) for k in range(4) for i in range(6)} <= keys


@pytest.mark.parametrize("argv, message", [
    (["--workers", "-3"], "--workers must be at least 0"),
    (["--metrics", ""], "--metrics is empty"),
    (["--metrics", "glcm"], "did you mean glcm_score?"),
    (["--generator", "upscal"], "did you mean upscale?"),
    (["--genrator", "folder"], "did you mean --generator?"),
    (["--weights", "inceptoin=/x.pt"], "unknown weight 'inceptoin'; did you mean inception?"),
    (["--size", "abc"], "--size must be a whole number"),
])
def test_argument_mistakes_are_one_line(tmp_path, capsys, argv, message):
    base = {"--generator": "folder", "--images": str(tmp_path), "--out": str(tmp_path / "r.csv")}
    for i in range(0, len(argv), 2):
        base[argv[i]] = argv[i + 1]
    if "--genrator" in base:
        del base["--generator"]
    status = main([x for pair in base.items() for x in pair])
    assert status == 2
    line = one_error_line(capsys)
    assert line.startswith("a4k-eval: error:") and message in line


def test_cuda_without_cuda_fails_at_once(folder, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert run("--generator", "folder", "--images", folder, "--reference", folder, "--metrics", "fid",
               "--device", "cuda", "--out", tmp_path / "r.csv") == 2
    assert "no CUDA device is available" in one_error_line(capsys)


def test_detail_path_runs_with_torch_unimportable(folder, tmp_path):
    """GLCM Score and Compression Ratio through a4k-eval never import torch, torchvision, torchmetrics, diffusers."""
    import subprocess

    code = ("import sys\n"
            "for name in ('torch', 'torchvision', 'torchmetrics', 'diffusers'):\n"
            "    sys.modules[name] = None\n"
            "from aesthetic4k.cli.eval import main\n"
            f"sys.exit(main(['--no-progress', '--generator', 'folder', '--images', {str(folder)!r}, '--metrics',"
            f" 'glcm_score,compression_ratio', '--out', {str(tmp_path / 'r.csv')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert read(tmp_path / "r.csv")[0]["glcm_score"]
