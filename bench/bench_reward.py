"""Reward throughput: memoised vs plain verification on realistic completions.

Completions are the world's cheatsheet traces (data/traces/corpus.jsonl if built, else generated here)
with the boxed answer replaced as a policy's samples would have it: per problem, G samples drawing
from the gold and a few wrong answers, so answers repeat as they do within a GRPO group.

    python bench/bench_reward.py [--problems 60] [--group 16] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time
from pathlib import Path

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def completions(problems: int, group: int, seed: int = 0) -> list[tuple[str, str]]:
    from rarft.config import load_config
    from rarft.io import read_jsonl
    from rarft.world import generate_world

    path = "data/traces/corpus.jsonl"
    if os.path.exists(path):
        items = read_jsonl(path)
    else:
        world_cfg = load_config(PARAMS)["data"]["world"]
        items = generate_world(**{**world_cfg, "n_train": 10, "n_corpus": problems, "benchmarks": {}})["corpus"]
    rng = random.Random(seed)
    pairs = []
    for item in items[:problems]:
        gold = int(item["answer"]) if item["answer"].lstrip("-").isdigit() else 7
        wrong = [str(gold + d) for d in (-1, 1, 10)] + ["\\frac{" + str(gold) + "}{2}"]
        for _ in range(group):
            answer = str(gold) if rng.random() < 0.4 else rng.choice(wrong)
            text = re.sub(r"\\boxed\{[^}]*\}", lambda m: "\\boxed{" + answer + "}", item["trace"])
            pairs.append((text, item["answer"]))
    return pairs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problems", type=int, default=60)
    p.add_argument("--group", type=int, default=16, help="samples per problem (a GRPO group)")
    p.add_argument("--tiny", action="store_true",
                   help="smallest sizes, seconds: checks that the script runs (tests/test_bench.py), not its ratios")
    args = p.parse_args()
    if args.tiny:
        args.problems, args.group = 3, 2

    from rarft import reward

    pairs = completions(args.problems, args.group)
    reward.math_reward("\\boxed{1}", "1", memoise=False)  # start the verification worker
    t = time.perf_counter()
    plain = [reward.math_reward(c, g, memoise=False) for c, g in pairs]
    t_plain = time.perf_counter() - t
    reward._cached_verdict.cache_clear()  # memoised run starts cold
    t = time.perf_counter()
    memo = [reward.math_reward(c, g) for c, g in pairs]
    t_memo = time.perf_counter() - t
    assert plain == memo, "memoised and plain verdicts differ"
    distinct = reward._cached_verdict.cache_info().currsize
    print(f"{len(pairs)} completions ({args.problems} problems x {args.group}), {distinct} distinct "
          f"(answer, gold) pairs, accuracy {sum(plain) / len(plain):.2f}")
    print(f"  plain     {t_plain:6.2f} s  {len(pairs) / t_plain:8.0f} completions/s")
    print(f"  memoised  {t_memo:6.2f} s  {len(pairs) / t_memo:8.0f} completions/s")
    print(f"memoised / plain throughput: {t_plain / t_memo:.1f}x")


if __name__ == "__main__":
    main()
