"""SC-VAE building blocks against independent references: LPIPS (the lpips package), EMA (diffusers'
EMAModel), the adaptive weight (plain backward passes), the SC loss and the other losses (direct formulas)."""
import numpy as np
import pytest
import torch

from aesthetic4k.errors import UserError
from aesthetic4k.scvae import losses
from aesthetic4k.scvae.discriminator import PatchDiscriminator, stage_widths
from aesthetic4k.scvae.lpips import LPIPS, load_lpips
from aesthetic4k.scvae.model import DecodeWithActivation
from aesthetic4k.training.ema import EMA
from aesthetic4k.wavelet.vae_f16 import make_f16
from tests.tiny_pipelines import build_tiny_vae, save_tiny_lpips

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def images(n=2, size=64, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# -- LPIPS --------------------------------------------------------------------------------------

def test_lpips_equals_the_lpips_package_with_the_same_weights(tmp_path):
    lpips = pytest.importorskip("lpips")
    torch.manual_seed(0)
    # a random VGG16 (no download), the package's own linear layers
    reference = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval()
    backbone = {}
    for name, tensor in reference.net.state_dict().items():  # sliceK.<torchvision index>.weight
        _, index, leaf = name.split(".", 2)
        backbone[f"features.{index}.{leaf}"] = tensor
    torch.save(backbone, tmp_path / "vgg16.pth")
    heads = reference.state_dict()
    torch.save({k: v for k, v in heads.items() if k.startswith("lin")}, tmp_path / "lin.pth")
    ours, sources = load_lpips(str(tmp_path / "vgg16.pth"), str(tmp_path / "lin.pth"))
    assert set(sources) == {"vgg16", "lpips-vgg"}
    x, y = images(3, 64, 1), images(3, 64, 2)
    with torch.no_grad():
        expected = reference(x, y).flatten()
        got = ours(x, y)
    assert float(expected.min()) > 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_lpips_tiny_backbone_is_a_distance(tmp_path):
    backbone, heads = save_tiny_lpips(tmp_path)
    model = LPIPS.from_files(backbone, heads)
    assert [h.weight.shape[1] for h in model.heads] == [4, 8, 8, 16, 16]
    x, y = images(2, 64, 3), images(2, 64, 4)
    with torch.no_grad():
        assert torch.equal(model(x, x), torch.zeros(2))
        assert bool((model(x, y) > 0).all())
        torch.testing.assert_close(model(x, y), model(y, x))


def test_lpips_weights_come_from_the_resolver(tmp_path, monkeypatch):
    backbone, heads = save_tiny_lpips(tmp_path)
    monkeypatch.setenv("A4K_VGG16", str(backbone))
    monkeypatch.setenv("A4K_LPIPS_VGG", str(heads))
    _, sources = load_lpips()
    assert sources == {"vgg16": "env vgg16-tiny.pth", "lpips-vgg": "env lpips-vgg-tiny.pth"}
    # nothing anywhere: one line that says how to provide the backbone
    monkeypatch.delenv("A4K_VGG16")
    monkeypatch.setenv("A4K_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("A4K_OFFLINE", "1")
    with pytest.raises(UserError, match="vgg16 weights not found.*A4K_VGG16=PATH") as caught:
        load_lpips()
    assert "\n" not in str(caught.value)


def test_lpips_rejects_files_that_do_not_fit(tmp_path):
    backbone, heads = save_tiny_lpips(tmp_path)
    other_backbone, _ = save_tiny_lpips(tmp_path / "wide", widths=(4, 8, 8, 16, 32))
    with pytest.raises(UserError, match="do not fit together"):
        LPIPS.from_files(other_backbone, heads)
    (tmp_path / "junk.pth").write_bytes(b"not torch")
    with pytest.raises(UserError, match="cannot read"):
        LPIPS.from_files(tmp_path / "junk.pth", heads)


# -- EMA --------------------------------------------------------------------------------------

def test_ema_follows_diffusers_ema_model():
    from diffusers.training_utils import EMAModel

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    ours = EMA(model.parameters(), 0.9)
    reference = EMAModel(model.parameters(), decay=0.9)
    for _ in range(30):  # past the point where the 0.9 cap takes over from k / (9 + k)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ours.update(model.parameters())
        reference.step(model.parameters())
        for mine, theirs in zip(ours.averages, reference.shadow_params):
            torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7)
    state = ours.state_dict()
    again = EMA(model.parameters(), 0.5)
    again.load_state_dict(state)
    assert again.updates == 30 and again.max_decay == 0.9


# -- the student's losses ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    backbone, heads = save_tiny_lpips(tmp_path_factory.mktemp("lpips"))
    teacher = build_tiny_vae().eval()
    student = make_f16(build_tiny_vae(), partitions=2)
    return {"teacher": teacher, "student": student, "lpips": LPIPS.from_files(backbone, heads)}


def test_adaptive_weight_equals_plain_backward_passes(tiny):
    torch.manual_seed(1)
    student, lpips = tiny["student"], tiny["lpips"]
    discriminator = PatchDiscriminator(channels=16, depth=3)
    layer = student.decoder.conv_out.weight
    x = images(2, 64, 5)

    def losses_of_a_forward():
        image = student.decode(student.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        return lpips(image, x).mean(), losses.generator_loss(discriminator(image))

    perceptual, gan = losses_of_a_forward()
    weight = losses.adaptive_weight(perceptual, gan, layer)
    # reference: gradients accumulated by ordinary backward passes, one loss at a time
    student.zero_grad(set_to_none=True)
    perceptual.backward(retain_graph=True)
    g_perceptual = layer.grad.clone()
    layer.grad = None
    gan.backward()
    g_gan = layer.grad.clone()
    layer.grad = None
    expected = min(float(g_perceptual.norm()) / max(float(g_gan.norm()), 1e-8), 1e4)
    assert float(weight) == pytest.approx(expected, rel=1e-5)
    assert not weight.requires_grad
    perceptual, gan = losses_of_a_forward()
    assert float(losses.adaptive_weight(perceptual, gan, layer, max_weight=1e-9)) == pytest.approx(1e-9)


def test_sc_loss_is_the_mse_to_the_nearest_upsampled_student_activation(tiny):
    teacher, student = DecodeWithActivation(tiny["teacher"]), DecodeWithActivation(tiny["student"])
    seen = {}
    tiny["teacher"].decoder.conv_act.register_forward_hook(lambda m, i, o: seen.setdefault("act", o))
    x = images(2, 64, 6)
    try:
        with torch.no_grad():
            _, t_act = teacher(tiny["teacher"].encode(x).latent_dist.mean)
            image, s_act = student(tiny["student"].encode(x).latent_dist.mean)
    finally:
        teacher.remove_hook()
        student.remove_hook()
    # the recorded activation is the decoder's last norm + activation (before the final convolution)
    assert torch.equal(t_act, seen["act"])
    assert t_act.shape[-2:] == (64, 64) and s_act.shape[-2:] == (32, 32) and image.shape[-2:] == (64, 64)
    t, s = t_act.numpy().astype(np.float64), s_act.numpy().astype(np.float64)
    upsampled = np.repeat(np.repeat(s, 2, axis=2), 2, axis=3)
    expected = np.mean((t - upsampled) ** 2)
    assert float(losses.scale_consistency(t_act, s_act)) == pytest.approx(expected, rel=1e-5)


def test_patch_mse_is_the_mean_over_overlapping_windows():
    x, y = images(2, 64, 7), images(2, 64, 8)
    errors = []
    for top in range(0, 64 - 32 + 1, 16):
        for left in range(0, 64 - 32 + 1, 16):
            errors.append(((x[..., top:top + 32, left:left + 32] - y[..., top:top + 32, left:left + 32]) ** 2).mean())
    assert float(losses.patch_mse(x, y)) == pytest.approx(float(torch.stack(errors).mean()), rel=1e-6)


def test_hinge_loss_and_gradient_penalty_formulas():
    real, fake = torch.tensor([0.2, 1.5, -0.3]), torch.tensor([-2.0, 0.4, 0.1])
    expected = np.mean([max(0, 1 - r) + max(0, 1 + f) for r, f in zip(real.tolist(), fake.tolist())])
    assert float(losses.hinge_discriminator_loss(real, fake)) == pytest.approx(expected)
    assert float(losses.generator_loss(fake)) == pytest.approx(-float(fake.mean()))
    # D(x) = sum(a * x) per image: its gradient is a, of norm |a|
    a = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(9))
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    scores = (x * a).flatten(1).sum(1)
    expected_gp = 10.0 * (float(a.norm()) - 1.0) ** 2
    assert float(losses.gradient_penalty(x, scores, 10.0)) == pytest.approx(expected_gp, rel=1e-5)


def test_discriminator_layout_is_upstreams():
    # upstream defaults (512 channels, depth 6): 64, 128, 256, 512, 512, 512; a 512 px image gives 8 x 8 scores
    assert stage_widths(512, 6) == [64, 128, 256, 512, 512, 512]
    scores = PatchDiscriminator(channels=16, depth=3)(images(2, 64, 10))
    assert scores.shape == (2, 1, 8, 8) and bool(((scores > 0) & (scores < 1)).all())
