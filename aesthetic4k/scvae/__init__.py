"""The Scale-Consistent F16 VAE (SC-VAE) of the journal version of Diffusion-4K (arXiv 2506.01331).

The F16 VAE (:mod:`aesthetic4k.wavelet.vae_f16`) reuses the F8 weights; SC-VAE fine-tunes its
decoder so that its last activation, upsampled, matches the original F8 decoder's, with
reconstruction, LPIPS and adversarial losses. ``a4k-train-vae`` (:mod:`aesthetic4k.scvae.train`)
trains it; a checkpoint is a VAE folder that ``a4k-eval --vae DIR``, ``a4k-train --vae DIR`` and
the diffusion generators load.

- :mod:`~aesthetic4k.scvae.config`: the settings and their upstream defaults;
- :mod:`~aesthetic4k.scvae.losses`: pixel/patch MSE, hinge GAN, gradient penalty, adaptive weight, SC loss;
- :mod:`~aesthetic4k.scvae.lpips`: LPIPS (VGG16), weights through :mod:`aesthetic4k_metrics.weights`;
- :mod:`~aesthetic4k.scvae.discriminator`: the patch discriminator;
- :mod:`~aesthetic4k.scvae.model`: decoding with the decoder's last activation;
- :mod:`~aesthetic4k.scvae.train`: the loop, checkpoints, the exported VAE.
"""
