"""average@k evaluation, as the paper scores models, plus the intervals the paper does not report.

`evaluate_policy` samples k completions per benchmark problem for one setting (`none`, `top1-<R>`,
`topk-<R>`), appends every sample to `samples.jsonl` (a killed run resumes from it) and writes
`summary.json`: average@k, a bootstrap CI over problems, pass@1 and unbiased pass@k per benchmark.
The estimators live in rarft.stats.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from rarft.arms import parse_setting
from rarft.config import ConfigError, add_config_argument, load_config
from rarft.io import DataError, JsonlAppender, model_fingerprint, read_json, read_jsonl, text_sha256, write_json
from rarft.stats import average_at_k, bootstrap_ci, mean_pass_at_k

# ---- settings and units ----


def build_units(benchmarks: dict[str, list[dict]], setting: str, config: dict,
                retrieval: list[dict] | None, corpus: list[dict] | None) -> list[dict]:
    """One unit per (benchmark, problem, context rank): the prompt and what a sample row records."""
    from rarft.prompts import build_prompt

    mode, retriever = parse_setting(setting)
    ranks = {"none": 1, "top1": 1, "topk": int(config["analysis"]["diversity_top_k"])}[mode]
    by_query, by_id = {}, {}
    if mode != "none":
        if retrieval is None or corpus is None:
            raise ConfigError(f"--setting {setting}: needs --retrieval and --corpus")
        by_query = {(r.get("split"), r.get("id")): r for r in retrieval}
        by_id = {c["id"]: c for c in corpus}
    units = []
    for bench, items in benchmarks.items():
        for item in items:
            for rank in range(ranks):
                ctx = None
                if mode != "none":
                    row = by_query.get((bench, item["id"]))
                    if row is None:
                        raise DataError(f"retrieval ({retriever}): no row with split={bench!r}, id={item['id']!r}")
                    contexts = row.get("contexts") or []
                    if len(contexts) <= rank:
                        raise DataError(f"retrieval ({retriever}): row {bench}/{item['id']} has {len(contexts)} "
                                        f"contexts, setting {setting} needs {rank + 1}")
                    ctx = by_id.get(contexts[rank]["id"])
                    if ctx is None:
                        raise DataError(f"corpus: context id {contexts[rank]['id']!r} (retrieved for "
                                        f"{bench}/{item['id']}) is not in the corpus")
                units.append({
                    "benchmark": bench, "problem_id": item["id"], "answer": item["answer"],
                    "context_id": ctx["id"] if ctx else None, "context_rank": rank,
                    "prompt": build_prompt(item["problem"], [ctx] if ctx else [], target_id=item["id"]),
                })
    return units


# ---- the stage ----


def evaluate_policy(backend, policy_name: str, setting: str, benchmarks: dict[str, list[dict]], config: dict,
                    out_dir: str | Path, retrieval: list[dict] | None = None, corpus: list[dict] | None = None,
                    k: int | None = None, model_id: str | None = None) -> dict:
    """Sample k completions per unit with ``backend``, score them, write samples.jsonl and summary.json.

    Units already complete in ``out_dir/samples.jsonl`` are not generated again; a partly written
    unit gets only its missing samples. Samples written by another run (other weights ``model_id``,
    policy, setting, sampling or problems) are discarded and the evaluation starts over. Returns the summary.
    """
    from tqdm.auto import tqdm

    from rarft.generation import Sampling
    from rarft.reward import extract_answer, math_reward

    out_dir = Path(out_dir)
    k = int(k or config["evaluation"]["k"])
    ev = config["evaluation"]
    thinking = config["policy"]["enable_thinking"]  # the answer follows </think> (rarft.reward.final_answer_text)
    units = build_units(benchmarks, setting, config, retrieval, corpus)
    run_meta = {"policy": policy_name, "setting": setting, "k": k, "temperature": ev["temperature"],
                "top_p": ev["top_p"], "max_new_tokens": ev["max_new_tokens"],
                "seed": config["seed"], "model": model_id,
                "units": text_sha256(*(f"{u['benchmark']}/{u['problem_id']}/{u['context_id']}" for u in units))}
    meta_path = out_dir / "run.json"
    # Samples are appended to an undeclared partial file and published as samples.jsonl only when
    # complete: Snakemake and DVC delete a killed job's declared outputs before rerunning it, and
    # the partial file is what lets the rerun resume instead of starting over.
    samples_path = out_dir / "samples.partial.jsonl"
    final_path = out_dir / "samples.jsonl"
    if final_path.exists() and not samples_path.exists():
        os.replace(final_path, samples_path)  # a finished run re-entered: resume from its samples
    if samples_path.exists() and (not meta_path.exists() or read_json(meta_path) != run_meta):
        # Snakemake reruns this stage when the policy was retrained: its old samples must not count
        print(f"evaluate {policy_name}/{setting}: {samples_path} was written by another run (weights, "
              "policy, setting, sampling or problems differ); starting over")
        samples_path.unlink()
    write_json(meta_path, run_meta)

    t0 = time.time()
    with JsonlAppender(samples_path) as log:
        have: dict[tuple, set[int]] = defaultdict(set)
        for r in log.rows:
            have[(r["benchmark"], r["problem_id"], r["context_rank"])].add(r["sample"])
        todo = []
        for u in units:
            missing = [s for s in range(k) if s not in have[(u["benchmark"], u["problem_id"], u["context_rank"])]]
            if missing:
                todo.append((u, missing))
        resumed = sum(len(v) for v in have.values())
        # Prompts sharing a missing-sample count go to the backend together. A backend that schedules its
        # own batches (vLLM, HTTP: `whole_batches`) gets a whole benchmark per call, each prompt with its own
        # seed (review C1: 8-prompt calls each waited for their longest 32k-token sample); the transformers
        # backend gets chunks of about generation.batch_size sequences. Each call is written as soon as it
        # is scored, so a killed run resumes per benchmark (or per chunk).
        whole = bool(getattr(backend, "whole_batches", False))
        groups: dict[tuple, list] = defaultdict(list)
        for u, missing in todo:
            groups[(u["benchmark"], len(missing)) if whole else len(missing)].append((u, missing))
        batch = int(config["generation"]["batch_size"])
        bar = tqdm(total=sum(len(m) for _, m in todo), desc=f"evaluate {policy_name}/{setting}", unit="sample")

        def unit_seed(u: dict) -> int:
            return int(text_sha256(u["benchmark"], u["problem_id"], str(u["context_rank"]),
                                   str(run_meta["seed"]))[:8], 16)

        for key, group in groups.items():
            n = key[1] if whole else key
            per_call = len(group) if whole else max(1, batch // n)
            for start in range(0, len(group), per_call):
                chunk = group[start:start + per_call]
                sampling = Sampling(n=n, temperature=float(ev["temperature"]), top_p=float(ev["top_p"]),
                                    max_new_tokens=int(ev["max_new_tokens"]), seed=unit_seed(chunk[0][0]),
                                    seeds=tuple(unit_seed(u) for u, _ in chunk) if whole else None)
                completions = backend.generate([u["prompt"] for u, _ in chunk], sampling)
                for (u, missing), texts in zip(chunk, completions):
                    for s, text in zip(missing, texts):
                        log.append({"benchmark": u["benchmark"], "problem_id": u["problem_id"],
                                    "context_id": u["context_id"], "context_rank": u["context_rank"], "sample": s,
                                    "completion": text, "extracted": extract_answer(text, thinking),
                                    "reward": math_reward(text, u["answer"], thinking=thinking)})
                    bar.update(len(missing))
        bar.close()
        rows = list(log.rows)

    summary = summarise(rows, units, policy_name, setting, k, config)
    os.replace(samples_path, final_path)
    write_json(out_dir / "summary.json", summary)
    line = ", ".join(f"{b} {v['average_at_k']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
                     for b, v in summary["benchmarks"].items())
    print(f"evaluate {policy_name}/{setting}: average@{k} {line} ({len(rows) - resumed} new samples, "
          f"{resumed} resumed, {time.time() - t0:.0f}s)")
    return summary


def problem_bootstrap_ci(unit_means, problem_ids: list[str], resamples: int, level: float,
                         seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over units, resampling PROBLEMS with replacement and keeping
    each problem's units together (a cluster bootstrap). A top-k setting has one unit per (problem, context):
    its contexts share the problem, so resampling units as if independent gave an interval about half as
    wide as it should be (review D2: 10.1 pp against 19.3 pp). With one unit per problem it is
    `rarft.stats.bootstrap_ci` (same resamples, same seed)."""
    order = list(dict.fromkeys(problem_ids))
    if len(order) == len(problem_ids):
        return bootstrap_ci(unit_means, resamples, level, seed=seed)
    index = {p: i for i, p in enumerate(order)}
    cluster = np.array([index[p] for p in problem_ids])
    sums = np.bincount(cluster, weights=np.asarray(unit_means, dtype=float), minlength=len(order))
    counts = np.bincount(cluster, minlength=len(order)).astype(float)
    draws = np.random.default_rng(seed).integers(0, len(order), size=(resamples, len(order)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    alpha = (1.0 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarise(rows: list[dict], units: list[dict], policy_name: str, setting: str, k: int, config: dict) -> dict:
    """summary.json from sample rows (only the units of this run, only sample indices < k)."""
    topk = setting.startswith("topk-")
    rewards: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in rows:
        if 0 <= r["sample"] < k:
            rewards[(r["benchmark"], r["problem_id"], r["context_rank"])][r["sample"]] = float(r["reward"])
    ev = config["evaluation"]
    out = {"policy": policy_name, "setting": setting, "k": k, "benchmarks": {}, "per_problem": {}}
    by_bench: dict[str, list] = defaultdict(list)
    for u in units:
        key = (u["benchmark"], u["problem_id"], u["context_rank"])
        got = rewards.get(key, {})
        if len(got) != k:
            raise DataError(f"samples: {u['benchmark']}/{u['problem_id']} rank {u['context_rank']} has "
                            f"{len(got)} of {k} samples")
        by_bench[u["benchmark"]].append((u, [got[s] for s in range(k)]))
    for bench, entries in by_bench.items():
        matrix = np.array([r for _, r in entries])
        per_problem = matrix.mean(axis=1)
        low, high = problem_bootstrap_ci(per_problem, [u["problem_id"] for u, _ in entries],
                                         int(ev["bootstrap_resamples"]), float(ev["ci_level"]),
                                         seed=int(config["seed"]))
        out["benchmarks"][bench] = {
            "average_at_k": average_at_k(matrix), "ci_low": low, "ci_high": high,
            "pass_at_1": mean_pass_at_k(matrix, 1), "pass_at_k": mean_pass_at_k(matrix, k),
            "n_problems": len({u["problem_id"] for u, _ in entries}),
        }
        out["per_problem"][bench] = {
            (f"{u['problem_id']}#{u['context_rank']}" if topk else u["problem_id"]): float(p)
            for (u, _), p in zip(entries, per_problem)
        }
    return out


def load_benchmarks(paths: list[str]) -> dict[str, list[dict]]:
    """{file stem: items}; every item needs id, problem and answer (rarft.contracts' item rule)."""
    from rarft.contracts import read_items

    return {Path(p).name.removesuffix(".jsonl"): read_items(p, need=("answer",)) for p in paths}


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft evaluate", description="average@k of a policy on the benchmarks.")
    add_config_argument(p)
    p.add_argument("--policy-dir", required=True, help="models/policy/<P> (checkpoint dir or pointer)")
    p.add_argument("--policy-name", required=True, help="<P>, recorded in summary.json")
    p.add_argument("--setting", required=True, help="none | top1-<retriever> | topk-<retriever>")
    p.add_argument("--benchmarks", nargs="+", required=True, metavar="JSONL", help="data/clean/bench/<name>.jsonl")
    p.add_argument("--retrieval", help="data/retrieval/<R>.jsonl (top1-/topk- settings)")
    p.add_argument("--corpus", help="data/traces/corpus.jsonl (top1-/topk- settings)")
    p.add_argument("--out", required=True, help="runs/eval/<P>/<S>: samples.jsonl, summary.json")
    p.add_argument("--backend", choices=["transformers", "vllm", "openai"], help="default: generation.backend")
    p.add_argument("--k", type=int, help="samples per problem (default: evaluation.k)")
    args = p.parse_args(argv)
    config = load_config(args.config)
    try:
        parse_setting(args.setting)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    benchmarks = load_benchmarks(args.benchmarks)
    retrieval = read_jsonl(args.retrieval) if args.retrieval else None
    corpus = read_jsonl(args.corpus) if args.corpus else None
    if not Path(args.policy_dir).exists():
        raise DataError(f"{args.policy_dir}: policy directory not found")

    from rarft.generation import make_backend

    backend = make_backend(args.policy_dir, config, args.backend)
    try:
        evaluate_policy(backend, args.policy_name, args.setting, benchmarks, config, args.out,
                        retrieval=retrieval, corpus=corpus, k=args.k, model_id=model_fingerprint(args.policy_dir))
    finally:
        backend.close()
    return 0
