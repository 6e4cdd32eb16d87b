"""Fixtures shared by the test modules: the shared weights folder and tiny stand-ins for real models."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"
AESTHETIC_HEAD = SHARED_WEIGHTS / "sac+logos+ava1-l14-linearMSE.pth"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run on one torch thread: a second one per test worker only adds contention on 2 cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def aesthetic_head() -> Path:
    """The real LAION aesthetic head from ../shared/weights (CI has it); skipped where it is absent."""
    if not AESTHETIC_HEAD.is_file():
        pytest.skip(f"real aesthetic head not found at {AESTHETIC_HEAD}")
    return AESTHETIC_HEAD


@pytest.fixture(scope="session")
def tiny_inception(tmp_path_factory) -> Path:
    """A 2048-d stand-in for the FID Inception, saved as TorchScript: loaded like the real file, fast."""
    from tests.tiny_inception import save_tiny_inception

    return save_tiny_inception(tmp_path_factory.mktemp("tiny_inception") / "tiny_inception.pt")


@pytest.fixture(scope="session")
def tiny_clips(tmp_path_factory) -> dict:
    """Random tiny open_clip models (registered configs) for CLIPScore (64-d) and Aesthetics (768-d)."""
    from tests.tiny_clip import TINY_CLIP, TINY_CLIP_768, register_tiny_models, save_random_checkpoint

    folder = tmp_path_factory.mktemp("tiny_clip")
    register_tiny_models(folder)
    return {"clip_score": (TINY_CLIP, save_random_checkpoint(TINY_CLIP, folder / "clip.pt", seed=1)),
            "aesthetics": (TINY_CLIP_768, save_random_checkpoint(TINY_CLIP_768, folder / "clip768.pt", seed=2))}
