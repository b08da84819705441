"""Named entries of one kind — selection rules, objectives, judges, answer samplers — registered
once.

A registry is where a name in a config (`arms: [tif]`, `objective: ipo`, `judge: oracle`) is looked
up, so adding a rule or a judge means one `register` call, in prefsift or in a user's own module
(named under `plugins:` in a run config, which imports it before the config is checked)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import ConfigError, did_you_mean

T = TypeVar("T")
_ALL: list["Registry"] = []  # every registry, so a plugin that fails to import can be undone


class Registry(Generic[T]):
    """An ordered mapping name → entry; the order is the order of registration (help texts list
    it)."""

    def __init__(self, kind: str, key: str, plugins: bool = False):
        self.kind, self.key = kind, key  # key: the config field that names an entry, for errors
        self._entries: dict[str, T] = {}
        # load the "prefsift.plugins" entry points before a miss or a listing
        self._plugins = plugins
        _ALL.append(self)

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(key=self.key,
                              problem=f"cannot register {self.kind} {name!r}: use letters, digits, "
                                      "'_' and '-' only")
        if name in self._entries and not replace:
            raise ConfigError(key=self.key, problem=f"{self.kind} {name!r} is registered already; "
                                                    "pass replace=True to replace it, or choose "
                                                    "another name")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove an entry (a test's stand-in, a plugin's replaced entry) and return it."""
        return self._entries.pop(name)

    def get(self, name: str, key: str | None = None) -> T:
        if name not in self._entries:
            self._load_plugins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(key=key or self.key,
                              problem=f"must name a {self.kind}: {', '.join(self._entries)}; got "
                                      f"{name!r}"
                                      f"{did_you_mean(str(name), tuple(self._entries))}") from None

    def names(self) -> tuple[str, ...]:
        self._load_plugins()
        return tuple(self._entries)

    def __contains__(self, name: Any) -> bool:
        if isinstance(name, str) and name not in self._entries:
            self._load_plugins()
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self):
        self._load_plugins()
        return self._entries.items()

    def _load_plugins(self) -> None:
        if self._plugins:
            self._plugins = False  # once; a plugin that fails to import is reported and skipped
            load_entry_point_plugins()

    def decorator(self, name: str, make: Callable[[Callable], T],
                  replace: bool = False) -> Callable:
        """``@registry.decorator(name, make)``: register ``make(fn)`` and return ``fn``
        unchanged."""

        def wrap(fn):
            self.register(name, make(fn), replace=replace)
            return fn

        return wrap


_ENTRY_POINTS_LOADED = False


def load_entry_point_plugins() -> None:
    """Import every module of the "prefsift.plugins" entry-point group (once per process):
    prefsift's
    own lab, and any installed package that registers judges, rules or samplers."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True

    for ep in entry_points(group="prefsift.plugins"):
        try:
            ep.load()
        except Exception as e:  # a broken third-party plugin must not break prefsift
            warnings.warn(f"prefsift plugin {ep.name!r} ({ep.value}) failed to import: "
                          f"{type(e).__name__}: {e}")


def import_plugins(modules, key: str = "plugins") -> None:
    """Import each module (a dotted name, or the path of a .py file) so that its `register_*` calls
    take effect; a module that cannot be imported is a `ConfigError` naming it, and what it had
    registered before it failed is taken back (so a corrected retry registers cleanly)."""
    for i, spec in enumerate(modules or ()):
        where = f"{key}[{i}]"
        before = [dict(r._entries) for r in _ALL]
        try:
            _import_one(spec, where)
        except BaseException:
            for r, entries in zip(_ALL, before):
                r._entries = entries
            raise


def _import_one(spec, where: str) -> None:

    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(key=where, problem=f"must be a module name or a .py file, got {spec!r}")
    try:
        if spec.endswith(".py"):
            path = Path(spec).expanduser()
            if not path.is_file():
                raise ConfigError(key=where, problem=f": {spec!r} does not exist; give the path of "
                                                     f"your .py file")
            # One module per file (not per file name): two plugins both called rules.py do not
            # clash.
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
            name = f"prefsift_plugin_{path.stem}_{digest}"
            if name in sys.modules:
                return  # imported already in this process: its entries are registered
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        else:
            importlib.import_module(spec)
    except ConfigError:
        raise
    except ImportError as e:
        raise ConfigError(key=where,
                          problem=f": cannot import {spec!r} ({e}); give an importable module name "
                                  "or the path of a .py file") from None
    except Exception as e:
        raise ConfigError(key=where, problem=f": importing {spec!r} failed with "
                                             f"{type(e).__name__}: {e}") from None
