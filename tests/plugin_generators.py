"""Third-party-style generators used by the tests (loaded as ``tests.plugin_generators:NAME``)."""
import numpy as np
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
            rng = np.random.default_rng([value, seed])  # deterministic per prompt and seed
            noise = rng.normal(0, 20 + value % 30, (size, size, 1))
            base = np.array([value, 255 - value, 90], dtype=float)
            images.append(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)))
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
