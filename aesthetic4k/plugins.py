"""Named components with plugins: built-ins, entry points, or ``module:attribute`` specs.

Generators and captioners are both looked up this way. A spec is ``name``, ``name:argument``
(the argument is passed to the factory, e.g. a model folder) or ``package.module:attribute``.
"""
from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass

from aesthetic4k.errors import UserError
from aesthetic4k_metrics import plugin_loading
from aesthetic4k_metrics.errors import did_you_mean, first_line


@dataclass(frozen=True)
class Builtin:
    """One built-in component, declared once: the same shape as the metrics' ``MetricInfo``, the weights'
    ``WeightSpec`` and the model families (a record with its ``name``, in a ``{name: record}`` table)."""

    name: str
    implementation: str  # "module:factory"; the factory is called as factory(argument, options)
    description: str


def table(records) -> dict:
    """``{record.name: record}``: how every registry of the toolkit is written."""
    return {record.name: record for record in records}


@dataclass(frozen=True)
class Registry:
    kind: str            # "generator", "captioner": used in messages
    group: str           # entry-point group of third-party plugins
    builtins: dict       # name -> Builtin
    method: str          # the method a component must have ("generate", "caption")
    also_known: tuple = ()   # names handled before this registry is asked (named in "unknown" messages)

    def plugins(self) -> dict:
        return plugin_loading.installed(self.group)

    def available(self) -> dict[str, str]:
        """Name -> description of every component this installation knows."""
        names = {name: builtin.description for name, builtin in self.builtins.items()}
        for name, ep in self.plugins().items():
            names.setdefault(name, f"plugin ({ep.value})")
        return names

    def _load(self, target: str, spec: str):
        return plugin_loading.import_target(self.kind, spec, target)

    def _instantiate(self, obj, argument, options, spec):
        # a plugin may be a ready object, a class, or a factory taking (argument, options) or nothing
        if hasattr(obj, self.method) and not isinstance(obj, type):
            return obj
        if not callable(obj):
            raise UserError(f"{self.kind} {spec}: {obj!r} is neither a {self.kind} nor a factory")
        try:
            signature = inspect.signature(obj)
            signature.bind(argument, options)
            args = (argument, options)
        except TypeError:
            args = ()                      # a factory that takes no arguments
        except ValueError:                 # no signature to read (some builtins): assume the full form
            args = (argument, options)
        try:
            return obj(*args)
        except (UserError, KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # the plugin's own failure, reported as such
            raise UserError(f"{self.kind} {spec}: failed to start ({type(exc).__name__}: {first_line(exc)})") from None

    def check(self, spec: str) -> None:
        """Raise UserError listing what is available when ``spec`` names nothing known (nothing is loaded)."""
        name, _, argument = spec.partition(":")
        if name in self.builtins or name in self.plugins() or (argument and _importable(name)):
            return
        known = [*self.also_known, *self.available()]
        raise UserError(f"unknown {self.kind} {spec!r}{did_you_mean(name, known)} "
                        f"(available: {', '.join(known)}, or module:attribute)")

    def create(self, spec: str, options):
        """Build the component named by ``spec``, or raise UserError listing what is available."""
        self.check(spec)
        name, _, argument = spec.partition(":")
        argument = argument or None
        if name in self.builtins:
            component = self._instantiate(self._load(self.builtins[name].implementation, spec), argument, options, spec)
        elif name in self.plugins():
            obj = plugin_loading.load_entry_point(self.kind, name, self.plugins()[name])
            component = self._instantiate(obj, argument, options, spec)
        else:
            component = self._instantiate(self._load(spec, spec), None, options, spec)
        if not hasattr(component, self.method):
            raise UserError(f"{self.kind} {spec}: object has no {self.method}() method")
        return component


def _importable(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False
