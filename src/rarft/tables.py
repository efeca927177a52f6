"""Tables 1-5 of the paper from `runs/eval/<policy>/<setting>/summary.json`, plus paired differences.

A table is a list of blocks; a block is a list of rows; a row is one (policy, setting) evaluation or
a row quoted from the paper. Cells are average@k in percent with the 95% interval from summary.json;
the `mean` column is the mean of the per-benchmark scores, its interval a bootstrap over problems
within each benchmark (stratified, from `per_problem`). The best measured score per column and
block is marked. Every table is written as Markdown (reading), CSV in long form (tools) and LaTeX.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rarft.contracts import iter_samples, read_summary
from rarft.io import DataError
from rarft.stats import bootstrap_mean_ci, rng_for

PAPER_BENCHMARKS = ("aime24", "aime25", "hmmt25", "brumo25")
QUOTED = "quoted from the paper"
NOT_RUN = "not run"

# The paper's numbers (average@32, %), from ../shared/PAPER.md. Shown only in paper-scale runs.
PAPER_TABLE1 = {
    "Qwen3-4B": {"base": (70.5, 64.3, 41.3, 65.5, 60.4), "GRPO": (74.8, 66.4, 46.4, 69.8, 64.4),
                 "RA-RFT": (75.8, 69.2, 47.3, 75.7, 67.0)},
    "Qwen3-1.7B": {"base": (48.1, 35.9, 23.4, 50.9, 39.6), "GRPO": (50.4, 41.6, 26.3, 54.8, 43.3),
                   "QuestA": (52.0, 42.7, 26.0, 52.6, 43.3), "RA-RFT": (55.1, 48.7, 28.2, 57.4, 47.4)},
}
PAPER_MEANS = {  # Tables 2-5, Qwen3-1.7B, mean of the four benchmarks only
    "table2": {"SFT": 39.7, "RA-SFT": 40.5, "GRPO": 43.3, "RA-RFT": 47.4},
    "table3": {"Qwen3-Emb-4B (recall@1 2.3)": 38.5, "fine-tuned Qwen3-Emb-4B (recall@1 14.7)": 40.5,
               "Reason-ModernColBERT (recall@1 7.2)": 40.7, "fine-tuned ColBERT (recall@1 43.5)": 47.4,
               "random same-type trace (recall@1 0.0)": 37.6},
    "table4": {"GRPO + top-1 trace at inference": 37.7, "GRPO": 43.3, "RA-RFT": 47.4},
    "table5": {"RLOO": 41.8, "RA-RLOO": 45.5, "DAPO": 42.6, "RA-DAPO": 44.4, "GRPO": 43.3, "RA-RFT": 47.4},
}


@dataclass
class Row:
    label: str
    policy: str | None = None
    setting: str | None = None
    quoted: dict[str, float] | None = None  # benchmark (or "mean") -> the paper's number
    extra: dict[str, str] = field(default_factory=dict)  # extra columns, e.g. recall@1
    optional: bool = False  # an arm outside rl.arms: shown only if it was evaluated anyway


@dataclass
class Block:
    name: str
    rows: list[Row]


@dataclass
class TableSpec:
    name: str
    title: str
    claim: str
    blocks: list[Block]
    extra_columns: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- inputs

def load_summaries(runs_dir: str | Path) -> dict[tuple[str, str], dict]:
    """{(policy, setting): summary} for every runs/eval/<policy>/<setting>/summary.json present."""
    out = {}
    for path in sorted(Path(runs_dir, "eval").glob("*/*/summary.json")):
        out[(path.parent.parent.name, path.parent.name)] = read_summary(path)
    return out


def per_problem_from_samples(samples_path: str | Path) -> dict[str, dict[str, float]]:
    """{benchmark: {problem_id[#rank]: mean reward}} recomputed from samples.jsonl.

    Keys carry `#<rank>` only when a problem was evaluated under several contexts (topk settings).
    Streams the file: paper-scale samples files hold long completions.
    """
    sums: dict[tuple[str, str, int], list[float]] = {}
    for r in iter_samples(samples_path):  # rarft.contracts checks every row
        acc = sums.setdefault((r["benchmark"], r["problem_id"], r.get("context_rank") or 0), [0.0, 0])
        acc[0] += float(r["reward"])
        acc[1] += 1
    ranks: dict[tuple[str, str], set[int]] = {}
    for b, p, rank in sums:
        ranks.setdefault((b, p), set()).add(rank)
    multi = any(len(v) > 1 for v in ranks.values())
    out: dict[str, dict[str, float]] = {}
    for (b, p, rank), (total, n) in sums.items():
        out.setdefault(b, {})[f"{p}#{rank}" if multi else p] = total / n
    return out


def verify_summary(summary: dict, samples_path: str | Path, tol: float = 1e-6) -> None:
    """Raise DataError when summary.json's per_problem disagrees with the samples it came from."""
    recomputed = per_problem_from_samples(samples_path)
    for bench, probs in summary["per_problem"].items():
        got = recomputed.get(bench, {})
        for pid, value in probs.items():
            if pid not in got:
                raise DataError(f"{samples_path}: no samples for {bench}/{pid} listed in summary.json")
            if abs(got[pid] - value) > tol:
                raise DataError(f"{samples_path}: {bench}/{pid} mean reward {got[pid]:.4f} != "
                                f"summary.json per_problem {value:.4f}")


# ---------------------------------------------------------------- the paper's tables

def main_retriever(config: dict) -> str:
    return config["rl"]["retriever"]


def paper_model(config: dict) -> str | None:
    base = str(config["policy"]["base"])
    for name in ("1.7B", "4B"):
        if name.lower() in base.lower():
            return f"Qwen3-{name}"
    return None


def table_specs(config: dict, paper_scale: bool) -> list[TableSpec]:
    m = main_retriever(config)
    ra = f"top1-{m}"
    base = str(config["policy"]["base"])
    ours = "ours" if base == "tiny" else f"ours ({base})"

    def quoted(table: str) -> list[Block]:
        if not paper_scale:
            return []
        return [Block(f"Qwen3-1.7B ({QUOTED})",
                      [Row(label, quoted={"mean": v}) for label, v in PAPER_MEANS[table].items()])]

    t1_quoted = []
    if paper_scale:
        models = [paper_model(config)] if paper_model(config) else list(PAPER_TABLE1)
        for model in models:
            t1_quoted.append(Block(f"{model} ({QUOTED})", [
                Row(method, quoted=dict(zip([*PAPER_BENCHMARKS, "mean"], vals)))
                for method, vals in PAPER_TABLE1[model].items()]))
    arms = set(config["rl"]["arms"])
    retriever_rows = [Row(label, arm, f"top1-{r}", extra={"retriever": r}, optional=arm not in arms)
                      for label, arm, r in (("off-the-shelf", "rarft_offshelf", "offshelf"),
                                            ("BM25", "rarft_bm25", "bm25"),
                                            ("ColBERT", "rarft_colbert", "colbert"),
                                            ("fine-tuned single-vector", "rarft_finetuned", "finetuned"),
                                            ("fine-tuned ColBERT", "rarft_finetuned_colbert", "finetuned_colbert"))]
    retriever_rows += [Row(f"fine-tuned ({m})" if m != "finetuned" else "fine-tuned", "rarft", ra,
                           extra={"retriever": m}),
                       Row("random same-type trace", "rarft_random", "top1-random", extra={"retriever": "random"})]
    return [
        TableSpec("table1", "Table 1: main results (average@k, %)",
                  "RA-RFT beats GRPO and the base model on every benchmark.",
                  [Block(ours, [Row("base", "base", "none"), Row("GRPO", "grpo", "none"),
                                  Row("RA-RFT", "rarft", ra)]), *t1_quoted]),
        TableSpec("table2", "Table 2: training objective (average@k, %)",
                  "Retrieval helps RL more than SFT; RL beats SFT.",
                  [Block(ours, [Row("SFT", "sft", "none"), Row("RA-SFT", "rasft", ra),
                                  Row("GRPO", "grpo", "none"), Row("RA-RFT", "rarft", ra)]), *quoted("table2")]),
        TableSpec("table3", "Table 3: retriever used by RA-RFT (average@k, %; recall@1 on held-out labels: among "
                  "each query's labelled candidates, and over the whole corpus)",
                  "A retriever that ranks by usefulness (higher recall@1) gives a better RA-RFT policy.",
                  [Block(ours, retriever_rows), *quoted("table3")], extra_columns=["recall@1"]),
        TableSpec("table4", "Table 4: retrieval only at inference (average@k, %)",
                  "The gain needs training with the context: adding it to a GRPO model only at inference hurts.",
                  [Block(ours, [Row("GRPO + top-1 trace at inference", "grpo", ra),
                                  Row("GRPO", "grpo", "none"), Row("RA-RFT", "rarft", ra)]), *quoted("table4")]),
        TableSpec("table5", "Table 5: RL optimizer (average@k, %)",
                  "Retrieval augmentation helps whatever the policy-gradient estimator.",
                  [Block("RLOO", [Row("RLOO", "rloo", "none"), Row("RA-RLOO", "rarloo", ra)]),
                   Block("DAPO", [Row("DAPO", "dapo", "none"), Row("RA-DAPO", "radapo", ra)]),
                   Block("GRPO (reference)", [Row("GRPO", "grpo", "none"), Row("RA-RFT", "rarft", ra)]),
                   *quoted("table5")]),
    ]


# RA-RFT against the base model given the same top-1 trace at inference only: what RL with the trace adds
# over the context alone (the positive control's test of the RL stage, analysis.control_status).
RA_RFT_VS_BASE_TOP1 = "RA-RFT - base + top-1 at inference"
RA_RFT_VS_GRPO = "RA-RFT - GRPO"
# What the top-1 trace gives a policy: the same policy with it minus without it. Under the base that is the context
# alone; under RA-RFT, after RL with it. Their difference (paired per problem) is what RL taught the policy to get out
# of the trace, with RL's gain on the bare question taken out (GRPO - base measures that gain).
TRACE_BENEFIT = "trace benefit: RA-RFT - base"
BASE_WITH_TRACE = "base + top-1 at inference - base"
RA_RFT_WITH_TRACE = "RA-RFT + top-1 - RA-RFT alone"
# tables/comparisons_per_problem.csv, written by analyze, read by control-contrast: the per-problem differences
# behind each comparisons.csv row (a fraction, a minus b over its k samples), one row per problem.
PER_PROBLEM_COLUMNS = ("comparison", "benchmark", "problem_id", "diff")
# Benchmark items split by what they need (world only; analysis.strategy_groups): group -> label suffix.
STRATEGY_GROUPS = {"training": "training-query knowledge", "corpus_only": "corpus-only knowledge"}


def comparison_pairs(config: dict) -> list[tuple[str, tuple[str, str], tuple[str, str]]]:
    """The key paired comparisons: (label, A, B) for A - B, over every benchmark problem."""
    ra = f"top1-{main_retriever(config)}"
    return [(RA_RFT_VS_GRPO, ("rarft", ra), ("grpo", "none")),
            (RA_RFT_VS_BASE_TOP1, ("rarft", ra), ("base", ra)),
            ("GRPO - base", ("grpo", "none"), ("base", "none")),
            ("RA-SFT - SFT", ("rasft", ra), ("sft", "none")),
            ("RA-RLOO - RLOO", ("rarloo", ra), ("rloo", "none")),
            ("RA-DAPO - DAPO", ("radapo", ra), ("dapo", "none")),
            ("GRPO + top-1 at inference - GRPO", ("grpo", ra), ("grpo", "none")),
            (BASE_WITH_TRACE, ("base", ra), ("base", "none")),
            (RA_RFT_WITH_TRACE, ("rarft", ra), ("rarft", "none"))]


def trace_benefit_pairs(config: dict) -> list[tuple[str, tuple[tuple[str, str], tuple[str, str]],
                                                     tuple[tuple[str, str], tuple[str, str]]]]:
    """Differences of two of `comparison_pairs`: (label, (A, B), (C, D)) for (A - B) - (C - D), per problem."""
    pairs = {label: (a, b) for label, a, b in comparison_pairs(config)}
    return [(TRACE_BENEFIT, pairs[RA_RFT_WITH_TRACE], pairs[BASE_WITH_TRACE])]


def diff_key(label: str, benchmark: str) -> str:
    """metrics.json key of a paired difference: 'RA-RFT - GRPO', 'mean' -> 'diff.ra_rft_grpo.mean'."""
    return f"diff.{re.sub(r'[^a-z0-9]+', '_', label.lower()).strip('_')}.{benchmark}"


def strategy_split_pairs(config: dict) -> list[tuple[str, tuple[str, str], tuple[str, str], str]]:
    """RA-RFT - GRPO on a subset of the benchmark items: (label, A, B, group of STRATEGY_GROUPS).

    'training': items a training query could teach; 'corpus_only': items whose strategy or rule name only the
    corpus holds (`rarft.world.needs_corpus_knowledge`), which RL never rewards without a retrieved trace."""
    ra = f"top1-{main_retriever(config)}"
    return [(f"{RA_RFT_VS_GRPO}, {suffix}", ("rarft", ra), ("grpo", "none"), group)
            for group, suffix in STRATEGY_GROUPS.items()]


def read_recall_at_1(path: str | Path, prefer: tuple[str, ...] = (),
                     column: str | None = None) -> tuple[dict[str, float], str | None]:
    """({retriever: recall@1 in %}, the label set it is measured against) from retrievers.csv.

    Expected (evaluate-retrievers' file): a retriever-name column (`retriever` or `name`), a recall@1
    column (`recall@1`, `recall_at_1`, `r@1` or `recall1`, any case) and optionally `against` (the label
    set; one row per retriever and label set). The first label set of `prefer` present is used, else
    the first in the file. Values <= 1 are fractions and shown as percent. ({}, None) when absent.
    ``column``: read that column instead (e.g. `corpus_recall@1`, the whole-corpus figure); ({}, None) when the
    file lacks it.
    """
    path = Path(path)
    if not path.exists():
        return {}, None
    df = pd.read_csv(path)
    cols = {c.lower().strip(): c for c in df.columns}
    name_col = next((cols[c] for c in ("retriever", "name") if c in cols), None)
    rec_col = next((cols[c] for c in ("recall@1", "recall_at_1", "r@1", "recall1") if c in cols), None)
    if column is not None:
        if column.lower() not in cols:
            return {}, None
        rec_col = cols[column.lower()]
    if name_col is None or rec_col is None:
        raise DataError(f"{path}: expected columns 'retriever' and 'recall@1'; found {list(df.columns)}")
    against = None
    if "against" in cols:
        sets = list(dict.fromkeys(df[cols["against"]].astype(str)))
        against = next((p for p in prefer if p in sets), sets[0] if sets else None)
        df = df[df[cols["against"]].astype(str) == against]
    values = pd.to_numeric(df[rec_col], errors="coerce")
    scale = 100.0 if values.dropna().le(1.0).all() else 1.0
    return {str(n): float(v) * scale for n, v in zip(df[name_col], values) if not math.isnan(v)}, against


def build_table(spec: TableSpec, summaries: dict, benches: list[str], seed: int, resamples: int,
                level: float, recall: dict[str, float] | None = None,
                corpus_recall: dict[str, float] | None = None) -> pd.DataFrame:
    """The table in long form: one line per (row, column), best per block and column marked."""
    lines = []
    for block in spec.blocks:
        for row in block.rows:
            base = {"table": spec.name, "block": block.name, "row": row.label, "policy": row.policy,
                    "setting": row.setting}
            if "recall@1" in spec.extra_columns:
                r = (recall or {}).get(row.extra.get("retriever", ""))
                base["recall_at_1"] = r
                if corpus_recall:  # the whole-corpus recall@1, its own column
                    base["corpus_recall_at_1"] = corpus_recall.get(row.extra.get("retriever", ""))
            if row.quoted is not None:
                for b in [*benches, "mean"]:
                    v = row.quoted.get(b)
                    lines.append({**base, "status": QUOTED, "benchmark": b, "score": v})
                continue
            s = summaries.get((row.policy, row.setting))
            if s is None and row.optional:
                continue
            if s is None:
                lines += [{**base, "status": NOT_RUN, "benchmark": b} for b in [*benches, "mean"]]
                continue
            present = [b for b in benches if b in s["benchmarks"]]
            for b in benches:
                cell = s["benchmarks"].get(b)
                if cell is None:
                    lines.append({**base, "status": "missing benchmark", "benchmark": b})
                    continue
                lines.append({**base, "status": "ok", "benchmark": b, "score": 100 * cell["average_at_k"],
                              "ci_low": 100 * cell["ci_low"], "ci_high": 100 * cell["ci_high"],
                              "n_problems": cell.get("n_problems"), "k": s["k"]})
            if present == benches and all(b in s["per_problem"] for b in benches):
                point, lo, hi = bootstrap_mean_ci(s["per_problem"], benches, resamples, level,
                                                  rng_for(seed, row.policy, row.setting, "mean"))
                point = float(np.mean([s["benchmarks"][b]["average_at_k"] for b in benches]))
                lines.append({**base, "status": "ok", "benchmark": "mean", "score": 100 * point,
                              "ci_low": 100 * lo, "ci_high": 100 * hi,
                              "n_problems": sum(len(s["per_problem"][b]) for b in benches), "k": s["k"]})
            else:
                lines.append({**base, "status": "missing benchmark", "benchmark": "mean"})
    df = pd.DataFrame(lines)
    for col in ("score", "ci_low", "ci_high", "n_problems", "k"):
        if col not in df:
            df[col] = np.nan
    df["best"] = False
    measured = df["status"] == "ok"
    for _, idx in df[measured].groupby(["block", "benchmark"]).groups.items():
        rounded = df.loc[idx, "score"].round(1)
        if len(set(df.loc[idx, "row"])) > 1:  # a block of one row has no "best"
            df.loc[rounded[rounded == rounded.max()].index, "best"] = True
    return df


# ---------------------------------------------------------------- rendering

def _cell(line: dict, latex: bool = False) -> str:
    status = line.get("status")
    if status == NOT_RUN:
        return NOT_RUN
    score = line.get("score")
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return "–" if status == QUOTED else "missing"
    value = f"{score:.1f}"
    if line.get("best"):
        value = f"\\textbf{{{value}}}" if latex else f"**{value}**"
    lo, hi = line.get("ci_low"), line.get("ci_high")
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):
        return value
    if latex:
        return f"{value} {{\\scriptsize [{lo:.1f}, {hi:.1f}]}}"
    return f"{value} [{lo:.1f}, {hi:.1f}]"


def _grid(df: pd.DataFrame, benches: list[str], latex: bool) -> tuple[list[str], list[tuple[str, list[list[str]]]]]:
    recall_cols = [c for c in ("recall_at_1", "corpus_recall_at_1") if c in df.columns]
    names = {"recall_at_1": "recall@1", "corpus_recall_at_1": "recall@1 (whole corpus)"}
    header = ["method", *(names[c] for c in recall_cols), *benches, "mean"]
    blocks = []
    for block, bdf in df.groupby("block", sort=False):
        rows = []
        for label, rdf in bdf.groupby("row", sort=False):
            by_bench = {r["benchmark"]: r for r in rdf.to_dict("records")}
            first = rdf.iloc[0]
            cells = [label]
            for c in recall_cols:
                r = first.get(c)
                cells.append("–" if r is None or (isinstance(r, float) and math.isnan(r)) else f"{r:.1f}")
            cells += [_cell(by_bench.get(b, {}), latex) for b in [*benches, "mean"]]
            rows.append(cells)
        blocks.append((block, rows))
    return header, blocks


def to_markdown(df: pd.DataFrame, spec: TableSpec, benches: list[str]) -> str:
    header, blocks = _grid(df, benches, latex=False)
    out = [f"### {spec.title}", "", f"Claim tested: {spec.claim}", "",
           "| block | " + " | ".join(header) + " |", "|" + "---|" * (len(header) + 1)]
    for block, rows in blocks:
        out += ["| " + block + " | " + " | ".join(cells) + " |" for cells in rows]
    out += ["", "Cells: average@k in % with its 95% interval; **bold** = best in its block and column; "
                "mean = mean of the benchmark scores (interval: bootstrap over problems within each benchmark). "
                f"Rows marked '{QUOTED}' are the paper's numbers, not ours; "
                f"'{NOT_RUN}' = that arm was not evaluated.", ""]
    return "\n".join(out)


def _tex_escape(s: str) -> str:
    s = s.replace("\\", "\\textbackslash{}")
    return s.replace("&", "\\&").replace("%", "\\%").replace("_", "\\_").replace("#", "\\#")


def to_latex(df: pd.DataFrame, spec: TableSpec, benches: list[str]) -> str:
    header, blocks = _grid(df, benches, latex=True)
    lines = ["% generated by `python -m rarft analyze`; needs \\usepackage{booktabs}",
             "\\begin{tabular}{l" + "c" * (len(header) - 1) + "}", "\\toprule",
             " & ".join(_tex_escape(h) for h in header) + " \\\\"]
    for block, rows in blocks:
        lines += ["\\midrule", f"\\multicolumn{{{len(header)}}}{{l}}{{\\textit{{{_tex_escape(block)}}}}} \\\\"]
        for cells in rows:
            lines.append(" & ".join([_tex_escape(cells[0]), *cells[1:]]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def comparisons_markdown(df: pd.DataFrame) -> str:
    out = ["### Paired differences (A - B, percentage points)", "",
           "Paired bootstrap over the problems both arms were scored on; `P(diff<=0)` is the share of "
           "resamples in which A does not beat B. "
           f"`{RA_RFT_VS_BASE_TOP1}`: the base model given the same top-1 trace only at inference, so the row "
           "is what RL with the trace adds over the context alone. "
           f"`{TRACE_BENEFIT}`: (RA-RFT + top-1 - RA-RFT alone) - (base + top-1 - base alone), per problem: how much "
           "more the policy gets out of the same trace after RL with it than before. "
           f"`{RA_RFT_VS_GRPO}, <knowledge>` (embedded world only): the same difference on the benchmark items "
           f"a training query could teach (`{STRATEGY_GROUPS['training']}`) and on those whose strategy or rule "
           f"name only the corpus holds (`{STRATEGY_GROUPS['corpus_only']}`: data.world.corpus_only, "
           "data.world.corpus_only_names).", "",
           "| comparison | benchmark | diff | 95% interval | P(diff<=0) | problems |", "|---|---|---|---|---|---|"]
    if df.empty:
        out.append("| (no pair of arms both evaluated) | | | | | |")
    for r in df.to_dict("records"):
        out.append(f"| {r['comparison']} | {r['benchmark']} | {r['diff']:+.1f} | [{r['ci_low']:+.1f}, "
                   f"{r['ci_high']:+.1f}] | {r['p_le_0']:.3f} | {r['n_problems']} |")
    return "\n".join(out) + "\n"
