"""a4k-train-vae on a tiny random VAE on the CPU: it learns, resumes exactly, and its checkpoints load
in the diffusion generators and in a4k-train."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from aesthetic4k.errors import UserError
from aesthetic4k.scvae.config import VaeTrainConfig
from aesthetic4k.scvae.train import CURVE_COLUMNS, reconstruction_losses, train_vae
from tests.tiny_pipelines import build_tiny_flux, build_tiny_vae, save_tiny_lpips


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _photos(folder, count=2, size=(96, 80)):
    folder.mkdir(parents=True)
    for i in range(count):
        y, x = np.mgrid[0:size[1], 0:size[0]]
        pixels = np.stack([np.sin(x / (3 + i)) * 120 + 128, np.cos(y / (5 + i)) * 120 + 128, (x + 3 * y) % 256], -1)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"photo{i}.png")
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("scvae")
    vae = build_tiny_vae()
    vae.save_pretrained(root / "vae")
    flux = build_tiny_flux()
    flux.vae = None
    flux.register_modules(vae=build_tiny_vae())  # the same tiny VAE as the Flux pipeline's own
    flux.save_pretrained(root / "flux")
    backbone, heads = save_tiny_lpips(root / "lpips")
    return {"root": root, "vae": root / "vae", "flux": root / "flux", "data": _photos(root / "photos"),
            "weights": {"vgg16": str(backbone), "lpips-vgg": str(heads)}}


def _config(setup, out, **overrides):
    options = dict(base=str(setup["vae"]), data=str(setup["data"]), output_dir=str(out), resolution=64,
                   batch_size=2, gradient_accumulation=1, max_steps=4, checkpoint_every=2, learning_rate=1e-3,
                   disc_learning_rate=1e-3, disc_channels=16, disc_depth=3, device="cpu", tensorboard=False,
                   progress=False, num_workers=1, gradient_checkpointing=False, weights=setup["weights"],
                   ema_decay=0.9)
    options.update(overrides)
    return VaeTrainConfig(**options)


def _pixels(setup):
    from aesthetic4k.training.data import load_pixels

    return torch.stack([load_pixels(p, 64, 64) for p in sorted(setup["data"].glob("*.png"))])


def _exported_losses(setup, folder):
    from aesthetic4k.families.loading import vae_folder
    from aesthetic4k.wavelet.vae_f16 import make_f16

    found = vae_folder(folder)
    assert found.mode == "f16"
    return reconstruction_losses(make_f16(found.load()), build_tiny_vae(), _pixels(setup))


@pytest.fixture(scope="module")
def long_run(setup):
    out = setup["root"] / "long"
    config = _config(setup, out, max_steps=12, checkpoint_every=6, gradient_accumulation=2,
                     gradient_checkpointing=True, learning_rate=2e-3, disc_learning_rate=2e-3)
    return out, train_vae(config)


def test_tiny_run_lowers_sc_and_reconstruction_losses(setup, long_run):
    out, result = long_run
    from aesthetic4k.wavelet.vae_f16 import make_f16

    before = reconstruction_losses(make_f16(build_tiny_vae()), build_tiny_vae(), _pixels(setup))
    after = _exported_losses(setup, result.checkpoint)
    assert after["sc"] < 0.8 * before["sc"], (before, after)
    assert after["mse"] < 0.8 * before["mse"], (before, after)
    with open(out / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert all(float(r["adaptive_weight"]) > 0 and float(r["gp"]) >= 0 for r in rows)


def test_checkpoint_layout(long_run):
    out, result = long_run
    assert result.checkpoint == out / "checkpoint-000012"
    assert (out / "latest").read_text().strip() == "checkpoint-000012"
    marker = json.loads((result.checkpoint / "a4k_vae.json").read_text())
    assert {k: marker[k] for k in ("vae", "partitions", "step", "weights")} == \
        {"vae": "f16", "partitions": 2, "step": 12, "weights": "ema"}
    config = json.loads((result.checkpoint / "vae" / "config.json").read_text())
    assert config["_class_name"] == "AutoencoderKL" and config["block_out_channels"] == [8, 8, 16, 16]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-000006", "checkpoint-000012"]
    assert not list(out.glob(".*tmp"))


def test_exported_weights_are_the_ema_of_the_decoder(setup, long_run):
    from diffusers import AutoencoderKL

    _, result = long_run
    base = build_tiny_vae().state_dict()
    exported = AutoencoderKL.from_pretrained(result.checkpoint / "vae").state_dict()
    changed = [k for k in base if not torch.equal(base[k], exported[k])]
    assert changed and all(k.startswith("decoder.") for k in changed)  # the encoder is frozen


def test_resume_reproduces_the_loss_curve_exactly(setup, tmp_path):
    whole = train_vae(_config(setup, tmp_path / "whole", max_steps=4, checkpoint_every=2))
    resumed = train_vae(_config(setup, tmp_path / "resumed", max_steps=4, checkpoint_every=2,
                                resume=str(tmp_path / "whole" / "checkpoint-000002")))
    assert [row["step"] for row in resumed.losses] == [3, 4]
    for mine, theirs in zip(resumed.losses, whole.losses[2:]):
        assert {k: mine[k] for k in CURVE_COLUMNS} == {k: theirs[k] for k in CURVE_COLUMNS}
    from diffusers import AutoencoderKL

    a = AutoencoderKL.from_pretrained(whole.checkpoint / "vae").state_dict()
    b = AutoencoderKL.from_pretrained(resumed.checkpoint / "vae").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_loads_in_the_generators_and_in_a4k_train(setup, tmp_path):
    from aesthetic4k.generators import GeneratorOptions, create

    result = train_vae(_config(setup, tmp_path / "run", base=str(setup["flux"]), max_steps=2))
    options = dict(steps=1, extra={"max_sequence_length": 16})
    plain = create(f"flux-4k:{setup['flux']}", GeneratorOptions(**options))
    swapped = create(f"flux-4k:{setup['flux']}", GeneratorOptions(vae=str(result.checkpoint), **options))
    assert swapped.defaults["vae"] == "f16" and swapped.defaults["vae_train_step"] == 2
    assert swapped.defaults["vae_folder"] == str((result.checkpoint / "vae").resolve())
    assert len(swapped.defaults["vae_sha256"]) == 16
    first, second = plain.generate(["a red cat"], 64, 0)[0], swapped.generate(["a red cat"], 64, 0)[0]
    assert swapped.pipe.vae_scale_factor == 16
    from diffusers import AutoencoderKL

    exported = AutoencoderKL.from_pretrained(result.checkpoint / "vae").state_dict()
    assert all(torch.equal(v, exported[k]) for k, v in swapped.pipe.vae.state_dict().items())
    assert np.abs(np.asarray(first, dtype=int) - np.asarray(second, dtype=int)).max() > 0
    # a4k-train with the SC-VAE: its checkpoints carry the SC-VAE
    from aesthetic4k.wavelet.config import TrainConfig
    from aesthetic4k.wavelet.train import train
    from tests.test_train import _write_dataset

    data = _write_dataset(tmp_path / "wlf-data", good=1)
    wlf = train(TrainConfig(family="flux", base=str(setup["flux"]), data=str(data), output_dir=str(tmp_path / "wlf"),
                            resolution=64, max_steps=1, mixed_precision="no", device="cpu", batch_size=1,
                            max_sequence_length=16, tensorboard=False, progress=False, num_workers=1,
                            vae=str(result.checkpoint)))
    assert json.loads((wlf.checkpoint / "a4k_wlf.json").read_text())["vae"] == "f16"
    saved = AutoencoderKL.from_pretrained(wlf.checkpoint / "vae").state_dict()
    assert all(torch.equal(v, exported[k]) for k, v in saved.items())
    generator = create(f"wlf:{wlf.checkpoint}", GeneratorOptions(vae=str(result.checkpoint), **options))
    assert generator.generate(["a red cat"], 64, 0)[0].size == (64, 64)


def test_a_vae_of_another_family_is_refused(setup, tmp_path):
    from aesthetic4k.generators import GeneratorOptions, create

    other = build_tiny_vae(scaling=1.5, shift=0.06)  # the tiny SD3's latent scaling
    other.save_pretrained(tmp_path / "sd3-vae")
    generator = create(f"flux-4k:{setup['flux']}", GeneratorOptions(vae=str(tmp_path / "sd3-vae"), steps=1))
    with pytest.raises(UserError, match="scaling_factor 1.5.*another model family"):
        generator.load()
    with pytest.raises(UserError, match="--vae .*no diffusers AutoencoderKL"):
        create(f"flux-4k:{setup['flux']}", GeneratorOptions(vae=str(setup["data"])))


def test_base_must_be_the_original_vae(setup, long_run, tmp_path):
    _, result = long_run
    with pytest.raises(UserError, match="a4k-train-vae checkpoint; the teacher must be the original"):
        train_vae(_config(setup, tmp_path / "x", base=str(result.checkpoint)))


def test_cli_runs_and_reports_bad_options(setup, tmp_path, capsys):
    from aesthetic4k.cli.train_vae import main

    common = ["--base", str(setup["vae"]), "--data", str(setup["data"]), "--output-dir", str(tmp_path / "run"),
              "--resolution", "64", "--batch-size", "1", "--gradient-accumulation", "1", "--device", "cpu",
              "--disc-channels", "16", "--disc-depth", "3", "--no-tensorboard", "--quiet", "--num-workers", "1",
              "--weights", f"vgg16={setup['weights']['vgg16']}", "--weights",
              f"lpips-vgg={setup['weights']['lpips-vgg']}"]
    assert main(common + ["--max-steps", "1"]) == 0
    assert main(common + ["--max-steps", "2", "--resume"]) == 0
    assert "step 2" in capsys.readouterr().out
    with open(tmp_path / "run" / "train_log.csv", newline="") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2]
    assert main(common + ["--resolution", "40"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("a4k-train-vae: error: --resolution 40") and "\n" not in err
