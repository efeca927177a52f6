"""compare-labelers: agreement between relevance labelers, how well each predicts measured gain, and how
weakly off-the-shelf embedding similarity predicts it (the paper's motivating claim, on our data).

Reads the label files rarft.labels writes (docs/architecture.md); pandas, scipy, sklearn and an encoder are
imported lazily.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rarft.config import add_config_argument, load_config
from rarft.contracts import read_items, read_labels
from rarft.io import DataError, atomic_path, write_text
from rarft.labels import ITEM_NEED


def pair_similarity(pairs: list[tuple[str, str]], queries: dict, corpus: dict, encoder) -> list[float]:
    """Cosine similarity of off-the-shelf embeddings, query problem vs the candidate as the off-the-shelf
    retriever sees it (`rarft.retrieval.doc_text`: problem, then trace)."""
    from rarft.retrieval import doc_text

    qids = sorted({q for q, _ in pairs})
    cids = sorted({c for _, c in pairs})
    qv = encoder.encode([queries[i]["problem"] for i in qids], normalize_embeddings=True, convert_to_numpy=True)
    cv = encoder.encode([doc_text(corpus[i]) for i in cids], normalize_embeddings=True, convert_to_numpy=True)
    qi, ci = {q: i for i, q in enumerate(qids)}, {c: i for i, c in enumerate(cids)}
    return [float(qv[qi[q]] @ cv[ci[c]]) for q, c in pairs]


def _auc(y, score) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if len(set(y)) == 2 else float("nan")


def _kappa(a, b) -> float:
    """sklearn's Cohen's kappa, its own value in every case: 0.0 when both labelers are constant and disagree
    (p_o = p_e = 0; review D3), NaN only when it is undefined (both constant and agreeing: p_e = 1)."""
    import warnings

    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():  # its single-label and undefined-metric warnings: the cases named above
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(cohen_kappa_score(a, b))


def compare_labelers(label_sets: dict[str, list[dict]], queries: dict, corpus: dict, encoder=None):
    """(metrics DataFrame in long form, similarity-vs-gain DataFrame or None).

    metrics rows: (section, labeler, other, metric, value). Sections: 'labeler' (counts, and with gain
    labels present: mean gain of its positives vs negatives, AUC of its label vs gain = probability a
    random positive has higher measured gain than a random negative), 'agreement' (percent, Cohen's
    kappa on pairs both labelled), 'similarity' (off-the-shelf cosine vs gain: Spearman, Pearson, AUC,
    next to the oracle's AUC for comparison). The gain labeler's own AUC is high by construction.
    """
    import pandas as pd
    from scipy.stats import pearsonr, spearmanr
    frames = []
    for name, rows in label_sets.items():
        df = pd.DataFrame(rows)[["query_id", "context_id", "label", "score", "stderr"]]
        frames.append(df.rename(columns={"label": f"label_{name}", "score": f"score_{name}",
                                         "stderr": f"stderr_{name}"}))
    merged = frames[0]
    for f in frames[1:]:
        merged = merged.merge(f, on=["query_id", "context_id"], how="outer")
    names = list(label_sets)
    has_gain = "gain" in label_sets
    out = []

    def put(section, labeler, other, metric, value):
        out.append({"section": section, "labeler": labeler, "other": other, "metric": metric,
                    "value": None if value is None else float(value)})

    for name in names:
        own = [r["label"] for r in label_sets[name]]
        labelled = [v for v in own if v is not None]
        put("labeler", name, "", "n_pairs", len(own))
        put("labeler", name, "", "n_null", len(own) - len(labelled))
        put("labeler", name, "", "positive_rate", sum(labelled) / len(labelled) if labelled else None)
        if has_gain:
            both = merged[[f"label_{name}", "score_gain"]].dropna()
            y = both[f"label_{name}"].astype(int).tolist()
            lab = both[f"label_{name}"]
            put("labeler", name, "gain", "mean_gain_positive", both.loc[lab == 1, "score_gain"].mean())
            put("labeler", name, "gain", "mean_gain_negative", both.loc[lab == 0, "score_gain"].mean())
            put("labeler", name, "gain", "auc_label_vs_gain", _auc(y, both["score_gain"].tolist()))
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = merged[[f"label_{a}", f"label_{b}"]].dropna().astype(int)
            put("agreement", a, b, "n_pairs", len(both))
            if len(both):
                put("agreement", a, b, "agreement_pct", 100 * (both.iloc[:, 0] == both.iloc[:, 1]).mean())
                put("agreement", a, b, "cohen_kappa", _kappa(both.iloc[:, 0], both.iloc[:, 1]))
    sim_df = None
    if has_gain and encoder is not None:
        g = merged.dropna(subset=["score_gain"]).reset_index(drop=True)
        sim = pair_similarity(list(zip(g["query_id"], g["context_id"])), queries, corpus, encoder)
        sim_df = pd.DataFrame({"query_id": g["query_id"], "context_id": g["context_id"], "similarity": sim,
                               "gain": g["score_gain"], "stderr": g["stderr_gain"],
                               "oracle": g["label_oracle"] if "label_oracle" in g else None})
        rho = spearmanr(sim_df["similarity"], sim_df["gain"])
        r = pearsonr(sim_df["similarity"], sim_df["gain"]) if sim_df["gain"].nunique() > 1 else None
        put("similarity", "offshelf_cosine", "gain", "spearman", rho.statistic)
        put("similarity", "offshelf_cosine", "gain", "spearman_p", rho.pvalue)
        put("similarity", "offshelf_cosine", "gain", "pearson", None if r is None else r.statistic)
        put("similarity", "offshelf_cosine", "gain", "pearson_p", None if r is None else r.pvalue)
        put("similarity", "offshelf_cosine", "gain", "auc_vs_gain",
            _auc([int(v) for v in g["label_gain"]], sim_df["similarity"].tolist()))
        if "label_oracle" in g:
            o = sim_df.dropna(subset=["oracle"])
            put("similarity", "offshelf_cosine", "oracle", "auc_vs_oracle",
                _auc(o["oracle"].astype(int).tolist(), o["similarity"].tolist()))
            put("similarity", "oracle", "gain", "auc_label_vs_gain",
                _auc(o["oracle"].astype(int).tolist(), o["gain"].tolist()))
    return pd.DataFrame(out), sim_df


def metrics_markdown(metrics, encoder_name: str) -> str:
    """labelers.md: one table per section, metrics as columns."""
    parts = ["# Relevance labelers", ""]
    titles = {"labeler": "Each labeler (AUC: label as class, measured gain as score; gain's own is by construction)",
              "agreement": "Agreement between labelers (pairs both labelled)",
              "similarity": f"Off-the-shelf similarity ({encoder_name}) against measured gain"}
    for section, title in titles.items():
        part = metrics[metrics["section"] == section]
        if part.empty:
            continue
        wide = part.pivot_table(index=["labeler", "other"], columns="metric", values="value", sort=False,
                                dropna=False).reset_index()
        parts += [f"## {title}", "", wide.to_markdown(index=False, floatfmt=".3f"), ""]
    return "\n".join(parts)


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft compare-labelers", description="Compare relevance labelers.")
    add_config_argument(p)
    p.add_argument("--labels", nargs="+", required=True, help="data/labels/<labeler>.jsonl files")
    p.add_argument("--train", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--out-dir", required=True, help="writes labelers.md, labelers.csv, similarity_vs_gain.csv")
    args = p.parse_args(argv)
    config = load_config(args.config)
    label_sets = {}
    for path in args.labels:
        rows = read_labels(path)  # one labeler per file
        if not rows:
            raise DataError(f"{path}: no label rows")
        label_sets[rows[0]["labeler"]] = rows
    queries = {q["id"]: q for q in read_items(args.train, need=ITEM_NEED)}
    corpus = {c["id"]: c for c in read_items(args.corpus, need=ITEM_NEED)}
    base = config["retriever"]["base_model"]
    if "gain" in label_sets:
        from rarft.device import resolve_device
        from rarft.retrieval import load_encoder

        encoder = load_encoder(base, resolve_device(config))
    else:
        encoder = None
    metrics, sim = compare_labelers(label_sets, queries, corpus, encoder)
    out = Path(args.out_dir)
    with atomic_path(out / "labelers.csv") as tmp:
        metrics.to_csv(tmp, index=False)
    write_text(out / "labelers.md", metrics_markdown(metrics, base))
    import pandas as pd

    sim = sim if sim is not None else pd.DataFrame(columns=["query_id", "context_id", "similarity", "gain",
                                                             "stderr", "oracle"])
    with atomic_path(out / "similarity_vs_gain.csv") as tmp:
        sim.to_csv(tmp, index=False)
    spear = metrics[(metrics["section"] == "similarity") & (metrics["metric"] == "spearman")]["value"]
    print(f"compare-labelers: {', '.join(label_sets)}; "
          + (f"similarity vs gain Spearman {spear.iloc[0]:.3f}; " if len(spear) else "no gain labels; ")
          + f"-> {out}/labelers.{{md,csv}}, similarity_vs_gain.csv")
    return 0
