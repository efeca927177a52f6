"""`analyze`: every table and figure in results/, the retrieval-diversity analysis, README and metrics.

Inputs (each optional; what is missing is reported as "not run" in tables, README and placeholder
figures, so the set of outputs is fixed whatever ran):
  runs/eval/<policy>/<setting>/{summary,samples}.json[l]   -> Tables 1-5, paired differences, Figure 4
  runs/train/{grpo,rarft}/curve.jsonl                       -> Figure 3
  <reports>/retrievers.csv                                  -> recall@1 column of Table 3
  <reports>/similarity_vs_gain.csv                          -> gain-vs-similarity scatter
  data/retrieval/<R>.jsonl, data/traces/corpus.jsonl, data/clean/bench/<b>.jsonl -> diversity
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from rarft import figures, tables
from rarft.arms import CURVE_ARMS
from rarft.config import ConfigError, add_config_argument, load_config
from rarft.contracts import read_curve, read_items, read_retrieval
from rarft.device import resolve_device
from rarft.diversity import context_accuracy, diversity_markdown, diversity_per_problem, diversity_summary
from rarft.io import DataError, read_json, write_json, write_text
from rarft.stats import bootstrap_mean_ci, paired_difference, rng_for
from rarft.world import needs_corpus_knowledge

# ---------------------------------------------------------------- inputs

def benchmarks_in_order(config: dict, summaries: dict) -> list[str]:
    source = config["data"]["source"]
    configured = list(config["data"][source]["benchmarks"])
    seen = {b for s in summaries.values() for b in s["benchmarks"]}
    if not seen:
        return configured
    return [b for b in configured if b in seen] + sorted(seen - set(configured))


def load_curves(runs: Path) -> pd.DataFrame:
    frames = []
    for arm in CURVE_ARMS:
        path = runs / "train" / arm / "curve.jsonl"
        if not path.exists():
            continue
        frames.append(pd.DataFrame(read_curve(path)).assign(arm=arm))
    columns = ["arm", "step", "benchmark", "average_at_k", "k", "per_problem"]
    if not frames:
        return pd.DataFrame(columns=columns)
    df = pd.concat(frames, ignore_index=True)
    for col in ("k", "per_problem"):  # per_problem: absent in curve files written before it was recorded
        if col not in df:
            df[col] = np.nan
    return df[columns]


def curve_bands(curves: pd.DataFrame, resamples: int, level: float, seed: int) -> pd.DataFrame:
    """Figure 3's interval: per (arm, benchmark, step), a bootstrap over problems of the mean of the
    per-problem validation accuracies (curve.jsonl's `per_problem`). Points without them get no row."""
    rows = []
    for r in curves.to_dict("records"):
        per_problem = r.get("per_problem")
        if not isinstance(per_problem, dict) or not per_problem:
            continue
        b = str(r["benchmark"])
        mean, lo, hi = bootstrap_mean_ci({b: per_problem}, [b], resamples, level,
                                         rng_for(seed, "curve", r["arm"], b, str(r["step"])))
        rows.append({"arm": r["arm"], "benchmark": b, "step": int(r["step"]), "mean": mean, "ci_low": lo,
                     "ci_high": hi, "n_problems": len(per_problem)})
    return pd.DataFrame(rows, columns=["arm", "benchmark", "step", "mean", "ci_low", "ci_high", "n_problems"])


def curve_gains(curves: pd.DataFrame) -> dict[tuple[str, str], float]:
    """{(arm, benchmark or 'mean'): last step's - step 0's validation average@k, in points}, for the arms whose
    curve has step 0 and a later step on every benchmark it shows ('mean': the mean over those benchmarks)."""
    out = {}
    for arm, adf in curves.groupby("arm", sort=False):
        gains = {}
        for b, bdf in adf.groupby("benchmark", sort=False):
            by_step = bdf.groupby("step")["average_at_k"].last()
            if 0 in by_step.index and by_step.index.max() > 0:
                gains[str(b)] = 100 * (float(by_step[by_step.index.max()]) - float(by_step[0]))
        if gains and len(gains) == adf["benchmark"].nunique():
            out |= {(str(arm), b): g for b, g in gains.items()}
            out[(str(arm), "mean")] = float(np.mean(list(gains.values())))
    return out


def strategy_groups(config: dict, data: Path, benches: list[str]) -> dict[str, dict[str, set[str]]]:
    """{group: {benchmark: problem ids}} for tables.STRATEGY_GROUPS: 'corpus_only' = items only knowledge the
    corpus holds can solve (`rarft.world.needs_corpus_knowledge`: a corpus-only strategy, or a rule name no
    training query uses; data/clean/bench/<b>.jsonl), 'training' = the other items with a hidden strategy.
    Empty where no item has one (real benchmarks): the split rows are then simply absent."""
    world_cfg = config["data"]["world"]
    groups: dict[str, dict[str, set[str]]] = {g: {} for g in tables.STRATEGY_GROUPS}
    for b in benches:
        for pid, item in _by_id(data / "clean" / "bench" / f"{b}.jsonl").items():
            if item.get("strategy") is None:
                continue
            group = "corpus_only" if needs_corpus_knowledge(item, world_cfg) else "training"
            groups[group].setdefault(b, set()).add(pid)
    return {g: by_bench for g, by_bench in groups.items() if by_bench}


def _per_problem_difference(pp_a: dict[str, dict[str, float]], pp_b: dict[str, dict[str, float]]) -> dict:
    """{benchmark: {problem: a - b}} over the problems both score (a per-problem paired difference)."""
    return {b: {p: pp_a[b][p] - pp_b[b][p] for p in pp_a[b] if p in pp_b.get(b, {})} for b in pp_a}


def _restrict(per_problem: dict[str, dict[str, float]], ids: dict[str, set[str]]) -> dict[str, dict[str, float]]:
    return {b: {p: v for p, v in per_problem.get(b, {}).items() if p in keep} for b, keep in ids.items()}


def _by_id(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_items(path)} if path.exists() else {}


def load_similarity(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    df = pd.read_csv(path)
    missing = {"similarity", "gain"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; found {list(df.columns)}")
    return df.dropna(subset=["similarity", "gain"])


# ---------------------------------------------------------------- the stage

def placeholder_figure(stem: Path, title: str, reason: str) -> list[Path]:
    """Keeps the output set fixed when an input is missing; the figure says what is missing."""
    fig = figures.plt.figure(figsize=(6, 2.2))
    fig.text(0.5, 0.62, title, ha="center", fontsize=12, weight="bold")
    fig.text(0.5, 0.35, f"not run: {reason}", ha="center", fontsize=9, wrap=True)
    return figures.save_figure(fig, stem)


def analyze(config: dict, runs: str | Path, data: str | Path, reports: str | Path, out: str | Path) -> dict:
    """Write every table, figure, results/README.md and results/metrics.json; return the metrics."""
    runs, data, reports, out = Path(runs), Path(data), Path(reports), Path(out)
    a = config["analysis"]
    seed = int(config["seed"])
    resamples = int(config["evaluation"]["bootstrap_resamples"])
    level = float(config["evaluation"]["ci_level"])
    top_k = int(a["diversity_top_k"])
    m = tables.main_retriever(config)
    tdir, fdir, pdir = out / "tables", out / "figures", out / "plots"
    notes, artifacts, metrics = [], [], {}
    steps = tqdm(total=8, desc="analyze", unit="step")

    summaries = tables.load_summaries(runs)
    if a["verify_samples"]:
        for (policy, setting), s in summaries.items():
            samples = runs / "eval" / policy / setting / "samples.jsonl"
            if samples.exists():
                tables.verify_summary(s, samples)
    benches = benchmarks_in_order(config, summaries)
    paper_scale = bool(benches) and set(benches) <= set(tables.PAPER_BENCHMARKS) and a["quote_paper"]
    for (policy, setting), s in summaries.items():
        for b, cell in s["benchmarks"].items():
            metrics[f"avg_at_k.{policy}.{setting}.{b}"] = round(100 * cell["average_at_k"], 4)
    steps.update()

    # Tables 1-5
    # Table 3's recall@1 ranks each held-out query's labelled candidates (rarft.evaluate_retrievers); the
    # whole-corpus recall@1 is its own column, meaningful against the world's oracle (same hidden strategy, gold
    # over the whole corpus) and near 0 against sampled labels. At paper scale there is no oracle and the
    # held-out judge labels are used.
    recall, against = tables.read_recall_at_1(reports / "retrievers.csv",
                                              prefer=("oracle-strategy", f"{config['labels']['train_on']}-labels"))
    corpus_recall, _ = tables.read_recall_at_1(reports / "retrievers.csv", prefer=(against,) if against else (),
                                               column="corpus_recall@1")
    if not recall:
        notes.append(f"{reports / 'retrievers.csv'} absent: Table 3 has no recall@1 values.")
    for spec in tables.table_specs(config, paper_scale):
        if spec.name == "table3" and against:
            spec.title = spec.title.replace("held-out labels", f"held-out {against.removesuffix('-labels')} labels")
        df = tables.build_table(spec, summaries, benches, seed, resamples, level, recall, corpus_recall)
        for r in df[(df["status"] == "ok") & (df["benchmark"] == "mean")].to_dict("records"):
            metrics[f"avg_at_k.{r['policy']}.{r['setting']}.mean"] = round(r["score"], 4)
        stem = tdir / spec.name
        write_text(stem.with_suffix(".md"), tables.to_markdown(df, spec, benches))
        _write_csv(df, stem.with_suffix(".csv"))
        write_text(stem.with_suffix(".tex"), tables.to_latex(df, spec, benches))
        not_run = sorted({r for r in df.loc[df["status"] == tables.NOT_RUN, "row"]})
        if not_run:
            notes.append(f"{spec.name}: not run: {', '.join(not_run)}.")
        artifacts.append((f"tables/{spec.name}.{{md,csv,tex}}", f"{spec.title}. Claim: {spec.claim}"))
    steps.update()

    # Paired differences, and the per-problem differences behind each (control-contrast pairs two runs by them)
    comp_rows, per_problem_rows = [], []

    def record(label: str, diffs: dict[str, dict[str, float]]) -> None:
        per_problem_rows.extend({"comparison": label, "benchmark": b, "problem_id": p, "diff": d}
                                for b in benches for p, d in sorted(diffs.get(b, {}).items()))
    for label, pa, pb in tables.comparison_pairs(config):
        if pa in summaries and pb in summaries:
            record(label, _per_problem_difference(summaries[pa]["per_problem"], summaries[pb]["per_problem"]))
            for r in paired_difference(summaries[pa]["per_problem"], summaries[pb]["per_problem"], benches,
                                       resamples, level, rng_for(seed, label)):
                comp_rows.append({"comparison": label, "a": "/".join(pa), "b": "/".join(pb), **r})
                metrics[tables.diff_key(label, r["benchmark"])] = round(r["diff"], 4)
    for label, with_a, with_b in tables.trace_benefit_pairs(config):
        if {*with_a, *with_b} <= set(summaries):
            benefit = [_per_problem_difference(summaries[x]["per_problem"], summaries[y]["per_problem"])
                       for x, y in (with_a, with_b)]
            record(label, _per_problem_difference(*benefit))
            for r in paired_difference(*benefit, benches, resamples, level, rng_for(seed, label)):
                comp_rows.append({"comparison": label, "a": " - ".join("/".join(c) for c in with_a),
                                  "b": " - ".join("/".join(c) for c in with_b), **r})
                metrics[tables.diff_key(label, r["benchmark"])] = round(r["diff"], 4)
    groups = strategy_groups(config, data, benches)
    for label, pa, pb, group in tables.strategy_split_pairs(config):
        if pa in summaries and pb in summaries and group in groups:
            in_a, in_b = (_restrict(summaries[x]["per_problem"], groups[group]) for x in (pa, pb))
            record(label, _per_problem_difference(in_a, in_b))
            for r in paired_difference(in_a, in_b, benches, resamples, level, rng_for(seed, label)):
                comp_rows.append({"comparison": label, "a": "/".join(pa), "b": "/".join(pb), **r})
                metrics[tables.diff_key(label, r["benchmark"])] = round(r["diff"], 4)
    comp = pd.DataFrame(comp_rows, columns=["comparison", "a", "b", "benchmark", "diff", "ci_low", "ci_high",
                                            "p_le_0", "n_problems"])
    write_text(tdir / "comparisons.md", tables.comparisons_markdown(comp))
    _write_csv(comp, tdir / "comparisons.csv")
    per_problem_table = pd.DataFrame(per_problem_rows, columns=list(tables.PER_PROBLEM_COLUMNS))
    _write_csv(per_problem_table, tdir / "comparisons_per_problem.csv")
    artifacts.append(("tables/comparisons.{md,csv}", "Paired-bootstrap differences (RA-RFT - GRPO, RA-RFT - base "
                                                     "with the same top-1 trace at inference, GRPO - base and the "
                                                     "other key pairs; in the world also RA-RFT - GRPO on items of "
                                                     "training-query and of corpus-only knowledge) per benchmark "
                                                     "and for the mean."))
    artifacts.append(("tables/comparisons_per_problem.csv", "The per-problem differences behind each comparison "
                                                            "(accuracy of a minus b over its k samples, a fraction): "
                                                            "`rarft control-contrast` pairs two runs by them."))
    steps.update()

    # RL signal: how many rollout groups could teach anything (a group with one reward has no advantage)
    signal = rl_signal_table(runs)
    write_text(tdir / "rl_signal.md", rl_signal_markdown(signal))
    _write_csv(signal, tdir / "rl_signal.csv")
    for r in signal.to_dict("records"):
        metrics[f"rl_signal.{r['arm']}.zero_variance_share"] = round(100 * r["zero_variance_share"], 4)
        metrics[f"rl_signal.{r['arm']}.all_wrong_share"] = round(100 * r["pass_rate 0"], 4)
        metrics[f"rl_signal.{r['arm']}.all_right_share"] = round(100 * r["pass_rate 1"], 4)
    artifacts.append(("tables/rl_signal.{md,csv}", "Per RL arm: share of prompt groups with zero reward variance "
                                                   "and the per-prompt pass-rate histogram of the training rollouts."))

    # Figure 3
    curves = load_curves(runs)
    stem = fdir / "fig3_training_curves"
    if curves.empty:
        placeholder_figure(stem, "Figure 3: validation accuracy vs step", "no runs/train/{grpo,rarft}/curve.jsonl")
        notes.append("Figure 3: no training curves found (runs/train/{grpo,rarft}/curve.jsonl).")
    bands = curve_bands(curves, resamples, level, seed)
    if not curves.empty:
        figures.figure_curves(curves, stem, CURVE_ARMS, bands)
        if bands.empty:
            notes.append("Figure 3: the curve files hold no per-problem accuracies (written before they were "
                         "recorded): no interval band.")
    for (arm, bench), gain in curve_gains(curves).items():
        metrics[f"curve.{arm}.last_minus_step0.{bench}"] = round(gain, 4)
    wide = curves.assign(col=curves["arm"] + "_" + curves["benchmark"].astype(str),
                         pct=100 * curves["average_at_k"].astype(float))
    wide = wide.pivot_table(index="step", columns="col", values="pct").reset_index() if len(wide) else \
        pd.DataFrame(columns=["step"])
    if not bands.empty:
        band = bands.assign(col=bands["arm"] + "_" + bands["benchmark"])
        for end in ("ci_low", "ci_high"):
            cols = band.pivot_table(index="step", columns="col", values=end) * 100
            wide = wide.merge(cols.add_suffix(f"_{end}").reset_index(), on="step", how="left")
    _write_csv(wide, pdir / "curves.csv")
    artifacts += [("figures/fig3_training_curves.{png,pdf}", "Figure 3: validation average@k vs training step, "
                                                           f"GRPO vs RA-RFT, one panel per benchmark; shaded: "
                                                           f"{level:.0%} bootstrap interval over problems at each "
                                                           "step."),
                  ("plots/curves.csv", "Figure 3's data for `dvc plots`: step, then one column <arm>_<benchmark> (%) "
                                       "and, where per-problem accuracies were recorded, <arm>_<benchmark>_ci_low / "
                                       "_ci_high.")]
    steps.update()

    # Figure 4 + diversity
    topk = summaries.get(("rarft", f"topk-{m}"))
    grpo = summaries.get(("grpo", "none"))
    stem = fdir / "fig4_context_diversity"
    ctx = context_accuracy(topk) if topk else pd.DataFrame(columns=["benchmark", "problem_id", "rank", "accuracy"])
    div = pd.DataFrame()
    if topk:
        gdf = pd.DataFrame([{"benchmark": b, "problem_id": p, "accuracy": v}
                            for b, probs in (grpo or {"per_problem": {}})["per_problem"].items()
                            for p, v in probs.items()],
                           columns=["benchmark", "problem_id", "accuracy"])
        figures.figure_contexts(ctx, gdf, stem, top_k)
        retrieval_path = data / "retrieval" / f"{m}.jsonl"
        retrieval = {r["id"]: [c["id"] for c in r["contexts"]] for r in read_retrieval(retrieval_path)} \
            if retrieval_path.exists() else {}
        corpus = _by_id(data / "traces" / "corpus.jsonl") or _by_id(data / "clean" / "corpus.jsonl")
        queries = {k: v for b in benches for k, v in _by_id(data / "clean" / "bench" / f"{b}.jsonl").items()}
        if not retrieval:
            notes.append(f"diversity: {retrieval_path} absent: no trace dissimilarity or strategy counts.")
        method = a["dissimilarity"]
        div = diversity_per_problem(ctx, grpo["per_problem"] if grpo else None, retrieval, corpus, queries, top_k,
                                    int(topk["k"]), method, config["retriever"]["base_model"],
                                    int(a["noise_simulations"]), seed,
                                    device=resolve_device(config) if method == "embedding" else "cpu")
    else:
        placeholder_figure(stem, "Figure 4: accuracy under each top-k context", f"no runs/eval/rarft/topk-{m}")
        notes.append(f"Figure 4 and the diversity table: runs/eval/rarft/topk-{m} not run.")
        method = a["dissimilarity"]
    _write_csv(ctx, pdir / "context_accuracy.csv")
    dsum = diversity_summary(div)
    _write_csv(div, tdir / "diversity_per_problem.csv")
    _write_csv(dsum, tdir / "diversity.csv")
    write_text(tdir / "diversity.md", diversity_markdown(dsum, top_k, method))
    for r in dsum.to_dict("records"):
        for col, v in r.items():
            if col not in ("benchmark",) and isinstance(v, (int, float)) and not math.isnan(v):
                metrics[f"diversity.{r['benchmark']}.{col}"] = round(float(v), 4)
    artifacts += [("figures/fig4_context_diversity.{png,pdf}", f"Figure 4: per problem, RA-RFT accuracy under each "
                                                             f"top-{top_k} context vs GRPO, sorted by GRPO."),
                  ("plots/context_accuracy.csv", "Figure 4's data: benchmark, problem_id, rank (0 = top-1), accuracy."),
                  ("tables/diversity.{md,csv}", "Retrieval diversity per benchmark: spread, beats-top-1, oracle "
                                                "over top-k, trace dissimilarity, distinct strategies, with noise "
                                                "floors."),
                  ("tables/diversity_per_problem.csv", "The same, one row per benchmark problem.")]
    steps.update()

    # Gain vs similarity
    sim = load_similarity(reports / "similarity_vs_gain.csv")
    stem = fdir / "gain_vs_similarity"
    if sim is None or len(sim) < 2:
        placeholder_figure(stem, "Context gain vs semantic similarity", f"no {reports / 'similarity_vs_gain.csv'}")
        notes.append(f"Gain-vs-similarity figure: {reports / 'similarity_vs_gain.csv'} absent or empty.")
    else:
        _, stats = figures.figure_similarity(sim, stem)
        metrics.update({f"similarity_vs_gain.{k}": round(v, 4) for k, v in stats.items() if not math.isnan(v)})
    artifacts.append(("figures/gain_vs_similarity.{png,pdf}", "Measured context gain vs off-the-shelf similarity, "
                                                            "with Pearson/Spearman correlation (the motivating "
                                                            "claim)."))
    steps.update()

    write_json(out / "metrics_full.json", dict(sorted(metrics.items())))
    headline = headline_keys(config, paper_scale)
    write_json(out / "metrics.json", {k: v for k, v in sorted(metrics.items()) if k in headline})
    artifacts.append(("metrics.json", "The headline numbers `dvc metrics show` prints: Table 1's means and the "
                                      "paired differences between its rows."))
    artifacts.append(("metrics_full.json", "Every number, flat (`dvc metrics show results/metrics_full.json`): "
                                           "average@k per arm/setting/benchmark, paired differences, diversity, "
                                           "correlations."))
    steps.update()
    source = run_source(config)
    verdict = control_verdict(config, comp)
    write_text(out / "README.md", readme(artifacts, notes, summaries, benches, paper_scale,
                                         source=f"{source}\n\n{verdict}" if verdict else source))
    steps.update()
    steps.close()
    print(f"analyze: {len(summaries)} evaluations, {len(benches)} benchmarks, {len(artifacts)} artifacts in {out}; "
          f"{len(notes)} note(s) on missing inputs")
    return metrics


def headline_keys(config: dict, paper_scale: bool) -> set[str]:
    """metrics.json's keys (what `dvc metrics show` prints by default): Table 1's means and the paired differences
    between two of its rows (RA-RFT - GRPO, GRPO - base); metrics_full.json holds every number."""
    table1 = next(spec for spec in tables.table_specs(config, paper_scale) if spec.name == "table1")
    cells = {(row.policy, row.setting) for block in table1.blocks for row in block.rows if row.policy}
    return ({f"avg_at_k.{policy}.{setting}.mean" for policy, setting in cells}
            | {tables.diff_key(label, "mean") for label, a, b in tables.comparison_pairs(config) if {a, b} <= cells})


def rl_signal_table(runs: Path) -> pd.DataFrame:
    """One row per trained RL arm from runs/train/<arm>/train_summary.json's ``rollout_signal``."""
    from rarft.train import PASS_RATE_BINS

    rows = []
    for path in sorted((runs / "train").glob("*/train_summary.json")):
        summary = read_json(path)
        sig = summary.get("rollout_signal")
        if sig:
            rows.append({"arm": summary["arm"], "steps": sig["steps"],
                         "zero_variance_share": sig["zero_variance_share"],
                         **{f"pass_rate {b}": sig["pass_rate_hist"][b] for b in PASS_RATE_BINS}})
    return pd.DataFrame(rows, columns=["arm", "steps", "zero_variance_share",
                                       *[f"pass_rate {b}" for b in PASS_RATE_BINS]])


def rl_signal_markdown(df: pd.DataFrame) -> str:
    lines = ["# RL signal of the training rollouts", "",
             "Per RL arm, averaged over its training steps: the share of prompt groups (one prompt's rollouts in a "
             "step) with zero reward variance (TRL's `frac_reward_zero_std`), whose GRPO/RLOO advantages are 0 so "
             "they teach nothing, then the share of groups by pass rate: `0` = all rollouts wrong, `1` = all "
             "right (with 0/1 rewards those two make up the zero-variance groups).", ""]
    if df.empty:
        return "\n".join(lines + ["(no RL arm has a train_summary.json with rollout statistics)", ""])
    cols = [c for c in df.columns if c != "arm"]
    names = {"zero_variance_share": "zero reward variance", "pass_rate 0": "pass rate 0 (all wrong)",
             "pass_rate 1": "pass rate 1 (all right)"}
    lines += ["| arm | " + " | ".join(names.get(c, c.replace("_", " ")) for c in cols) + " |",
              "|---" * (len(cols) + 1) + "|"]
    for r in df.to_dict("records"):
        cells = [str(r["steps"])] + [f"{100 * r[c]:.0f}%" for c in cols[1:]]
        lines.append(f"| {r['arm']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])


def _mean_row(comp: pd.DataFrame, label: str) -> dict | None:
    row = comp[(comp["comparison"] == label) & (comp["benchmark"] == "mean")]
    return None if row.empty else row.iloc[0].to_dict()


def _interval_text(label: str, r: dict) -> str:
    where = "lies above 0" if r["ci_low"] > 0 else "lies below 0" if r["ci_high"] < 0 else "contains 0"
    return (f"{label} on the mean = {r['diff']:+.1f} points [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]: "
            f"the interval {where}")


def control_conditions(config: dict) -> list[tuple[str, str, bool]]:
    """The control's conditions as (comparison label, what it shows, True = its interval must lie above 0 |
    False = it must contain 0 or lie below). The positive control tests the RL stage: a trainer that learns
    nothing leaves RA-RFT where the base model given the same trace is, and fails the first condition."""
    if config["data"]["world"]["control"] == "positive":
        return [(tables.RA_RFT_VS_BASE_TOP1, "RL with the trace, not the trace alone, carries the effect", True),
                (tables.RA_RFT_VS_GRPO, "RA-RFT beats GRPO", True)]
    return [(tables.RA_RFT_VS_GRPO, "RA-RFT does not beat GRPO when retrieval cannot help", False)]


def control_status(config: dict, comp: pd.DataFrame) -> dict:
    """World only (None at paper scale): {"verdict": "holds" | "fails" | "not scored", "failed": [labels],
    "not_scored": [labels], "lines": [one line per condition]} from the comparisons' mean rows.

    The control holds when every condition holds; it fails when a scored condition fails (even if another
    was not scored); with no failure but a condition not scored it cannot be judged."""
    if config["data"]["source"] != "world":
        return None
    failed, not_scored, lines = [], [], []
    for label, meaning, above in control_conditions(config):
        need = "above 0" if above else "containing 0 or below 0"
        r = _mean_row(comp, label)
        if r is None:
            not_scored.append(label)
            lines.append(f"- {label} ({meaning}; needed: an interval {need}): not scored (both arms are needed).")
            continue
        ok = r["ci_low"] > 0 if above else r["ci_low"] <= 0
        if not ok:
            failed.append(label)
        lines.append(f"- {meaning} (needed: an interval {need}): {_interval_text(label, r)}, "
                     f"so this {'holds' if ok else 'FAILS'}.")
    # reported beside the conditions, not one of them
    for label in (f"{tables.RA_RFT_VS_GRPO}, {tables.STRATEGY_GROUPS['corpus_only']}", tables.TRACE_BENEFIT):
        r = _mean_row(comp, label)
        if r is not None and (label == tables.TRACE_BENEFIT or config["data"]["world"]["control"] == "positive"):
            lines.append(f"- reported, not a condition: {_interval_text(label, r)}.")
    verdict = "fails" if failed else "not scored" if not_scored else "holds"
    return {"verdict": verdict, "failed": failed, "not_scored": not_scored, "lines": lines}


def control_verdict(config: dict, comp: pd.DataFrame) -> str:
    """World only: results/README.md's verdict on the positive or negative control (control_status), one
    headline line naming what failed, then one line per condition."""
    status = control_status(config, comp)
    if status is None:
        return ""
    positive = config["data"]["world"]["control"] == "positive"
    kind = ("positive control: RA-RFT must beat the base model given the same top-1 trace at inference, and GRPO"
            if positive else "negative control: RA-RFT must not beat GRPO")
    if status["verdict"] == "holds":
        head = "the control holds."
    elif status["verdict"] == "fails":
        head = f"the control FAILS ({'; '.join(status['failed'])})."
        if status["not_scored"]:
            head = head[:-1] + f"; not scored: {'; '.join(status['not_scored'])}."
    else:
        head = f"the control cannot be judged: not scored: {'; '.join(status['not_scored'])}."
    return "\n".join([f"Control verdict ({kind}): {head}", "", *status["lines"]])


def run_source(config: dict) -> str:
    """One line saying which experiment a results/ folder holds, so world numbers and paper-scale numbers
    are never mistaken for one another."""
    policy = config["policy"]["base"]
    if config["data"]["source"] == "world":
        control = config["data"]["world"]["control"]
        what = ("a POSITIVE control: the world is built so that retrieving the right analogue helps, so the "
                "pipeline can be checked against a known answer (docs/world.md)"
                if control == "positive" else
                "the NEGATIVE control: the corpus traces show no rule and no computation, so retrieval cannot "
                "help and RA-RFT must not beat GRPO")
        return (f"Data: the embedded analogy world (data.source: world, control: {control}), policy `{policy}`: "
                f"these are NOT results on the paper's benchmarks. This world is {what}.")
    return f"Data: real sources (data.source: real), policy `{policy}`."


def readme(artifacts: list[tuple[str, str]], notes: list[str], summaries: dict, benches: list[str],
           paper_scale: bool, source: str = "") -> str:
    lines = ["# Results", "", "Generated by `python -m rarft analyze`; do not edit by hand (rerun the pipeline).",
             *([source] if source else []),
             "", f"Benchmarks: {', '.join(benches) or '(none)'}. Evaluations found: "
             f"{', '.join('/'.join(k) for k in sorted(summaries)) or '(none)'}.", ""]
    if paper_scale:
        lines += ["Rows labelled 'quoted from the paper' are the paper's published numbers, not results of this "
                  "run.", ""]
    lines += ["## Artifacts", "", "| file | what it shows |", "|---|---|"]
    lines += [f"| `{path}` | {what} |" for path, what in artifacts]
    lines += ["", "Reports of earlier stages sit in `reports/`: data and decontamination reports, traces, "
                  "`retrievers.{md,csv}` (retriever recall), `labelers.{md,csv}` and `similarity_vs_gain.csv` "
                  "(labeler comparison).", "",
              "`seeds/seeds.{md,csv}`, when present, is not written by this stage: `make seeds` reruns the DAG with "
              "other training seeds and writes there the spread over seeds (mean, sd, min, max, n) of Table 1's "
              "arms and differences, the retrievers' recall@1 and the labelers' kappa (`rarft seed-spread`).", ""]
    lines += ["## Missing inputs", ""] + ([f"- {n}" for n in notes] or ["- none: every input was present."]) + [""]
    return "\n".join(lines)


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    from rarft.io import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rarft analyze", description="Tables, figures, diversity analysis, "
                                "results/README.md and results/metrics.json from the evaluation runs.")
    add_config_argument(p)
    p.add_argument("--runs", default="runs", help="holds eval/<policy>/<setting>/ and train/<arm>/ (default: runs)")
    p.add_argument("--data", default="data", help="holds retrieval/, traces/, clean/ (default: data)")
    p.add_argument("--reports", "--tables-in", dest="reports", default="results/reports",
                   help="where retrievers.csv and similarity_vs_gain.csv are read (default: results/reports)")
    p.add_argument("--out", default="results",
                   help="writes tables/, figures/, plots/, README.md, metrics.json, metrics_full.json")
    p.add_argument("--manifest", help="also write which configuration these results come from (JSON)")
    args = p.parse_args(argv)
    config = load_config(args.config)
    if config["analysis"]["dissimilarity"] not in (None, "jaccard", "embedding"):
        raise ConfigError("analysis.dissimilarity: must be jaccard or embedding")
    analyze(config, args.runs, args.data, args.reports, args.out)
    if args.manifest:
        write_json(args.manifest, run_manifest(config, args.config, args.out))
    return 0


def run_manifest(config: dict, config_files: list[str], out: str) -> dict:
    """Which configuration a results/ folder comes from (the rule's `runs/analyze/manifest.json`)."""
    import json

    from rarft.io import text_sha256

    return {"results": str(out), "config_files": [str(f) for f in config_files],
            "config_sha256": text_sha256(json.dumps(config, sort_keys=True, default=str)),
            "data_source": config["data"]["source"], "policy": config["policy"]["base"],
            "arms": list(config["rl"]["arms"])}
