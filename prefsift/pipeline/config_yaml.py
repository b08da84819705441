"""How a run config is read: a YAML file (each key's line remembered, so an error names it), the
`KEY=VALUE` overrides of the command line, and each section merged onto its defaults. Generic over
the config's dataclass; `config.py` holds `RunConfig` itself."""

from __future__ import annotations

import re
from dataclasses import MISSING, asdict, fields

import yaml

from ..core.checks import check_known_keys
from ..core.errors import ConfigError, require_path


def read_yaml(path) -> tuple[dict, dict]:
    """(settings, where): the mapping of a YAML config file, and the "FILE, line N" of each key."""
    p = require_path(path, "config file", hint="give the path of a YAML file of RunConfig settings")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; give a YAML file of RunConfig "
                          f"settings") from None
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML ({problem}); check the indentation and the "
                          "`key: value` syntax there") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected settings as `key: value` lines, got a YAML "
                          f"{type(raw).__name__}")
    return raw, {k: f"{path}, line {n}" for k, n in _key_lines(node).items()}


def sections_of(cls) -> tuple[str, ...]:
    """The fields of a config class that hold a mapping of sub-settings."""
    return tuple(f.name for f in fields(cls) if "section" in f.metadata) + ("imported", "windows")


def default_of(f):
    return f.default_factory() if f.default_factory is not MISSING else f.default


def build_section(f, given: dict, base: dict | None = None):
    """The dataclass of section field ``f`` from the mapping ``given``, merged onto ``base`` (the
    preset's settings of the section), else onto the section's default (or the dataclass's defaults
    when the section is off by default); errors keyed ``section.key``."""
    cls, refused = f.metadata["section"], f.metadata["refused"]
    check_known_keys(given, cls, section=f.name, refused=refused)
    if base is None:
        default = default_of(f)
        base = asdict(default) if default is not None else {}
    values = {**base, **given}
    try:
        return cls(**values)
    except ConfigError as e:
        raise e.within(f.name) from None
    except TypeError as e:  # a field the dataclass does not take (refused above, so a bug)
        raise ConfigError(key=f.name, problem=f"has a setting it cannot take ({e})") from None


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _key_lines(node, prefix: str = "") -> dict[str, int]:
    """{"warmup.learning_rate": 7, ...}: the 1-based line of every mapping key of a composed YAML
    node."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            lines[key] = k.start_mark.line + 1
            lines.update(_key_lines(v, key + "."))
    return lines


def where_of(key: str | None, where: dict[str, str], default: str) -> str:
    """The place of ``key`` (or of the nearest section above it) in ``where``, else ``default``."""
    if key:
        parts = re.sub(r"\[\d+\]$", "", key).split(".")
        for n in range(len(parts), 0, -1):
            found = where.get(".".join(parts[:n]))
            if found:
                return found
    return default


def apply_override(raw: dict, item: str, cls) -> str:
    """Apply one ``key=value`` (or ``section.key=value``) override to a mapping of settings, the
    value read as YAML (``beta=0.1``, ``seeds=[0,1]``, ``lab=null``); returns the key path."""
    key, eq, value = item.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ConfigError(f"override {item!r} must be KEY=VALUE or SECTION.KEY=VALUE, e.g. "
                          "beta=0.1 or warmup.learning_rate=1e-4")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value  # not YAML: the text as a string
    top, dot, sub = key.partition(".")
    try:
        check_known_keys({top: None}, cls)
    except ConfigError as e:
        raise e.at(f"override {item!r}") from None
    if not dot:
        raw[top] = parsed
        return key
    sections = sections_of(cls)
    if top not in sections or not sub or "." in sub:
        raise ConfigError(key=top, problem=f"has no sub-settings to override; write {top}=VALUE "
                                           f"(sections: {', '.join(sections)})",
                          where=f"override {item!r}")
    # A section not in the file is the empty mapping: the loader merges it onto the section's
    # default.
    section = raw.get(top, {})
    if section is None:
        section = {}
    elif not isinstance(section, dict):
        raise ConfigError(key=top,
                          problem=f"is not a mapping in the config, so {key} cannot be set",
                          where=f"override {item!r}")
    raw[top] = {**section, sub: parsed}
    return key
