"""The model-family registry: lookups, the paper's generation settings, no heavy imports."""
import subprocess
import sys

import pytest

from aesthetic4k import families
from aesthetic4k.errors import UserError


def test_lookup_by_name_and_pipeline_class():
    assert families.names() == ["sd3", "flux"]
    assert families.get("flux").pipeline_class == "FluxPipeline"
    assert families.of_class_name("FluxImg2ImgPipeline") is families.get("flux")
    assert families.of_class_name("StableDiffusion3Pipeline") is families.get("sd3")
    assert families.of_class_name("StableDiffusionXLPipeline") is None and families.of_class_name(None) is None
    with pytest.raises(UserError, match="unknown model family 'unet'; known: sd3, flux"):
        families.get("unet")


def test_paper_generation_protocol():
    flux, sd3 = families.get("flux").generation, families.get("sd3").generation
    assert (flux.steps, flux.guidance, flux.max_sequence_length) == (50, 5.0, 512)
    assert (sd3.steps, sd3.guidance, sd3.max_sequence_length) == (28, 7.0, 77)


def test_latent_scaling_conventions():
    torch = pytest.importorskip("torch")
    config = type("Config", (), {"scaling_factor": 1.5, "shift_factor": 0.1})()
    sample = torch.tensor([1.0, -2.0])
    family = families.get("sd3")
    assert torch.equal(family.to_latents(sample, config, "none"), sample * 1.5)
    assert torch.equal(family.to_latents(sample, config, "subtract"), (sample - 0.1) * 1.5)
    with pytest.raises(ValueError, match="latent_shift"):
        family.to_latents(sample, config, "add")


def test_model_is_the_old_name_of_family_in_a4k_train():
    from aesthetic4k.cli.train import build_parser

    args = build_parser().parse_args(["--model", "flux", "--base", "b", "--data", "d", "--output-dir", "o"])
    assert args.family == "flux" and args.timestep_sampling is None and args.latent_shift is None


def test_import_does_not_load_torch():
    code = ("import sys, aesthetic4k.families, aesthetic4k.families.loading, aesthetic4k.training.data, "
            "aesthetic4k.training.checkpoints; print([m for m in ('torch', 'diffusers') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
