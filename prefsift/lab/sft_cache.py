"""The lab's SFT model shared between labs: a cache folder per SFT recipe (its hash), stamped with
the checksums of its files, copied into a lab instead of trained again, and replaced when
damaged."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..core import artifacts
from ..models.loading import cache_dir

SFT_STAMP = "lab_sft.json"


# Bump when a change to the SFT code (sft.py, task.py, the presets) changes the model it trains, so
# that shared copies made by older code are not reused.
SFT_CODE_VERSION = 2


def _shared_sft_dir(sft_hash: str) -> Path:
    return cache_dir() / "lab_sft" / sft_hash


def _sft_problem(folder: Path, sft_hash: str) -> str | None:
    """None when ``folder`` holds the SFT model of ``sft_hash`` exactly as it was saved; otherwise
    why not ("absent" when there is no such model at all, which needs no note)."""
    try:
        stamp = json.loads((folder / SFT_STAMP).read_text())
    except (OSError, ValueError):
        return "absent" if not (folder / SFT_STAMP).exists() else "its stamp is unreadable"
    if not isinstance(stamp, dict) or stamp.get("hash") != sft_hash:
        return "absent"  # another lab's model
    return artifacts.verify_folder(folder, stamp.get("files"))


def _stamp_hash(folder: Path) -> str | None:
    """The hash of the SFT model in ``folder`` when its files match their recorded checksums."""
    try:
        sft_hash = json.loads((folder / SFT_STAMP).read_text()).get("hash")
    except (OSError, ValueError, AttributeError):
        return None
    return sft_hash if _sft_problem(folder, sft_hash) is None else None


def _write_stamp(sft_dir: Path, sft_hash: str, sft_log) -> None:
    files = {k: v for k, v in artifacts.folder_digest(sft_dir).items() if k != SFT_STAMP}
    artifacts.write_json(sft_dir / SFT_STAMP, {"hash": sft_hash, "log": sft_log, "files": files},
                         seal=False)


def _copy_from_cache(shared: Path, sft_dir: Path, sft_hash: str) -> bool:
    """Copy a shared SFT model into ``sft_dir`` through a temporary folder renamed into place, so a
    killed copy never leaves a stamp without weights; False (train instead) on any problem."""
    if _stamp_hash(shared) != sft_hash:
        return False
    tmp = Path(tempfile.mkdtemp(dir=sft_dir.parent, prefix=".sft-"))
    try:
        shutil.copytree(shared, tmp, dirs_exist_ok=True)
        if _stamp_hash(tmp) != sft_hash:
            return False
        if sft_dir.exists():
            shutil.rmtree(sft_dir)
        os.rename(tmp, sft_dir)
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_to_cache(sft_dir: Path, shared: Path) -> None:
    """Publish a trained SFT model: copy to a private temporary folder, then rename it into place.
    If another process published the same hash first, keep theirs (same settings, same model)."""
    shared.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=shared.parent, prefix=f".{shared.name}-"))
    try:
        shutil.copytree(sft_dir, tmp, dirs_exist_ok=True)
        if shared.exists() and _stamp_hash(shared) is None:
            # A damaged published copy (it failed its checksums): replace it, or every later lab
            # with these settings would train again.
            print(f"note: replacing the damaged shared SFT model {shared}", flush=True)
            aside = shared.with_name(f".{shared.name}.damaged{os.getpid()}")
            os.rename(shared, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.rename(tmp, shared)
    except OSError:
        pass  # already published (rename onto a non-empty folder fails), or the cache is read-only
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
