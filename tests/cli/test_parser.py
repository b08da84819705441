"""The CLI explains itself and reports bad input with a clear message and exit status."""

import subprocess
import sys

import pytest

from prefsift.cli import main

COMMANDS = [[], ["data"], ["data", "check"], ["data", "subset"], ["model"], ["lab"],
            ["lab", "make"], ["lab", "sentiment"], ["score"], ["run"],
            ["select"], ["demo"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "prefsift")
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main(cmd + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: prefsift" in out and len(out.splitlines()) > 5


def test_run_help_lists_every_config_setting(capsys):
    from dataclasses import fields

    from prefsift.pipeline import RunConfig

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    missing = [f.name for f in fields(RunConfig) if f"\n  {f.name} " not in out]
    assert not missing, f"`prefsift run --help` does not list {missing}"


def test_data_check_exit_codes(data_dir, capsys, tmp_path):
    assert main(["data", "check", str(data_dir / "good" / "standard_explicit.jsonl")]) == 0
    assert main(["data", "check", str(data_dir / "bad" / "corpus.jsonl"), "--report",
                 str(tmp_path / "r.csv")]) == 1
    out = capsys.readouterr().out
    assert "line 6" in out and "malformed" in out and (tmp_path / "r.csv").exists()
    assert main(["data", "check", str(data_dir / "bad" / "corpus.jsonl"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "line 2, field 'rejected'" in err
    assert main(["data", "check", str(data_dir / "bad" / "empty.jsonl")]) == 2


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "prefsift", "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "prefsift" in out.stdout
