"""a4k-eval adapters for the CLIP-based metrics: CLIPScore and Aesthetics.

Options used: ``clip_model`` (open_clip model of CLIPScore, default ``ViT-B-16``),
``extra["aesthetics_model"]`` (default ``ViT-L-14``), ``weights`` (explicit weight paths),
``extra["allow_download"]``, ``device``, ``batch_size``.
"""
from __future__ import annotations

import math

from metrics import weights
from aesthetic4k.errors import UserError
from aesthetic4k.scoring import Item, MetricUnavailable, Scorer, ScoringOptions


def _resolve(name: str, options: ScoringOptions) -> weights.ResolvedWeight:
    try:
        return weights.resolve(name, options.weights.get(name), allow_download=options.extra.get("allow_download"))
    except UserError as exc:
        raise MetricUnavailable(f"unavailable: {exc}") from None


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("open_clip_torch", "torch"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def _load_clip(model_name: str, resolved: weights.ResolvedWeight, options: ScoringOptions):
    from metrics.clip_model import load_clip

    try:
        return load_clip(model_name, resolved.path, device=options.device)
    except ImportError as exc:
        raise MetricUnavailable(f"unavailable: open_clip is not installed ({exc}); pip install open_clip_torch") from None


def _pixels(item: Item):
    if item.image is not None:
        return item.image
    if item.image_path is not None:
        from metrics.image_input import read_rgb

        return read_rgb(item.image_path)
    raise UserError(f"{item.stem}: no generated image to score")


class CLIPScoreScorer(Scorer):
    name = "clip_score"
    columns = ("clip_score", "clip_truncated")
    needs_prompt = True

    def __init__(self, options: ScoringOptions):
        self.options = options
        self.model_name = options.clip_model or "ViT-B-16"
        self.resolved = _resolve(weights.clip_weight_name(self.model_name), options)
        clip = _load_clip(self.model_name, self.resolved, options)
        from metrics.clip_score import CLIPScore

        self.metric = CLIPScore(self.model_name, clip=clip, batch_size=options.batch_size).to(options.device)

    def add(self, items: list[Item]) -> list[dict]:
        missing = [item.stem for item in items if not isinstance(item.prompt, str)]
        if missing:
            raise UserError(f"clip_score needs a prompt for every image; none for {', '.join(missing[:5])}")
        self.metric.update([_pixels(item) for item in items], [item.prompt for item in items])
        return [{"clip_score": float(score), "clip_truncated": int(truncated)}
                for score, truncated in zip(self.metric.last_scores.tolist(), self.metric.last_truncated)]

    def result(self) -> dict:
        if int(self.metric.count) == 0:
            return {"clip_score": math.nan, "clip_truncated": 0}
        return {"clip_score": float(self.metric.compute()), "clip_truncated": int(self.metric.truncated)}

    def settings(self) -> dict:
        return {"clip_model": self.model_name, "clip_weights": self.resolved.label,
                "clip_context_length": self.metric.context_length,
                "clip_score_formula": "100*max(cos,0), mean over images", **_versions()}

    def close(self) -> None:
        self.metric = None


class AestheticsScorer(Scorer):
    name = "aesthetics"
    columns = ("aesthetics",)

    def __init__(self, options: ScoringOptions):
        self.options = options
        self.model_name = options.extra.get("aesthetics_model", "ViT-L-14")
        self.resolved_clip = _resolve(weights.clip_weight_name(self.model_name), options)
        self.resolved_head = _resolve("aesthetic-head", options)
        from metrics.aesthetics import Aesthetics, load_aesthetic_head

        clip = _load_clip(self.model_name, self.resolved_clip, options)
        head = load_aesthetic_head(self.resolved_head.path, device=options.device)
        self.metric = Aesthetics(self.model_name, clip=clip, head=head,
                                 batch_size=options.batch_size).to(options.device)

    def add(self, items: list[Item]) -> list[dict]:
        self.metric.update([_pixels(item) for item in items])
        return [{"aesthetics": float(score)} for score in self.metric.last_scores.tolist()]

    def result(self) -> dict:
        if int(self.metric.count) == 0:
            return {"aesthetics": math.nan}
        return {"aesthetics": float(self.metric.compute())}

    def settings(self) -> dict:
        return {"aesthetics_model": self.model_name, "aesthetics_clip_weights": self.resolved_clip.label,
                "aesthetic_head": self.resolved_head.label, **_versions()}

    def close(self) -> None:
        self.metric = None
