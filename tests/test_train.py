"""a4k-train on tiny random SD3 / Flux pipelines on the CPU: overfit, resume, checkpoints, bad input."""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aesthetic4k.errors import UserError
from aesthetic4k.training import data as training_data
from aesthetic4k.training.checkpoints import TrainingInterrupted
from aesthetic4k.wavelet import train as wlf_train
from aesthetic4k.wavelet.config import TrainConfig
from aesthetic4k.wavelet.train import train



def _save_pipeline(builder, folder):
    pipe = builder()
    with torch.no_grad():
        # a trained VAE's posterior is nearly deterministic; a random one has std ~ 1, which would
        # make every sampled latent (the training target) mostly noise
        bias = pipe.vae.encoder.conv_out.bias
        bias[bias.shape[0] // 2:] = -20.0
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sd3_folder(tmp_path_factory):
    from tests.tiny_pipelines import build_tiny_sd3

    return _save_pipeline(build_tiny_sd3, tmp_path_factory.mktemp("sd3") / "pipe")


@pytest.fixture(scope="module")
def flux_folder(tmp_path_factory):
    from tests.tiny_pipelines import build_tiny_flux

    return _save_pipeline(build_tiny_flux, tmp_path_factory.mktemp("flux") / "pipe")


def _write_dataset(folder, good=1, corrupt=False, missing=False):
    images = folder / "train" / "images"
    images.mkdir(parents=True)
    lines = []
    for i in range(good):
        y, x = np.mgrid[0:80, 0:112]  # landscape: the crop to 64 x 64 keeps the middle
        pixels = np.stack([np.sin(x / (4 + i)) * 120 + 128, np.cos(y / (6 + i)) * 120 + 128, (x * 2 + y) % 256], -1)
        Image.fromarray(pixels.astype(np.uint8)).save(images / f"good{i}.jpg", quality=95)
        lines.append({"file_name": f"images/good{i}.jpg", "text": f"a photo of a red cat {i}"})
    if corrupt:
        (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        lines.append({"file_name": "images/broken.jpg", "text": "a broken picture"})
    if missing:
        lines.append({"file_name": "images/gone.png", "text": "a missing picture"})
    (folder / "train" / "metadata.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    return folder


def _config(base, data, out, **overrides):
    options = dict(family="sd3", base=str(base), data=str(data), output_dir=str(out), resolution=64,
                   max_steps=4, checkpoint_every=2, mixed_precision="no", device="cpu", learning_rate=1e-2,
                   batch_size=2, max_sequence_length=16, tensorboard=False, progress=False, num_workers=1,
                   gradient_checkpointing=False)
    options.update(overrides)
    return TrainConfig(**options)


def _validation(folder, family, data):
    from diffusers import DiffusionPipeline

    from aesthetic4k.wavelet.pipeline import use_f16_vae

    pipe = use_f16_vae(DiffusionPipeline.from_pretrained(str(folder)))
    record = next(r for r in training_data.read_records(str(data)) if r.stem.startswith("good"))
    pixels = training_data.load_pixels(record.image_path, 64, 64)
    return wlf_train.validation_loss(pipe, family, [pixels], [record.prompt], max_sequence_length=16)


@pytest.fixture(scope="module")
def overfit_run(sd3_folder, tmp_path_factory):
    """40 steps on one image (plus a corrupt and a missing one that are skipped)."""
    data = _write_dataset(tmp_path_factory.mktemp("data"), good=1, corrupt=True, missing=True)
    out = tmp_path_factory.mktemp("run")
    config = _config(sd3_folder, data, out, max_steps=40, checkpoint_every=20,
                     cache_dir=str(out.parent / "cache"), gradient_checkpointing=True)
    return data, out, config, train(config)


def test_overfit_halves_the_wavelet_loss(overfit_run, sd3_folder):
    data, out, _, result = overfit_run
    assert result.step == 40 and result.checkpoint == out / "checkpoint-000040"
    before = _validation(sd3_folder, "sd3", data)
    after = _validation(result.checkpoint, "sd3", data)
    assert after < 0.5 * before, (before, after)


def test_bad_images_are_skipped_with_reasons(overfit_run):
    _, _, _, result = overfit_run
    reasons = {Path(path).name: reason for path, reason in result.skipped}
    assert reasons["gone.png"] == "missing file"
    assert "cannot" in reasons["broken.jpg"] or "decode" in reasons["broken.jpg"]


def test_checkpoint_is_a_pipeline_folder_that_generates(overfit_run):
    from diffusers import DiffusionPipeline, StableDiffusion3Pipeline

    from aesthetic4k.wavelet.pipeline import use_f16_vae

    _, out, _, result = overfit_run
    marker = json.loads((result.checkpoint / "a4k_wlf.json").read_text())
    assert {k: marker[k] for k in ("family", "vae", "partitions", "step")} == \
        {"family": "sd3", "vae": "f16", "partitions": 2, "step": 40}
    assert (out / "latest").read_text().strip() == "checkpoint-000040"
    assert not list(out.glob(".*tmp"))
    pipe = DiffusionPipeline.from_pretrained(str(result.checkpoint))
    assert isinstance(pipe, StableDiffusion3Pipeline)
    use_f16_vae(pipe, partitions=2)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red cat", height=64, width=64, num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    with open(out / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 41))
    # equal sub-band weights: the logged WLF loss is the plain x0 MSE (Parseval)
    assert all(float(r["loss"]) == pytest.approx(float(r["x0_mse"]), rel=1e-4) for r in rows)


def test_resume_continues_the_same_loss_curve(overfit_run, tmp_path):
    data, out, config, result = overfit_run
    config.max_steps, config.output_dir = 25, str(tmp_path)
    config.resume = str(out / "checkpoint-000020")
    resumed = train(config)
    original = dict(result.losses)
    assert [s for s, _ in resumed.losses] == list(range(21, 26))
    for step, loss in resumed.losses:
        assert loss == pytest.approx(original[step], rel=1e-4, abs=1e-6)


def test_cli_runs_resumes_latest_and_keeps_one_log(sd3_folder, tmp_path, capsys):
    from aesthetic4k.cli.train import main

    data = _write_dataset(tmp_path / "data", good=2)
    out = tmp_path / "run"
    common = ["--family", "sd3", "--base", str(sd3_folder), "--data", str(data), "--output-dir", str(out),
              "--resolution", "64", "--checkpoint-every", "2", "--mixed-precision", "no", "--device", "cpu",
              "--max-sequence-length", "16", "--no-tensorboard", "--quiet", "--num-workers", "1"]
    assert main(common + ["--max-steps", "2"]) == 0
    assert main(common + ["--max-steps", "3", "--resume"]) == 0
    assert "step 3" in capsys.readouterr().out
    with open(out / "train_log.csv", newline="") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [1, 2, 3]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-000002", "checkpoint-000003"]


def test_flux_lora_checkpoint_holds_merged_weights(flux_folder, tmp_path):
    from diffusers import DiffusionPipeline, FluxTransformer2DModel

    from aesthetic4k.wavelet.pipeline import use_f16_vae

    data = _write_dataset(tmp_path / "data", good=1)
    config = _config(flux_folder, data, tmp_path / "run", family="flux", max_steps=2, lora_rank=4,
                     batch_size=1)
    result = train(config)
    base = FluxTransformer2DModel.from_pretrained(str(flux_folder), subfolder="transformer").state_dict()
    pipe = DiffusionPipeline.from_pretrained(str(result.checkpoint))
    tuned = pipe.transformer.state_dict()
    assert set(tuned) == set(base)  # no LoRA keys left
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all(any(t in k for t in ("to_q", "to_k", "to_v", "to_out")) for k in changed)
    use_f16_vae(pipe).set_progress_bar_config(disable=True)
    image = pipe("a cat", height=64, width=64, num_inference_steps=1, max_sequence_length=16,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)


def test_wrong_model_family(sd3_folder, tmp_path):
    data = _write_dataset(tmp_path / "data")
    with pytest.raises(UserError, match="holds a StableDiffusion3Pipeline.*--family sd3"):
        train(_config(sd3_folder, data, tmp_path / "run", family="flux"))
    with pytest.raises(UserError, match="model_index.json"):
        train(_config(data, data, tmp_path / "run"))


def test_resolution_must_be_divisible_by_16_times_patch(sd3_folder, tmp_path):
    data = _write_dataset(tmp_path / "data")
    with pytest.raises(UserError, match="not divisible by 32.*use 32 or 64"):
        train(_config(sd3_folder, data, tmp_path / "run", resolution=48))


def test_bad_image_stops_when_asked(sd3_folder, tmp_path):
    data = _write_dataset(tmp_path / "data", good=0, corrupt=True)
    with pytest.raises(UserError, match="broken.jpg.*--on-bad-image skip"):
        train(_config(sd3_folder, data, tmp_path / "run", on_bad_image="stop"))


def test_interrupted_save_leaves_no_partial_checkpoint(sd3_folder, tmp_path, monkeypatch):
    data = _write_dataset(tmp_path / "data")
    out = tmp_path / "run"

    def interrupted(self, folder, state):
        raise KeyboardInterrupt

    monkeypatch.setattr(wlf_train.Trainer, "_save_pipeline", interrupted)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 2"):
        train(_config(sd3_folder, data, out))
    assert [p.name for p in out.iterdir()] == ["train_log.csv"]


def test_optional_extras_have_clear_messages(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(UserError, match="bitsandbytes.*aesthetic4k\\[train\\]"):
        wlf_train._bitsandbytes_adam()
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(UserError, match="peft"):
        wlf_train._add_lora(torch.nn.Linear(2, 2), 4, 4)


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    from aesthetic4k.cli.train import main

    code = main(["--family", "sd3", "--base", str(tmp_path), "--data", str(tmp_path), "--output-dir",
                 str(tmp_path / "o"), "--batch-size", "0"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("a4k-train: error: --batch-size") and "\n" not in err


def test_pack_unpack_matches_diffusers_flux_layout():
    from diffusers import FluxPipeline

    from aesthetic4k.families import flux

    latents = torch.randn(2, 4, 6, 8)
    packed = flux.pack_latents(latents)
    torch.testing.assert_close(packed, FluxPipeline._pack_latents(latents, 2, 4, 6, 8))
    torch.testing.assert_close(flux.unpack_latents(packed, 6, 8), latents)
    ids = FluxPipeline._prepare_latent_image_ids(2, 3, 4, "cpu", torch.float32)
    torch.testing.assert_close(flux.latent_image_ids(6, 8, "cpu", torch.float32), ids)


def test_fit_crop_keeps_aspect_and_centre():
    image = Image.new("RGB", (300, 100), (0, 0, 0))
    image.paste((255, 255, 255), (100, 0, 200, 100))  # white middle third
    out = training_data.fit_crop(image, 64, 64)
    assert out.size == (64, 64)
    assert np.asarray(out).min() > 200  # only the middle survives the centre crop
    assert training_data.fit_crop(image, 32, 96).size == (96, 32)
