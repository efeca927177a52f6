"""`control-contrast`: the positive and the negative control's tests of the RL stage side by side (issue #18).

The positive control's verdict needs RA-RFT - (base + the same top-1 trace at inference) above 0: RL with the
trace, not the trace alone. RL can meet that without learning to USE an analogue: it also improves the bare
question (GRPO - base), and where a retrieved trace misleads the base, RL that only learns to ignore the trace
beats the base given it. The negative world (`make negative-control`: traces that carry nothing) has only those
two parts, so for each row

    contrast = row in the positive run - row in the negative run

is what the informative trace adds. Rows: the RL row, and the trace benefit (RA-RFT + top-1 - RA-RFT alone) -
(base + top-1 - base alone), which takes RL's gain on the bare question out. Per benchmark and on the mean,
with a 95% interval.

The interval: both runs score the same benchmark problems (the negative world changes the corpus, not the
benchmarks), so a contrast is paired by problem. Each run's analyze keeps the per-problem differences behind its
rows (tables/comparisons_per_problem.csv); the contrast resamples problems once for both runs
(`rarft.stats.paired_difference` on the two runs' per-problem differences, evaluation.bootstrap_resamples and
ci_level of the config). Pairing keeps what the runs share per problem (how hard it is for the same base) out of
the interval.

    python -m rarft control-contrast --positive results --negative results/negative_control \\
        --out results/negative_control/contrast.md [--config params.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from rarft.config import add_config_argument, load_config
from rarft.io import DataError, write_text
from rarft.stats import paired_difference, rng_for
from rarft.summary import read_table_csv
from rarft.tables import PER_PROBLEM_COLUMNS, RA_RFT_VS_BASE_TOP1, TRACE_BENEFIT

CONTRASTED = (RA_RFT_VS_BASE_TOP1, TRACE_BENEFIT)


def _label_rows(table: pd.DataFrame, columns, label: str, source: str, file: str) -> pd.DataFrame:
    """``table``'s rows of one comparison; a missing column or an absent comparison named with its file."""
    missing = set(columns) - set(table.columns)
    if missing:
        raise DataError(f"{source}: tables/{file} lacks column(s) {sorted(missing)}; found {list(table.columns)}")
    rows = table[table["comparison"] == label]
    if rows.empty:
        raise DataError(f"{source}: tables/{file} has no {label!r} rows (a world run of this version's analyze "
                        f"writes them)")
    return rows


def comparison_rows(comparisons: pd.DataFrame, label: str, source: str) -> pd.DataFrame:
    """One comparison's rows per benchmark, indexed by benchmark."""
    rows = _label_rows(comparisons, ("comparison", "benchmark", "diff", "ci_low", "ci_high"), label, source,
                       "comparisons.csv")
    return rows.set_index("benchmark")[["diff", "ci_low", "ci_high"]]


def per_problem_differences(table: pd.DataFrame, label: str, source: str) -> dict[str, dict[str, float]]:
    """One comparison's per-problem differences, {benchmark: {problem_id: diff}}."""
    rows = _label_rows(table, PER_PROBLEM_COLUMNS, label, source, "comparisons_per_problem.csv")
    diffs = pd.to_numeric(rows["diff"], errors="coerce")
    if diffs.isna().any():
        bad = rows[diffs.isna()].iloc[0]
        raise DataError(f"{source}: tables/comparisons_per_problem.csv: {label!r}, {bad['benchmark']} problem "
                        f"{bad['problem_id']}: diff {bad['diff']!r} is not a number")
    out: dict[str, dict[str, float]] = {}
    for bench, problem_id, diff in zip(rows["benchmark"], rows["problem_id"], diffs):
        out.setdefault(str(bench), {})[str(problem_id)] = float(diff)
    return out


def contrast(positive: pd.DataFrame, negative: pd.DataFrame, positive_per_problem: pd.DataFrame,
             negative_per_problem: pd.DataFrame, resamples: int, level: float, seed: int) -> pd.DataFrame:
    """Per contrasted comparison and benchmark both runs scored: positive, negative (each with its own
    interval, from comparisons.csv) and contrast = positive - negative, paired by problem."""
    out = []
    for label in CONTRASTED:
        pos, neg = comparison_rows(positive, label, "positive run"), comparison_rows(negative, label, "negative run")
        pos_pp = per_problem_differences(positive_per_problem, label, "positive run")
        neg_pp = per_problem_differences(negative_per_problem, label, "negative run")
        benches = [b for b in pos.index if b in neg.index and b in pos_pp and b in neg_pp]
        if not benches:
            raise DataError(f"control-contrast: the positive and negative runs share no benchmark for {label!r}")
        for b in benches:
            if set(pos_pp[b]) != set(neg_pp[b]):
                raise DataError(f"control-contrast: {label!r} on {b}: the runs scored different problems "
                                f"({len(pos_pp[b])} vs {len(neg_pp[b])}, {len(set(pos_pp[b]) ^ set(neg_pp[b]))} "
                                f"in one only); a contrast pairs the same problems")
        for r in paired_difference(pos_pp, neg_pp, benches, resamples, level, rng_for(seed, "contrast", label)):
            p, n = pos.loc[r["benchmark"]], neg.loc[r["benchmark"]]
            out.append({"comparison": label, "benchmark": r["benchmark"], "positive": p["diff"],
                        "positive_ci_low": p["ci_low"], "positive_ci_high": p["ci_high"], "negative": n["diff"],
                        "negative_ci_low": n["ci_low"], "negative_ci_high": n["ci_high"], "contrast": r["diff"],
                        "contrast_ci_low": r["ci_low"], "contrast_ci_high": r["ci_high"],
                        "n_problems": r["n_problems"]})
    return pd.DataFrame(out)


def contrast_markdown(table: pd.DataFrame) -> str:
    def cell(row, key):
        return f"{row[key]:+.1f} [{row[key + '_ci_low']:+.1f}, {row[key + '_ci_high']:+.1f}]"

    lines = ["# The RL stage's tests, positive vs negative control", "",
             "Generated by `python -m rarft control-contrast` (points %). Contrast = positive - negative: what the "
             "informative trace adds to the row, beyond RL's gain on the bare question and beyond learning to "
             "ignore a trace that carries nothing. "
             f"`{TRACE_BENEFIT}` = (RA-RFT + top-1 - RA-RFT alone) - (base + top-1 - base alone). Both runs "
             "score the same benchmark problems, so a contrast's interval is a bootstrap over problems paired across "
             "the two runs (tables/comparisons_per_problem.csv).", ""]
    for label in dict.fromkeys(table["comparison"]):
        rows = table[table["comparison"] == label]
        mean = rows[rows["benchmark"] == "mean"]
        head = rows.iloc[-1] if mean.empty else mean.iloc[0]
        holds = head["contrast_ci_low"] > 0
        lines.append(f"- {label}, positive - negative (needed to credit the informative trace: an interval above 0, "
                     f"on {head['benchmark']}): {cell(head, 'contrast')}: {'holds' if holds else 'does NOT hold'}.")
    lines += ["", "| comparison | benchmark | positive run | negative run | contrast |", "|---|---|---|---|---|"]
    lines += [f"| {r['comparison']} | {r['benchmark']} | {cell(r, 'positive')} | {cell(r, 'negative')} | "
              f"{cell(r, 'contrast')} |" for _, r in table.iterrows()]
    return "\n".join(lines) + "\n"


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft control-contrast", description=__doc__.split("\n\n")[0])
    p.add_argument("--positive", required=True, type=Path, help="the positive run's results/ folder")
    p.add_argument("--negative", required=True, type=Path, help="the negative control's results/ folder")
    p.add_argument("--out", required=True, type=Path, help="the Markdown table to write")
    add_config_argument(p)
    args = p.parse_args(argv)
    config = load_config(args.config)
    ev = config["evaluation"]
    runs = (args.positive, args.negative)
    table = contrast(*[read_table_csv(run / "tables" / "comparisons.csv") for run in runs],
                     *[read_table_csv(run / "tables" / "comparisons_per_problem.csv") for run in runs],
                     int(ev["bootstrap_resamples"]), float(ev["ci_level"]), int(config["seed"]))
    text = contrast_markdown(table)
    write_text(args.out, text)
    print("\n".join(line for line in text.splitlines() if line.startswith("- ")) + f"\nWrote {args.out}")
    return 0
