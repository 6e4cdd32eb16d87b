"""Diffusers generators on tiny random SD3 and Flux pipelines, on the CPU at 64-128 px."""
from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from aesthetic4k.errors import UserError
from aesthetic4k.generators import GeneratorOptions, create
from aesthetic4k.generators.diffusion import (
    WLF_MARKER, DiffusersGenerator, any_pipeline, flux_4k, flux_base, sd3_4k, sd3_base,
    wlf_checkpoint,
)
from tests.tiny_pipelines import save_tiny_flux, save_tiny_sd3

torch = pytest.importorskip("torch")

PROMPTS = ["a photo of a cat on a red field", "city street at night"]
# A short T5 context keeps the tests fast; the paper defaults are checked on their own.
FAST = {"max_sequence_length": 32}


def fast_options(**kwargs) -> GeneratorOptions:
    kwargs.setdefault("steps", 2)
    kwargs.setdefault("extra", dict(FAST))
    return GeneratorOptions(**kwargs)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)




@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {"sd3": save_tiny_sd3(root / "sd3"), "flux": save_tiny_flux(root / "flux")}


@pytest.fixture(scope="module")
def flux_f8(tiny):
    generator = any_pipeline(str(tiny["flux"]), fast_options())
    generator.load()
    return generator


@pytest.fixture(scope="module")
def sd3_f8(tiny):
    generator = any_pipeline(str(tiny["sd3"]), fast_options())
    generator.load()
    return generator


# -- the tiny pipelines themselves --------------------------------------------------------------

def test_tiny_pipelines_load_with_diffusers_and_tokenize_known_words(tiny):
    from diffusers import DiffusionPipeline, FluxPipeline, StableDiffusion3Pipeline

    sd3 = DiffusionPipeline.from_pretrained(tiny["sd3"])
    flux = DiffusionPipeline.from_pretrained(tiny["flux"])
    assert isinstance(sd3, StableDiffusion3Pipeline) and isinstance(flux, FluxPipeline)
    assert sd3.vae_scale_factor == flux.vae_scale_factor == 8
    clip_ids = flux.tokenizer("a cat").input_ids
    assert clip_ids[0] == flux.tokenizer.bos_token_id and clip_ids[-1] == flux.tokenizer.eos_token_id
    assert flux.tokenizer.decode(clip_ids, skip_special_tokens=True).strip() == "a cat"
    assert flux.tokenizer.convert_ids_to_tokens(flux.tokenizer("the sky").input_ids[1:-1]) == ["the</w>", "sky</w>"]
    t5_ids = flux.tokenizer_2("a photo of a cat").input_ids
    assert flux.tokenizer_2.unk_token_id not in t5_ids and t5_ids[-1] == flux.tokenizer_2.eos_token_id
    assert flux.tokenizer_2.convert_ids_to_tokens(t5_ids[:2]) == ["▁a", "▁photo"]
    assert sd3.tokenizer_3.convert_ids_to_tokens(sd3.tokenizer_3("red sky").input_ids) == ["▁red", "▁sky", "</s>"]


# -- generation -----------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["sd3", "flux"])
def test_any_pipeline_returns_one_rgb_image_of_the_size_per_prompt(model, request):
    generator = request.getfixturevalue(f"{model}_f8")
    images = generator.generate(PROMPTS, 64, seed=0)
    assert len(images) == len(PROMPTS)
    assert all(image.size == (64, 64) and image.mode == "RGB" for image in images)
    assert generator.name == f"diffusers:{generator.source}"
    assert generator.defaults["steps"] == 2 and generator.defaults["vae"] == "f8"
    assert generator.defaults["dtype"] == "float32"
    # Any pipeline runs with its own guidance default, recorded once loaded.
    call = inspect.signature(type(generator.pipe).__call__).parameters
    assert generator.defaults["guidance"] == call["guidance_scale"].default


def test_images_follow_the_seed_protocol_of_a_direct_pipeline_call(flux_f8):
    # Reference: the pipeline called by hand the way the paper's script does, one prompt at a time.
    pipe = flux_f8.pipe
    reference = pipe(prompt=PROMPTS[1], height=64, width=64, num_inference_steps=2, max_sequence_length=32,
                     generator=torch.Generator("cpu").manual_seed(0)).images[0]
    batch = flux_f8.generate(PROMPTS, 64, seed=0)
    # Same image whatever the batch: only float rounding of batched matmuls may differ.
    assert np.abs(pixels(batch[1]) - pixels(reference)).max() <= 2
    again = flux_f8.generate(PROMPTS[1:], 64, seed=0)
    assert np.array_equal(pixels(again[0]), pixels(reference))
    other_seed = flux_f8.generate(PROMPTS[1:], 64, seed=1)
    assert np.abs(pixels(other_seed[0]) - pixels(reference)).mean() > 1


def test_sd3_batch_independence(sd3_f8):
    alone = sd3_f8.generate([PROMPTS[0]], 64, seed=0)[0]
    batch = sd3_f8.generate([PROMPTS[1], PROMPTS[0]], 64, seed=0)
    assert np.abs(pixels(batch[1]) - pixels(alone)).max() <= 2
    assert np.abs(pixels(batch[0]) - pixels(alone)).mean() > 1  # the prompt matters


def test_paper_defaults_per_family(tiny):
    flux = flux_4k(str(tiny["flux"]), GeneratorOptions())
    sd3 = sd3_4k(str(tiny["sd3"]), GeneratorOptions())
    assert (flux.defaults["steps"], flux.defaults["max_sequence_length"], flux.defaults["guidance"]) == (50, 512, 5.0)
    assert (sd3.defaults["steps"], sd3.defaults["max_sequence_length"], sd3.defaults["guidance"]) == (28, 77, 7.0)
    assert flux.defaults["vae"] == sd3.defaults["vae"] == "f16"
    assert (flux.defaults["pipeline"], sd3.defaults["pipeline"]) == ("FluxPipeline", "StableDiffusion3Pipeline")
    # Memory settings do not change images, so they do not change the defaults (a4k-eval's cache key).
    assert flux_4k(str(tiny["flux"]), GeneratorOptions(offload=True, partitions=4)).defaults == flux.defaults
    # Nor does loading the model.
    assert any_pipeline(str(tiny["sd3"]), GeneratorOptions()).defaults == any_pipeline(
        str(tiny["sd3"]), GeneratorOptions()).defaults
    base = flux_base(str(tiny["flux"]), GeneratorOptions(vae="f8", guidance=7.0, steps=3))
    assert (base.defaults["vae"], base.defaults["guidance"], base.defaults["steps"]) == ("f8", 7.0, 3)
    assert base.name == f"flux:{tiny['flux']}"
    assert flux_base(None, GeneratorOptions()).name == "flux"  # no download at construction


def test_paper_defaults_reach_the_pipeline(tiny, monkeypatch):
    generator = flux_4k(str(tiny["flux"]), GeneratorOptions(vae="f8"))
    pipe = generator.load()
    seen = {}

    def record(self, **kwargs):
        seen.update(kwargs)
        from PIL import Image
        return type("Output", (), {"images": [Image.new("RGB", (64, 64)) for _ in kwargs["prompt"]]})()

    monkeypatch.setattr(type(pipe), "__call__", record)
    generator.generate(PROMPTS, 64, seed=0)
    assert (seen["num_inference_steps"], seen["guidance_scale"], seen["max_sequence_length"]) == (50, 5.0, 512)
    assert [g.device.type for g in seen["generator"]] == ["cpu", "cpu"]
    assert [g.initial_seed() for g in seen["generator"]] == [0, 0]


@pytest.mark.parametrize("model", ["flux", "sd3"])
def test_4k_loading_with_the_f16_vae(model, tiny):
    factory = flux_4k if model == "flux" else sd3_4k
    generator = factory(str(tiny[model]), fast_options())
    images = generator.generate(PROMPTS, 64, seed=0)
    assert generator.pipe.vae_scale_factor == 16  # latents at 1/16 of the image
    assert generator.size_multiple() == 32
    assert [image.size for image in images] == [(64, 64)] * 2 and all(im.mode == "RGB" for im in images)
    assert generator.defaults["vae"] == "f16"
    # Same seed, same image, whatever the batch.
    alone = generator.generate(PROMPTS[1:], 64, seed=0)[0]
    assert np.abs(pixels(alone) - pixels(images[1])).max() <= 2


def test_flux_4k_style_loading_at_f8(tiny):
    generator = create(f"flux-4k:{tiny['flux']}", fast_options(vae="f8"))
    images = generator.generate(PROMPTS[:1], 128, seed=0)
    assert images[0].size == (128, 128) and generator.pipe.vae_scale_factor == 8
    assert generator.name == f"flux-4k:{tiny['flux']}"


# -- wlf checkpoints ------------------------------------------------------------------------

def make_checkpoint(tiny, tmp_path, model="sd3", marker=None):
    folder = tmp_path / "checkpoint"
    shutil.copytree(tiny[model], folder)
    if marker is not None:
        (folder / WLF_MARKER).write_text(marker if isinstance(marker, str) else json.dumps(marker))
    return folder


def test_wlf_checkpoint_uses_its_marker(tiny, tmp_path):
    # "model" is the key of checkpoints written before the family rename: still read
    folder = make_checkpoint(tiny, tmp_path, "sd3", {"model": "sd3", "vae": "f8", "partitions": 2, "step": 7})
    generator = create(f"wlf:{folder}", fast_options())
    assert generator.family == "sd3" and generator.defaults["vae"] == "f8"
    assert generator.defaults["train_step"] == 7 and generator.defaults["steps"] == 2
    images = generator.generate(PROMPTS[:1], 64, seed=0)
    assert images[0].size == (64, 64)


def test_wlf_checkpoint_marked_f16_generates_with_the_f16_vae(tiny, tmp_path):
    folder = make_checkpoint(tiny, tmp_path, "flux", {"family": "flux", "vae": "f16", "partitions": 2})
    generator = wlf_checkpoint(str(folder), fast_options())
    assert generator.generate(PROMPTS[:1], 64, seed=0)[0].size == (64, 64)
    assert generator.pipe.vae_scale_factor == 16


@pytest.mark.parametrize("marker, message", [
    (None, "no a4k_wlf.json"),
    ("{not json", "unreadable checkpoint marker"),
    ({"model": "unet", "vae": "f16"}, "expected 'sd3' or 'flux'"),
    ({"model": "sd3", "vae": "f4"}, "expected 'f16' or 'f8'"),
    ({"model": "sd3", "vae": "f16", "partitions": 0}, "positive integer"),
])
def test_wlf_marker_errors(tiny, tmp_path, marker, message):
    folder = make_checkpoint(tiny, tmp_path, "sd3", marker)
    with pytest.raises(UserError, match=message):
        wlf_checkpoint(str(folder), GeneratorOptions())


def test_wlf_marker_on_a_folder_that_is_not_a_pipeline(tmp_path):
    (tmp_path / WLF_MARKER).write_text(json.dumps({"model": "flux", "vae": "f16"}))
    with pytest.raises(UserError, match="not a diffusers pipeline folder"):
        wlf_checkpoint(str(tmp_path), GeneratorOptions())
    with pytest.raises(UserError, match="no such checkpoint folder"):
        wlf_checkpoint(str(tmp_path / "missing"), GeneratorOptions())


def test_wlf_marker_model_must_match_the_pipeline(tiny, tmp_path):
    folder = make_checkpoint(tiny, tmp_path, "sd3", {"family": "flux", "vae": "f8"})
    with pytest.raises(UserError, match="expected a FluxPipeline"):
        wlf_checkpoint(str(folder), GeneratorOptions())


# -- bad input ------------------------------------------------------------------------------

def test_folder_that_is_not_a_pipeline(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(UserError, match="no model_index.json"):
        create(f"diffusers:{tmp_path}", GeneratorOptions())
    with pytest.raises(UserError, match="no such folder"):
        create(f"flux-4k:{tmp_path / 'missing'}", GeneratorOptions())
    with pytest.raises(UserError, match="is a file"):
        any_pipeline(str(tmp_path / "weights.bin"), GeneratorOptions())


def test_broken_pipeline_folder_is_a_one_line_error(tiny, tmp_path):
    folder = make_checkpoint(tiny, tmp_path, "flux")
    shutil.rmtree(folder / "transformer")
    generator = any_pipeline(str(folder), GeneratorOptions())
    with pytest.raises(UserError, match="cannot load the diffusers pipeline") as caught:
        generator.load()
    assert "\n" not in str(caught.value)


def test_wrong_family_is_refused(tiny):
    with pytest.raises(UserError, match="expected a StableDiffusion3Pipeline"):
        sd3_base(str(tiny["flux"]), GeneratorOptions())
    with pytest.raises(UserError, match="expected a FluxPipeline"):
        flux_4k(str(tiny["sd3"]), GeneratorOptions())


def test_missing_arguments(tiny):
    with pytest.raises(UserError, match="sd3-4k needs a checkpoint"):
        create("sd3-4k", GeneratorOptions())
    with pytest.raises(UserError, match="diffusers:<hub-id-or-folder>"):
        create("diffusers", GeneratorOptions())
    with pytest.raises(UserError, match="wlf:<checkpoint-dir>"):
        create("wlf", GeneratorOptions())


def test_uncached_hub_id_offline_says_how_to_download(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    generator = flux_4k("a4k-tests/not-a-cached-model", GeneratorOptions())
    with pytest.raises(UserError, match="hf download a4k-tests/not-a-cached-model") as caught:
        generator.load()
    assert "not in the Hugging Face cache" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(UserError, match="not a hub id"):
        any_pipeline("no/such/path", GeneratorOptions())


def test_failed_download_is_a_one_line_error(monkeypatch):
    from aesthetic4k.families import loading

    calls = []

    def unreachable(source, torch_dtype, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        raise OSError("Couldn't connect to the Hub\n" + "details " * 100)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "hub_offline", lambda: False)
    monkeypatch.setattr(loading, "_from_pretrained", unreachable)
    # the hub answers the first look-up (aesthetic4k_metrics.network), then the download itself fails
    monkeypatch.setattr("aesthetic4k_metrics.network.check_hub_file", lambda *args, **kwargs: None)
    with pytest.raises(UserError, match="could not be downloaded.*accept the licence") as caught:
        flux_base(None, GeneratorOptions()).load()
    assert calls == [True, False]  # the cache first, then the hub
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 600


@pytest.mark.parametrize("options, message", [
    (GeneratorOptions(dtype="int8"), "--dtype int8"),
    (GeneratorOptions(vae="f32"), "--vae f32"),
    (GeneratorOptions(offload="sometimes", device="cuda"), "--offload sometimes"),
    (GeneratorOptions(partitions=0), "--partitions 0"),
])
def test_bad_options(tiny, options, message):
    with pytest.raises(UserError, match=message):
        any_pipeline(str(tiny["sd3"]), options)


def test_cuda_device_without_cuda(tiny):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="CUDA is not available"):
        any_pipeline(str(tiny["sd3"]), GeneratorOptions(device="cuda")).load()


def test_size_must_fit_the_pipeline(sd3_f8, flux_f8):
    with pytest.raises(UserError, match="needs a multiple of 16"):
        sd3_f8.generate(PROMPTS, 72, seed=0)
    with pytest.raises(UserError, match="needs a multiple of 16.*try 64"):
        flux_f8.generate(PROMPTS, 60, seed=0)
    # The tiny SD3 transformer has a 32-patch position table: 512 px at F8.
    with pytest.raises(UserError, match="position table.*use --vae f16"):
        sd3_f8.generate(PROMPTS, 640, seed=0)


def test_out_of_memory_gives_advice(sd3_f8, monkeypatch):
    def out_of_memory(self, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")

    monkeypatch.setattr(type(sd3_f8.pipe), "__call__", out_of_memory)
    with pytest.raises(UserError, match="out of memory.*--batch-size.*--offload.*--vae f16"):
        sd3_f8.generate(PROMPTS, 64, seed=0)


@pytest.mark.parametrize("returned, message", [
    (lambda n: [np.zeros((64, 64, 3))] * n, "expected PIL images"),
    (lambda n: ["image"] * (n - 1), r"returned 1 image\(s\) for 2 prompt"),
    (lambda n: [__import__("PIL.Image").Image.new("RGB", (32, 32))] * n, "32x32 image, expected 64x64"),
])
def test_wrong_pipeline_output_is_reported(flux_f8, monkeypatch, returned, message):
    monkeypatch.setattr(type(flux_f8.pipe), "__call__",
                        lambda self, **kwargs: type("Output", (), {"images": returned(len(kwargs["prompt"]))})())
    with pytest.raises(UserError, match=message):
        flux_f8.generate(PROMPTS, 64, seed=0)


def test_grey_images_are_converted_to_rgb(flux_f8, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(type(flux_f8.pipe), "__call__", lambda self, **kwargs: type(
        "Output", (), {"images": [Image.new("L", (64, 64), 7) for _ in kwargs["prompt"]]})())
    images = flux_f8.generate(PROMPTS, 64, seed=0)
    assert [image.mode for image in images] == ["RGB", "RGB"] and images[0].getpixel((0, 0)) == (7, 7, 7)


def test_empty_prompt_list_loads_nothing(tiny):
    generator = any_pipeline(str(tiny["flux"]), GeneratorOptions())
    assert generator.generate([], 64, seed=0) == [] and generator.pipe is None


def test_release_frees_the_pipeline(tiny):
    generator = any_pipeline(str(tiny["sd3"]), fast_options())
    generator.load()
    generator.release()
    assert generator.pipe is None


def test_import_does_not_load_heavy_libraries():
    code = ("import sys, aesthetic4k.generators.diffusion, aesthetic4k.families.loading;"
            "print([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_generator_is_usable_through_the_protocol(tiny):
    from aesthetic4k.generators import Generator

    assert isinstance(any_pipeline(str(tiny["flux"]), GeneratorOptions()), Generator)
    assert isinstance(any_pipeline(str(tiny["flux"]), GeneratorOptions()), DiffusersGenerator)
