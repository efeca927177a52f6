"""`rarft plan`: what a configuration will cost before it is launched.

For each stage: the number of sampled generations, generated and prompt tokens, judge (API) calls,
and a GPU-hour estimate. Counts follow from the config exactly (they are upper bounds for tokens:
every generation is counted at its max length). GPU hours follow from the throughput assumptions
below, which are stated, rough and meant to be edited: measure your own cluster and change them.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict, dataclass

from rarft.arms import eval_settings, retriever_of, retrievers_needed, trainer_of
from rarft.config import add_config_argument, load_config, rule_resource
from rarft.launch import train_processes

# Sizes of the real datasets (data.source: real), before the optional max_train / max_corpus caps.
REAL_TRAIN = 12_500        # QuestA's training problems
REAL_CORPUS = 220_000      # OpenR1-Math-220k, when data.real.corpus names no config
# rows per OpenR1-Math-220k config (approximate; the Hugging Face dataset viewer, as quoted in the paper-scale
# review B5): the paper configs read `all`
OPENR1_CONFIG_ROWS = {"default": 93_700, "extended": 131_400, "all": 225_100}
REAL_BENCH_PROBLEMS = 30   # each of AIME 2024, AIME 2025, HMMT Feb 2025, BrUMO 2025

# Prompt-side token counts (assumptions): a problem statement, and one cheatsheet trace (<= 7 steps).
PROBLEM_TOKENS = {"world": 60, "real": 150}
TRACE_TOKENS = {"world": 60, "real": 400}
TEMPLATE_TOKENS = 30       # instruction, chat template, "Reference problem" labels

# Throughput assumptions, per H100-80GB-class GPU, bf16. Source: ASSUMED, not measured here (no GPU was
# available); orders of magnitude from public vLLM/H100 figures. The paper-scale review (C3) argues that
# colocated RL rollouts at 32k tokens (vLLM at 0.3 of the memory: ~5 concurrent sequences) decode several times
# slower than DECODE_TOKENS_PER_S_1B, so the train-policy rows are likely underestimates. Measure and edit.
# Batched sampling with vLLM: decode tokens/s per GPU for a dense model of P billion parameters is
# about DECODE_TOKENS_PER_S_1B / P (memory-bandwidth bound; 1.7B -> ~12k tok/s, 4B -> ~5k tok/s).
DECODE_TOKENS_PER_S_1B = 20_000.0
# Prefill (prompt) tokens are ~10x cheaper than decoded ones under vLLM.
PREFILL_SPEEDUP = 10.0
# Training: 6 * params FLOPs per token (forward + backward) at this sustained rate per GPU
# (~35% MFU of 989 dense bf16 TFLOP/s).
TRAIN_FLOPS_PER_S = 3.5e14
# The teacher (Qwen3-235B-A22B, MoE) decodes like a ~22B dense model (active parameters).
TEACHER_ACTIVE_B = 22.0
# One sequence decodes at about this many tokens/s inside a batched server (H100, 20-40B active): an
# OpenAI-compatible client must keep (server tokens/s) / this many requests in flight to reach the rate above.
SEQUENCE_TOKENS_PER_S = 40.0
# A retriever (embedding model) encodes this many tokens per GPU-second (forward only).
ENCODE_TOKENS_PER_S = 2.0e5


@dataclass
class StageCost:
    stage: str
    generations: int = 0
    generated_tokens: int = 0      # upper bound: generations x max new tokens
    prompt_tokens: int = 0
    judge_calls: int = 0
    train_tokens: int = 0          # tokens passed through forward+backward
    gpu_hours: float = 0.0
    note: str = ""


def model_billions(name: str, config: dict) -> float:
    """Parameters (billions) of a model named like 'Qwen/Qwen3-1.7B'; the tiny policy from its dims."""
    if name == "tiny":
        t = config["policy"]["tiny"]
        h, layers, vocab, inter = t["hidden_size"], t["num_hidden_layers"], t["vocab_size"], \
            t["intermediate_size"]
        return (layers * (4 * h * h + 3 * h * inter) + vocab * h) / 1e9
    m = re.search(r"(\d+(?:\.\d+)?)\s*[Bb]\b", name)
    if m:
        return float(m.group(1))
    m = re.search(r"(\d+(?:\.\d+)?)\s*[Mm]\b", name)
    return float(m.group(1)) / 1000 if m else 1.0


def dataset_sizes(config: dict) -> tuple[int, int, dict[str, int]]:
    """(training queries, corpus items, {benchmark: problems}) the config implies."""
    if config["data"]["source"] == "world":
        w = config["data"]["world"]
        return int(w["n_train"]), int(w["n_corpus"]), {b: int(v["n"]) for b, v in w["benchmarks"].items()}
    real = config["data"]["real"]
    n_train = min(REAL_TRAIN, real["max_train"] or REAL_TRAIN)
    corpus = real["corpus"]  # a source: hf_id (+ config) or path; the schema fills the one not given with null
    full = OPENR1_CONFIG_ROWS.get(corpus["config"], REAL_CORPUS) if "OpenR1" in str(corpus["hf_id"]) else REAL_CORPUS
    n_corpus = min(full, real["max_corpus"] or full)
    return n_train, n_corpus, {b: REAL_BENCH_PROBLEMS for b in real["benchmarks"]}


def decode_hours(tokens: float, prompt_tokens: float, billions: float) -> float:
    rate = DECODE_TOKENS_PER_S_1B / max(billions, 1e-3)
    return (tokens + prompt_tokens / PREFILL_SPEEDUP) / rate / 3600


def train_hours(tokens: float, billions: float) -> float:
    return 6 * billions * 1e9 * tokens / TRAIN_FLOPS_PER_S / 3600


def teacher_fit(config: dict, gpu_hours: float) -> str:
    """Whether the rewrite fits its job: wall hours on the job's (or the server's) GPUs against `runtime`,
    and the requests in flight the rate needs against `traces.teacher.http_concurrency`."""
    from rarft.launch import rule_gpus
    from rarft.serve import serve_settings

    serve = serve_settings(config)  # the server the job starts, with rarft.serve's defaults; None: none
    gpus = (serve["tensor_parallel_size"] if serve else rule_gpus(config, "build_traces")) or 8
    runtime_h = float(rule_resource(config, "build_traces", "runtime")) / 60
    wall = gpu_hours / gpus
    needed = math.ceil(gpus * DECODE_TOKENS_PER_S_1B / TEACHER_ACTIVE_B / SEQUENCE_TOKENS_PER_S)
    have = int(config["traces"]["teacher"]["http_concurrency"] or config["generation"]["http_concurrency"])
    fits = "" if wall <= runtime_h else ": DOES NOT FIT"
    return (f"; ~{wall:.1f} h on {gpus} GPUs (runtime {runtime_h:.0f} h{fits}); "
            f"needs ~{needed} requests in flight, http_concurrency {have}"
            + ("" if have >= needed else f": too few, ~{wall * needed / have:.0f} h at {have}"))


def runtime_check(config: dict, rule: str, job_gpu_hours: float) -> str:
    """'; ~X h on G GPUs (runtime R h)' for one job of ``rule``, with ': EXCEEDS ITS RUNTIME' when the wall time
    on the rule's GPUs (`resources.<rule>.gpu`, at least 1) is longer than its `runtime`."""
    from rarft.launch import rule_gpus

    gpus = max(1, rule_gpus(config, rule))
    runtime_h = float(rule_resource(config, rule, "runtime")) / 60
    wall = job_gpu_hours / gpus
    return (f"; ~{wall:.1f} h per job on {gpus} GPU{'s' if gpus > 1 else ''} (runtime {runtime_h:.0f} h"
            + (": EXCEEDS ITS RUNTIME)" if wall > runtime_h else ")"))


def plan(config: dict) -> list[StageCost]:
    kind = "real" if config["data"]["source"] == "real" else "world"
    n_train, n_corpus, benches = dataset_sizes(config)
    n_bench = sum(benches.values())
    problem, trace = PROBLEM_TOKENS[kind], TRACE_TOKENS[kind]
    plain_prompt, ra_prompt = problem + TEMPLATE_TOKENS, 2 * problem + trace + TEMPLATE_TOKENS
    policy_b = model_billions(config["policy"]["base"], config)
    rows: list[StageCost] = []

    # build-traces: one teacher rewrite per corpus item (and per training query when SFT arms need traces)
    from rarft.traces import train_traces_needed

    sft_traces = train_traces_needed(config)
    if config["traces"]["mode"] == "rewrite":
        gen = n_corpus + (n_train if sft_traces else 0)
        max_new = int(config["traces"]["teacher"]["max_new_tokens"])
        api = config["traces"]["teacher"]["backend"] == "openai"
        rows.append(StageCost("build-traces", generations=gen, generated_tokens=gen * max_new,
                              prompt_tokens=gen * (2 * problem + TEMPLATE_TOKENS),
                              gpu_hours=decode_hours(gen * max_new, gen * 2 * problem, TEACHER_ACTIVE_B),
                              note="teacher " + config["traces"]["teacher"]["model"]
                              + (" (served behind an OpenAI-compatible endpoint)" if api else "")
                              + (teacher_fit(config, decode_hours(gen * max_new, gen * 2 * problem, TEACHER_ACTIVE_B))
                                 if api else "")
                              + (f"; corpus {n_corpus} + training queries {n_train} (SFT arms)" if sft_traces else "")))
    else:
        rows.append(StageCost("build-traces", note="traces.mode validate: no generation"))

    # label-relevance: M candidates per query
    m = int(config["labels"]["candidates_per_query"])
    pairs = n_train * m
    for labeler in config["labels"]["run"]:
        if labeler == "gain":
            g = config["labels"]["gain"]
            n, max_new = int(g["n_samples"]), int(g["max_new_tokens"])
            gen = n_train * (m + 1) * n  # n rollouts per (query, candidate) and per query alone
            prompts = n_train * n * plain_prompt + pairs * n * ra_prompt
            rows.append(StageCost("label-relevance gain", generations=gen, generated_tokens=gen * max_new,
                                  prompt_tokens=prompts, gpu_hours=decode_hours(gen * max_new, prompts, policy_b),
                                  note=f"{n_train} queries x ({m} candidates + alone) x {n} rollouts"))
        elif labeler == "judge":
            j = config["labels"]["judge"]
            max_new = int(j["max_new_tokens"])
            prompts = pairs * (2 * problem + 2 * trace + TEMPLATE_TOKENS)
            rows.append(StageCost("label-relevance judge", judge_calls=pairs, generated_tokens=pairs * max_new,
                                  prompt_tokens=prompts, note=f"{j['model']} via API: no GPU hours counted"))
        else:
            rows.append(StageCost(f"label-relevance {labeler}", note="no model calls"))

    # train-retriever + retrieve: encoder work only
    r_b = model_billions(config["retriever"]["base_model"], config)
    t = config["retriever"]["train"]
    epochs = t["trainer"]["num_train_epochs"]
    tok = int(pairs * float(epochs) * (problem + problem + trace))
    r_procs = train_processes(config, "train_retriever")  # the processes its rules launch (rarft.launch)
    rows.append(StageCost("train-retriever", train_tokens=tok, gpu_hours=train_hours(tok, r_b),
                          note=f"upper bound: every labelled pair a positive, {epochs} epochs; global batch "
                               f"{t['batch_size']} over {r_procs} process{'es' if r_procs > 1 else ''}"))
    n_ret = len(retrievers_needed(config))
    enc = n_ret * (n_corpus * (problem + trace) + (n_train + n_bench) * problem)
    rows.append(StageCost("retrieve", prompt_tokens=enc, gpu_hours=enc / ENCODE_TOKENS_PER_S / 3600,
                          note=f"{n_ret} retrievers: encode corpus and queries"))

    # train-policy: one row per arm
    rl = config["rl"]
    procs = train_processes(config)  # the processes the train_policy rule launches (rarft.launch)
    trainer = rl["trainer"]  # GRPOConfig / RLOOConfig arguments
    completions_per_step = (int(trainer["per_device_train_batch_size"])
                            * int(trainer["gradient_accumulation_steps"]) * procs)
    steps, max_new = int(trainer["max_steps"]), int(trainer["max_completion_length"])
    n_evals = steps // int(trainer["eval_steps"]) + 1  # step 0 and every eval_steps
    eval_k = int(rl["eval_k"])
    for arm in rl["arms"]:
        prompt = plain_prompt if retriever_of(arm, config) is None else ra_prompt
        if trainer_of(arm) == "sft":
            epochs = rl["sft"]["trainer"]["num_train_epochs"]
            tok = int(float(epochs) * n_train * (prompt + trace))
            rows.append(StageCost(f"train-policy {arm}", train_tokens=tok, gpu_hours=train_hours(tok, policy_b),
                                  note=f"SFT {epochs} epochs over up to {n_train} "
                                       + ("teacher traces of the training queries (build-traces)" if sft_traces
                                          else "traces of the training queries")))
            continue
        gen = steps * completions_per_step
        curve = rl["curve_arms"] is None or arm in rl["curve_arms"]
        ev = n_evals * n_bench * eval_k if curve else 0
        prompts = (gen + ev) * prompt
        train_tok = gen * (prompt + max_new) * int(trainer["num_iterations"])
        hours = decode_hours((gen + ev) * max_new, prompts, policy_b) + train_hours(train_tok, policy_b)
        rows.append(StageCost(f"train-policy {arm}", generations=gen + ev, generated_tokens=(gen + ev) * max_new,
                              prompt_tokens=prompts, train_tokens=train_tok, gpu_hours=hours,
                              note=f"{steps} steps x {completions_per_step} completions = "
                                   f"{completions_per_step // max(1, int(trainer['num_generations']))} prompts "
                                   f"({procs} processes); "
                                   + (f"curve: {n_evals} evals x {n_bench} problems x {eval_k}" if curve
                                      else "no curve")
                                   + runtime_check(config, "train_policy", hours)))

    # evaluate: every policy under each of its settings
    k, max_new = int(config["evaluation"]["k"]), int(config["evaluation"]["max_new_tokens"])
    top_k = int(config["analysis"]["diversity_top_k"])
    gen = prompts = 0
    largest = 0.0  # GPU hours of the largest evaluate job (a topk setting)
    for policy in ["base", *rl["arms"]]:
        for setting in eval_settings(policy, config):
            contexts = top_k if setting.startswith("topk-") else 1
            g = n_bench * k * contexts
            gen += g
            p = g * (plain_prompt if setting == "none" else ra_prompt)
            prompts += p
            largest = max(largest, decode_hours(g * max_new, p, policy_b))
    rows.append(StageCost("evaluate", generations=gen, generated_tokens=gen * max_new, prompt_tokens=prompts,
                          gpu_hours=decode_hours(gen * max_new, prompts, policy_b),
                          note=f"{n_bench} problems x average@{k}, every policy and setting; largest job"
                               + runtime_check(config, "evaluate", largest).removeprefix(";")))
    return rows


def format_plan(rows: list[StageCost], title: str) -> str:
    head = ("| stage | generations | generated tokens (max) | prompt tokens | judge calls | train tokens | GPU-h "
            "| note |")
    lines = [f"# Plan: {title}", "", head, "|" + "---|" * 8]
    for r in rows:
        lines.append(f"| {r.stage} | {r.generations:,} | {r.generated_tokens:,} | {r.prompt_tokens:,} | "
                     f"{r.judge_calls:,} | {r.train_tokens:,} | {r.gpu_hours:,.1f} | {r.note} |")
    total = StageCost("total", *(sum(getattr(r, f) for r in rows) for f in
                                 ("generations", "generated_tokens", "prompt_tokens", "judge_calls", "train_tokens",
                                  "gpu_hours")))
    lines.append(f"| **total** | {total.generations:,} | {total.generated_tokens:,} | {total.prompt_tokens:,} | "
                 f"{total.judge_calls:,} | {total.train_tokens:,} | {total.gpu_hours:,.1f} | |")
    lines += ["", f"GPU hours assume H100-class GPUs: vLLM decode {DECODE_TOKENS_PER_S_1B:,.0f}/P tokens/s for a "
              f"P-billion model, prefill {PREFILL_SPEEDUP:.0f}x cheaper, training at {TRAIN_FLOPS_PER_S:.1e} FLOP/s "
              "(6 x params per token). Token counts are upper bounds (max lengths). See rarft/plan.py."]
    return "\n".join(lines)


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft plan", description=__doc__.split("\n\n")[0])
    add_config_argument(p)
    p.add_argument("--json", help="also write the rows as JSON to this file")
    args = p.parse_args(argv)
    config = load_config(args.config)
    rows = plan(config)
    print(format_plan(rows, " + ".join(args.config)))
    for r in rows:
        if "EXCEEDS ITS RUNTIME" in r.note or "DOES NOT FIT" in r.note:
            print(f"WARNING: {r.stage}: the estimate does not fit the job's runtime (see its note); raise "
                  "resources.<rule>.runtime, add GPUs, or lower the work")
    if args.json:
        from rarft.io import write_json

        write_json(args.json, [asdict(r) for r in rows])
    return 0
