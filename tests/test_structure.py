"""The structure docs/design.md promises: dependencies one way, no import cycles, one complete metric registry."""
import ast
from pathlib import Path

import numpy as np
import pytest

from aesthetic4k_metrics.registry import FILE, METRICS

ROOT = Path(__file__).resolve().parents[1]
# import name -> folder: the metrics are installed under a name of their own (setup.cfg package_dir)
PACKAGES = {"aesthetic4k": "aesthetic4k", "aesthetic4k_metrics": "metrics"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts[0] = {folder: name for name, folder in PACKAGES.items()}[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for folder in PACKAGES.values() for p in (ROOT / folder).rglob("*.py")}


def imports_of(path: Path, modules: dict) -> set[str]:
    """Modules of this project that ``path`` imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in PACKAGES)
    return found


def test_metrics_never_imports_aesthetic4k():
    modules = all_modules()
    offenders = {name: sorted(i for i in imports_of(path, modules) if i.split(".")[0] == "aesthetic4k")
                 for name, path in modules.items() if name.startswith("aesthetic4k_metrics")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_metric_library_raises_messages_that_name_no_command_flag():
    """aesthetic4k_metrics names its settings as keyword arguments; the commands translate them into
    their flags (cli.common.in_command_terms). A flag in a raised message would confuse library users."""
    import re

    flag = re.compile(r"(^|[\s(])--[a-z]")
    offenders = []
    for path in sorted((ROOT / "metrics").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Raise) or not isinstance(node.exc, ast.Call):
                continue
            texts = [n.value for arg in node.exc.args for n in ast.walk(arg)
                     if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            offenders += [f"{path.name}:{node.lineno}: {text}" for text in texts if flag.search(text)]
    assert offenders == []


def test_no_import_cycles():
    modules = all_modules()
    graph = {name: {i for i in imports_of(path, modules) if i in modules and i != name}
             for name, path in modules.items()}
    cycles = []
    state: dict[str, int] = {}     # 1 on the current path, 2 done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_source_module_over_500_lines():
    long = {name: n for name, path in all_modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def test_results_columns_come_from_the_registry():
    from aesthetic4k.results import COLUMNS

    from aesthetic4k_metrics.registry import RESAMPLED

    for info in METRICS.values():
        assert set(info.columns) <= set(COLUMNS), info.name
        assert info.resampled in RESAMPLED, info.name     # every metric gets its row's interval


@pytest.mark.parametrize("name", list(METRICS))
def test_every_registered_metric_is_complete_and_runs_on_tiny_inputs(name, tmp_path, tiny_inception, tiny_clips,
                                                                     monkeypatch):
    from aesthetic4k_metrics.protocol import FeatureMetric, FileMetric, MetricClass
    from aesthetic4k_metrics.settings import MetricSettings

    info = METRICS[name]
    cls = info.load_class()
    assert cls.higher_is_better == info.higher_is_better
    assert isinstance(cls, MetricClass), f"{name} has no from_settings"

    weights = {"inception": str(tiny_inception)}
    settings = MetricSettings(size=320, patch_count=2, clip_model=tiny_clips["clip_score"][0],
                              aesthetics_model=tiny_clips["aesthetics"][0], batch_size=2)
    for key in ("clip_score", "aesthetics"):
        model, checkpoint = tiny_clips[key]
        weights[f"clip-{model.lower()}"] = str(checkpoint)
    from tests.conftest import AESTHETIC_HEAD

    if "aesthetic-head" in info.weight_names(settings):
        if not AESTHETIC_HEAD.is_file():
            pytest.skip(f"real aesthetic head not found at {AESTHETIC_HEAD}")
        weights["aesthetic-head"] = str(AESTHETIC_HEAD)
    settings.weights = weights
    metric = cls.from_settings(settings)
    declared = FileMetric if info.reads == FILE else FeatureMetric       # the protocol its reads= promises
    assert isinstance(metric, declared), f"{name} does not implement {declared.__name__}"
    assert metric.name == name

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (320, 320, 3), dtype=np.uint8) for _ in range(3)]
    if info.reads == FILE:
        paths = []
        for i, image in enumerate(images):
            from PIL import Image

            paths.append(tmp_path / f"i{i}.jpg")
            Image.fromarray(image).save(paths[-1], quality=95)
        metric.update(paths)
    else:
        features = metric.embed([metric.prepare(image, f"i{i}") for i, image in enumerate(images)])
        assert len(features) == 3 and metric.feature_recipe()
        if "reference" in info.needs:
            metric.update(features=features, real=True)
            metric.update(features=features[::-1], real=False)
        elif "prompt" in info.needs:
            metric.update(features=features, texts=["a", "b", "c"])
        else:
            metric.update(features=features)
    summary = metric.summary()
    assert list(summary) == list(info.columns)
    assert all(np.isfinite(v) for v in summary.values())
    if info.per_image:
        values = metric.per_image_values()
        assert set(values) == set(info.per_image) and all(len(v) == 3 for v in values.values())
    assert isinstance(metric.provenance(), dict) and len(repr(metric)) < 120


@pytest.mark.parametrize("command", ["train", "train_vae"])
def test_trainer_help_does_not_import_torch(command):
    import subprocess
    import sys

    code = (f"import sys; from aesthetic4k.cli import {command} as t; t.build_parser().format_help(); "
            "print(any(m in sys.modules for m in ('torch', 'diffusers', 'transformers')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
