"""A training stage's folder: its model and its stage.json, sealed by the folder's digest, written
so that a killed save leaves no finished-looking stage; and the finished stage a rerun reuses (or
copies from a folder that holds the very same stage)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..core import artifacts, faults


def save_stage(model, tokenizer, out_dir: Path, info: dict, name: str) -> None:
    """The stage's model folder, then its stage.json (whose `files` entry is the folder's seal)."""
    tmp = out_dir / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed save
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    info["files"] = artifacts.folder_digest(tmp)  # checked before any reuse
    final = out_dir / "model"
    shutil.rmtree(final, ignore_errors=True)
    faults.point(f"save:{name}")
    tmp.replace(final)
    artifacts.write_json(out_dir / "stage.json", info, seal=False)


def reusable_or_copied(out_dir: Path, key: str, name: str, log, same_as) -> dict | None:
    """The finished stage in `out_dir`, or one with the same key in `same_as` copied there, else
    None."""
    info = reusable_stage(out_dir, key, name, log)
    if (info is None and same_as is not None
        and reusable_stage(Path(same_as), key, name, log) is not None):
        shutil.rmtree(out_dir, ignore_errors=True)
        # the training only
        shutil.copytree(same_as, out_dir, ignore=shutil.ignore_patterns("eval.json*"))
        log(f"  {name}: the same training as {same_as}, copied")
        info = reusable_stage(out_dir, key, name, log)
    return info


def reusable_stage(out_dir: Path, key: str, name: str, log) -> dict | None:
    """The stage.json of a finished stage with this key whose model folder is intact, else None.
    A stage that exists but cannot be trusted is reported in one line (it is trained again)."""
    info_path = out_dir / "stage.json"
    if not info_path.exists():
        return None
    try:
        info = json.loads(info_path.read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        log(f"note: training stage {name} again: {info_path} is unreadable ({e})")
        return None
    if info.get("key") != key:
        return None  # other settings or inputs: a different stage, not a damaged one
    problem = artifacts.verify_folder(out_dir / "model", info.get("files"))
    if problem:
        log(f"note: training stage {name} again: its model folder {out_dir / 'model'} cannot be "
            f"trusted, {problem}")
        return None
    return info
