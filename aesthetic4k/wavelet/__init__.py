"""Wavelet-based fine-tuning (WLF): Haar DWT, the wavelet loss, the partitioned F16 VAE, the trainer.

    from aesthetic4k.wavelet import dwt2, wavelet_loss, use_f16_vae

Names are resolved on first use, so importing this package does not import torch.
"""
from importlib import import_module

_EXPORTS = {
    "dwt2": "dwt", "idwt2": "dwt", "wavedec2": "dwt", "waverec2": "dwt", "subbands": "dwt",
    "concat_subbands": "dwt",
    "wavelet_loss": "loss", "x0_mse": "loss", "x0_from_prediction": "loss", "add_noise": "loss",
    "sigma_weighting": "loss", "logit_normal": "loss", "timestep_density": "loss", "sample_timesteps": "loss",
    "make_f16": "vae_f16", "make_f8": "vae_f16", "upsample_conv": "vae_f16", "spatial_factor": "vae_f16",
    "use_f16_vae": "pipeline", "pipeline_family": "pipeline",
    "TrainConfig": "config", "validation_loss": "train",  # the function: aesthetic4k.wavelet.train.train
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
