"""Generators: the protocol, the registry and the built-ins."""
from aesthetic4k.generators.base import Generator, GeneratorOptions
from aesthetic4k.generators.registry import available, create

__all__ = ["Generator", "GeneratorOptions", "available", "create"]
