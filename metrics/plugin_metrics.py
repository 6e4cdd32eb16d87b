"""Metrics from other packages, the way generators come: ``--metrics glcm_score,mymodule:MyMetric`` or an
entry point of the group ``aesthetic4k.metrics``.

A plugin implements ``protocol.PixelScore``: ``name``, ``higher_is_better``, ``reads = "pixels"``
and ``score(image) -> float`` for one H x W x 3 uint8 RGB image (optional ``title``,
``description``, ``version``). Loading it registers it in ``registry.METRICS`` like a built-in,
so a run gives it a results.csv column, a per-image column, ``--json``, the report, the
leaderboard and a4k-check. A run feeds it as it feeds the network metrics (the in-memory pixels
of a just generated image, else the decoded file; scored in the run's threads); its value is the
mean of its per-image values. A results row records each plugin's declaration in its settings
(``metric_plugins``), so the tools that read the file know its direction without its code.
"""
from __future__ import annotations

import math
import re

from aesthetic4k_metrics import plugin_loading
from aesthetic4k_metrics.errors import UserError, did_you_mean, first_line
from aesthetic4k_metrics.protocol import PixelScore
from aesthetic4k_metrics.registry import METRICS, PIXELS, MetricInfo

ENTRY_POINT_GROUP = "aesthetic4k.metrics"
NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")        # a results.csv column: lower case, digits, underscores
READS = (PIXELS,)                                 # what a plugin may read


def installed() -> dict:
    """Entry-point name -> entry point of every installed metric plugin (nothing is imported)."""
    return plugin_loading.installed(ENTRY_POINT_GROUP)


def parse_metric_specs(text: str) -> list[str]:
    """A ``--metrics`` list: built-in names, installed plugins' names and ``module:Class`` specs, loaded and
    registered; returns the metric names (a spec gives its class's declared name)."""
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not parts:
        raise UserError("the metric list is empty; available: " + ", ".join(METRICS))
    names = []
    for part in parts:
        if part in METRICS and not METRICS[part].plugin:
            names.append(part)
        elif ":" in part or part in installed():
            names.append(load(part).name)
        else:
            known = [*METRICS, *installed()]
            raise UserError(f"unknown metric(s) {part}{did_you_mean(part, known)} "
                            f"(available: {', '.join(known)}, or module:Class)")
    return list(dict.fromkeys(names))


def load(spec: str) -> MetricInfo:
    """Import the plugin ``spec`` names (``module:attr`` or an entry point's name) and register it."""
    for info in METRICS.values():
        if info.plugin == spec and info.factory is not None:
            return info                                  # loaded before in this process
    if ":" in spec:
        target = plugin_loading.import_target("metric", spec, spec)
    else:
        target = plugin_loading.load_entry_point("metric", spec, installed()[spec])
    return register(declared(target, spec))


def declared(target, spec: str) -> MetricInfo:
    """The registry entry of a plugin class (or ready object), its declaration checked."""
    if not isinstance(target, PixelScore) or not callable(target.score):
        raise UserError(f"metric {spec}: not a metric plugin (it needs name, higher_is_better and "
                        "score(image); see the README, 'Your own metric')")
    name = target.name
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UserError(f"metric {spec}: name {name!r} must be lower case letters, digits and underscores "
                        "(it becomes a results.csv column)")
    if not isinstance(target.higher_is_better, bool):
        raise UserError(f"metric {spec}: higher_is_better must be True or False")
    details = vars(target) if isinstance(target, type) else {**vars(type(target)), **vars(target)}
    reads = details.get("reads", PIXELS)
    if reads not in READS:
        raise UserError(f"metric {spec}: reads {reads!r}; a plugin metric reads {', '.join(READS)}")
    text = {key: details.get(key, "") for key in ("title", "description", "version")}
    if not all(isinstance(value, str) for value in text.values()):
        raise UserError(f"metric {spec}: title, description and version must be text")
    info = MetricInfo(name, text["title"] or name, target.higher_is_better, spec, (name,), (name,), reads=PIXELS,
                      description=text["description"] or f"plugin {spec}", plugin=spec, version=text["version"])
    return _with_factory(info, target)


def _with_factory(info: MetricInfo, target) -> MetricInfo:
    from dataclasses import replace

    return replace(info, factory=PluginFactory(info, target))


def register(info: MetricInfo) -> MetricInfo:
    """Put a plugin in the registry; a name taken by a built-in or another plugin is refused."""
    old = METRICS.get(info.name)
    if old is not None and (not old.plugin or (old.plugin != info.plugin and old.factory is not None)):
        owner = "a built-in metric" if not old.plugin else f"plugin {old.plugin}"
        raise UserError(f"metric {info.plugin}: the name {info.name} is taken by {owner}")
    METRICS[info.name] = info
    return info


def register_declared(settings: dict, where: str) -> None:
    """Register the plugins a results row declares (its settings' ``metric_plugins``), so that its columns
    are read, ranked and compared; nothing is imported. A built-in name is never redefined."""
    declared_plugins = settings.get("metric_plugins") or {}
    if not isinstance(declared_plugins, dict):
        raise UserError(f"{where}: settings metric_plugins must be a JSON object")
    for name, declaration in declared_plugins.items():
        if not NAME.fullmatch(str(name)) or not isinstance(declaration, dict) or \
                declaration.get("better") not in ("higher", "lower") or \
                not all(isinstance(declaration.get(k, ""), str) for k in ("spec", "title", "description", "version")):
            raise UserError(f"{where}: settings metric_plugins: {name!r} is not a plugin declaration "
                            "(spec, title, better: higher or lower)")
        if name in METRICS:
            continue
        METRICS[name] = MetricInfo(name, declaration.get("title") or name, declaration["better"] == "higher",
                                   declaration.get("spec", ""), (name,), (name,), reads=PIXELS,
                                   description=declaration.get("description", ""),
                                   plugin=declaration.get("spec") or name, version=declaration.get("version", ""))


class PluginFactory:
    """``from_settings`` for a plugin: the object a registry entry's ``load_class()`` returns."""

    def __init__(self, info: MetricInfo, target):
        self.info = info
        self.target = target

    def from_settings(self, settings) -> "PluginMetric":
        try:
            scorer = self.target() if isinstance(self.target, type) else self.target
        except Exception as exc:  # the plugin's own failure, reported as such
            raise UserError(f"metric {self.info.plugin}: failed to start ({first_line(exc, 160, typed=True)})") \
                from None
        return PluginMetric(self.info, scorer)


class PluginMetric:
    """A ``PixelScore`` plugin as a ``protocol.FeatureMetric``: its per-image score is the image's feature."""

    def __init__(self, info: MetricInfo, scorer):
        self.info = info
        self.scorer = scorer
        self.name = info.name
        self.higher_is_better = info.higher_is_better
        self.values: list[float] = []

    def feature_recipe(self) -> None:
        return None          # a plugin's code can change under the same name: its values are never cached

    def prepare(self, image, key=None) -> float:
        try:
            value = float(self.scorer.score(image))
        except Exception as exc:  # the plugin's bug: name it and the image, one line
            raise UserError(f"metric {self.name} ({self.info.plugin}) failed on {key or 'an image'}: "
                            f"{first_line(exc, 160, typed=True)}") from None
        if not math.isfinite(value):
            raise UserError(f"metric {self.name} ({self.info.plugin}) gave {value} for {key or 'an image'}; "
                            "a metric value must be a finite number")
        return value

    def embed(self, inputs: list) -> list:
        import torch

        return [torch.tensor([[value]], dtype=torch.float64) for value in inputs]

    def update(self, *, features, **inputs) -> None:
        self.values.extend(float(v) for v in features.reshape(-1).tolist())

    def summary(self) -> dict:
        import numpy as np

        from aesthetic4k_metrics.detail import from_all_processes

        values = from_all_processes(self.values)
        return {self.name: float(np.mean(values)) if values else float("nan")}

    def provenance(self) -> dict:
        return {}            # the row's settings record the plugin's declaration (metric_plugins)

    def per_image_values(self) -> dict:
        return {self.name: list(self.values)}
