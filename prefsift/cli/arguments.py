"""The pieces of the parser made from the code itself: a flag per config dataclass field (its help
text and check), the column and placement flags every data command shares, and the help texts
that list the registries (rules, treatments, the kinds of arm) and the run config by group."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import MISSING, fields

from ..api.configs import ARM_KINDS, DEVICES, DTYPES, RULES, RUN_GROUPS, TREATMENTS, RunConfig


def flag_type(cls, name: str, default):
    """The argparse type of a field: its annotation's (``int | None`` → int), else its default's."""
    tp = typing.get_type_hints(cls).get(name)
    if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else None
    if tp in (int, float, str):
        return tp
    return type(default) if default is not None else str


def add_dataclass_args(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One --flag per dataclass field, with the field's help metadata and default."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if (f.default is dataclasses.MISSING  # type: ignore[misc]
            and f.default_factory is dataclasses.MISSING):
            parser.add_argument(flag, dest=f.name, required=True, help=f"{help_text} (required)")
            continue
        default = (f.default if f.default is not dataclasses.MISSING  # type: ignore[misc]
                   else f.default_factory())
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, default=default,
                                action=argparse.BooleanOptionalAction,
                                help=f"{help_text} (default: {default})")
        elif isinstance(default, (int, float, str)) or default is None:
            kind = flag_type(cls, f.name, default)
            parser.add_argument(flag, dest=f.name, type=kind, default=default,
                                help=f"{help_text} (default: {default})")


def add_column_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("columns and format")
    g.add_argument("--prompt-key", default="prompt",
                   help="column with the prompt; if the file has no such column the prompt is "
                        "implicit (the shared beginning of chosen and rejected) (default: prompt)")
    g.add_argument("--implicit-prompt", action="store_true",
                   help="ignore any prompt column and take the prompt from chosen/rejected")
    g.add_argument("--chosen-key", default="chosen",
                   help="column with the preferred response (default: chosen)")
    g.add_argument("--rejected-key", default="rejected",
                   help="column with the other response (default: rejected)")
    g.add_argument("--id-key", default="id",
                   help="column with row ids, used when present; otherwise each pair's id is a "
                        "hash of its content (default: id)")
    g.add_argument("--format", dest="file_format",
                   choices=["jsonl", "json", "parquet", "csv", "hf"], help="file format (default: "
                   "from the extension; a folder is a save_to_disk dataset)")
    g.add_argument("--split", help="split to read from a save_to_disk DatasetDict (default: train)")
    g.add_argument("--strict", action="store_true",
                   help="stop at the first bad row with its file, line and field (default: "
                        "lenient, every bad row is listed with its reason and the good ones are "
                        "kept)")


def rules_help() -> str:
    lines = ["rules (prefsift.selection.rules.RULES; a module can add its own with "
             "prefsift.register_rule):"]
    for name, rule in RULES.items():
        needs = f" [needs {', '.join(rule.needs)}]" if rule.needs else ""
        lines.append(f"  {name:<24} {rule.help}{needs}")
    return "\n".join(lines)


def arms_help() -> str:
    """The names an arm can take, from the registries: the treatments with their help, and the
    other kinds' names (the rules are described by `prefsift select --help`)."""
    lines = ["arms (prefsift.selection.kinds.ARM_KINDS): a rule (`prefsift select --help`), or",
             "treatments "
             "(prefsift.selection.treatments.TREATMENTS; a module can add its own with "
             "prefsift.register_treatment):"]
    lines += [f"  {name:<24} {t.help}" for name, t in TREATMENTS.items()]
    for name, kind in ARM_KINDS.items():
        if kind.probed:
            lines.append(f"chosen by probes ({name}): {', '.join(kind.names())}")
    lines.append("and the names defined under `imported` and `windows`")
    return "\n".join(lines)


def run_settings_help() -> str:
    """The config file's settings by group, from RunConfig's own field help (so the two cannot
    drift)."""

    lines = ["settings of the YAML config (prefsift.pipeline.RunConfig); a section (lab, warmup, "
             "...) is a mapping",
             "merged onto that section's defaults, and any setting can be overridden as KEY=VALUE "
             "or SECTION.KEY=VALUE:"]
    by_name = {f.name: f for f in fields(RunConfig)}
    for group, names in RUN_GROUPS.items():
        lines.append(f"{group}:")
        for f in (by_name[n] for n in names):
            text = f.metadata.get("help", "")
            if "section" in f.metadata:
                keys = ", ".join(g.name for g in fields(f.metadata["section"])
                                 if g.name not in f.metadata["refused"])
                lines.append(f"  {f.name:<14} {text}; keys: {keys}")
                continue
            default = f.default if f.default is not MISSING else f.default_factory()
            lines.append(f"  {f.name:<14} {text}"
                         + ("" if "default" in text else f" (default: {default!r})"))
    return "\n".join(lines)


def add_placement_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help=f"where the models run: {DEVICES} (default: auto, CUDA when "
                        "present)")
    p.add_argument("--dtype", default="auto", choices=DTYPES,
                   help="weights' precision (default: auto, fp32 on CPU); "
                        "sums, margins and IF products stay fp32")


def add_processes_arg(p: argparse.ArgumentParser, what: str, command: str) -> None:
    p.add_argument("--processes", type=int, default=1,
                   help=f"local worker processes to {what} (started through torchrun; each gets an "
                        f"equal share of the CPU cores, or one GPU each). Under a launcher of your "
                        f"own (torchrun --nproc_per_node N -m prefsift {command} ..., accelerate "
                        "launch) leave it at 1: the launcher's processes share the work (default: "
                        "1)")
