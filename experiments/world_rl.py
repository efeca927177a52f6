"""The world's learnability experiments (issue #18, docs/world.md sections F and G), rerunnable.

One warm-up design, one RL setting, outside the DAG:
  1. build the world and warm up a tiny base (`rarft.policy.init_policy`), or reuse one (--base);
  2. probe the base (`rarft.policy.probe_benchmarks`: benchmarks alone and with an analogue) and run the
     strategy diagnostic on it;
  3. train RA-RFT (`rarft.train.train_policy`) with an oracle-like top-1 (a random corpus analogue per query),
     so the retriever's quality is not part of the measure;
  4. probe RA-RFT and run the diagnostic again.

The strategy diagnostic: for named training queries, the share of samples that write the query's strategy
(its Step 1 wording) when the context is none / an analogue / a trace of another strategy of the type / a
trace of the query's strategy under another name. It says what the base trusts, which the probe alone cannot.

    python experiments/world_rl.py --out runs/experiments/F2 \\
        --set policy.tiny.sft.same_name_reference_right=0.6 rl.trainer.max_steps=100

--labels adds the DAG's first stage on the base (gain labels of the training queries' candidates, kappa against
the oracle, mean gain per kind of candidate); --name-check N samples the base on N fresh questions of its own
warm-up, each with the reference the warm-up's mix draws, and reports how often it follows a same-name reference
and one under another name (does it compare names at all?); --skip-rl stops after the base.

--set takes dotted keys of params.yaml (values read as YAML), checked by the schema like any override file.
Writes <out>/result.json; the base goes to <out>/base (reused by a rerun), RA-RFT to <out>/rarft.
Cost on 2 CPU cores at the default sizes: ~4 min warm-up, ~5 min RL, ~3 min of probes and diagnostics.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rarft.config import ConfigError, add_config_argument, deep_merge, merge_files, validate_config  # noqa: E402
from rarft.io import write_json  # noqa: E402
from rarft.world import STRATEGIES, analogous, generate_world  # noqa: E402

CONTEXT_KINDS = ("alone", "analogue", "other_strategy", "same_strategy_other_name")


def parse_sets(pairs: list[str]) -> dict:
    """['a.b=1', ...] -> {'a': {'b': 1}}: the override file --set stands for."""
    over: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected dotted.key=value")
        node = over
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return over


def world_splits(config: dict) -> dict[str, list[dict]]:
    world = dict(config["data"]["world"])
    return generate_world(world.pop("seed"), world.pop("n_train"), world.pop("n_corpus"), world.pop("benchmarks"),
                          **world)


def context_kind(query: dict, context: dict) -> str:
    """What a same-type trace is to a NAMED query: one of CONTEXT_KINDS after 'alone' (the oracle decides the
    analogue; a plain query states its strategy, so it has no kinds: 'plain_question')."""
    if not query.get("named_rule"):
        return "plain_question"
    if analogous(query, context):
        return "analogue"
    return "same_strategy_other_name" if context["strategy"] == query["strategy"] else "other_strategy"


def oracle_context(item: dict, corpus: list[dict], rng: random.Random) -> dict:
    """A random corpus analogue of ``item`` (a same-strategy trace where the corpus holds none under its name)."""
    same = [c for c in corpus if c["strategy"] == item["strategy"]]
    return rng.choice([c for c in same if analogous(item, c)] or same)


def written_strategy(completion: str) -> str | None:
    """The strategy whose Step 1 wording a completion writes (None: none of them)."""
    return next((st.name for st in STRATEGIES if st.describe in completion), None)


def sample(model, tokenizer, problem: str, contexts: list[dict], *, samples: int, max_new_tokens: int,
           enable_thinking: bool) -> list[str]:
    """``samples`` completions at T = 1 of the prompt the DAG builds for ``problem`` with ``contexts``."""
    import torch

    from rarft.prompts import build_prompt

    text = tokenizer.apply_chat_template(build_prompt(problem, contexts), tokenize=False, add_generation_prompt=True,
                                         enable_thinking=enable_thinking)
    enc = tokenizer([text] * samples, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def strategy_diagnostic(model, tokenizer, queries: list[dict], corpus: list[dict], *, samples: int, seed: int,
                        max_new_tokens: int, enable_thinking: bool) -> dict:
    """{kind: {'n', 'query_strategy', 'context_strategy', 'correct'}}: shares of samples, by kind of context."""
    import torch

    from rarft.reward import math_reward

    rng = random.Random(seed)
    torch.manual_seed(seed)
    counts: Counter = Counter()
    for q in queries:
        pools: dict[str, list[dict]] = {}
        for c in corpus:
            if c["problem_type"] == q["problem_type"]:
                pools.setdefault(context_kind(q, c), []).append(c)
        for kind in CONTEXT_KINDS:
            ctx = None if kind == "alone" else (rng.choice(pools[kind]) if pools.get(kind) else None)
            if kind != "alone" and ctx is None:
                continue
            completions = sample(model, tokenizer, q["problem"], [ctx] if ctx else [], samples=samples,
                                 max_new_tokens=max_new_tokens, enable_thinking=enable_thinking)
            for completion in completions:
                wrote = written_strategy(completion)
                counts[kind, "n"] += 1
                counts[kind, "query_strategy"] += wrote == q["strategy"]
                counts[kind, "context_strategy"] += ctx is not None and wrote == ctx["strategy"]
                counts[kind, "correct"] += math_reward(completion, q["answer"], thinking=enable_thinking)
    return {kind: {"n": counts[kind, "n"],
                   **{k: round(counts[kind, k] / counts[kind, "n"], 3) if counts[kind, "n"] else None
                      for k in ("query_strategy", "context_strategy", "correct")}}
            for kind in CONTEXT_KINDS}


NAME_CHECK_KINDS = ("same_name", "other_name_same_strategy", "other_name_other_strategy")


def warmup_name_check(model, tokenizer, config: dict, *, items: int, samples: int, seed: int) -> dict:
    """Does the base compare rule names on its OWN warm-up distribution (random names, never the world's)?

    ``items`` fresh warm-up questions, each named and given the reference the warm-up's mix draws (a same-name one,
    right at ``same_name_reference_right``, or one under another name showing any strategy of the type), sampled
    ``samples`` times. Returns {kind: {'n', 'follows'}}: the share writing the reference's strategy. A base that
    checks names follows a same-name reference far more often than another name's; one that does not follows both
    at about the rate its warm-up's references were right overall (docs/world.md, section M)."""
    import torch

    from rarft.world import generate_warmup, warmup_mix

    mix = {**warmup_mix(config["policy"]["tiny"]["sft"]), "named_rule_share": 1.0, "named_without_reference": 0.0}
    drawn = generate_warmup(seed, items, set(), **mix)
    torch.manual_seed(seed)
    counts: Counter = Counter()
    for item in drawn:
        ref = item["contexts"][0]
        kind = ("same_name" if ref["rule"] == item["rule"] else
                "other_name_same_strategy" if ref["strategy"] == item["strategy"] else "other_name_other_strategy")
        for completion in sample(model, tokenizer, item["problem"], item["contexts"], samples=samples,
                                 max_new_tokens=int(config["evaluation"]["max_new_tokens"]),
                                 enable_thinking=bool(config["policy"]["enable_thinking"])):
            counts[kind, "n"] += 1
            counts[kind, "follows"] += written_strategy(completion) == ref["strategy"]
    return {kind: {"n": counts[kind, "n"],
                   "follows": round(counts[kind, "follows"] / counts[kind, "n"], 3) if counts[kind, "n"] else None}
            for kind in NAME_CHECK_KINDS}


def measure(model_dir: Path, splits: dict, config: dict, args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarft.policy import probe_benchmarks

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    benchmarks = {name: splits[name] for name in config["data"]["world"]["benchmarks"]}
    named = [q for q in splits["train"] if q.get("named_rule")][: args.diag_queries]
    return {"probe": probe_benchmarks(model, tokenizer, benchmarks, splits["corpus"], config)["benchmarks"],
            "diagnostic": strategy_diagnostic(model, tokenizer, named, splits["corpus"], samples=args.diag_samples,
                                              seed=int(config["seed"]),
                                              max_new_tokens=int(config["evaluation"]["max_new_tokens"]),
                                              enable_thinking=bool(config["policy"]["enable_thinking"]))}


def label_agreement(base: Path, splits: dict, config: dict, out: Path) -> dict:
    """The DAG's first stage on this base: the gain labels of the training queries' candidates (the DAG's
    `sample-candidates` draw) against the oracle: Cohen's kappa, and per kind of candidate its mean gain and
    share labelled positive (docs/world.md, section H's table)."""
    from rarft.candidates import sample_candidates
    from rarft.labels import label_relevance
    from rarft.labels_compare import compare_labelers

    lcfg = config["labels"]
    candidates = sample_candidates(splits["train"], splits["corpus"], int(lcfg["candidates_per_query"]),
                                   int(config["seed"]), bool(lcfg["stratify_by_strategy"]))
    sets = {name: label_relevance(name, splits["train"], splits["corpus"], candidates, config, policy_dir=str(base),
                                  cache_path=out / f"labels_{name}.cache.jsonl", progress=False)
            for name in ("gain", "oracle")}
    metrics, _ = compare_labelers(sets, {}, {})
    kappa = metrics[(metrics["section"] == "agreement") & (metrics["metric"] == "cohen_kappa")]["value"].iloc[0]
    queries = {q["id"]: q for q in splits["train"]}
    corpus = {c["id"]: c for c in splits["corpus"]}
    kinds: dict[str, list[tuple[float, int]]] = {}
    for row in sets["gain"]:
        kind = context_kind(queries[row["query_id"]], corpus[row["context_id"]])
        kinds.setdefault(kind, []).append((row["score"], row["label"]))
    return {"kappa": round(float(kappa), 3),
            "by_kind": {k: {"pairs": len(v), "mean_gain": round(sum(g for g, _ in v) / len(v), 3),
                            "positive": round(sum(lab for _, lab in v) / len(v), 3)} for k, v in sorted(kinds.items())}}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_argument(p)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="dotted params.yaml keys to override")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--base", type=Path, default=None, help="a warmed-up base to reuse (default: <out>/base)")
    p.add_argument("--diag-queries", type=int, default=120, help="named training queries in the diagnostic")
    p.add_argument("--diag-samples", type=int, default=8, help="samples per query and kind of context")
    p.add_argument("--labels", action="store_true",
                   help="also gain-label the training queries' candidates on the base: kappa against the oracle")
    p.add_argument("--skip-rl", action="store_true", help="measure the base only (no RA-RFT)")
    p.add_argument("--name-check", type=int, default=0, metavar="N",
                   help="also sample the base on N fresh warm-up questions with a reference: does it compare names?")
    args = p.parse_args(argv)
    if args.name_check < 0:
        p.error(f"--name-check {args.name_check}: the number of warm-up questions must be 0 (off) or more")
    config = validate_config(deep_merge(merge_files(args.config), parse_sets(args.set)), source="--config + --set")
    if args.base is not None and not (args.base / "config.json").is_file():
        raise ConfigError(f"--base {args.base}: not a saved policy (no config.json); omit --base to warm one up")
    import torch

    torch.manual_seed(int(config["seed"]))
    from rarft.policy import init_policy
    from rarft.train import train_policy

    splits = world_splits(config)
    benchmark_items = [it for name in config["data"]["world"]["benchmarks"] for it in splits[name]]
    base = args.base or args.out / "base"
    result: dict = {"set": args.set, "config": args.config}
    if not base.exists():
        summary = init_policy(splits["train"], splits["corpus"], config, base, exclude_items=benchmark_items)
        result["warmup"] = {k: summary[k] for k in ("sft_steps", "first_loss", "final_loss", "seconds")}
    result["base"] = measure(base, splits, config, args)
    if args.labels:
        result["labels"] = label_agreement(base, splits, config, args.out)
        print(f"gain labels vs oracle: kappa {result['labels']['kappa']}; " + "; ".join(
            f"{k}: gain {v['mean_gain']}, positive {v['positive']} ({v['pairs']} pairs)"
            for k, v in result["labels"]["by_kind"].items()))
    if args.name_check:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
        result["name_check"] = warmup_name_check(model, AutoTokenizer.from_pretrained(base), config,
                                                 items=args.name_check, samples=args.diag_samples,
                                                 seed=int(config["seed"]) + 1)
        print("follows the reference's strategy on the warm-up's own questions: " + "; ".join(
            f"{k} {v['follows']} (n {v['n']})" for k, v in result["name_check"].items()))
    if args.skip_rl:
        write_json(args.out / "result.json", result)
        print(f"wrote {args.out / 'result.json'} (base only)")
        return result

    rng = random.Random(int(config["seed"]))
    retrieval = {"train": {q["id"]: [{"id": oracle_context(q, splits["corpus"], rng)["id"], "score": 1.0}]
                           for q in splits["train"]}}
    config["rl"]["curve_arms"] = []  # the probe, not the validation curve, measures RL here
    summary = train_policy("rarft", base, splits["train"], {c["id"]: c for c in splits["corpus"]}, retrieval, {},
                           config, args.out / "rarft", args.out / "rarft_run")
    result["rl"] = {k: summary.get(k) for k in ("final_reward", "rollout_signal", "seconds")}
    result["rarft"] = measure(args.out / "rarft", splits, config, args)
    write_json(args.out / "result.json", result)
    for stage in ("base", "rarft"):
        diag = result[stage]["diagnostic"]
        probe = result[stage]["probe"]
        print(f"{stage}: probe with an analogue " + ", ".join(f"{b} {r['same_strategy']:.3f}" for b, r in probe.items())
              + "; writes the query's strategy " + " / ".join(f"{diag[k]['query_strategy']}" for k in CONTEXT_KINDS)
              + f" ({' / '.join(CONTEXT_KINDS)})")
    print(f"wrote {args.out / 'result.json'}")
    return result


if __name__ == "__main__":
    try:
        main()
    except ConfigError as err:
        sys.exit(f"world_rl: {err}")
