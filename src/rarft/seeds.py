"""`seed-spread`: the headline numbers of several whole-DAG runs that differ only in the top-level `seed`.

Each run (`make seeds`) is the full DAG in its own working directory with `seed: <n>` on top of params.yaml:
the world (`data.world.seed`) and so the benchmarks stay the same; the policy warm-up, the candidate draw
of the labels, retriever and policy training, sampling and the bootstrap change. This stage reads each
run's copied results/ folder and writes, per headline measure, its value under every seed and the mean,
sample standard deviation (n - 1), min, max and n over seeds:

  Table 1      average@k on the mean over benchmarks of base (none), GRPO (none), RA-RFT (top1-<rl.retriever>),
               and the paired differences RA-RFT - GRPO and GRPO - base           (metrics.json, points %)
  when present RA-RFT - base + top-1 at inference, RA-RFT - GRPO on corpus-only-knowledge items, the trace benefit
               (what RA-RFT gets out of its trace minus what the base gets), RA-RFT's
               validation curve last step - step 0, RA-RFT's zero-variance rollout groups (metrics.json)
  retrievers   recall@1 of rl.retriever and offshelf on the held-out queries, and their difference
               (reports/retrievers.csv, against oracle-strategy, else <labels.train_on>-labels; a fraction)
  labelers     Cohen's kappa of the gain labeler vs the oracle (reports/labelers.csv)
  probe        init-policy's accuracy with an analogue (its `same_strategy` key), over all benchmark items and on the
               lowest benchmark (reports/policy_probe.json; the world's tiny policy only; a fraction)

Which seed a folder holds is given on the command line (`--seeds`, in the order of `--results`): nothing
in results/ records it. A folder written by `make seeds` also holds the override file `seed.yaml`; when it
is there it must agree. A measure missing from a seed's files is a blank cell, counted out of n; a folder
without metrics.json is an error.

    python -m rarft seed-spread --results results results/seeds/seed_1 results/seeds/seed_2 \
        --seeds 0 1 2 --out results/seeds
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rarft.config import add_config_argument, load_config
from rarft.io import DataError, atomic_path, read_json, write_text
from rarft.tables import RA_RFT_VS_BASE_TOP1, RA_RFT_VS_GRPO, STRATEGY_GROUPS, TRACE_BENEFIT, diff_key, main_retriever

STATS = ("mean", "sd", "min", "max", "n")


@dataclass
class Measure:
    name: str
    unit: str
    source: str  # where the value comes from, shown in the table


def measures(retriever: str, against: str) -> list[Measure]:
    """The headline rows, in table order."""
    ra = f"top1-{retriever}"
    recall = f"reports/retrievers.csv: recall@1 against {against}"
    return [
        Measure("Table 1: base, average@k, mean over benchmarks", "%", "metrics.json: avg_at_k.base.none.mean"),
        Measure("Table 1: GRPO, average@k, mean over benchmarks", "%", "metrics.json: avg_at_k.grpo.none.mean"),
        Measure(f"Table 1: RA-RFT ({ra}), average@k, mean over benchmarks", "%",
                f"metrics.json: avg_at_k.rarft.{ra}.mean"),
        Measure("Table 1: RA-RFT - GRPO (mean)", "points", f"metrics.json: {diff_key(RA_RFT_VS_GRPO, 'mean')}"),
        Measure("Table 1: GRPO - base (mean)", "points", f"metrics.json: {diff_key('GRPO - base', 'mean')}"),
        Measure(f"retrievers: {retriever} recall@1", "fraction", f"{recall}, {retriever}"),
        Measure("retrievers: offshelf recall@1", "fraction", f"{recall}, offshelf"),
        Measure(f"retrievers: {retriever} - offshelf recall@1", "fraction", f"{recall}, difference"),
        Measure("labelers: gain vs oracle, Cohen's kappa", "kappa", "reports/labelers.csv: agreement gain/oracle"),
        Measure("policy probe: with an analogue, all benchmark items", "fraction",
                "reports/policy_probe.json: same_strategy, weighted by n"),
        Measure("policy probe: with an analogue, lowest benchmark", "fraction",
                "reports/policy_probe.json: same_strategy, min over benchmarks"),
    ]


def optional_measures() -> list[tuple[Measure, str]]:
    """Rows shown only when some seed's metrics have them (metrics_full.json), with their key: the control's
    tests of the RL stage (analyze writes the strategy split in the embedded world only, the curve and rollout
    rows when those arms ran)."""
    corpus_only = f"{RA_RFT_VS_GRPO}, {STRATEGY_GROUPS['corpus_only']}"
    rows = [(f"comparisons: {RA_RFT_VS_BASE_TOP1} (mean)", "points", diff_key(RA_RFT_VS_BASE_TOP1, "mean")),
            (f"comparisons: {corpus_only} (mean)", "points", diff_key(corpus_only, "mean")),
            (f"comparisons: {TRACE_BENEFIT} (mean)", "points", diff_key(TRACE_BENEFIT, "mean")),
            ("Figure 3: RA-RFT validation curve, last step - step 0 (mean)", "points",
             "curve.rarft.last_minus_step0.mean"),
            ("RL signal: RA-RFT rollout groups with zero reward variance", "%", "rl_signal.rarft.zero_variance_share")]
    return [(Measure(name, unit, f"metrics_full.json: {key}"), key) for name, unit, key in rows]


# ---------------------------------------------------------------- reading one seed's results/

# analyze writes every number to metrics_full.json and the headline to metrics.json; a folder written before
# that split holds metrics.json only, with every number
METRICS_FILES = ("metrics_full.json", "metrics.json")


def read_metrics(results: Path) -> dict[str, float]:
    path = next((results / name for name in METRICS_FILES if (results / name).is_file()), None)
    if path is None:
        raise DataError(f"{results}: no metrics.json (expected {results / 'metrics.json'}; is this a results/ folder "
                        "of a finished run?)")
    return {k: float(v) for k, v in read_json(path).items() if isinstance(v, (int, float))}


def read_recalls(path: Path) -> dict[tuple[str, str], float]:
    """{(retriever, against): recall@1} from evaluate-retrievers' CSV, in its own unit (a fraction); {} if absent."""
    if not path.is_file():
        return {}
    df = pd.read_csv(path)
    missing = {"retriever", "against", "recall@1"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; found {list(df.columns)}")
    values = pd.to_numeric(df["recall@1"], errors="coerce")
    return {(str(r), str(a)): float(v) for r, a, v in zip(df["retriever"], df["against"], values)
            if not math.isnan(v)}


def read_kappa(path: Path, a: str = "gain", b: str = "oracle") -> float | None:
    """Cohen's kappa between labelers a and b (either order) from compare-labelers' CSV; None if absent."""
    if not path.is_file():
        return None
    df = pd.read_csv(path)
    missing = {"section", "labeler", "other", "metric", "value"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; found {list(df.columns)}")
    pair = df["labeler"].astype(str).str.cat(df["other"].astype(str), sep="/").isin([f"{a}/{b}", f"{b}/{a}"])
    rows = df[(df["section"] == "agreement") & (df["metric"] == "cohen_kappa") & pair]
    values = pd.to_numeric(rows["value"], errors="coerce").dropna()
    return float(values.iloc[0]) if len(values) else None


def read_probe(path: Path) -> tuple[float, float]:
    """init-policy's probe (the world's tiny policy only): accuracy with an analogue over all benchmark
    items and on the lowest benchmark; NaN, NaN if the run wrote none."""
    if not path.is_file():
        return math.nan, math.nan
    rows = read_json(path).get("benchmarks") or {}
    try:
        pairs = [(float(r["same_strategy"]), int(r["n"])) for r in rows.values()]
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: every benchmark needs numeric 'same_strategy' and 'n' ({e})") from None
    if not pairs:
        return math.nan, math.nan
    return sum(a * n for a, n in pairs) / sum(n for _, n in pairs), min(a for a, _ in pairs)


def recorded_seed(results: Path) -> int | None:
    """The seed of `make seeds`' override file copied into the folder (seed.yaml), if there is one."""
    path = results / "seed.yaml"
    if not path.is_file():
        return None
    seed = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("seed")
    if not isinstance(seed, int):
        raise DataError(f"{path}: expected `seed: <integer>`")
    return seed


def choose_against(recalls: list[dict[tuple[str, str], float]], prefer: tuple[str, ...]) -> str:
    """One label set for every seed: the first of `prefer` any seed has (the world's oracle, else the trained-on
    labels, as Table 3 does)."""
    present = {a for r in recalls for _, a in r}
    return next((p for p in prefer if p in present), prefer[0])


def seed_values(metrics: dict[str, float], recalls: dict[tuple[str, str], float], kappa: float | None,
                retriever: str, against: str, probe: tuple[float, float] = (math.nan, math.nan)) -> list[float]:
    """One seed's value of every measure (NaN where its files lack it), in the order of `measures`."""
    ra = f"top1-{retriever}"
    keys = ("avg_at_k.base.none.mean", "avg_at_k.grpo.none.mean", f"avg_at_k.rarft.{ra}.mean",
            diff_key(RA_RFT_VS_GRPO, "mean"), diff_key("GRPO - base", "mean"))
    out = [metrics.get(k, math.nan) for k in keys]
    fine, off = recalls.get((retriever, against), math.nan), recalls.get(("offshelf", against), math.nan)
    out += [fine, off, fine - off, math.nan if kappa is None else kappa, *probe]
    return out


# ---------------------------------------------------------------- the table

def spread_table(results: list[str | Path], seeds: list[int], retriever: str,
                 prefer: tuple[str, ...]) -> pd.DataFrame:
    """One row per headline measure: measure, unit, seed_<s> per seed, mean, sd, min, max, n, source.

    ``retriever`` is the RA arms' retriever (rl.retriever); ``prefer`` the recall@1 ground truths to compare
    against, best first (the first that any run has wins)."""
    results = [Path(r) for r in results]
    if len(results) != len(seeds):
        raise DataError(f"{len(results)} results folder(s) but {len(seeds)} seed(s): give one seed per folder, "
                        "in the same order")
    if len(set(seeds)) != len(seeds):
        raise DataError(f"seeds repeat: {seeds}; each folder must be a different seed")
    for r, s in zip(results, seeds):
        rec = recorded_seed(r)
        if rec is not None and rec != s:
            raise DataError(f"{r}: seed.yaml says seed {rec}, but --seeds gives {s} for it")
    metrics = [read_metrics(r) for r in results]
    recalls = [read_recalls(r / "reports" / "retrievers.csv") for r in results]
    kappas = [read_kappa(r / "reports" / "labelers.csv") for r in results]
    probes = [read_probe(r / "reports" / "policy_probe.json") for r in results]
    against = choose_against(recalls, prefer)
    rows = measures(retriever, against)
    values = [seed_values(m, rc, k, retriever, against, p) for m, rc, k, p in zip(metrics, recalls, kappas, probes)]
    present = [(measure, key) for measure, key in optional_measures() if any(key in m for m in metrics)]
    rows += [measure for measure, _ in present]
    values = np.array([v + [m.get(key, math.nan) for _, key in present] for v, m in zip(values, metrics)],
                      dtype=float).T  # measures x seeds
    records = []
    for measure, vals in zip(rows, values):
        have = vals[~np.isnan(vals)]
        records.append({"measure": measure.name, "unit": measure.unit,
                        **{f"seed_{s}": v for s, v in zip(seeds, vals)},
                        "mean": float(have.mean()) if len(have) else math.nan,
                        "sd": float(have.std(ddof=1)) if len(have) > 1 else math.nan,
                        "min": float(have.min()) if len(have) else math.nan,
                        "max": float(have.max()) if len(have) else math.nan,
                        "n": int(len(have)), "source": measure.source})
    return pd.DataFrame(records, columns=["measure", "unit", *[f"seed_{s}" for s in seeds], *STATS, "source"])


def _cell(v: float, unit: str) -> str:
    if isinstance(v, float) and math.isnan(v):
        return ""
    return f"{v:.2f}" if unit in ("%", "points") else f"{v:.3f}"


def spread_markdown(df: pd.DataFrame, results: list[str | Path], seeds: list[int]) -> str:
    seed_cols = [f"seed_{s}" for s in seeds]
    lines = ["# Spread over training seeds", "",
             f"{len(seeds)} runs of the whole DAG that differ only in the top-level `seed` "
             f"({', '.join(str(s) for s in seeds)}); the world (`data.world.seed`) and its benchmarks are the "
             "same in every run. Each seed column is that run's point estimate; mean, sd (sample standard "
             "deviation, n - 1), min and max are over seeds. This spread is the seed-to-seed variation of the "
             "whole pipeline (warm-up, labels' candidate draw, retriever and policy training, sampling), measured "
             "on one machine; the 95% intervals in the other tables are over problems within one run.", "",
             "Folders: " + ", ".join(f"seed {s} = `{r}`" for s, r in zip(seeds, results)) + ".", ""]
    if len(seeds) < 3:
        lines += [f"**Only {len(seeds)} seed(s)**: at least 3 are needed for a spread worth quoting.", ""]
    header = ["measure", "unit", *seed_cols, *STATS]
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for r in df.to_dict("records"):
        cells = [r["measure"], r["unit"], *[_cell(r[c], r["unit"]) for c in seed_cols],
                 *[_cell(r[c], r["unit"]) for c in STATS[:-1]], str(r["n"])]
        lines.append("| " + " | ".join(cells) + " |")
    missing = [f"{r['measure']} (seed {', '.join(c.removeprefix('seed_') for c in seed_cols if math.isnan(r[c]))})"
               for r in df.to_dict("records") if r["n"] < len(seeds)]
    lines += ["", "Units: % = average@k (or a share of rollout groups) in percent; points = a difference in "
                  "percentage points (the `diff.*` and `curve.*` of metrics.json); fraction = recall@1 as in "
                  "reports/retrievers.csv; kappa = Cohen's kappa.",
              "Blank cells: the measure is missing from that seed's files (arm, retriever or labeler not run); "
              "n counts only the seeds that have it, and the statistics are over those. "
              + (f"Missing here: {'; '.join(missing)}." if missing else "None is missing here."), "",
              "Sources: each seed's metrics_full.json, else metrics.json (`avg_at_k.<arm>.<setting>.mean`, "
              "`diff.<comparison>.mean`, "
              "`curve.rarft.last_minus_step0.mean`, `rl_signal.rarft.zero_variance_share`), reports/retrievers.csv "
              "(recall@1), reports/labelers.csv (agreement) and reports/policy_probe.json (init-policy's probe); the "
              "`source` column of seeds.csv names each row's. The comparisons', curve's and RL-signal rows appear "
              "only when some seed's metrics.json has them.",
              ""]
    return "\n".join(lines)


def seed_spread(results: list[str | Path], seeds: list[int], out: str | Path, retriever: str,
                prefer: tuple[str, ...]) -> pd.DataFrame:
    """Write out/seeds.md and out/seeds.csv (each atomically); return the table."""
    out = Path(out)
    df = spread_table(results, seeds, retriever, prefer)
    with atomic_path(out / "seeds.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")
    write_text(out / "seeds.md", spread_markdown(df, results, seeds))
    return df


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rarft seed-spread", description="Mean, sd, min and max over seeds of the "
                                "headline numbers (Table 1, retriever recall@1, labeler kappa, policy probe) of "
                                "several runs.")
    add_config_argument(p)
    p.add_argument("--results", nargs="+", required=True, metavar="DIR",
                   help="one results/ folder per seed (metrics.json, reports/retrievers.csv, reports/labelers.csv)")
    p.add_argument("--seeds", nargs="+", type=int, required=True, metavar="N",
                   help="the top-level seed of each --results folder, in the same order")
    p.add_argument("--out", default="results/seeds", help="writes seeds.md and seeds.csv (default: results/seeds)")
    args = p.parse_args(argv)
    config = load_config(args.config)
    df = seed_spread(args.results, args.seeds, args.out, main_retriever(config),
                     ("oracle-strategy", f"{config['labels']['train_on']}-labels"))
    print(f"seed-spread: {len(df)} measures over seeds {args.seeds} in {Path(args.out) / 'seeds.md'}")
    return 0
