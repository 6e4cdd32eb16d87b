"""Stable Diffusion 3 (SD3-medium, 2B): MMDiT on 2 x 2 latent patches, two CLIP encoders and T5."""
from __future__ import annotations

from typing import Optional

from aesthetic4k.families.base import GenerationDefaults, ModelFamily, TrainingDefaults


class SD3(ModelFamily):
    name = "sd3"
    pipeline_class = "StableDiffusion3Pipeline"
    class_prefixes = ("StableDiffusion3",)
    # paper / authors' scripts: 28 steps, guidance 7.0, 77 T5 tokens
    generation = GenerationDefaults(steps=28, guidance=7.0, max_sequence_length=77)
    # train_sd3_4k_wavelet.py: --weighting_scheme logit_normal (0, 1), latents sample() * scaling_factor
    # (no shift); train_sd3.sh: 8 images per device, 8 processes (ds_config.yaml)
    training = TrainingDefaults(timestep_sampling="logit_normal", latent_shift="none", guidance=None,
                                max_sequence_length=77, batch_per_device=8, processes=8)

    def encode_prompts(self, pipe, prompts: list, device, max_sequence_length: int) -> tuple:
        import torch

        with torch.no_grad():
            embeds, _, pooled, _ = pipe.encode_prompt(prompt=prompts, prompt_2=None, prompt_3=None, device=device,
                                                      num_images_per_prompt=1, do_classifier_free_guidance=False,
                                                      max_sequence_length=max_sequence_length)
        return embeds, pooled

    def predict(self, transformer, noisy, timesteps, cond: dict, guidance: Optional[float] = None):
        return transformer(hidden_states=noisy, timestep=timesteps, encoder_hidden_states=cond["prompt_embeds"],
                           pooled_projections=cond["pooled"], return_dict=False)[0]
