"""Finding the code a plugin spec names, for every registry with plugins (metrics here; generators and
captioners in aesthetic4k.plugins): an installed entry point of a group, or ``package.module:attribute``.
Loading failures are one-line UserErrors naming the kind of component and the spec."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from aesthetic4k_metrics.errors import UserError, first_line


def installed(group: str) -> dict:
    """Entry-point name -> entry point of every installed plugin of ``group`` (nothing is imported)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def import_target(kind: str, spec: str, target: str):
    """The object ``module:attribute.path`` names (the module alone without an attribute)."""
    module_name, _, attribute = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attribute.split(".") if attribute else []:
            obj = getattr(obj, part)
    except ImportError as exc:
        raise UserError(f"{kind} {spec}: cannot import {module_name} ({first_line(exc)})") from None
    except AttributeError:
        raise UserError(f"{kind} {spec}: {module_name} has no attribute {attribute}") from None
    return obj


def load_entry_point(kind: str, name: str, entry_point):
    """The object an installed entry point names; a broken plugin gets a message, not a traceback."""
    try:
        return entry_point.load()
    except Exception as exc:  # noqa: BLE001 - whatever the plugin's import raises
        raise UserError(f"{kind} {name}: plugin failed to load ({first_line(exc, 160, typed=True)})") from None
