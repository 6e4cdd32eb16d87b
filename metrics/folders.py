"""FID and KID between two folders of images, or a folder and saved statistics, in one call.

    aesthetic4k_metrics.compute_fid("generated/", "real/", size=2048)
    aesthetic4k_metrics.compute_fid("generated/", "real-2048.npz", size=2048)
    aesthetic4k_metrics.save_reference_stats("real/", "real-2048.npz", size=2048)

Every image file of a folder (sorted by name, hidden files skipped) is read with Pillow as the
network-based metrics read files (metrics/pixel_input.py), streamed in batches.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from aesthetic4k_metrics.defaults import EVAL_SIZE, FID_PROTOCOL
from aesthetic4k_metrics.errors import UserError

Source = Union[str, Path, list]


def image_files(folder) -> list[Path]:
    """The image files of ``folder``, sorted; a link leading out of the folder is refused (never read)."""
    from aesthetic4k_metrics.file_kinds import OUTSIDE_LINK, inside_folder
    from aesthetic4k_metrics.image_input import is_image_file

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    for path in files:
        if not inside_folder(path, folder):
            raise UserError(f"{path}: {OUTSIDE_LINK}")
    if not files:
        raise UserError(f"{folder}: no image files")
    return files


def _feed(metric, source: Source, real: bool, batch_size: int) -> int:
    """Stream a folder or a list of images into ``metric``; return how many images were added."""
    images = image_files(source) if isinstance(source, (str, Path)) else list(source)
    keys = [Path(image).stem for image in images] if isinstance(source, (str, Path)) else None
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        metric.update(chunk, real=real, keys=None if keys is None else keys[start:start + batch_size])
    return len(images)


def _metric(cls, size, protocol, batch_size, feature, device, **extra):
    metric = cls(feature, size=size, protocol=protocol, batch_size=batch_size, workers=extra.pop("workers", None),
                 **extra)
    return metric.to(device)


def _fill(metric, generated: Source, reference: Source, batch_size: int):
    if isinstance(reference, (str, Path)) and str(reference).endswith(".npz"):
        from aesthetic4k_metrics.reference_stats import ReferenceStats

        metric.add_reference(ReferenceStats.load(reference))
    else:
        _feed(metric, reference, True, batch_size)
    _feed(metric, generated, False, batch_size)
    return metric


def compute_fid(generated: Source, reference: Source, size: Optional[int] = EVAL_SIZE, protocol: str = FID_PROTOCOL,
                batch_size: int = 16, feature=2048, device="cpu", patch_count: int = 0, patch_seed: int = 0) -> float:
    """FID of a folder (or list) of generated images against real images or a ``.npz`` of reference statistics.

    ``patch_count`` > 0 gives patch-FID over that many seeded 299 x 299 crops per image.
    """
    from aesthetic4k_metrics.fid import FID, PatchFID

    cls = PatchFID if patch_count else FID
    extra = {"patch_count": patch_count, "patch_seed": patch_seed} if patch_count else {}
    metric = _fill(_metric(cls, size, protocol, batch_size, feature, device, **extra), generated, reference, batch_size)
    return float(metric.compute())


def compute_kid(generated: Source, reference: Source, size: Optional[int] = EVAL_SIZE, protocol: str = FID_PROTOCOL,
                batch_size: int = 16, feature=2048, device="cpu", subsets: int = 100, subset_size: int = 1000,
                seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets) of generated images against real images or reference statistics."""
    from aesthetic4k_metrics.kid import KID

    metric = _fill(_metric(KID, size, protocol, batch_size, feature, device, subsets=subsets,
                           subset_size=subset_size, seed=seed), generated, reference, batch_size)
    mean, std = metric.compute()
    return float(mean), float(std)


def save_reference_stats(reference: Source, path, size: Optional[int] = EVAL_SIZE, protocol: str = FID_PROTOCOL,
                         batch_size: int = 16, feature=2048, device="cpu", patch_count: int = 0,
                         patch_seed: int = 0):
    """Compute the Inception features of real images once and save them (metrics/reference_stats.py)."""
    from aesthetic4k_metrics.kid import KID, PatchKID
    from aesthetic4k_metrics.reference_stats import ReferenceStats, new_meta

    full = _metric(KID, size, protocol, batch_size, feature, device)
    count = _feed(full, reference, True, batch_size)
    features = {"full": full._gathered(full.real_features).numpy()}
    patches = None
    if patch_count:
        crops = _metric(PatchKID, size, protocol, batch_size, feature, device, patch_count=patch_count,
                        patch_seed=patch_seed)
        _feed(crops, reference, True, batch_size)
        features["patches"] = crops._gathered(crops.real_features).numpy()
        patches = crops.feature_recipe()
    recipe = full.feature_recipe()
    if recipe is None:
        raise UserError("reference statistics need the Inception weights from a file (not a custom network)")
    source = Path(reference).name if isinstance(reference, (str, Path)) else "images"
    stats = ReferenceStats(new_meta(recipe, count, source, patches), features)
    stats.save(path)
    return stats
