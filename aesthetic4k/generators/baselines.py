"""Baselines that need no model: the reference images themselves, and upscaled references."""
from __future__ import annotations

from aesthetic4k.errors import UserError
from aesthetic4k.generators.base import BASE_SIZE, RESAMPLERS, GeneratorOptions

LIBRARIES = ("opencv-python", "pillow", "numpy")   # references decoded by OpenCV, resized by Pillow


def _reference_square(record, size):
    """The reference image as the FID protocol sees it: shorter side to ``size``, centre crop."""
    from PIL import Image

    from aesthetic4k_metrics.image_input import read_rgb

    if record.image_path is None:
        raise UserError(f"{record.stem}: the dataset has no reference image for this entry")
    image = Image.fromarray(read_rgb(record.image_path))
    width, height = image.size
    scale = size / min(width, height)
    if scale != 1:
        image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))),
                             Image.Resampling.LANCZOS)
    left = (image.width - size) // 2
    top = (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


class ReferenceGenerator:
    """Returns each prompt's own reference image: the upper bound of every metric."""

    libraries = LIBRARIES

    def __init__(self, argument=None, options: GeneratorOptions | None = None):
        self.name = "reference"
        self.defaults = {"resize": "shorter side to size (lanczos), centre crop"}

    def generate_records(self, records, size, seed):
        return [_reference_square(record, size) for record in records]

    def generate(self, prompts, size, seed):
        raise UserError("the reference generator needs a dataset (--dataset)")


class UpscaleGenerator:
    """The classic baseline: the reference at ``base_size`` upscaled to the target size."""

    libraries = LIBRARIES

    def __init__(self, argument=None, options: GeneratorOptions | None = None):
        options = options or GeneratorOptions()
        if options.resample not in RESAMPLERS:
            raise UserError(f"--resample must be one of {', '.join(RESAMPLERS)}")
        if options.base_size < 16:
            raise UserError("--base-size must be at least 16")
        self.base_size = options.base_size
        self.resample = options.resample
        self.name = "upscale" if (self.base_size, self.resample) == (BASE_SIZE, RESAMPLERS[0]) else \
            f"upscale-{self.base_size}-{self.resample}"
        self.defaults = {"base_size": self.base_size, "resample": self.resample}

    def generate_records(self, records, size, seed):
        from PIL import Image

        filter_ = Image.Resampling.BICUBIC if self.resample == "bicubic" else Image.Resampling.LANCZOS
        images = []
        for record in records:
            small = _reference_square(record, size).resize((self.base_size, self.base_size), Image.Resampling.LANCZOS)
            images.append(small.resize((size, size), filter_))
        return images

    def generate(self, prompts, size, seed):
        raise UserError("the upscale generator needs a dataset (--dataset)")
