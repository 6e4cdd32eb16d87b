"""Partitioned F16 VAE: exact equality with the unpartitioned path, shapes, weights unchanged, pipelines."""
import pytest
import torch
import torch.nn.functional as F

from aesthetic4k.errors import UserError
from aesthetic4k.wavelet import vae_f16


def tiny_vae(seed=0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    # four levels like SD3's / Flux's VAE: F8 before the conversion
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4).eval()


@pytest.fixture(scope="module")
def vae():
    return vae_f16.make_f16(tiny_vae(), partitions=1)


def _reference_last_stage(conv, x):
    # the definition: nearest 2x upsample of the whole activation, then the convolution
    return F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), conv.weight, conv.bias, padding=1)


@pytest.mark.parametrize("partitions", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(8, 8), (7, 5), (9, 12), (3, 2)])
def test_partitioned_last_stage_equals_unpartitioned(partitions, size):
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(6, 3, 3, padding=1)
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        expected = _reference_last_stage(conv, x)
        out = vae_f16.upsample_conv(conv, x, partitions)
    assert out.shape == expected.shape == (2, 3, 2 * size[0], 2 * size[1])
    assert float((out - expected).abs().max()) <= 1e-5


def test_off_by_one_halo_crop_would_be_caught():
    # the authors' crop (offset 1 instead of 2 for inner tiles) shifts the image: our test detects it
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(4, 3, 3, padding=1).requires_grad_(False)
    x = torch.randn(1, 4, 8, 8)
    expected = _reference_last_stage(conv, x)
    lower = x[..., 3:8, :]  # rows 4.. plus a one-pixel halo above
    tile = _reference_last_stage(conv, lower)
    correct, shifted = tile[..., 2:10, :], tile[..., 1:9, :]
    assert float((correct - expected[..., 8:16, :]).abs().max()) <= 1e-6
    assert float((shifted - expected[..., 8:16, :]).abs().max()) > 1e-3


@pytest.mark.parametrize("partitions", [2, 3])
@pytest.mark.parametrize("latent", [(4, 4), (5, 7), (3, 6)])
def test_partitioned_decode_equals_unpartitioned(vae, partitions, latent):
    z = torch.randn(2, 4, *latent, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        vae_f16.make_f16(vae, 1)
        whole = vae.decode(z).sample
        vae_f16.make_f16(vae, partitions)
        parts = vae.decode(z).sample
        vae_f16.make_f16(vae, 1)
    assert whole.shape == (2, 3, 16 * latent[0], 16 * latent[1])
    assert float((parts - whole).abs().max()) <= 1e-5


def test_encode_is_one_sixteenth_and_decode_sixteen_times(vae):
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        dist = vae.encode(x).latent_dist
        assert dist.mean.shape == (1, 4, 4, 6)
        assert vae.decode(dist.mean).sample.shape == (1, 3, 64, 96)
    assert vae_f16.spatial_factor(vae) == 16


def test_f16_reuses_weights_and_keeps_state_dict_keys():
    f8 = tiny_vae(seed=4)
    before = {k: v.clone() for k, v in f8.state_dict().items()}
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        z8 = f8.encode(x).latent_dist.mean
    vae_f16.make_f16(f8, 2)
    vae_f16.make_f16(f8, 2)  # idempotent
    after = f8.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        z16 = f8.encode(x).latent_dist.mean
        # stride 2 on the first convolution: same result as the F8 encoder on the strided activation
        assert z16.shape[-1] * 2 == z8.shape[-1]
    vae_f16.make_f8(f8)
    assert vae_f16.spatial_factor(f8) == 8
    with torch.no_grad():
        torch.testing.assert_close(f8.encode(x).latent_dist.mean, z8)


def test_f16_encoder_first_conv_is_strided_f8_conv():
    vae = tiny_vae(seed=5)
    x = torch.randn(1, 3, 32, 32)
    conv = vae.encoder.conv_in
    full = F.conv2d(x, conv.weight, conv.bias, padding=1)
    vae_f16.make_f16(vae)
    with torch.no_grad():
        torch.testing.assert_close(vae.encoder.conv_in(x), full[..., ::2, ::2])


def test_rejects_non_vae():
    with pytest.raises(UserError, match="AutoencoderKL"):
        vae_f16.make_f16(torch.nn.Linear(2, 2))


@pytest.fixture(scope="module")
def tiny_pipes():
    from tests.tiny_pipelines import build_tiny_flux, build_tiny_sd3

    return {"sd3": build_tiny_sd3(), "flux": build_tiny_flux()}


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_use_f16_vae_pipeline_generates_at_sixteen(tiny_pipes, family):
    from aesthetic4k.wavelet.pipeline import use_f16_vae

    pipe = tiny_pipes[family]
    pipe.set_progress_bar_config(disable=True)
    assert use_f16_vae(pipe) is pipe
    use_f16_vae(pipe, partitions=3)  # idempotent: only the partitions change
    assert pipe.vae_scale_factor == 16
    assert pipe.vae.decoder.conv_out.partitions == 3
    expected_processor = 32 if family == "flux" else 16
    assert pipe.image_processor.config.vae_scale_factor == expected_processor
    generator = torch.Generator().manual_seed(0)
    latents = pipe("a cat", height=64, width=96, num_inference_steps=1, output_type="latent",
                   generator=generator).images
    # SD3: 4 x 6 latent; Flux: 2 x 3 packed tokens of 2 x 2 latents
    assert latents.shape[-2:] == (4, 6) if family == "sd3" else latents.shape[1] == 6
    image = pipe("a cat", height=64, width=96, num_inference_steps=1, generator=generator).images[0]
    assert image.size == (96, 64)
