"""Candidate pairs to label (stage `sample-candidates`, rule sample_candidates).

Per training query, M corpus items of the query's problem_type (seeded); `data/labels/candidates.jsonl`
rows `{"query_id", "problem_type", "candidates": [corpus ids]}`. The labelers (rarft.labels, stage
label-relevance) label exactly these pairs.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict

from rarft.config import add_config_argument, load_config
from rarft.contracts import read_items
from rarft.io import write_jsonl
from rarft.prompts import normalise_text
from rarft.world import analogous

# what candidate sampling reads of an item (rarft.contracts.read_items adds id and problem; `strategy`,
# world only, is optional)
ITEM_NEED = ("problem_type",)


def sample_candidates(queries: list[dict], corpus: list[dict], m: int, seed: int,
                      stratify_by_strategy: bool) -> list[dict]:
    """Per query, up to ``m`` distinct corpus items of the same problem_type, in random order.

    Drawn with a per-query RNG (seed, query id), so a query's candidates do not depend on the others.
    A corpus item with the query's id or its exact (normalised) text is never a candidate.

    Stratification (world only, where items carry the hidden `strategy`): when the pool has both, at
    least one candidate shares the query's strategy and at least one does not; the rest are uniform.
    This uses the hidden strategy to choose WHICH pairs get labelled, never what their label is: every
    labeler sees the same set and labels it blind. Without it, M = 6 uniform draws from a type with 3
    strategies miss the query's strategy for (2/3)^6 ~ 9% of queries, whose labels are then all
    negative and useless for contrastive training; stratifying fixes those ~9% and otherwise matches
    uniform sampling. It does make the world's candidate sets slightly easier than real data, where no
    strategy exists and sampling is uniform within problem_type (the paper's own filter); turn it off
    with labels.stratify_by_strategy: false to measure that difference.
    """
    pools: dict[str, list[dict]] = defaultdict(list)
    texts: dict[str, str] = {}  # each corpus item normalised once (review N12: once per query was ~8e8 calls)
    for item in corpus:
        pools[item["problem_type"]].append(item)
        texts[item["id"]] = normalise_text(item["problem"])
    rows = []
    for q in queries:
        rng = random.Random(f"{seed}:{q['id']}")
        own_text = normalise_text(q["problem"])
        pool = [c for c in pools.get(q["problem_type"], []) if c["id"] != q["id"] and texts[c["id"]] != own_text]
        chosen: list[dict] = []
        if stratify_by_strategy and q.get("strategy") is not None and m >= 2:
            same = [c for c in pool if analogous(q, c)]
            diff = [c for c in pool if c.get("strategy") is not None and c["strategy"] != q["strategy"]]
            chosen = [rng.choice(group) for group in (same, diff) if group]
        rest = [c for c in pool if c not in chosen]
        chosen += rng.sample(rest, min(m - len(chosen), len(rest)))
        rng.shuffle(chosen)  # position carries no information about the strategy
        rows.append({"query_id": q["id"], "problem_type": q["problem_type"],
                     "candidates": [c["id"] for c in chosen]})
    return rows


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft sample-candidates", description=sample_candidates.__doc__.splitlines()[0])
    add_config_argument(p)
    p.add_argument("--train", required=True, help="training queries JSONL (data/clean/train.jsonl)")
    p.add_argument("--corpus", required=True, help="corpus with traces JSONL (data/traces/corpus.jsonl)")
    p.add_argument("--out", required=True, help="data/labels/candidates.jsonl")
    args = p.parse_args(argv)
    config = load_config(args.config)
    queries = read_items(args.train, need=ITEM_NEED)
    corpus = read_items(args.corpus, need=ITEM_NEED)
    rows = sample_candidates(queries, corpus, config["labels"]["candidates_per_query"], config["seed"],
                             config["labels"]["stratify_by_strategy"])
    write_jsonl(args.out, rows)
    n = sum(len(r["candidates"]) for r in rows)
    short = sum(len(r["candidates"]) < config["labels"]["candidates_per_query"] for r in rows)
    print(f"sample-candidates: {len(rows)} queries, {n} pairs ({short} queries with fewer than M) -> {args.out}")
    return 0
