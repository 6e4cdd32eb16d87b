"""Finding generators: built-ins, entry-point plugins, module:attribute specs."""
import sys

import pytest

from aesthetic4k.errors import UserError
from aesthetic4k.generators import GeneratorOptions, available, create


def test_builtins_are_listed(capsys):
    names = available()
    for name in ("reference", "upscale", "flux-4k", "sd3-4k", "flux", "sd3", "diffusers", "wlf"):
        assert name in names
    from aesthetic4k.cli.eval import main

    assert main(["--list-generators"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed[0] == "folder" and set(names) <= set(listed)     # the folder source is listed first


def test_entry_point_plugin(tmp_path, monkeypatch):
    dist = tmp_path / "a4k_fake_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: a4k-fake-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[aesthetic4k.generators]\nmy-solid = tests.plugin_generators:Solid\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert "my-solid" in available()
    generator = create("my-solid")
    assert generator.name == "solid"


def test_module_attribute_spec_and_errors():
    assert create("tests.plugin_generators:ready_made").name == "solid"
    with pytest.raises(UserError, match="has no attribute"):
        create("tests.plugin_generators:Nope")
    with pytest.raises(UserError, match="unknown generator 'nope'.*folder"):
        create("nope")


def test_upscale_options_are_checked():
    assert create("upscale").name == "upscale"
    assert create("upscale", GeneratorOptions(base_size=512, resample="lanczos")).name == "upscale-512-lanczos"
    with pytest.raises(UserError, match="--resample"):
        create("upscale", GeneratorOptions(resample="nearest"))
