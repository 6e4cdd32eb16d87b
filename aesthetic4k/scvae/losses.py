"""The SC-VAE's losses, as the upstream ``sc-vae/train_vae.py`` combines them.

Student step: ``pixel + lpips_weight * LPIPS + gan_weight * adaptive * G + sc_weight * SC`` with

- ``pixel``: MSE between the (clamped) reconstruction and the image, or the MSE of their
  overlapping patches (:func:`patch_mse`);
- ``G = -mean(D(reconstruction))`` (:func:`generator_loss`);
- ``adaptive = |grad_W LPIPS| / max(|grad_W G|, 1e-8)``, at most 1e4, with ``W`` the weight of
  the decoder's last convolution, a constant for the backward pass (:func:`adaptive_weight`);
- ``SC``: the MSE between the teacher's last decoder activation (before the final convolution)
  and the student's, resized to the teacher's size by nearest neighbour (:func:`scale_consistency`).

Discriminator step: the hinge loss (:func:`hinge_discriminator_loss`) plus the gradient penalty
on real images (:func:`gradient_penalty`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_mse(x, y, patch: int = 32, stride: int = 16):
    """MSE over every ``patch`` x ``patch`` window at ``stride`` (overlapping windows count pixels more than once)."""
    def windows(t):
        return t.unfold(2, patch, stride).unfold(3, patch, stride)

    return F.mse_loss(windows(x.float()), windows(y.float()))


def generator_loss(fake_scores):
    return -fake_scores.mean()


def hinge_discriminator_loss(real_scores, fake_scores):
    return (F.relu(1.0 - real_scores) + F.relu(1.0 + fake_scores)).mean()


def gradient_penalty(real_images, real_scores, weight: float = 10.0):
    """``weight * mean((|grad_x sum D(x)| - 1)^2)`` per image; ``real_images`` must require grad."""
    grads = torch.autograd.grad(real_scores.sum(), real_images, create_graph=True)[0]
    norms = grads.flatten(1).norm(2, dim=1)
    return weight * ((norms - 1.0) ** 2).mean()


def adaptive_weight(perceptual_loss, adversarial_loss, layer_weight, max_weight: float = 1e4):
    """``|grad LPIPS| / |grad G|`` at ``layer_weight``, clamped: balances the GAN term against LPIPS."""
    perceptual = torch.autograd.grad(perceptual_loss, layer_weight, retain_graph=True)[0]
    adversarial = torch.autograd.grad(adversarial_loss, layer_weight, retain_graph=True)[0]
    ratio = perceptual.norm(2) / adversarial.norm(2).clamp(min=1e-8)
    return ratio.clamp(max=max_weight).detach()


def scale_consistency(teacher_activation, student_activation):
    """MSE between the teacher's activation and the student's, resized (nearest) to the teacher's size."""
    resized = F.interpolate(student_activation.float(), size=teacher_activation.shape[-2:], mode="nearest")
    return F.mse_loss(resized, teacher_activation.detach().float())
