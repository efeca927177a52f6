"""Gain labeling: shared-prefix batched (rarft.labels) vs a naive per-pair loop, on a tiny policy.

Both estimate the same quantity for the same (query, candidate) pairs with n samples per prompt:
- naive: for every pair, one generate call for the plain prompt and one for the prompt with the
  candidate (P(correct | q) re-estimated per pair, nothing batched);
- batched: `rarft.labels.label_relevance("gain", ...)`: the plain prompt once per query, all of a
  query's prompts (and several queries) in one generate call, through the configured backend.
The speed-up therefore has two sources, reported separately: fewer sequences (M + 1 instead of 2M
prompts per query) and batching (sequences per second). On vLLM, prefix caching adds to the second.

    python bench/bench_gain_labeling.py [--queries 6] [--candidates 4] [--samples 4] [--tokens 32] [--tiny]

Measured here (2 shared CPU cores, tiny random policy, 4 queries x 4 candidates x 4 samples, 24 tokens):
naive 260.7 s, batched 32.0 s: 8.1x = 1.6x fewer sequences * 5.1x throughput.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=6)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--tokens", type=int, default=32, help="max new tokens per sample")
    p.add_argument("--policy-dir", help="an existing policy (default: build a tiny random one here)")
    p.add_argument("--tiny", action="store_true",
                   help="smallest sizes, seconds: checks that the script runs (tests/test_bench.py), not its ratios")
    args = p.parse_args()
    if args.tiny:
        args.queries, args.candidates, args.samples, args.tokens = 2, 2, 1, 2

    import torch

    from rarft.candidates import sample_candidates
    from rarft.config import deep_merge, load_config
    from rarft.generation import Sampling, make_backend
    from rarft.labels import label_relevance
    from rarft.policy import build_tiny_policy, resolve_model, world_texts
    from rarft.prompts import build_prompt
    from rarft.world import generate_world

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    config = load_config(Path(__file__).resolve().parents[1] / "params.yaml")
    config = deep_merge(config, {"labels": {"gain": {"n_samples": args.samples, "max_new_tokens": args.tokens}}})
    world = generate_world(**{**config["data"]["world"], "n_train": args.queries, "n_corpus": 60,
                              "benchmarks": {"b": {"n": 1, "difficulty": "easy"}}})
    queries, corpus = world["train"], world["corpus"]
    cands = sample_candidates(queries, corpus, args.candidates, seed=0,
                              stratify_by_strategy=config["labels"]["stratify_by_strategy"])
    by_id = {c["id"]: c for c in corpus}
    pairs = [(q, by_id[cid]) for q, row in zip(queries, cands) for cid in row["candidates"]]

    with tempfile.TemporaryDirectory() as tmp:
        policy = args.policy_dir or str(build_tiny_policy(world_texts(queries + corpus), config["policy"]["tiny"],
                                                          Path(tmp) / "tiny", seed=0))
        backend = make_backend(resolve_model(policy), config)
        if hasattr(backend, "show_progress"):
            backend.show_progress = False  # one bar per call would swamp the naive loop's output
        sampling = Sampling(n=args.samples, temperature=1.0, max_new_tokens=args.tokens, seed=0)
        backend.generate([build_prompt(queries[0]["problem"])], sampling)  # warm-up (lazy loading)

        t0 = time.perf_counter()
        for q, c in pairs:
            backend.generate([build_prompt(q["problem"])], sampling)
            backend.generate([build_prompt(q["problem"], [c], target_id=q["id"])], sampling)
        naive = time.perf_counter() - t0
        naive_seqs = 2 * len(pairs) * args.samples

        t0 = time.perf_counter()
        label_relevance("gain", queries, corpus, cands, config, backend=backend, policy_dir=policy,
                        cache_path=Path(tmp) / "gain.cache.jsonl", progress=False)
        batched = time.perf_counter() - t0
        batched_seqs = (len(pairs) + len(queries)) * args.samples
        backend.close()

    print(f"gain labeling, {len(queries)} queries x {args.candidates} candidates x {args.samples} samples, "
          f"{args.tokens} new tokens, backend {config['generation']['backend']}")
    print(f"  naive per-pair loop : {naive:8.2f} s  {naive_seqs:5d} sequences  {naive_seqs / naive:7.1f} seq/s")
    print(f"  shared-prefix batch : {batched:8.2f} s  {batched_seqs:5d} sequences  {batched_seqs / batched:7.1f} seq/s")
    print(f"  speed-up {naive / batched:.2f}x = {naive_seqs / batched_seqs:.2f}x fewer sequences "
          f"* {(batched_seqs / batched) / (naive_seqs / naive):.2f}x throughput")


if __name__ == "__main__":
    main()
