"""Headless Chromium for the view's tests: a page with a harness script appended (it acts through
the page's own controls, clicks and key presses, and writes what it saw as JSON into the DOM), read
back with --dump-dom."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="/usr/bin/chromium not installed (run "
                                           ".ci/install-browser)")


def chromium(*args, timeout: int = 120, budget_ms: int = 10000) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}",
               f"--virtual-time-budget={budget_ms}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HOME": profile})


def run_harness(page: Path, script: str, tmp: Path) -> dict:
    """Open `page` with `script` run after the view is ready; returns the object the script stored
    with `done(obj)`."""
    text = page.read_text(encoding="utf-8")
    harness = ("<script>(function(){var done=function(o){var "
               "p=document.createElement('pre');p.id='harness-out';"
               "p.textContent=JSON.stringify(o);document.body.appendChild(p);};try{" + script +
               "}catch(e){done({error:String(e)+' '+e.stack});}})();</script>")
    driven = tmp / f"harness-{page.stem}.html"
    driven.write_text(text.replace("</body>", harness + "</body>"), encoding="utf-8")
    proc = chromium("--dump-dom", driven.resolve().as_uri())
    m = re.search(r'<pre id="harness-out">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the harness wrote nothing (rc={proc.returncode}): {proc.stderr[-2000:]}"
    out = json.loads(html.unescape(m.group(1)))
    assert "error" not in out, out["error"]
    return out
