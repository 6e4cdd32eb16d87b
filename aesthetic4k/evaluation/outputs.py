"""The outputs of one run: checked before any work, committed together at the end.

``--out`` (results.csv), ``--per-image``, ``--report``, ``--images-out`` and
``--save-reference-stats`` are checked when the run starts (folders exist, nothing read-only or
of the wrong kind), so a typo does not cost a whole run. At the end every output is first
written beside its destination under a temporary name; only when all of them were written are
they renamed into place (the results file under its lock), so a failure in one leaves all of
them as they were.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from aesthetic4k import results
from aesthetic4k.errors import UserError
from aesthetic4k.evaluation.config import EvalConfig, RunResult
from aesthetic4k_metrics.files import display_path
from aesthetic4k_metrics.file_kinds import named_output
from aesthetic4k_metrics.registry import METRICS

PER_IMAGE_FIRST = ["stem", "file", "status", "width", "height"]
PER_IMAGE_LAST = ["prompt", "reference"]


def per_image_columns() -> list[str]:
    """The per-image CSV layout: identity and status, each metric's per-image columns, then the inputs."""
    metric_columns = [c for info in METRICS.values() for c in info.per_image]
    return PER_IMAGE_FIRST + list(dict.fromkeys(metric_columns)) + PER_IMAGE_LAST


def per_image_rows(result: RunResult) -> list[dict]:
    """Scored images (status "ok"), then every file that was not scored, with its reason."""
    rows = [{**row, "status": "ok"} for row in result.per_image]
    for skipped in result.skipped:
        rows.append({"stem": Path(skipped.name).stem, "file": skipped.name,
                     "status": f"{'skipped' if skipped.kind == 'bad' else skipped.kind}: {skipped.reason}"})
    return rows


def check_images_out(folder: Path, dataset, config: EvalConfig) -> None:
    """Refuse a generated-images folder inside a folder the run reads (the dataset, ``--images``,
    ``--reference DIR``): its files would be taken for generated images, and JPEGs written into it."""
    from aesthetic4k.data.datasets import dataset_folder
    from aesthetic4k_metrics.file_kinds import inside_folder

    read = []
    if dataset is not None:             # a data.datasets.MetadataDataset
        read += [("the dataset", folder_of) for folder_of in (dataset_folder(dataset.root), *dataset.storage)]
    if config.generator_options.images:
        read.append(("--images", Path(config.generator_options.images)))
    if config.reference and Path(config.reference).is_dir():
        read.append(("--reference", Path(config.reference)))
    for what, other in read:
        if inside_folder(folder, other):
            raise UserError(f"--images-out {display_path(folder)}: inside {what} folder {display_path(other)}; generated "
                            "images are written there and existing ones reused, so choose a folder outside it")


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


class Outputs:
    def __init__(self, config: EvalConfig):
        # a link named as an output is followed: its target is locked and replaced, the link stays
        config = self.config = replace(config, **{name: named_output(getattr(config, name), name == "report")
                                                  for name in ("out", "per_image", "report", "save_reference_stats")
                                                  if getattr(config, name) is not None})
        named = [(config.out, "--out"), (config.per_image, "--per-image"), (config.report, "--report"),
                 (config.save_reference_stats, "--save-reference-stats")]
        if config.per_image:
            from aesthetic4k.evaluation.intervals import features_path

            named.append((features_path(config.per_image), "--per-image's data file"))
        seen = {}
        for path, flag in named:
            if path is None:
                continue
            key = os.path.abspath(path)
            if key in seen:
                raise UserError(f"{flag} and {seen[key]} name the same path {display_path(path)}")
            seen[key] = flag
        if config.out:
            results.check_writable(Path(config.out), "results")
            results.read_rows(config.out)          # an existing file must be a results file
        if config.per_image:
            results.check_writable(Path(config.per_image), "per-image CSV")
            results.check_writable(features_path(config.per_image), "per-image data")
        if config.save_reference_stats:
            results.check_writable(Path(config.save_reference_stats), "statistics")
        if config.report:
            report = Path(config.report)
            if report.exists() and not report.is_dir():
                raise UserError(f"--report {display_path(report)}: is a file, expected a folder")
            if not report.parent.is_dir():
                raise UserError(f"--report {display_path(report)}: folder {display_path(report.parent)} does not exist")
            if not os.access(report.parent, os.W_OK):
                raise UserError(f"--report {display_path(report)}: cannot write in {display_path(report.parent)}")
        if config.images_out:        # created by the run, once it is known to lie outside what the run reads
            images = Path(config.images_out)
            if images.exists() and not images.is_dir():
                raise UserError(f"--images-out {display_path(images)}: is a file, expected a folder")
            existing = next(p for p in (images, *images.absolute().parents) if p.exists())
            if not existing.is_dir() or not os.access(existing, os.W_OK):
                raise UserError(f"--images-out {display_path(images)}: cannot create or write in {display_path(existing)}")

    def commit(self, result: RunResult) -> None:
        """Write every output beside its destination, then rename them all into place."""
        config = self.config
        staged: list[tuple[Path, Path]] = []     # (temporary, final)
        try:
            if config.per_image:
                final = Path(config.per_image)
                staged.append((_temporary(final), final))
                results.write_csv(staged[-1][0], per_image_columns(), per_image_rows(result), format_cells=True)
                if result.per_image_data is not None:       # what a4k-check resamples, beside the CSV
                    from aesthetic4k.evaluation.intervals import features_path

                    data = features_path(final)
                    staged.append((_temporary(data), data))
                    result.per_image_data.save(staged[-1][0])
            if config.save_reference_stats:
                final = Path(config.save_reference_stats)
                staged.append((_temporary(final), final))
                result.reference_stats.save(staged[-1][0])
            if config.report:
                from aesthetic4k.report import write_report

                final = Path(config.report)
                staged.append((_temporary(final), final))
                write_report(result, staged[-1][0], progress=config.progress)
            if config.out:
                with results.locked(config.out):
                    final = Path(config.out)
                    columns, rows = results.merge_row(final, result.row)
                    staged.append((_temporary(final), final))
                    results.write_csv(staged[-1][0], columns, rows)
                    self._rename_all(staged)
            else:
                self._rename_all(staged)
        except OSError as exc:
            raise UserError(f"cannot write the outputs ({exc.strerror or exc}); nothing was changed") from None
        finally:
            for tmp, _ in staged:
                if tmp.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)
                elif tmp.exists():
                    tmp.unlink()

    @staticmethod
    def _rename_all(staged: list[tuple[Path, Path]]) -> None:
        for tmp, final in staged:
            mask = os.umask(0)
            os.umask(mask)
            if tmp.is_dir():
                if final.exists():                   # swap the old report out, the new one in
                    old = final.with_name(f".{final.name}.{os.getpid()}.old")
                    os.replace(final, old)
                    os.replace(tmp, final)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(tmp, final)
            else:
                os.chmod(tmp, 0o666 & ~mask)
                os.replace(tmp, final)
