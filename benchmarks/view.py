"""`prefsift view` at 10⁴ and 10⁵ pairs, side by side in one run: the page's size, and in headless
Chromium the time to open it (navigation start → table drawn) and to filter, search and sort it.

    .venv/bin/python benchmarks/view.py       # --rows 10000,100000 --chars 300 --repeats 3

Synthetic pairs (a prompt of about a third of --chars, two answers of --chars characters, drawn from
a vocabulary so no two texts repeat), three scores, a pair type and four rules. Needs
/usr/bin/chromium (.ci/install-browser). Chromium runs without --virtual-time-budget so that
performance.now() is real."""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHROMIUM = "/usr/bin/chromium"
HARNESS = """<script>(function(){try{var t0=performance.now(),q=function(s){return document.querySelector(s);},o={open:t0};
var time=function(name,f){var a=performance.now();f();o[name]=performance.now()-a;};
var change=function(sel,v){var s=q(sel);s.value=v;s.dispatchEvent(new Event('change',{bubbles:true}));};
time('rule',function(){change('#pv-rule-lossdiff_irm','kept');}); o.ruleShown=+q('#pv-count').getAttribute('data-shown');
time('search',function(){var s=q('#pv-search');s.value='omega river';s.dispatchEvent(new KeyboardEvent('keydown',{key:'Enter'}));});
o.searchShown=+q('#pv-count').getAttribute('data-shown');
time('reset',function(){q('#pv-reset').click();});
time('sort',function(){q('#pv-table th[data-col="if"]').click();});
time('bar',function(){q('#pv-hist-if rect.hit[data-bin="3"]').dispatchEvent(new MouseEvent('click',{bubbles:true}));});
time('open_row',function(){q('#pv-table tbody tr[data-id] td').click();});
var p=document.createElement('pre');p.id='bench';p.textContent=JSON.stringify(o);document.body.appendChild(p);}catch(e){var p=document.createElement('pre');p.id='bench';
p.textContent=JSON.stringify({error:String(e)});document.body.appendChild(p);}})();</script>"""  # noqa: E501  (a script, as the page runs it)
WORDS = ("alpha beta gamma delta epsilon eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
         "tau upsilon phi chi psi omega river stone cloud apple engine copper meadow lantern "
         "harbor saddle violet quantum").split()


def synthetic(folder: Path, n: int, chars: int, seed: int = 0) -> Path:
    """folder/scores.parquet, folder/train.jsonl, folder/selection.parquet of n synthetic pairs."""
    rng = np.random.default_rng(seed)
    words = np.array(WORDS)

    def text(k):
        out = " ".join(words[rng.integers(0, len(words), size=k // 6 + 1)])
        return out[:k]

    with open(folder / "train.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"s{i:06d}", "prompt": f"{i}: " + text(chars // 3),
                                "chosen": text(chars), "rejected": text(chars),
                                "pair_type": ["clean", "flipped", "near_tie"][i % 3]}) + "\n")
    table = pd.DataFrame({"id": [f"s{i:06d}" for i in range(n)], "valid": True, "reason": "",
                          "pair_type": [["clean", "flipped", "near_tie"][i % 3] for i in range(n)],
                          "if": rng.normal(size=n), "lossdiff": rng.normal(size=n),
                          "irm": rng.normal(size=n)})
    table.to_parquet(folder / "scores.parquet")
    r = table["if"].rank(pct=True)
    sel = table[["id", "valid", "reason"]].assign(full=True, tif=r.between(0.18, 0.82),
                                                  top_if=r > 0.36,
                                                  lossdiff_irm=table[
                                                      "lossdiff"].rank(pct=True).between(0.1, 0.9)
                                                  & table["irm"].rank(pct=True).between(0.1, 0.9))
    sel.to_parquet(folder / "selection.parquet")
    (folder / "score_config.json").write_text(json.dumps({"train": str(folder / "train.jsonl")}))
    return folder


def measure(page: Path) -> dict:
    driven = page.with_name("bench.html")
    driven.write_text(page.read_text(encoding="utf-8").replace("</body>", HARNESS + "</body>"),
                      encoding="utf-8")
    with tempfile.TemporaryDirectory() as profile:
        t = time.perf_counter()
        proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                               "--no-first-run", "--disable-background-networking",
                               "--disable-component-update", "--disable-sync",
                               "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                               "--dump-dom", driven.resolve().as_uri()], capture_output=True,
                              text=True, timeout=600, env={**os.environ, "HOME": profile})
        wall = time.perf_counter() - t
    m = re.search(r'<pre id="bench">(.*?)</pre>', proc.stdout, re.S)
    if not m:
        raise SystemExit(f"no result from chromium: {proc.stderr[-2000:]}")
    out = json.loads(html.unescape(m.group(1)))
    if "error" in out:
        raise SystemExit(f"the page failed: {out['error']}")
    return {**out, "chromium_wall": wall * 1000}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="10000,100000")
    ap.add_argument("--chars", type=int, default=300,
                    help="characters of each answer (default: 300)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import prefsift

    rows = []
    for n in [int(x) for x in args.rows.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            folder = synthetic(Path(tmp), n, args.chars)
            t = time.perf_counter()
            # a score directory: scores.parquet, selection.parquet, score_config.json
            page = prefsift.view(folder)
            write_s = time.perf_counter() - t
            runs = [measure(page) for _ in range(args.repeats)]
            med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
            rows.append({"pairs": n, "MB": page.stat().st_size / 1e6, "write s": write_s, **med})
    df = pd.DataFrame(rows)
    cols = ["pairs", "MB", "write s", "open", "rule", "search", "reset", "sort", "bar", "open_row",
            "chromium_wall", "ruleShown", "searchShown"]
    print(f"median of {args.repeats} Chromium runs, milliseconds (open: navigation start to the "
          f"table drawn)")
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
