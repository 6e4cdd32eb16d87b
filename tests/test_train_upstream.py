"""a4k-train follows the authors' training scripts per model family (issue 13, items 4-6).

Each reference below is the upstream formula re-implemented here, or a direct computation with
the model's own VAE and scheduler; none is a number the trainer produced.
"""
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from aesthetic4k import families
from aesthetic4k.wavelet.config import TrainConfig
from aesthetic4k.wavelet.loss import sample_timesteps, timestep_density
from aesthetic4k.wavelet.train import Trainer
from tests.test_train import _config, _save_pipeline, _write_dataset

ROOT = Path(__file__).resolve().parents[1]


def upstream_density(scheme, n, generator, mean=0.0, std=1.0, mode_scale=1.29):
    """diffusers' compute_density_for_timestep_sampling, as the upstream scripts call it."""
    if scheme == "logit_normal":
        return torch.sigmoid(torch.normal(mean=mean, std=std, size=(n,), generator=generator))
    u = torch.rand(size=(n,), generator=generator)
    if scheme == "mode":
        return 1 - u - mode_scale * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
    return u


@pytest.mark.parametrize("scheme", ["uniform", "mode", "logit_normal"])
def test_timestep_density_is_the_upstream_formula(scheme):
    ours = timestep_density(scheme, 4096, 0.3, 1.2, 1.29, generator=torch.Generator().manual_seed(5))
    reference = upstream_density(scheme, 4096, torch.Generator().manual_seed(5), 0.3, 1.2, 1.29)
    # torch.normal and randn * std + mean round differently in the last bit
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6 if scheme == "logit_normal" else 0)
    assert 0 <= float(ours.min()) and float(ours.max()) <= 1


def test_sample_timesteps_indexes_the_scheduler_table_like_upstream():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sigmas, timesteps = sample_timesteps(64, scheduler.sigmas, scheduler.timesteps, generator=torch.Generator()
                                         .manual_seed(1), scheme="mode", mode_scale=1.29)
    u = upstream_density("mode", 64, torch.Generator().manual_seed(1))
    indices = (u * scheduler.config.num_train_timesteps).long()
    assert torch.equal(timesteps, scheduler.timesteps[indices])
    assert torch.equal(sigmas, scheduler.sigmas[indices])


def test_family_defaults_are_the_upstream_scripts():
    # train_sd3_4k_wavelet.py: --weighting_scheme logit_normal, latents sample() * scaling_factor;
    # train_flux_4k_wavelet.py: --weighting_scheme none (uniform), (sample() - shift) * scale, guidance 3.5
    sd3 = TrainConfig(family="sd3", base="b", data="d", output_dir="o").with_family_defaults()
    flux = TrainConfig(family="flux", base="b", data="d", output_dir="o").with_family_defaults()
    assert (sd3.timestep_sampling, sd3.latent_shift, sd3.max_sequence_length) == ("logit_normal", "none", 77)
    assert (flux.timestep_sampling, flux.latent_shift, flux.guidance, flux.max_sequence_length) == \
        ("uniform", "subtract", 3.5, 512)
    # an explicit option wins over the family
    assert TrainConfig(family="flux", base="b", data="d", output_dir="o", timestep_sampling="mode",
                       latent_shift="none").with_family_defaults().timestep_sampling == "mode"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from tests.tiny_pipelines import build_tiny_flux, build_tiny_sd3

    root = tmp_path_factory.mktemp("upstream")
    return {"sd3": _save_pipeline(build_tiny_sd3, root / "sd3"), "flux": _save_pipeline(build_tiny_flux, root / "flux"),
            "data": _write_dataset(root / "data", good=1)}


def _first_draw(folders, family, **options):
    """The trainer's first latent sample, timesteps and noise, with the pixels they came from."""
    trainer = Trainer(_config(folders[family], folders["data"], folders["data"] / "unused", family=family,
                              batch_size=2, **options))
    trainer.setup()
    with ThreadPoolExecutor(1) as pool:
        examples = trainer.next_examples(pool)
    drawn = trainer.draw(trainer.encode(examples))
    return trainer, torch.stack([e["pixels"] for e in examples]), drawn


def _reference_posterior(folder, pixels, seed):
    """The F16 VAE's posterior sample of ``pixels`` with the trainer's first noise draw, computed directly."""
    from diffusers import DiffusionPipeline

    from aesthetic4k.wavelet.pipeline import use_f16_vae

    pipe = use_f16_vae(DiffusionPipeline.from_pretrained(str(folder)))
    generator = torch.Generator().manual_seed(seed * 7919)  # process 0's generator
    with torch.no_grad():
        dist = pipe.vae.encode(pixels).latent_dist
    sample = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator)
    return pipe, sample, generator


def test_sd3_latents_are_sample_times_scale_without_shift(folders):
    _, pixels, drawn = _first_draw(folders, "sd3")
    pipe, sample, _ = _reference_posterior(folders["sd3"], pixels, seed=0)
    assert pipe.vae.config.shift_factor != 0  # the tiny VAE has a shift: the test can tell the two apart
    torch.testing.assert_close(drawn["x0"], sample * pipe.vae.config.scaling_factor, rtol=1e-6, atol=1e-6)


def test_sd3_shifted_latents_on_request(folders):
    _, pixels, drawn = _first_draw(folders, "sd3", latent_shift="subtract")
    pipe, sample, _ = _reference_posterior(folders["sd3"], pixels, seed=0)
    expected = (sample - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
    torch.testing.assert_close(drawn["x0"], expected, rtol=1e-6, atol=1e-6)


def test_flux_timesteps_are_uniform_by_default(folders):
    from diffusers import FlowMatchEulerDiscreteScheduler

    trainer, pixels, drawn = _first_draw(folders, "flux")
    pipe, sample, generator = _reference_posterior(folders["flux"], pixels, seed=0)
    expected_x0 = (sample - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
    torch.testing.assert_close(drawn["x0"], expected_x0, rtol=1e-6, atol=1e-6)
    # upstream: u = torch.rand(bsz); indices = (u * num_train_timesteps).long(); timesteps[indices]
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    u = upstream_density("uniform", 2, generator)
    indices = (u * scheduler.config.num_train_timesteps).long()
    assert torch.equal(drawn["timesteps"], scheduler.timesteps[indices])
    assert torch.equal(drawn["sigmas"], scheduler.sigmas[indices])
    assert torch.equal(drawn["noise"], torch.randn(expected_x0.shape, generator=generator))
    assert trainer.guidance == 3.5


def test_sd3_timesteps_are_logit_normal_by_default(folders):
    from diffusers import FlowMatchEulerDiscreteScheduler

    _, pixels, drawn = _first_draw(folders, "sd3")
    pipe, _, generator = _reference_posterior(folders["sd3"], pixels, seed=0)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    u = upstream_density("logit_normal", 2, generator)
    indices = (u * scheduler.config.num_train_timesteps).long()
    assert torch.equal(drawn["timesteps"], scheduler.timesteps[indices])


def test_docs_state_the_paper_batch_per_device():
    # upstream train_sd3.sh --train_batch_size=8, train_flux.sh --train_batch_size=4; ds_config.yaml num_processes: 8
    assert (families.get("sd3").training.batch_per_device, families.get("sd3").training.processes) == (8, 8)
    assert (families.get("flux").training.batch_per_device, families.get("flux").training.processes) == (4, 8)
    wavelet = (ROOT / "docs" / "wavelet.md").read_text(encoding="utf-8")
    protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for text in (wavelet, protocol):
        assert "8 per device x 8 processes" in text and "4 per device x 8 processes" in text
        assert "global batch of 8" not in text and "batch 8," not in text
    from aesthetic4k.cli.train import build_parser

    epilog = build_parser().epilog
    assert "sd3:" in epilog and "--batch-size 8 on 8 processes" in epilog and "--batch-size 4 on 8 processes" in epilog
