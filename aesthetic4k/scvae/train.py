"""The SC-VAE trainer (``a4k-train-vae``): fine-tune the F16 VAE's decoder for scale consistency.

Student: the F16-converted VAE (partitioned decode), only its decoder trained. Teacher: the
frozen original F8 VAE. Each step, per process (``gradient_accumulation`` micro-batches each):

1. student update: random crops, posterior samples of both encoders, the student's
   reconstruction and last decoder activation, the teacher's activation, and the loss of
   :mod:`aesthetic4k.scvae.losses`; AdamW on the decoder, then the EMA;
2. discriminator update: new real crops against the student's reconstructions of step 1,
   hinge loss + gradient penalty; AdamW on the discriminator, then the EMA again (upstream
   updates the average after every optimizer step of either network).

Every random draw (crop offsets, flips, posterior noise) comes from one generator per process,
checkpointed with the models, optimizers, EMA and data position, so a resumed run continues the
same loss curve. A checkpoint exports ``vae/`` (the EMA weights, F8 parameter layout) and
``a4k_vae.json``: ``a4k-eval --vae <checkpoint>`` and the diffusion generators load it.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path

from aesthetic4k.errors import ImageError, UserError
from aesthetic4k.families.loading import VAE_MARKER
from aesthetic4k.scvae import losses
from aesthetic4k.scvae.config import RESUME_KEYS, VaeTrainConfig, VaeTrainResult, validate
from aesthetic4k.training import checkpoints, loop, run_log
from aesthetic4k.training.data import RecordStream, next_usable, random_crop, random_crop_draws
from aesthetic4k.training.sources import open_images, stream_settings

LOG_COLUMNS = ["step", "loss", "pixel", "lpips", "gan", "adaptive_weight", "sc", "disc_loss", "gp", "lr",
               "images_per_s", "elapsed_s"]
CURVE_COLUMNS = LOG_COLUMNS[1:-2]  # what a resumed run must reproduce


def load_teacher_and_student(config: VaeTrainConfig):
    """(teacher F8, student F16) VAEs, float32, both from ``config.base``."""
    from aesthetic4k.families.loading import load_base_vae
    from aesthetic4k.wavelet.vae_f16 import make_f16

    base = Path(config.base).expanduser()
    markers = [base / VAE_MARKER] + ([base.parent / VAE_MARKER] if base.name == "vae" else [])
    if any(marker.is_file() for marker in markers):
        raise UserError(f"--base {config.base}: an a4k-train-vae checkpoint; the teacher must be the original "
                        "F8 VAE: pass the base model (or its VAE), and --resume to continue a run")
    teacher = load_base_vae(config.base)
    student = load_base_vae(config.base)
    make_f16(student, config.partitions)
    return teacher, student


@contextmanager
def frozen(module):
    """``module``'s parameters need no gradient inside (the discriminator while the student learns)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


def reconstruction_losses(student_vae, teacher_vae, pixels) -> dict:
    """Pixel MSE of the student's reconstruction and the SC loss, from the posterior means (no noise):
    a deterministic measure of what training changed."""
    import torch
    import torch.nn.functional as F

    from aesthetic4k.scvae.model import DecodeWithActivation

    student, teacher = DecodeWithActivation(student_vae), DecodeWithActivation(teacher_vae)
    try:
        with torch.no_grad():
            image, student_act = student(student_vae.encode(pixels).latent_dist.mean)
            _, teacher_act = teacher(teacher_vae.encode(pixels).latent_dist.mean)
    finally:
        student.remove_hook()
        teacher.remove_hook()
    return {"mse": float(F.mse_loss(image.clamp(-1, 1), pixels)),
            "sc": float(losses.scale_consistency(teacher_act, student_act))}


class VaeTrainer:
    """One SC-VAE run; :func:`train_vae` is the entry point."""

    def __init__(self, config: VaeTrainConfig):
        validate(config)
        self.config = config
        self.out = Path(config.output_dir).expanduser()
        self.skipped: list = []

    # -- setup

    def setup(self) -> None:
        import torch
        from accelerate import Accelerator

        from aesthetic4k.scvae.discriminator import PatchDiscriminator
        from aesthetic4k.scvae.lpips import load_lpips
        from aesthetic4k.scvae.model import DecodeWithActivation, trainable_decoder
        from aesthetic4k.training.ema import EMA

        config = self.config
        self.resume_from = checkpoints.find_checkpoint(self.out, config.resume) if config.resume else None
        self.images = open_images(config.data, stream_settings(config), images_only=True)
        self.records = self.images.records
        self.accelerator = accelerator = Accelerator(mixed_precision=config.mixed_precision,
                                                     cpu=config.device == "cpu")
        device = accelerator.device
        self.lpips, self.lpips_sources = load_lpips(config.weights.get("vgg16"), config.weights.get("lpips-vgg"),
                                                    config.allow_download)
        self.lpips.to(device)
        teacher_vae, student_vae = load_teacher_and_student(config)
        teacher_vae.requires_grad_(False).eval().to(device)
        self.decoder_params = trainable_decoder(student_vae)
        if config.gradient_checkpointing:
            student_vae.enable_gradient_checkpointing()
        student_vae.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # the discriminator's initial weights and spectral-norm vectors
            discriminator = PatchDiscriminator(config.disc_channels, config.disc_depth)
        discriminator.train()
        betas = (config.adam_beta1, config.adam_beta2)
        student_opt = torch.optim.AdamW(self.decoder_params, lr=config.learning_rate, betas=betas,
                                        eps=config.adam_epsilon, weight_decay=config.weight_decay)
        disc_opt = torch.optim.AdamW(discriminator.parameters(), lr=config.disc_learning_rate, betas=betas,
                                     eps=config.adam_epsilon, weight_decay=config.weight_decay)
        self.teacher = DecodeWithActivation(teacher_vae)
        self.student, self.discriminator, self.student_opt, self.disc_opt = accelerator.prepare(
            DecodeWithActivation(student_vae), discriminator, student_opt, disc_opt)
        self.student_vae = student_vae
        self.ema = EMA(self.decoder_params, config.ema_decay) if config.ema else None
        if self.ema is not None:
            accelerator.register_for_checkpointing(self.ema)

        world = accelerator.num_processes
        per_step = 2 * config.gradient_accumulation * config.batch_size * world
        self.max_steps = (config.max_steps if config.max_steps is not None
                          else max(1, math.ceil(config.epochs * len(self.records) / per_step)))
        self.step = 0
        self.generator = torch.Generator().manual_seed(config.seed * 7919 + accelerator.process_index)
        self.stream = RecordStream(self.records, config.seed, accelerator.process_index, world)
        if self.resume_from is not None:
            self._load_state(self.resume_from)

    def _settings(self) -> dict:
        return {**asdict(self.config), "num_processes": self.accelerator.num_processes}

    def _load_state(self, folder: Path) -> None:
        checkpoints.check_resume_settings(folder, asdict(self.config), RESUME_KEYS, self.accelerator.num_processes)
        self.accelerator.load_state(str(folder / checkpoints.STATE_DIR))
        progress = checkpoints.load_progress(folder, self.accelerator.process_index)
        self.step = int(progress["step"])
        self.stream.position = int(progress["position"])
        self.generator.set_state(progress["generator"])

    # -- data

    def _skip(self, record, error: ImageError) -> None:
        where = self.images.describe(record)
        self.skipped.append((where, error.reason))
        run_log.say(self.accelerator, self.config.progress, f"skipped {where}: {error.reason}")

    def _prepare(self, record):
        draws, size = random_crop_draws(self.generator), self.config.resolution

        def job():
            try:
                return random_crop(self.images.open(record, size), size, draws)
            except ImageError as exc:
                return exc

        return job

    def next_batch(self, pool):
        """``batch_size`` random crops of this process's stream, on the device."""
        import torch

        self.images.prefetch(self.stream.peek(self.images.ahead))  # streamed images are fetched ahead
        found = next_usable(self.stream, self.config.batch_size, self._prepare, pool, self.config.on_bad_image,
                            self._skip, self.config.data)
        return torch.stack([pixels for _, pixels in found]).to(self.accelerator.device)

    # -- the two updates

    def student_terms(self, pixels) -> dict:
        """The student's losses on one micro-batch (``loss`` has the graph; the others are detached)."""
        import torch
        import torch.nn.functional as F

        config, accelerator = self.config, self.accelerator
        student = accelerator.unwrap_model(self.student)
        z = student.encode(pixels, self.generator)
        teacher_z = self.teacher.encode(pixels, self.generator)
        with torch.no_grad():
            _, teacher_act = self.teacher(teacher_z)
        with accelerator.autocast():
            image, student_act = self.student(z)
        image = image.float().clamp(-1, 1)
        if config.pixel_loss == "patch":
            pixel = losses.patch_mse(image, pixels)
        else:
            pixel = F.mse_loss(image, pixels.float())
        perceptual = self.lpips(image, pixels.float()).mean()
        with frozen(accelerator.unwrap_model(self.discriminator)) as discriminator:
            gan = losses.generator_loss(discriminator(image).float())
        weight = torch.zeros((), device=image.device)
        if config.gan_weight and config.lpips_weight:
            weight = losses.adaptive_weight(perceptual, gan, self.student_vae.decoder.conv_out.weight,
                                            config.max_adaptive_weight)
        sc = losses.scale_consistency(teacher_act, student_act)
        loss = pixel + config.lpips_weight * perceptual + config.gan_weight * weight * gan + config.sc_weight * sc
        return {"loss": loss, "pixel": pixel.detach(), "lpips": perceptual.detach(), "gan": gan.detach(),
                "adaptive_weight": weight, "sc": sc.detach(), "image": image.detach()}

    def disc_terms(self, real, fake) -> dict:
        """Hinge loss and gradient penalty of the discriminator on real crops and reconstructions."""
        import torch

        real = real.float().requires_grad_(True)
        with self.accelerator.autocast():
            scores = self.discriminator(torch.cat([real, fake.float()]))  # one forward: per-image norms
        real_scores, fake_scores = scores.float().split([real.shape[0], fake.shape[0]])
        hinge = losses.hinge_discriminator_loss(real_scores, fake_scores)
        gp = losses.gradient_penalty(real, real_scores, self.config.gp_weight)
        return {"loss": hinge + gp, "disc_loss": hinge.detach(), "gp": gp.detach()}

    def _update(self, model, optimizer, params, micro_batches) -> dict:
        """Accumulate ``micro_batches`` (callables returning terms), clip, step; the mean of the logged terms."""
        import torch

        accelerator, count = self.accelerator, len(micro_batches)
        logged: dict = {}
        for index, terms_of in enumerate(micro_batches):
            sync = nullcontext() if index == count - 1 else accelerator.no_sync(model)
            with sync:
                terms = terms_of()
                accelerator.backward(terms["loss"] / count)
            for key, value in terms.items():
                if key != "image":
                    logged.setdefault(key, []).append(value.detach().float())
                else:
                    logged.setdefault("images", []).append(value)
        if self.config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(params, self.config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.decoder_params)
        images = logged.pop("images", None)
        means = {key: torch.stack(values).mean() for key, values in logged.items()}
        return {**means, "images": images}

    def train_step(self, pool) -> dict:
        """One student update and one discriminator update; the step's log values (reduced over processes)."""
        accumulation = self.config.gradient_accumulation
        student = self._update(self.student, self.student_opt, self.decoder_params,
                               [lambda: self.student_terms(self.next_batch(pool)) for _ in range(accumulation)])
        fakes = student.pop("images")
        disc = self._update(self.discriminator, self.disc_opt, list(self.discriminator.parameters()),
                            [lambda i=i: self.disc_terms(self.next_batch(pool), fakes[i]) for i in range(accumulation)])
        disc.pop("images")
        disc["disc_loss"] = disc.pop("disc_loss")
        values = {**student, "disc_loss": disc["disc_loss"], "gp": disc["gp"]}
        return {key: self.accelerator.reduce(values[key], reduction="mean").item() for key in
                ("loss", "pixel", "lpips", "gan", "adaptive_weight", "sc", "disc_loss", "gp")}

    # -- checkpoints

    def exported_state(self) -> dict:
        """The student VAE's weights with the EMA in place of the decoder's (the weights a checkpoint exports)."""
        state = {k: v.detach().cpu().contiguous() for k, v in self.student_vae.state_dict().items()}
        if self.ema is not None:
            for (name, _), average in zip(self.student_vae.decoder.named_parameters(), self.ema.averages):
                state[f"decoder.{name}"] = average.detach().cpu().contiguous()
        return state

    def save_checkpoint(self) -> Path:
        import json

        accelerator, config = self.accelerator, self.config

        def fill(folder: Path) -> None:
            accelerator.save_state(str(folder / checkpoints.STATE_DIR))
            checkpoints.save_progress(folder, accelerator.process_index, {
                "step": self.step, "position": self.stream.position, "generator": self.generator.get_state()})
            if accelerator.is_main_process:
                checkpoints.save_settings(folder, self._settings())
                with checkpoints.state_dict_replaced(self.student_vae, self.exported_state()):
                    self.student_vae.save_pretrained(folder / "vae")
                marker = {"vae": "f16", "partitions": config.partitions, "base": str(config.base), "step": self.step,
                          "weights": "ema" if self.ema is not None else "student", "resolution": config.resolution,
                          "lpips": self.lpips_sources}
                (folder / VAE_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")

        return checkpoints.write_checkpoint(accelerator, self.out, self.step, fill, config.keep_checkpoints)

    # -- the loop

    def run(self) -> VaeTrainResult:
        config = self.config
        loop.set_up(self.setup, "out of memory while loading the models; try a smaller --batch-size")
        self.out.mkdir(parents=True, exist_ok=True)
        accelerator = self.accelerator
        result = VaeTrainResult(step=self.step, checkpoint=self.resume_from, skipped=self.skipped)
        log = run_log.StepLog(accelerator, self.out, LOG_COLUMNS, self.step, self.max_steps, config.tensorboard,
                              config.progress)
        images_per_step = 2 * config.batch_size * config.gradient_accumulation * accelerator.num_processes

        def step(pool) -> None:
            tick = time.perf_counter()
            values = self.train_step(pool)
            self.step += 1
            if not all(math.isfinite(v) for v in values.values()):
                raise UserError(f"a loss became non-finite at step {self.step} ({values}); lower "
                                "--learning-rate or use --mixed-precision no")
            row = {"step": self.step, **values, "lr": self.student_opt.param_groups[0]["lr"]}
            result.losses.append(dict(row))
            rate = images_per_step / max(time.perf_counter() - tick, 1e-9)
            log.record(self.step, row, values, rate, {"loss": f"{values['loss']:.4g}", "sc": f"{values['sc']:.3g}"})

        def out_of_memory(at: int) -> str:
            return (f"out of memory at step {at + 1} (resolution {config.resolution}, batch {config.batch_size}): "
                    "use a smaller --batch-size with more --gradient-accumulation, or --gradient-checkpointing")

        return loop.run_steps(self, result, log, self.max_steps, config.checkpoint_every, config.num_workers,
                              step, out_of_memory)


def train_vae(config: VaeTrainConfig) -> VaeTrainResult:
    """Run (or resume) an SC-VAE fine-tuning and return where it ended."""
    run_log.quiet_libraries(config.progress)
    return VaeTrainer(config).run()
