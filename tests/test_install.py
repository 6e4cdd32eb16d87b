"""The wheel, installed as users install it: built without a warning, run outside the checkout, light at its core.

The wheel is built once per session; each install is a fresh virtual environment in another
folder that sees its dependencies through links to the installed distributions of the
environment running the tests (tests/install_envs.py): no network, no editable finder.
"""
import csv
import json
import os
import subprocess
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests import install_envs
from tests.images import natural, save

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Path:
    """One folder for the whole session, shared by xdist workers: the wheel is built once."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "a4k-install"


@pytest.fixture(scope="session")
def cache() -> Path:
    """The installs use the user cache of the test run itself, as a user's second install would: the GLCM kernels
    are compiled and the sample set is rendered once, not per install (outputs go to each test's folder)."""
    from aesthetic4k_metrics.cache import cache_root

    return cache_root()


@pytest.fixture(scope="session")
def wheel(shared):
    return install_envs.build_wheel(shared)


def run(python: Path, args, cwd: Path, cache: Path, command=None):
    """An installed console script (or ``python -c``) in ``cwd``; stdout, stderr and exit status."""
    executable = [str(python.parent / command)] if command else [str(python), "-c"]
    done = subprocess.run(executable + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=install_envs.clean_env(A4K_CACHE=str(cache), PYTHONDONTWRITEBYTECODE="1",
                                                     NUMBA_CACHE_DIR="", CUDA_VISIBLE_DEVICES=""))
    return done


def listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file() or p.is_symlink()}


def read_row(path: Path) -> dict:
    with open(path, newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    return row


def test_the_wheel_builds_without_a_warning_and_holds_what_the_commands_read(wheel):
    path, log = wheel
    assert [line for line in log.splitlines() if "warning" in line.lower()] == []
    names = zipfile.ZipFile(path).namelist()
    assert "aesthetic4k/paper_results/reported.csv" in names
    assert "aesthetic4k/data/sample_stats/sample-2048-paper.npz" in names
    assert any(n.startswith("aesthetic4k_metrics/") for n in names) and not any(n.startswith("metrics/") for n in names)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".kernels", ".nbi", ".nbc"))]
    assert not [n for n in names if n.startswith("aesthetic4k/paper_results/") and n.endswith((".md", ".html"))]


def test_the_installed_wheel_runs_the_sample_set_outside_the_checkout(wheel, cache, tmp_path):
    site = sysconfig.get_paths()["purelib"]      # every distribution of the test environment but the checkout's
    everything = {d.metadata["Name"] for d in metadata.distributions(path=[site])} - {"aesthetic4k"}
    install_envs.link_distributions(everything, tmp_path / "deps")
    python = install_envs.new_env(tmp_path / "env", [tmp_path / "deps"])
    install_envs.install(python, wheel[0])
    installed = install_envs.site_packages(tmp_path / "env")
    before = listing(installed)
    work = tmp_path / "work"
    work.mkdir()

    where = run(python, ["import aesthetic4k, aesthetic4k_metrics; print(aesthetic4k.__file__); "
                         "print(aesthetic4k_metrics.__file__)"], work, cache)
    assert where.returncode == 0, where.stderr
    assert all(Path(line).is_relative_to(installed) for line in where.stdout.split()), where.stdout

    done = run(python, ["--generator", "upscale", "--dataset", "sample", "--reference", "sample", "--limit", "2",
                        "--metrics", "glcm_score,compression_ratio,fid", "--images-out", "images", "--out",
                        "results.csv", "--no-progress"], work, cache, "a4k-eval")
    assert done.returncode == 0, done.stderr
    row = read_row(work / "results.csv")
    assert row["generator"] == "upscale" and row["n_images"] == "2" and float(row["fid"]) > 0
    assert str(installed) not in row["settings"]      # where the package lies is no setting of the run
    settings = json.loads(row["settings"])
    assert settings["reference"] == "sample" and {"torch", "opencv-python", "libjpeg"} <= set(settings["versions"])

    board = run(python, ["--out", "board"], work, cache, "a4k-leaderboard")
    assert board.returncode == 0, board.stderr
    with open(ROOT / "leaderboards" / "reported.csv", newline="") as handle:
        paper = list(csv.DictReader(handle))
    assert f"{len(paper)} reported rows" in board.stdout
    assert all(r["generator"] in (work / "board" / "README.md").read_text(encoding="utf-8") for r in paper)

    weights = run(python, ["--list-weights"], work, cache, "a4k-eval")
    assert weights.returncode == 0 and "inception" in weights.stdout, weights.stderr

    assert listing(installed) == before      # nothing written into the install: kernels went to the user cache
    assert list((cache / "kernels").glob("glcm_kernels.*.kernels"))


def test_the_core_installs_without_torch_and_scores_a_folder(wheel, cache, tmp_path):
    core = install_envs.requirement_closure(install_envs.core_requirements(wheel[0]))
    assert core & install_envs.HEAVY == set()
    install_envs.link_distributions(core | {"pip"}, tmp_path / "deps")
    python = install_envs.new_env(tmp_path / "env", [tmp_path / "deps"])
    install_envs.install(python, wheel[0])
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True,
                           env=install_envs.clean_env())
    assert check.returncode == 0, check.stdout + check.stderr      # the core's declared dependencies are all there
    work = tmp_path / "work"
    (work / "gen").mkdir(parents=True)
    for i in range(2):
        save(natural(192, 256, seed=i), work / "gen" / f"g{i}.jpg", quality=95)

    assert run(python, ["import torch"], work, cache).returncode != 0
    done = run(python, ["--generator", "folder", "--images", "gen", "--out", "r.csv", "--report", "rep",
                        "--no-progress"], work, cache, "a4k-eval")
    assert done.returncode == 0, done.stderr
    row = read_row(work / "r.csv")
    import aesthetic4k_metrics

    expected = sum(aesthetic4k_metrics.glcm_score(work / "gen" / f"g{i}.jpg") for i in range(2)) / 2
    assert float(row["glcm_score"]) == pytest.approx(expected, abs=1e-12) and row["compression_ratio"]
    assert "aesthetics: missing package" in row["status"]      # the default metrics that cannot run are named
    assert "pip install 'aesthetic4k[metrics]'" in done.stderr

    asked = run(python, ["--generator", "folder", "--images", "gen", "--reference", "gen", "--metrics", "fid",
                         "--out", "f.csv"], work, cache, "a4k-eval")
    assert asked.returncode == 2 and asked.stderr.count("\n") == 1
    assert "fid needs torch" in asked.stderr and "aesthetic4k[metrics]" in asked.stderr
    generator = run(python, ["--generator", "flux-4k", "--dataset", "sample", "--out", "g.csv", "--no-progress"],
                    work, cache, "a4k-eval")
    assert generator.returncode == 2 and "aesthetic4k[generators]" in generator.stderr

    for command, args in (("a4k-check", ["r.csv", "--baseline", "r.csv"]), ("a4k-leaderboard", ["--out", "board"]),
                          ("a4k-report", ["rep", "--out", "again"])):
        done = run(python, args, work, cache, command)
        assert done.returncode == 0, f"{command}: {done.stderr}"
    assert (work / "again" / "index.html").is_file()


def test_every_extra_names_modules_its_distributions_provide():
    from aesthetic4k_metrics.extras import EXTRAS

    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = {name: [line.split(";")[0].strip() for line in value.strip().splitlines()]
                for name, value in config["options.extras_require"].items()}
    provided = metadata.packages_distributions()
    for extra, modules in EXTRAS.items():
        wanted = set()
        for requirement in declared[extra]:        # aesthetic4k[generators] inside an extra: that extra's too
            if requirement.startswith("aesthetic4k["):
                for inner in requirement[len("aesthetic4k["):-1].split(","):
                    wanted.update(Requirement(r).name.lower() for r in declared[inner])
            else:
                wanted.add(Requirement(requirement).name.lower())
        for module in modules:
            owners = {install_envs.canonical_name(d) for d in provided.get(module, [])}
            assert owners & {install_envs.canonical_name(w) for w in wanted}, (extra, module, owners)


def lock_pins() -> dict:
    pins = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        if line and not line.startswith((" ", "#", "-")):
            name, _, pinned = line.partition("==")
            pins[install_envs.canonical_name(name)] = pinned.strip()
    return pins


def test_the_lock_pins_every_declared_dependency_and_this_environment_is_the_lock():
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].strip().splitlines()
    for value in config["options.extras_require"].values():
        lines += value.strip().splitlines()
    declared = {install_envs.canonical_name(Requirement(line).name) for line in lines if not line.startswith("aesthetic4k")}
    pins = lock_pins()
    assert declared - set(pins) == set()
    for line in (ROOT / "requirements" / "pins.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, pinned = line.partition("==")
            assert pins[name] == pinned     # torch at the build the numbers are made with
    installed = {install_envs.canonical_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    drifted = {name: (installed[name], pinned) for name, pinned in pins.items() if installed.get(name, pinned) != pinned}
    assert drifted == {}, "this environment differs from requirements/lock.txt (run make install)"


def test_outside_a_checkout_the_leaderboard_reads_the_shipped_paper_rows(tmp_path, monkeypatch):
    from aesthetic4k.leaderboard import DEFAULT_REPORTED, collect, default_reported, shipped_reported

    assert shipped_reported().read_bytes() == (ROOT / "leaderboards" / "reported.csv").read_bytes()
    monkeypatch.chdir(tmp_path)
    assert default_reported() == shipped_reported()
    assert collect(None).reported                      # the default finds the papers' rows
    (tmp_path / DEFAULT_REPORTED).parent.mkdir()
    header, first = (ROOT / "leaderboards" / "reported.csv").read_text(encoding="utf-8").splitlines()[:2]
    (tmp_path / DEFAULT_REPORTED).write_text(f"{header}\nmine{first[first.index(','):]}\n", encoding="utf-8")
    assert [r.generator for r in collect(None).reported] == ["mine"]   # a project's own file comes first
