"""aesthetic4k: evaluation toolkit for 2K-4K text-to-image generation (Aesthetic-4K benchmark)."""

__version__ = "0.1.0"
