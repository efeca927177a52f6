"""Figures 3 and 4 of the paper and the gain-vs-similarity scatter (matplotlib, Agg, PNG + PDF).

Each function takes plain data and an output stem (`results/figures/fig3_curves`) and writes
`<stem>.png` and `<stem>.pdf` byte-identically for the same data (fixed metadata, no timestamps).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rarft.io import atomic_path  # noqa: E402

GRPO_COLOR, RARFT_COLOR, RARFT_LIGHT = "#7f7f7f", "#1f4e9c", "#9ec3ef"
# No creation dates or version strings: a rerun on the same data gives the same bytes.
PNG_METADATA = {"Software": None}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}


def save_figure(fig, stem: str | Path) -> list[Path]:
    stem = Path(stem)
    paths = []
    for ext, meta in (("png", PNG_METADATA), ("pdf", PDF_METADATA)):
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=meta)
        paths.append(path)
    plt.close(fig)
    return paths


def _panels(n: int, width: float = 4.6, height: float = 3.4):
    cols = min(n, 2 if n == 4 else 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def figure_curves(curves: pd.DataFrame, stem: str | Path, labels: dict[str, str],
                  bands: pd.DataFrame | None = None) -> list[Path]:
    """Figure 3: validation average@k against step, one line per arm, one panel per benchmark.

    `curves` columns: arm, step, benchmark, average_at_k (fraction), k. Step-0 values are given in the
    legend (the paper's point: RA-RFT starts lower and overtakes). `bands` (analysis.curve_bands: arm,
    benchmark, step, ci_low, ci_high as fractions) shades each arm's interval over problems; an arm or
    step without a row has no band (curve files written before per-problem accuracies were recorded).
    """
    benches = list(dict.fromkeys(curves["benchmark"]))
    fig, axes = _panels(len(benches))
    colors = {"grpo": GRPO_COLOR, "rarft": RARFT_COLOR}
    banded = bands is not None and not bands.empty
    for ax, bench in zip(axes, benches):
        sub = curves[curves["benchmark"] == bench]
        step0 = sub[sub["step"] == 0].groupby("arm")["average_at_k"].first()
        for arm, adf in sub.groupby("arm", sort=False):
            adf = adf.sort_values("step")
            y = 100 * adf["average_at_k"].to_numpy()
            # step-0 value in the legend: a label next to the point would sit on the other arm's line
            start = f" (step 0: {100 * step0[arm]:.1f})" if arm in step0.index else ""
            ax.plot(adf["step"], y, marker="o", ms=4, lw=2, color=colors.get(arm),
                    label=labels.get(arm, arm) + start)
            band = bands[(bands["arm"] == arm) & (bands["benchmark"] == bench)].sort_values("step") if banded \
                else None
            if band is not None and len(band):
                ax.fill_between(band["step"], 100 * band["ci_low"], 100 * band["ci_high"], color=colors.get(arm),
                                alpha=0.18, lw=0)
        ax.margins(y=0.15)
        steps = sorted(sub["step"].unique())
        if len(steps) <= 12:
            ax.set_xticks(steps)  # ticks at the evaluated steps
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        k = int(sub["k"].iloc[0]) if "k" in sub and len(sub) else None
        ax.set_title(bench)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"validation average@{k} (%)" if k else "validation average@k (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("Figure 3: validation accuracy during training (step-0 values in the legend"
                 + ("; shaded: interval over problems)" if banded else ")"))
    fig.tight_layout()
    return save_figure(fig, stem)


def figure_contexts(per_context: pd.DataFrame, grpo: pd.DataFrame, stem: str | Path, top_k: int) -> list[Path]:
    """Figure 4: per benchmark problem, RA-RFT accuracy under each top-k context vs GRPO.

    `per_context` columns: benchmark, problem_id, rank (0 = top-1), accuracy (fraction);
    `grpo` columns: benchmark, problem_id, accuracy. Problems sorted by GRPO's accuracy; a vertical
    bar spans the best and worst context; dashed lines are benchmark means.
    """
    benches = list(dict.fromkeys(per_context["benchmark"]))
    fig, axes = _panels(len(benches), width=6.4, height=3.6)
    for ax, bench in zip(axes, benches):
        pc = per_context[per_context["benchmark"] == bench]
        wide = pc.pivot(index="problem_id", columns="rank", values="accuracy") * 100
        g = grpo[grpo["benchmark"] == bench].set_index("problem_id")["accuracy"] * 100
        order = sorted(wide.index, key=lambda p: (g.get(p, np.nan) if p in g.index else -1, p))
        wide = wide.loc[order]
        x = np.arange(len(wide))
        lo, hi = wide.min(axis=1).to_numpy(), wide.max(axis=1).to_numpy()
        ax.vlines(x, lo, hi, color=RARFT_LIGHT, lw=3, alpha=0.8, zorder=1, label=f"range over the top-{top_k}")
        for j, rank in enumerate(wide.columns[1:]):
            ax.scatter(x, wide[rank], s=14, color=RARFT_LIGHT, edgecolor="none", zorder=2,
                       label=f"RA-RFT, contexts 2-{top_k}" if j == 0 else None)
        ax.scatter(x, wide[wide.columns[0]], s=22, color=RARFT_COLOR, zorder=3, label="RA-RFT, top-1 context")
        means = [(wide[wide.columns[0]].mean(), RARFT_COLOR, "RA-RFT top-1 mean")]
        if len(g):
            ax.plot(x, [g.get(p, np.nan) for p in wide.index], color=GRPO_COLOR, marker="_", ms=9,
                    lw=0, mew=2, zorder=4, label="GRPO (no context)")
            means.append((g.mean(), GRPO_COLOR, "GRPO mean"))
        close = len(means) == 2 and abs(means[0][0] - means[1][0]) < 4  # labels would print over each other
        upper = max(range(len(means)), key=lambda i: means[i][0])
        for i, (value, color, label) in enumerate(means):
            ax.axhline(value, color=color, ls="--", lw=1.2, label=f"{label} (dashed)")
            dy = (5 if i == upper else -5) if close else 0  # the higher mean labelled above, the lower below
            ax.annotate(f"{value:.1f}", (1.0, value), xycoords=("axes fraction", "data"), xytext=(3, dy),
                        textcoords="offset points", va="center", fontsize=8, color=color, weight="bold")
        ax.set_title(bench)
        ax.set_xlabel("problem (sorted by GRPO accuracy)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(-3, 103)
        ax.set_xlim(-1, len(wide))
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Figure 4: RA-RFT accuracy under each of its top-{top_k} retrieved contexts")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save_figure(fig, stem)


def figure_similarity(df: pd.DataFrame, stem: str | Path) -> tuple[list[Path], dict[str, float]]:
    """Measured gain against off-the-shelf similarity, coloured by `oracle` (same latent strategy).

    Returns the paths and {"pearson", "spearman", "n"} over all plotted pairs.
    """
    stats = {"pearson": float(df["similarity"].corr(df["gain"])),
             "spearman": float(df["similarity"].corr(df["gain"], method="spearman")), "n": int(len(df))}
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    groups = [(None, df, "#4c72b0", "pairs")]
    if "oracle" in df and df["oracle"].notna().any():
        o = df["oracle"].astype("boolean")
        groups = [(True, df[o.fillna(False).to_numpy(bool)], "#2ca02c", "same latent strategy"),
                  (False, df[~o.fillna(True).to_numpy(bool)], "#d62728", "different strategy"),
                  (None, df[o.isna().to_numpy(bool)], "#7f7f7f", "strategy unknown")]
    for _, sub, color, label in groups:
        if not len(sub):
            continue
        if "stderr" in sub and sub["stderr"].notna().any():
            ax.errorbar(sub["similarity"], 100 * sub["gain"], yerr=100 * sub["stderr"].fillna(0), fmt="none",
                        ecolor=color, alpha=0.15, lw=0.8)
        ax.scatter(sub["similarity"], 100 * sub["gain"], s=14, alpha=0.6, color=color,
                   label=f"{label} (n={len(sub)}, mean gain {100 * sub['gain'].mean():+.1f})")
    if len(df) >= 2 and df["similarity"].nunique() > 1:
        slope, icpt = np.polyfit(df["similarity"], 100 * df["gain"], 1)
        xs = np.linspace(df["similarity"].min(), df["similarity"].max(), 50)
        ax.plot(xs, slope * xs + icpt, color="black", lw=1.2, ls="--", label="least-squares fit (all)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("off-the-shelf cosine similarity (query, context)")
    ax.set_ylabel("measured gain: P(correct | q, c) - P(correct | q)  (points)")
    ax.set_title(f"Context gain vs semantic similarity\nPearson r = {stats['pearson']:.2f}, "
                 f"Spearman rho = {stats['spearman']:.2f}, n = {stats['n']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, stem), stats
