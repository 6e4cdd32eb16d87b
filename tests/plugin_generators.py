"""Third-party-style generators used by the tests (loaded as ``tests.plugin_generators:NAME``)."""
from PIL import Image


class Solid:
    """Deterministic images whose colour depends on the prompt; counts how many it made."""

    made = []

    def __init__(self, argument=None, options=None):
        self.name = "solid"
        self.defaults = {"kind": "solid"}

    def generate(self, prompts, size, seed):
        Solid.made.extend(prompts)
        if getattr(Solid, "fail_after", None) is not None and len(Solid.made) > Solid.fail_after:
            raise KeyboardInterrupt
        images = []
        for prompt in prompts:
            value = sum(map(ord, prompt)) % 200
            image = Image.effect_noise((size, size), 40 + value % 30).convert("RGB")
            images.append(Image.blend(image, Image.new("RGB", (size, size), (value, 255 - value, 90)), 0.5))
        return images


class TooFew:
    name = "too-few"

    def generate(self, prompts, size, seed):
        return []


class WrongSize:
    name = "wrong-size"

    def generate(self, prompts, size, seed):
        return [Image.new("RGB", (size // 2, size)) for _ in prompts]


class Broken:
    name = "broken"

    def generate(self, prompts, size, seed):
        raise RuntimeError("model exploded")


ready_made = Solid()
