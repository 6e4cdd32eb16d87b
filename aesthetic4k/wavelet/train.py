"""The WLF fine-tuning loop: SD3 or Flux, F16 VAE, wavelet loss, on accelerate.

One optimizer step, per process:

1. take the next ``batch_size`` records of this process's share of a shuffled,
   endless record order (a bad image is skipped and logged, or stops the run); images are
   local files or streamed through a bounded cache (:mod:`aesthetic4k.training.sources`);
2. prompt embeddings and VAE latent distributions, from the cache when ``cache_dir`` is set;
   a latent sample ``mean + std * eps`` scaled as the family's upstream script does
   (``--latent-shift``);
3. timesteps drawn by ``--timestep-sampling``, ``noisy = sigma * noise + (1 - sigma) * x0``,
   a transformer forward, the x0 estimate and the WLF loss against ``x0``.

Every random draw (latent sampling, timesteps, noise) comes from one generator per
process whose state is checkpointed with the optimizer, the model and the data
position, so ``resume`` continues the very same loss curve. What differs between SD3
and Flux is asked of the family (:mod:`aesthetic4k.families`); the settings are
:mod:`aesthetic4k.wavelet.config`, the exported checkpoint :mod:`aesthetic4k.wavelet.checkpoint`.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from aesthetic4k import families
from aesthetic4k.errors import ImageError, UserError
from aesthetic4k.training import checkpoints, loop, run_log
from aesthetic4k.training.data import RecordStream, fitted_pixels, next_usable
from aesthetic4k.training.sources import open_images, stream_settings
from aesthetic4k.wavelet.config import (
    RESUME_ALIASES, RESUME_KEYS, TrainConfig, TrainResult, check_model_folder, check_resolution, memory_advice,
    validate,
)
from aesthetic4k.wavelet.latent_cache import ENTRY_KEYS, EncodingCache, encode_images, sample_latents

LOG_COLUMNS = ["step", "loss", "x0_mse", "lr", "images_per_s", "elapsed_s"]
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def load_base_pipeline(config: TrainConfig):
    """The base pipeline (float32) of ``config.family``, with ``config.vae`` applied."""
    from aesthetic4k.families.loading import check_vae_fits, load_pipeline, vae_folder
    from aesthetic4k.wavelet.pipeline import use_f16_vae

    family = families.get(config.family)
    check_model_folder(config.family, config.base)
    pipe = load_pipeline(config.base)
    found = families.of_pipeline(pipe)
    if found is not family:
        raise UserError(f"--base {config.base}: holds a {type(pipe).__name__}, not a {family.pipeline_class}"
                        + (f"; use --family {found.name}" if found else ""))
    mode = config.vae
    if config.vae not in ("f16", "f8"):
        folder = vae_folder(config.vae)
        vae = folder.load()
        check_vae_fits(pipe, vae, f"--vae {config.vae}")
        pipe.register_modules(vae=vae)
        mode = folder.mode
    if mode == "f16":
        use_f16_vae(pipe, config.partitions)
    return pipe


def scheduler_tables(pipe) -> tuple:
    """(sigmas, timesteps) of the scheduler's training tables, from a fresh copy (inference changes the pipeline's)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    fresh = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    count = min(len(fresh.sigmas), len(fresh.timesteps))
    return fresh.sigmas[:count].clone(), fresh.timesteps[:count].clone()


def validation_loss(pipe, family: str, images: list, prompts: list, sigmas=(0.25, 0.5, 0.75), seed: int = 0,
                    guidance: Optional[float] = None, max_sequence_length: Optional[int] = None,
                    latent_shift: Optional[str] = None, **loss_options) -> float:
    """The WLF loss of ``pipe`` on fixed images, prompts, noise and sigmas (no randomness left).

    ``images`` are 3 x H x W tensors in [-1, 1] (see :func:`aesthetic4k.training.data.load_pixels`);
    latents use the distribution means, scaled as the family trains (``latent_shift``). Comparing
    two pipelines (e.g. a base and its checkpoint) on the same inputs shows what training
    changed, free of the timestep noise of the training loss.
    """
    import torch

    from aesthetic4k.wavelet.loss import add_noise, wavelet_loss

    model_family = families.get(family)
    upstream = model_family.training
    vae = pipe.vae
    device = pipe.transformer.device
    embeds, pooled = model_family.encode_prompts(pipe, list(prompts), device,
                                                 max_sequence_length or upstream.max_sequence_length)
    mean, _ = encode_images(vae, torch.stack(list(images)))
    x0 = model_family.to_latents(mean.float(), vae.config, latent_shift or upstream.latent_shift).to(device)
    generator = torch.Generator().manual_seed(seed)
    guidance = model_family.guidance_value(pipe.transformer, guidance if guidance is not None else upstream.guidance)
    total = 0.0
    with torch.no_grad():
        for sigma in sigmas:
            noise = torch.randn(x0.shape, generator=generator).to(device)
            s = torch.full((x0.shape[0],), float(sigma), device=device)
            noisy = add_noise(x0, noise, s)
            dtype = pipe.transformer.dtype
            output = model_family.predict(pipe.transformer, noisy.to(dtype), (s * 1000).to(dtype),
                                          {"prompt_embeds": embeds.to(dtype), "pooled": pooled.to(dtype)}, guidance)
            total += float(wavelet_loss(model_family.x0_estimate(output.float(), noisy, s), x0, **loss_options))
    return total / len(sigmas)


def _bitsandbytes_adam():
    try:
        import bitsandbytes
    except Exception as exc:
        raise UserError(f"--optimizer adamw8bit needs bitsandbytes ({type(exc).__name__}: {exc}); "
                        "install it with `pip install 'aesthetic4k[train]'` or use --optimizer adamw") from None
    return bitsandbytes.optim.AdamW8bit


def _add_lora(transformer, rank: int, alpha: float) -> None:
    try:
        from peft import LoraConfig
    except ImportError:
        raise UserError("--lora-rank needs peft; install it with `pip install 'aesthetic4k[train]'` "
                        "or train all weights with --lora-rank 0") from None
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                       target_modules=LORA_TARGETS))


class Trainer:
    """One training run; :func:`train` is the entry point."""

    def __init__(self, config: TrainConfig):
        validate(config)
        self.config = config.with_family_defaults()
        self.family = families.get(config.family)
        self.out = Path(config.output_dir).expanduser()
        self.height, self.width = config.resolution
        self.skipped: list = []

    # -- setup

    def setup(self) -> None:
        import torch
        from accelerate import Accelerator

        from aesthetic4k.wavelet.vae_f16 import spatial_factor

        config = self.config
        self.resume_from = checkpoints.find_checkpoint(self.out, config.resume) if config.resume else None
        check_model_folder(config.family, config.base)
        self.images = open_images(config.data, stream_settings(config))
        self.records = self.images.records
        self.accelerator = Accelerator(mixed_precision=config.mixed_precision,
                                       gradient_accumulation_steps=config.gradient_accumulation,
                                       cpu=config.device == "cpu")
        accelerator = self.accelerator
        self.weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.mixed_precision, torch.float32)
        self.pipe = pipe = load_base_pipeline(config)
        check_resolution(config.resolution, spatial_factor(pipe.vae), self.family.patch_size(pipe.transformer))
        self.train_sigmas, self.train_timesteps = scheduler_tables(pipe)
        self.guidance = self.family.guidance_value(pipe.transformer, config.guidance)

        self.cache = None
        if config.cache_dir:
            vae_key = config.vae
            if config.vae not in ("f16", "f8"):
                from aesthetic4k.families.loading import vae_folder

                vae_key = f"folder {vae_folder(config.vae).fingerprint()}"
            self.cache = EncodingCache(config.cache_dir, {
                "family": config.family, "base": str(config.base), "resolution": list(config.resolution),
                "vae": vae_key, "max_sequence_length": config.max_sequence_length})
        # frozen parts: inference dtype; they leave the accelerator when the cache already holds everything
        encoders_needed = self.cache is None or not all(self.cache.has(r.stem) for r in self.records)
        self.encoder_device = accelerator.device if encoders_needed else torch.device("cpu")
        for name in ("vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
            module = getattr(pipe, name, None)
            if module is not None:
                module.requires_grad_(False)
                module.eval()
                module.to(self.encoder_device, dtype=self.weight_dtype if encoders_needed else module.dtype)

        transformer = pipe.transformer
        transformer.to(accelerator.device, dtype=torch.float32)  # master weights; autocast computes in bf16
        if config.lora_rank:
            transformer.requires_grad_(False)
            _add_lora(transformer, config.lora_rank, config.lora_alpha or config.lora_rank)
        else:
            transformer.requires_grad_(True)
        if config.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        transformer.train()
        params = [p for p in transformer.parameters() if p.requires_grad]
        adam = _bitsandbytes_adam() if config.optimizer == "adamw8bit" else torch.optim.AdamW
        optimizer = adam(params, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                         eps=config.adam_epsilon, weight_decay=config.weight_decay)
        self.model, self.optimizer = accelerator.prepare(transformer, optimizer)
        self.params = params

        self.step = 0
        self.generator = torch.Generator().manual_seed(config.seed * 7919 + accelerator.process_index)
        self.stream = RecordStream(self.records, config.seed, accelerator.process_index, accelerator.num_processes)
        if self.resume_from is not None:
            self._load_state(self.resume_from)

    def _settings(self) -> dict:
        settings = asdict(self.config)
        settings["resolution"] = list(self.config.resolution)
        return settings

    def _load_state(self, folder: Path) -> None:
        checkpoints.check_resume_settings(folder, self._settings(), RESUME_KEYS, self.accelerator.num_processes,
                                          RESUME_ALIASES)
        self.accelerator.load_state(str(folder / checkpoints.STATE_DIR))
        progress = checkpoints.load_progress(folder, self.accelerator.process_index)
        self.step = int(progress["step"])
        self.stream.position = int(progress["position"])
        self.generator.set_state(progress["generator"])

    # -- one batch

    def _prepare(self, record):
        """The job that brings one record's cache entry, or else its pixels (an ImageError when unusable)."""
        def job():
            entry = self.cache.load(record.stem) if self.cache else None
            if entry is not None:
                return {"cache": entry, "pixels": None}
            try:
                image = self.images.open(record, max(self.height, self.width))
                return {"cache": None, "pixels": fitted_pixels(image, self.height, self.width)}
            except ImageError as exc:
                return exc

        return job

    def _skip(self, record, error: ImageError) -> None:
        where = self.images.describe(record)
        self.skipped.append((where, error.reason))
        run_log.say(self.accelerator, self.config.progress, f"skipped {where}: {error.reason}")

    def next_examples(self, pool) -> list:
        """``batch_size`` usable records of this process's stream, with pixels or cache entries."""
        config = self.config
        coming = self.stream.peek(self.images.ahead)  # streamed images are fetched ahead, unless cached encoded
        self.images.prefetch([r for r in coming if self.cache is None or not self.cache.has(r.stem)])
        found = next_usable(self.stream, config.batch_size, self._prepare, pool, config.on_bad_image, self._skip,
                            config.data)
        return [{"record": record, **value} for record, value in found]

    def encode(self, examples: list) -> dict:
        """Stack prompt embeddings and latent distributions for a batch, filling the cache."""
        import torch

        device = self.accelerator.device
        missing = [e for e in examples if e["cache"] is None]
        if missing:
            embeds, pooled = self.family.encode_prompts(self.pipe, [e["record"].prompt for e in missing],
                                                        self.encoder_device, self.config.max_sequence_length)
            mean, logvar = encode_images(self.pipe.vae, torch.stack([e["pixels"] for e in missing]))
            for i, e in enumerate(missing):
                e["cache"] = {"prompt_embeds": embeds[i], "pooled": pooled[i],
                              "latent_mean": mean[i], "latent_logvar": logvar[i]}
                if self.cache is not None:
                    self.cache.store(e["record"].stem, e["cache"])
        return {key: torch.stack([e["cache"][key].to(device) for e in examples]) for key in ENTRY_KEYS}

    def draw(self, batch: dict) -> dict:
        """The random part of a step, in this order from this process's generator: the latent sample
        (``x0``), the timesteps (``sigmas``, ``timesteps``) and the ``noise``."""
        import torch

        from aesthetic4k.wavelet.loss import sample_timesteps

        config, device = self.config, self.accelerator.device
        sample = sample_latents(batch["latent_mean"], batch["latent_logvar"], self.generator)
        x0 = self.family.to_latents(sample, self.pipe.vae.config, config.latent_shift)
        sigmas, timesteps = sample_timesteps(x0.shape[0], self.train_sigmas, self.train_timesteps,
                                             config.logit_mean, config.logit_std, generator=self.generator,
                                             scheme=config.timestep_sampling, mode_scale=config.mode_scale)
        noise = torch.randn(x0.shape, generator=self.generator).to(device)
        return {"x0": x0, "sigmas": sigmas.to(device), "timesteps": timesteps.to(device), "noise": noise}

    def loss(self, batch: dict):
        """(training loss, plain x0 MSE) for one encoded batch; draws from this process's generator."""
        from aesthetic4k.wavelet.loss import add_noise, wavelet_loss, x0_mse

        config = self.config
        drawn = self.draw(batch)
        x0, sigmas = drawn["x0"], drawn["sigmas"]
        noisy = add_noise(x0, drawn["noise"], sigmas)
        cond = {"prompt_embeds": batch["prompt_embeds"], "pooled": batch["pooled"]}
        with self.accelerator.autocast():
            output = self.family.predict(self.model, noisy, drawn["timesteps"], cond, self.guidance)
        x0_hat = self.family.x0_estimate(output.float(), noisy, sigmas)
        if config.loss == "wlf":
            loss = wavelet_loss(x0_hat, x0, sigmas, config.weighting, config.wavelet_levels,
                                config.band_weights, config.level_weights)
        else:
            loss = x0_mse(x0_hat, x0, sigmas, config.weighting)
        return loss, x0_mse(x0_hat.detach(), x0, sigmas, config.weighting)

    # -- checkpoints

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint-<step>``: training state, the merged pipeline and its marker."""
        from aesthetic4k.wavelet.checkpoint import merged_state_dict, write_marker

        accelerator, config = self.accelerator, self.config

        def fill(folder: Path) -> None:
            accelerator.save_state(str(folder / checkpoints.STATE_DIR))
            checkpoints.save_progress(folder, accelerator.process_index, {
                "step": self.step, "position": self.stream.position, "generator": self.generator.get_state()})
            state = accelerator.get_state_dict(self.model)  # gathers under ZeRO-3 / FSDP: every process calls it
            if accelerator.is_main_process:
                checkpoints.save_settings(folder, {**self._settings(), "num_processes": accelerator.num_processes})
                scale = (config.lora_alpha or config.lora_rank) / config.lora_rank if config.lora_rank else 1.0
                self._save_pipeline(folder, merged_state_dict(state, scale, self.weight_dtype))
                write_marker(folder, {"family": config.family, "vae": self._vae_mode(), "partitions": config.partitions,
                                      "base": str(config.base), "step": self.step, "loss": config.loss,
                                      "resolution": list(config.resolution)})
            del state

        return checkpoints.write_checkpoint(accelerator, self.out, self.step, fill, config.keep_checkpoints)

    def _vae_mode(self) -> str:
        from aesthetic4k.wavelet.vae_f16 import is_f16

        return "f16" if is_f16(self.pipe.vae) else "f8"

    def _save_pipeline(self, folder: Path, transformer_state: dict) -> None:
        from aesthetic4k.wavelet.checkpoint import save_pipeline

        save_pipeline(self.pipe, self.accelerator.unwrap_model(self.model), folder, transformer_state)

    # -- the loop

    def run(self) -> TrainResult:
        import torch

        config = self.config
        # checks the options, data and model before anything is written
        loop.set_up(self.setup, f"out of memory while loading the model: {memory_advice(config)}")
        self.out.mkdir(parents=True, exist_ok=True)
        accelerator = self.accelerator
        result = TrainResult(step=self.step, checkpoint=self.resume_from, skipped=self.skipped)
        log = run_log.StepLog(accelerator, self.out, LOG_COLUMNS, self.step, config.max_steps, config.tensorboard,
                              config.progress)
        images_per_step = config.batch_size * config.gradient_accumulation * accelerator.num_processes

        def step(pool) -> None:
            tick = time.perf_counter()
            losses, mses = [], []
            for _ in range(config.gradient_accumulation):
                batch = self.encode(self.next_examples(pool))
                with accelerator.accumulate(self.model):
                    loss, mse = self.loss(batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(self.params, config.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                losses.append(loss.detach())
                mses.append(mse)
            self.step += 1
            step_loss = accelerator.reduce(torch.stack(losses).mean(), reduction="mean").item()
            step_mse = accelerator.reduce(torch.stack(mses).mean(), reduction="mean").item()
            if not math.isfinite(step_loss):
                raise UserError(f"the loss became {step_loss} at step {self.step}; lower --learning-rate "
                                "or use --mixed-precision bf16 instead of fp16")
            rate = images_per_step / max(time.perf_counter() - tick, 1e-9)
            result.losses.append((self.step, step_loss))
            log.record(self.step, {"loss": step_loss, "x0_mse": step_mse, "lr": self.optimizer.param_groups[0]["lr"]},
                       {"loss": step_loss, "x0_mse": step_mse, "images_per_s": rate}, rate,
                       {"loss": f"{step_loss:.4g}", "img_s": f"{rate:.3g}"})

        def out_of_memory(at: int) -> str:
            return (f"out of memory at step {at + 1} (resolution {self.height}x{self.width}, "
                    f"batch {config.batch_size}): {memory_advice(config)}")

        return loop.run_steps(self, result, log, config.max_steps, config.checkpoint_every, config.num_workers,
                              step, out_of_memory)


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) a WLF fine-tuning and return where it ended."""
    run_log.quiet_libraries(config.progress)
    return Trainer(config).run()
