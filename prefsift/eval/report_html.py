"""The report's HTML pieces: its style, escaping and number formats, tables, sections, and the
figures embedded as base64 PNGs (each also written to ``figures/``)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;\
color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}\
th,td{border:1px solid #bbb;padding:.25em .6em}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}img{max-width:100%;height:auto}figcaption{font-size:.9em;color:#555}
.notes li{color:#333}"""


RENDER_CHECK = """<div id="render-check" data-loaded="-1" data-total="-1"></div>
<script>window.addEventListener("load",function(){var im=document.images,n=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)n++;}
var d=document.getElementById("render-check");d.setAttribute("data-loaded",n);
d.setAttribute("data-total",im.length);});</script>"""


def esc(x) -> str:
    return html.escape(str(x))


def fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.3f}"
    return esc(v)


def html_table(df: pd.DataFrame, index: bool = False) -> str:
    if index:
        df = df.reset_index()
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False):
        cells = []
        for v in rec:
            num = (isinstance(v, (int, float, np.integer, np.floating))
                   and not isinstance(v, (bool, np.bool_)))
            cells.append(f'<td class="num">{fmt(v)}</td>' if num else f"<td>{fmt(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


class Figures:
    def __init__(self, out_dir: Path):
        self.dir = out_dir / "figures"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []

    def embed(self, fig, name: str, caption: str) -> str:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        data = buf.getvalue()
        path = self.dir / f"{name}.png"
        path.write_bytes(data)
        self.paths.append(path)
        b64 = base64.b64encode(data).decode("ascii")
        return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{b64}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>")


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'
