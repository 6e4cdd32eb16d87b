"""benchmarks/gpu_check.py: every section runs at --quick sizes on the CPU, so the GPU script cannot rot;
a failing section is reported and the others still run; and the device choices its two-process section needs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu import SECTIONS

ROOT = Path(__file__).resolve().parents[1]


def check(tmp_path, *args, timeout=1500):
    from aesthetic4k_metrics.cache import cache_root

    kernels = cache_root() / "kernels"      # compiled GLCM kernels are shared: loaded, not compiled again
    kernels.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "kernels").symlink_to(kernels)
    env = {**os.environ, "A4K_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--quick",
                           "--work", str(tmp_path / "work"), "--json", str(tmp_path / "check.json"), *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_quick_run_on_the_cpu_passes_every_section(tmp_path):
    done = check(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in SECTIONS:
        assert any(line.startswith("ok") and line.split()[1] == name for line in lines), (name, done.stdout)
    assert f"{len(SECTIONS)} of {len(SECTIONS)} sections ok" in lines[-1]
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["ok"] and list(report["sections"]) == list(SECTIONS)
    figures = {name: section["figures"] for name, section in report["sections"].items()}
    assert figures["fid"]["fid_relative_gap"] == 0.0            # the "device" is the CPU itself here
    assert figures["clip"]["fp16_max_difference"] < 1e-2
    assert all(v["identical"] for family in ("sd3", "flux") for v in figures["vae"][family]["partitions"].values())
    assert figures["train"]["steps"] == 3 and len(figures["train"]["losses"]) == 3
    assert all(size["saved"] == 2 for size in figures["generate"]["sizes"].values())
    assert figures["two-process"]["backend"] == "gloo" and figures["two-process"]["largest_gap"] <= 1e-6


def test_a_failing_section_is_one_line_and_the_others_still_run(tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_text("not a network")
    done = check(tmp_path, "--only", "fid,vae", "--isolate", "--inception", broken)
    assert done.returncode == 1, done.stdout + done.stderr
    fid, vae = (next(line for line in done.stdout.splitlines() if line.split()[1:2] == [name])
                for name in ("fid", "vae"))
    assert fid.startswith("FAIL") and "broken.pt" in fid
    assert vae.startswith("ok")
    assert done.stdout.splitlines()[-1].startswith("gpu-check: 1 of 2 sections ok, FAIL: fid")
    report = json.loads((tmp_path / "check.json").read_text())
    assert not report["ok"] and report["sections"]["fid"]["verdict"] == "FAIL"
    assert "Traceback" in report["sections"]["fid"]["traceback"]       # kept for whoever fixes it


@pytest.mark.parametrize("args, message", [
    (["--only", "fid,nope"], "unknown section(s) nope"),
    (["--device", "tpu"], "use cuda, cuda:N or cpu"),
])
def test_bad_options_are_one_line_and_exit_2(capsys, args, message):
    from benchmarks.gpu_check import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_cuda_without_a_gpu_is_one_line(capsys):
    import torch

    from benchmarks.gpu_check import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["--only", "vae"]) == 2
    assert "no CUDA device here; on a CPU run --device cpu --quick" in capsys.readouterr().err


# -- two processes on one GPU (what the two-process section runs on a lent machine)

@pytest.mark.parametrize("device, processes, gpus, backend", [
    ("cuda", 2, 1, "gloo"),        # NCCL refuses two ranks on one GPU
    ("cuda:0", 2, 2, "nccl"),
    ("cuda", 8, 8, "nccl"),
    ("cpu", 2, 8, "gloo"),
])
def test_ranks_that_share_a_gpu_talk_over_gloo(device, processes, gpus, backend):
    from aesthetic4k.evaluation.ranks import process_group_backend

    assert process_group_backend(device, processes, gpus) == backend


def test_auto_device_under_torchrun_wraps_around_the_gpus(monkeypatch):
    import torch

    from aesthetic4k_metrics.settings import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == "cuda:0"
