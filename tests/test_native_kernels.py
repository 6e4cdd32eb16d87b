"""The GLCM kernels are compiled once and reused by every later process, from one cache file.

Structural checks only (no timing): where the code came from, which modules a process
imported, and which cache files exist after several runs. Compiled code goes to the user's
cache (``$A4K_CACHE/kernels``), never into the package folder.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.glcm_reference import reference_patches

REPO = Path(__file__).resolve().parents[1]

SCORE = """
import json, sys
import numpy as np
from aesthetic4k_metrics import glcm
from aesthetic4k_metrics.glcm_kernels import value_table
grey = (np.arange(128 * 192).reshape(128, 192) * 2654435761 % 251).astype(np.uint8)
out = {"scores": glcm.glcm_patch_scores(grey).tolist(), "source": glcm.kernels().source,
       "reason": glcm.kernels().reason, "numba": "numba" in sys.modules, "scipy": "scipy" in sys.modules,
       "module": glcm.__file__}
print(json.dumps(out))
"""
GREY = (np.arange(128 * 192).reshape(128, 192) * 2654435761 % 251).astype(np.uint8)


def run(cwd, env=None, script=SCORE):
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def kernel_files(folder: Path):
    return sorted(p.name for p in folder.rglob("glcm_kernels.*") if not p.name.endswith(".lock"))


def compiled_files(folder: Path):
    """Compiled code of any kind under ``folder``: our cache files, numba's index and data files."""
    return sorted(str(p.relative_to(folder)) for pattern in ("*.kernels", "*.nbi", "*.nbc") for p in folder.rglob(pattern))


def installed_copy(tmp_path) -> Path:
    """The package copied as an install would lay it out, its __pycache__ a file: nothing can be written there."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "metrics", site / "aesthetic4k_metrics", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "aesthetic4k_metrics" / "__pycache__").write_text("a file where the cache folder would go: not writable")
    return site


def test_fresh_processes_load_the_cached_machine_code_and_the_cache_does_not_grow():
    from aesthetic4k_metrics.cache import cache_root

    cache = cache_root() / "kernels"
    in_checkout = compiled_files(REPO / "metrics")
    first = run(REPO)
    assert first["source"] in ("cache", "built"), first["reason"]
    assert Path(first["module"]).is_relative_to(REPO / "metrics")
    cached = next(cache.glob("glcm_kernels.*.kernels"))
    stamp = cached.stat().st_mtime_ns
    files = kernel_files(cache)
    for _ in range(3):
        again = run(REPO)
        assert again["source"] == "cache"
        assert not again["numba"] and not again["scipy"]  # loaded without numba (or the SciPy it imports)
        np.testing.assert_allclose(again["scores"], reference_patches(GREY), atol=1e-9)
    assert kernel_files(cache) == files  # one file per kernel source, however many runs
    assert cached.stat().st_mtime_ns == stamp  # read, never rewritten
    assert compiled_files(REPO / "metrics") == in_checkout  # a checkout is an install folder too


def test_an_install_builds_once_into_the_user_cache(tmp_path):
    site = installed_copy(tmp_path)
    env = {"PYTHONPATH": str(site), "A4K_CACHE": str(tmp_path / "cache"), "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    # two first runs at once: one builds under the lock, the other waits and loads what it wrote
    procs = [subprocess.Popen([sys.executable, "-c", SCORE], cwd=tmp_path, env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    assert all(Path(o["module"]).is_relative_to(site) for o in outs)
    assert sorted(o["source"] for o in outs) == ["built", "cache"], [o["reason"] for o in outs]
    user = tmp_path / "cache" / "kernels"
    assert len(kernel_files(user)) == 1
    later = run(tmp_path, env)
    assert later["source"] == "cache" and not later["numba"]
    assert later["scores"] == outs[0]["scores"] == outs[1]["scores"]
    np.testing.assert_allclose(later["scores"], reference_patches(GREY), atol=1e-9)
    assert (site / "aesthetic4k_metrics" / "__pycache__").is_file()
    assert compiled_files(site) == []


NUMBA_PATH = """
import json, sys
import numpy as np
from aesthetic4k_metrics import glcm_kernels, native_kernels
kernels = native_kernels.load(glcm_kernels, prefer="numba")
table, n_values = glcm_kernels.value_table()
out = np.empty((2, 3))
grey = (np.arange(128 * 192).reshape(128, 192) * 2654435761 % 251).astype(np.uint8)
kernels.entropies(grey >> 2, table, n_values, out, *glcm_kernels.entropy_scratch(n_values))
stats = glcm_kernels._patch_entropies.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
                  "scores": out.tolist()}))
"""


def test_numba_fallback_reuses_numba_cache_in_the_user_cache(tmp_path):
    # the fallback keeps numba's own cache (module-level functions, one index entry per signature),
    # in $A4K_CACHE/kernels/numba rather than numba's default __pycache__ beside the installed source
    site = installed_copy(tmp_path)
    env = {"PYTHONPATH": str(site), "A4K_CACHE": str(tmp_path / "cache"), "NUMBA_CACHE_DIR": ""}
    (site / "aesthetic4k_metrics" / "__pycache__").unlink()   # writable: numba would use it if we let it
    run(tmp_path, env, NUMBA_PATH)
    numba_cache = tmp_path / "cache" / "kernels" / "numba"
    index = sorted(numba_cache.rglob("*.nb*"))
    assert index
    for _ in range(2):
        again = run(tmp_path, env, NUMBA_PATH)
        assert again["hits"] == 1 and again["misses"] == 0
        np.testing.assert_allclose(again["scores"], reference_patches(GREY), atol=1e-9)
    assert sorted(numba_cache.rglob("*.nb*")) == index
    assert compiled_files(site) == []


@pytest.mark.parametrize("broken", ["key", "truncated", "flipped"])
def test_a_stale_or_damaged_cache_file_is_not_loaded(tmp_path, broken):
    from aesthetic4k_metrics import native_kernels

    path = tmp_path / "cache.kernels"
    entries = {"entropies": {"symbol": "x", "kinds": ["int"], "externals": [], "object": b"\x7fELF" + bytes(60)}}
    native_kernels._write(path, "the-key", entries)
    data = path.read_bytes()
    damaged = {"key": data.replace(b"the-key", b"old-key"), "truncated": data[:-10], "flipped": data[:-5] + b"XXXXX"}
    path.write_bytes(damaged[broken])
    assert native_kernels._read(path, "the-key") is None
    native_kernels._write(path, "the-key", entries)
    assert native_kernels._read(path, "the-key")["entropies"]["object"] == entries["entropies"]["object"]
