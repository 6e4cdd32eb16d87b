"""FLUX.1 (12B): 2 x 2 latents packed into one token, CLIP pooled + T5 text, a guidance embedding (dev)."""
from __future__ import annotations

from typing import Optional

from aesthetic4k.families.base import GenerationDefaults, ModelFamily, TrainingDefaults


def pack_latents(latents):
    """Flux's token layout: N x C x H x W -> N x (H/2 * W/2) x (C * 4), 2 x 2 patches row by row."""
    n, c, h, w = latents.shape
    x = latents.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(n, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens, height: int, width: int):
    """Inverse of :func:`pack_latents` for a latent of height x width."""
    n, _, d = tokens.shape
    c = d // 4
    x = tokens.reshape(n, height // 2, width // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n, c, height, width)


def latent_image_ids(height: int, width: int, device, dtype):
    """Position ids of the packed latent tokens: (0, row, column)."""
    import torch

    ids = torch.zeros(height // 2, width // 2, 3)
    ids[..., 1] = torch.arange(height // 2)[:, None]
    ids[..., 2] = torch.arange(width // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class Flux(ModelFamily):
    name = "flux"
    pipeline_class = "FluxPipeline"
    class_prefixes = ("Flux",)
    # Guidance: the authors' eval script defaults to 7.0; their released Flux-4K model is meant to
    # run at 5.0-5.5 at 4K, so 5.0 (--guidance 7 for the script's value). 50 steps, 512 T5 tokens.
    generation = GenerationDefaults(steps=50, guidance=5.0, max_sequence_length=512)
    # train_flux_4k_wavelet.py: --weighting_scheme "none" (uniform timesteps; train_flux.sh keeps it),
    # latents (sample() - shift_factor) * scaling_factor, --guidance_scale 3.5;
    # train_flux.sh: 4 images per device, 8 processes (ds_config.yaml)
    training = TrainingDefaults(timestep_sampling="uniform", latent_shift="subtract", guidance=3.5,
                                max_sequence_length=512, batch_per_device=4, processes=8)
    latents_per_token = 2

    def encode_prompts(self, pipe, prompts: list, device, max_sequence_length: int) -> tuple:
        import torch

        with torch.no_grad():
            embeds, pooled, _ = pipe.encode_prompt(prompt=prompts, prompt_2=None, device=device,
                                                   num_images_per_prompt=1, max_sequence_length=max_sequence_length)
        return embeds, pooled

    def predict(self, transformer, noisy, timesteps, cond: dict, guidance: Optional[float] = None):
        import torch

        n, _, h, w = noisy.shape
        guidance_vector = None
        if guidance is not None:
            guidance_vector = torch.full((n,), float(guidance), device=noisy.device, dtype=torch.float32)
        text_ids = torch.zeros(cond["prompt_embeds"].shape[1], 3, device=noisy.device, dtype=noisy.dtype)
        # Flux's transformer takes timesteps in [0, 1] and multiplies by 1000 itself
        out = transformer(hidden_states=pack_latents(noisy), timestep=timesteps / 1000.0, guidance=guidance_vector,
                          pooled_projections=cond["pooled"], encoder_hidden_states=cond["prompt_embeds"],
                          txt_ids=text_ids, img_ids=latent_image_ids(h, w, noisy.device, noisy.dtype),
                          return_dict=False)[0]
        return unpack_latents(out, h, w)
