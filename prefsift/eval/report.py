"""One self-contained HTML report for a run: score distributions, how the cheap scores (LossDiff,
IRM) track the influence function, what each selection keeps, and how the trained arms did.

Every figure is a PNG embedded as base64 (and also written to ``figures/``); the page has inline CSS
and no external reference, so it can be mailed or archived as one file."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from .report_html import CSS, RENDER_CHECK, Figures, esc, html_table, section
from .tables import BASELINES
from .truth import detection_table, rating_leak_share

SCORE_LABELS = {"irm": "IRM", "lossdiff": "LossDiff", "if": "IF"}
CURVE_KEYS = (("loss", "train loss"), ("rewards/margins", "train margin"),
              ("eval_loss", "eval loss"), ("eval_rewards/margins", "eval margin"))
# Online RL stages (route rm_rl) log the reward model's reward and the KL to π_ref instead.
RL_CURVE_KEYS = (("loss", "train loss (GRPO's is ≈ 0 with one iteration)"),
                 ("reward", "reward (the arm's RM)"),
                 ("kl", "KL to π_ref"), ("reward_std", "reward sd within a group"))


def _num(scores: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(scores[col], errors="coerce").to_numpy(dtype=float)


def _corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan"), float("nan"), n
    return float(stats.pearsonr(x[ok], y[ok])[0]), float(stats.spearmanr(x[ok], y[ok])[0]), n


def _summary(scores: pd.DataFrame) -> str:
    valid = scores["valid"].astype(bool).to_numpy()
    n, k = len(scores), int(valid.sum())
    body = html_table(pd.DataFrame({"pairs in": [n], "scored": [k], "not scored": [n - k]}))
    if n - k:
        reasons = scores.loc[~valid, "reason"].fillna("").astype(str).replace("", "(no reason)")
        counts = reasons.value_counts().rename_axis("reason").rename("pairs").reset_index()
        body += "<h3>Not scored, by reason</h3>" + html_table(counts)
    return section("summary", "Summary", body)


def _histograms(scores, figs) -> str:
    cols = [c for c in SCORE_LABELS if c in scores and np.isfinite(_num(scores, c)).any()]
    if not cols:
        return ""
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.2), squeeze=False)
    for ax, c in zip(axes[0], cols):
        v = _num(scores, c)
        ax.hist(v[np.isfinite(v)], bins=40, color="#4c72b0")
        ax.set_title(SCORE_LABELS[c]), ax.set_ylabel("pairs")
    fig.tight_layout()
    return section("histograms", "Score distributions",
                    figs.embed(fig, "histograms",
                               "Histograms of the scores over the scored pairs."))


def _scatters(scores, figs) -> str:
    pairs = [c for c in ("lossdiff", "irm") if c in scores and "if" in scores]
    if not pairs:
        return ""
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4), squeeze=False)
    x = _num(scores, "if")
    for ax, c in zip(axes[0], pairs):
        y = _num(scores, c)
        r, rho, n = _corr(x, y)
        ok = np.isfinite(x) & np.isfinite(y)
        ax.scatter(x[ok], y[ok], s=8, alpha=0.5, color="#dd8452")
        ax.set_xlabel("IF"), ax.set_ylabel(SCORE_LABELS[c])
        ax.set_title(f"{SCORE_LABELS[c]} vs IF: Pearson r={r:.3f}, Spearman ρ={rho:.3f} (n={n})",
                     fontsize=9)
    fig.tight_layout()
    return section("scatter", "Cheap scores against the influence function",
                    figs.embed(fig, "scatter_if",
                               "Each dot is a scored pair; correlations in the titles."))


def _layers(scores, figs) -> str:
    groups = [c for c in scores.columns if c.startswith("if_")]
    cheap = [c for c in ("lossdiff", "irm") if c in scores]
    if not groups or not cheap:
        return ""
    rows = []
    for g in groups:
        row = {"layer group": g[3:]}
        for c in cheap:
            r, rho, _ = _corr(_num(scores, c), _num(scores, g))
            row[f"{SCORE_LABELS[c]} Pearson r"], row[f"{SCORE_LABELS[c]} Spearman ρ"] = r, rho
        rows.append(row)
    table = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * len(groups) * len(cheap) + 2), 3.6))
    pos, w = np.arange(len(groups)), 0.8 / len(cheap)
    for i, c in enumerate(cheap):
        ax.bar(pos + (i - (len(cheap) - 1) / 2) * w, table[f"{SCORE_LABELS[c]} Spearman ρ"], w,
               label=SCORE_LABELS[c])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(pos, table["layer group"], rotation=45, ha="right")
    ax.set_ylabel("Spearman ρ with IF of group"), ax.set_ylim(-1, 1), ax.legend()
    fig.tight_layout()
    cap = ("Spearman correlation of LossDiff and IRM with each layer group's IF: which layers the "
           "cheap scores track.")
    return section("layers", "IF by layer group",
                   figs.embed(fig, "if_by_layer", cap) + html_table(table))


def _masks(scores, selections) -> dict[str, np.ndarray]:
    out = {}
    for name, m in (selections or {}).items():
        m = np.asarray(m, dtype=bool)
        if m.shape != (len(scores),):
            raise ValueError(f"selection {name!r} has shape {m.shape}, expected ({len(scores)},)")
        out[name] = m
    return out


def _overlap(scores, masks, figs) -> str:
    if "tif" in masks:
        tif = masks["tif"]
    elif "tif" in scores:
        tif = scores["tif"].fillna(False).astype(bool).to_numpy()
    else:
        return ""
    others = {k: v for k, v in masks.items() if k != "tif"}
    if not others:
        return ""
    rows = []
    for name, m in others.items():
        inter, lo = int((m & tif).sum()), min(int(m.sum()), int(tif.sum()))
        rows.append({"selection": name, "kept": int(m.sum()), "TIF kept": int(tif.sum()),
                     "both": inter, "overlap": inter / lo if lo else float("nan")})
    table = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.8 * len(rows) + 2), 3.4))
    ax.bar(table["selection"], table["overlap"], color="#55a868")
    ax.set_ylim(0, 1.05), ax.set_ylabel("|A∩TIF| / min(|A|,|TIF|)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    cap = ("Overlap coefficient of each selection with the TIF selection (1 = the smaller set lies "
           "inside the other).")
    return section("overlap", "Overlap with TIF",
                   figs.embed(fig, "overlap_tif", cap) + html_table(table))


def _lab(scores, masks, figs) -> str:
    if "pair_type" not in scores or not masks:
        return ""
    types = scores["pair_type"].astype(str).to_numpy()
    names = sorted(set(types))
    rows = {"(scored)": scores["valid"].astype(bool).to_numpy(), **masks}
    share = pd.DataFrame([[float(m[types == t].mean()) for t in names] for m in rows.values()],
                         index=list(rows), columns=names)
    share.index.name = "selection"
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 0.5 * len(rows) + 1.5))
    im = ax.imshow(share.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            v = share.iat[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k",
                    fontsize=9)
    (ax.set_xticks(range(len(names)), names, rotation=30, ha="right"),
     ax.set_yticks(range(len(rows)), list(rows)))
    fig.colorbar(im, ax=ax, label="share kept")
    fig.tight_layout()
    cap = ("Share of each true pair type kept by each selection; (scored) is the share that could "
           "be scored at all.")
    counts = pd.Series(types).value_counts().rename_axis("pair type").rename("pairs").reset_index()
    return section("lab", "On the lab: what each selection keeps",
                    figs.embed(fig, "lab_kept", cap) + html_table(share, index=True)
                    + html_table(counts) + _truth(scores))


def _truth(scores) -> str:
    out, leak, table = "", rating_leak_share(scores), detection_table(scores)
    if leak is not None:
        verdict = ("the ratings agree with the labels, as the rater who labelled would rate"
                   if leak[0] == 0 else
                   "a leak: rules that read the ratings see part of the truth the labels hide, as "
                   "a team's would not")
        out += (f"<p>Ratings: on the {leak[1]} wrong labels the rating gap points to the truth for "
                f"{100 * leak[0]:.1f} % of them ({esc(verdict)}).</p>")
    return out + ("" if table is None
                  else "<p>How well each score finds the wrong labels: the AUC of \"a low score, "
                  "a wrong label\" (0.5: chance), over all pairs and by length group.</p>"
                  + html_table(table.round(3), True))


def _winrate(evaluation, figs) -> str:
    if evaluation is None or len(evaluation) == 0:
        return ""
    ev = evaluation.copy()
    agg = ev.groupby("arm", sort=False)["win_rate"].agg(["mean", "min", "max", "count"])
    use_ci = {"low", "high"} <= set(ev) and ev[["low", "high"]].notna().all().all()
    if use_ci:
        agg["lo"], agg["hi"] = (ev.groupby("arm", sort=False)["low"].mean(),
                                ev.groupby("arm", sort=False)["high"].mean())
        how = "error bars: mean over seeds of the bootstrap 95% interval bounds"
    else:
        agg["lo"], agg["hi"] = agg["min"], agg["max"]
        how = "error bars: min–max over seeds"
    y = np.arange(len(agg))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(agg) + 1.6))
    err = np.vstack([(agg["mean"] - agg["lo"]).clip(lower=0),
                     (agg["hi"] - agg["mean"]).clip(lower=0)])
    ax.errorbar(agg["mean"], y, xerr=err, fmt="o", capsize=4, label="win rate")
    if "head_to_head" in ev and ev["head_to_head"].notna().any():
        ax.plot(ev.groupby("arm", sort=False)["head_to_head"].mean().reindex(agg.index), y, "s",
                color="#c44e52", label="vs full-data arm")
        ax.legend(fontsize=8)
    ax.axvline(0.5, color="gray", ls="--", lw=1)
    ax.set_yticks(y, agg.index), ax.invert_yaxis(), ax.set_xlim(0, 1), ax.set_xlabel("win rate")
    fig.tight_layout()
    cap = f"Win rate per arm; point = mean over seeds, {how}; dashed line = 50%."
    cols = [c for c in ("arm", "seed", "win_rate", "low", "high", "score", "head_to_head")
            if c in ev]
    per_arm = agg.rename(columns={"mean": "mean win_rate", "count": "seeds", "lo": "bar low",
                                  "hi": "bar high"})
    return section("winrate", "Win rate per arm", figs.embed(fig, "winrate", cap)
                    + html_table(per_arm[["mean win_rate", "bar low", "bar high", "seeds"]],
                                 index=True)
                    + "<h3>Every arm × seed</h3>" + html_table(ev[cols]))


def _paired(summary, figs) -> str:
    """Each arm's paired difference from `random` and `full`, with its two-way bootstrap
    interval."""
    bases = [b for b in BASELINES if summary is not None and f"d_wr_{b}" in summary]
    if not bases:
        return ""
    fig, axes = plt.subplots(1, len(bases), figsize=(5 * len(bases), 0.45 * len(summary) + 1.6),
                             squeeze=False)
    y = np.arange(len(summary))
    for ax, b in zip(axes[0], bases):
        m, lo, hi = (100 * summary[f"d_wr_{b}{x}"].to_numpy(dtype=float)
                     for x in ("", "_low", "_high"))
        ax.errorbar(m, y, xerr=np.vstack([(m - lo).clip(min=0), (hi - m).clip(min=0)]), fmt="o",
                    capsize=4)
        ax.axvline(0, color="gray", ls="--", lw=1)
        (ax.set_yticks(y, summary["arm"]), ax.invert_yaxis(),
         ax.set_xlabel(f"WinRate − {b} (points)"))
    fig.tight_layout()
    cap = ("Paired difference of each arm's WinRate from the random and full arms on the same "
           "prompts and sampling seeds; bars: 95% interval of a bootstrap resampling prompts and "
           "training seeds together.")
    cols = ["arm"] + [c for b in bases
                      for c in (f"d_wr_{b}", f"d_wr_{b}_low", f"d_wr_{b}_high", f"d_score_{b}",
                                   f"d_score_{b}_low", f"d_score_{b}_high") if c in summary]
    return section("paired", "Paired differences against random and full",
                    figs.embed(fig, "paired", cap) + html_table(summary[cols]))


def _calibration(calibrations, figs) -> str:
    """Each calibrated arm's probes: the validation value of every candidate window, the choice, the
    cost."""
    if not calibrations:
        return ""
    fig, axes = plt.subplots(1, len(calibrations), figsize=(5.5 * len(calibrations), 3.6),
                             squeeze=False)
    body = ""
    for ax, (arm, cal) in zip(axes[0], calibrations.items()):
        rows = pd.DataFrame(cal["candidates"])
        judged = "win_rate" in rows
        if not judged and "val_loss" not in rows:  # every window was empty: nothing was probed
            ax.set_axis_off(), ax.set_title(f"{arm}: no window held a pair", fontsize=9)
            continue
        v = (100 * rows["win_rate"].to_numpy(dtype=float) if judged
             else rows["val_loss"].to_numpy(dtype=float))
        x = np.arange(len(rows))
        colours = ["C3" if i == cal["chosen"] else "C0" for i in x]
        if judged:
            err = np.vstack([v - 100 * rows["wr_low"].to_numpy(dtype=float),
                             100 * rows["wr_high"].to_numpy(dtype=float) - v])
            ax.errorbar(x, v, yerr=err.clip(min=0), fmt="none", ecolor="gray", capsize=3)
        ax.scatter(x, v, c=colours, zorder=3)
        ax.set_xticks(x, [f"{lo:.0f}/{hi:.0f}" for lo, hi in zip(rows["low"], rows["high"])],
                      rotation=60, fontsize=7)
        ax.set_xlabel("% cut from the bottom / top"), ax.set_title(arm, fontsize=9)
        ax.set_ylabel("probe WinRate on validation (%)" if judged else "probe validation loss")
        cols = [c for c in ("window", "n_pairs", "win_rate", "wr_low", "wr_high", "val_loss",
                            "val_margin", "steps", "train_seconds", "judge_seconds") if c in rows]
        shown = rows[cols].copy()
        shown.insert(0, "chosen", ["yes" if i == cal["chosen"] else "" for i in x])
        arm_s = cal.get("arm_seconds")
        by = "WinRate vs π_ref on the validation prompts" if judged else "the validation loss"
        body += (f"<h3>{esc(arm)}</h3><p>{len(rows)} probes of {cal['probe_epochs']:g} epoch, "
                 f"judged by {by}; they took "
                 f"{cal['probe_seconds']:.0f} s ({cal['probe_steps']} steps)"
                 + (f", the arm's own training {arm_s:.0f} s over its seeds" if arm_s else "")
                 + f". Chosen: {esc(cal['window'])} ({cal['n_pairs']} pairs).</p>"
                 + html_table(shown))
    fig.tight_layout()
    cap = ("Each candidate window's probe (a short training from θ on its pairs), valued on "
           "validation data only; red: the window the arm was then trained on.")
    return section("calibration", "Calibrated arms: the probes",
                   figs.embed(fig, "calibration", cap) + body)


def _curves(curves, figs) -> str:
    if not curves:
        return ""
    rl = any(isinstance(e, dict) and "kl" in e for log in curves.values() for e in (log or []))
    keys = RL_CURVE_KEYS if rl else CURVE_KEYS
    series = {k: {} for k, _ in keys}
    for arm, log in curves.items():
        for key, _ in keys:
            pts = [(e.get("step", i), e[key]) for i, e in enumerate(log or [])
                   if isinstance(e, dict) and e.get(key) is not None]
            if pts:
                series[key][arm] = np.asarray(pts, dtype=float)
    if not any(series.values()):
        return ""
    # Runs are named "ARM/seedN": one colour per arm in every panel, one legend entry per arm.
    groups = list(dict.fromkeys(run.split("/")[0] for run in curves))
    colour = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    for ax, (key, label) in zip(axes.ravel(), keys):
        for run, pts in series[key].items():
            arm = run.split("/")[0]
            ax.plot(pts[:, 0], pts[:, 1], marker="o" if len(pts) < 20 else None, ms=2.5, lw=1.2,
                    alpha=0.8, color=colour[arm])
        ax.set_title(label), ax.set_xlabel("step")
        if not series[key]:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes,
                    color="gray")
    handles = [plt.Line2D([], [], color=colour[g], lw=2, label=g) for g in groups]
    fig.legend(handles=handles, loc="center right", fontsize=8, title="arm (all seeds)")
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return section("curves", "Training curves",
                    figs.embed(fig, "curves",
                               ("Online RL per arm: loss, the RM's reward, the KL to π_ref and "
                                "the reward's spread in a group; " if rl else
                                "Training and validation DPO loss and reward margin per arm; ")
                               + "each seed is one line in its arm's colour."))


def write_report(out_dir, scores: pd.DataFrame, selections: dict[str, np.ndarray] | None = None,
                 evaluation: pd.DataFrame | None = None,
                 curves: dict[str, list[dict]] | None = None,
                 title: str = "prefsift report", notes: list[str] | None = None,
                 paired: pd.DataFrame | None = None, calibrations: dict[str, dict] | None = None,
                 extras: dict[str, str] | None = None) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and its figures under ``out_dir/figures/``.
    ``extras``: HTML added at the end of the section of that id (e.g. example pairs next to a plot);
    ``extras["pairs"]`` is a section of its own after the summary (the pairs browser)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = Figures(out_dir)
    masks = _masks(scores, selections)
    parts = [_summary(scores), _histograms(scores, figs), _scatters(scores, figs),
             _layers(scores, figs),
             _overlap(scores, masks, figs), _lab(scores, masks, figs), _winrate(evaluation, figs),
             _paired(paired, figs), _calibration(calibrations, figs), _curves(curves, figs)]
    extras = dict(extras or {})
    if extras.get("pairs"):
        parts.insert(1, section("pairs", "The pairs", extras.pop("pairs")))
    parts = [p[:-len("</section>")] + extras[p[13:p.index('"', 13)]] + "</section>"
             if p and p[13:p.index('"', 13)] in extras else p for p in parts]
    note_html = (("<ul class=\"notes\">" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
                 if notes else "")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta '
            f'charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>{note_html}"
            + "".join(p for p in parts if p) + RENDER_CHECK + "</body></html>\n")
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
