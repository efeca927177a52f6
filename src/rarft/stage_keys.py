"""Which config keys each stage reads: the one table behind Snakemake's params, DVC's `params:` and the
policy's resume fingerprint. Pure Python (no torch): the Snakefile imports it at parse time.

Snakemake reruns a finished job when its params change, deleting its outputs first, and everything
downstream reruns after it (its inputs are newer). DVC does the same with a stage's `params:`. So a job's
params hold the dotted keys its stage reads that change what it writes, and nothing else:
- not whole sections: an `analysis.*` edit must not rerun the evaluations, a `retriever.compare` entry
  must not retrain the retrievers, adding an arm must not retrain the other arms;
- not the keys that change only how fast or where a job runs (`HOW_KEYS`: concurrency, retries, timeouts,
  inference batch sizes, the vLLM memory share, the launcher, checkpoint and logging cadence). Editing one
  of them applies to the jobs still to run; a finished job stays finished, as its outputs would not change;
- per job where the key depends on the job's wildcards: the gain labeler reads `labels.gain`, the judge
  `labels.judge`, the oracle nothing; a DAPO arm reads `rl.dapo`, an SFT arm `rl.sft.trainer`, not
  `rl.trainer`.
Keys that only shape the DAG (`rl.arms`, `labels.run`, `resources`) are in no job's params: they add or
remove jobs, whose inputs and outputs Snakemake compares itself.

tests/test_workflow.py runs a DAG, edits keys and checks with a dry run that no finished training job
reruns; its static check fails when a stage module reads a `config[...]` key the table does not cover.
"""

from __future__ import annotations

from typing import Any

from rarft.arms import FIXED_RETRIEVER, parse_setting, retriever_of, trainer_of

# Keys (anywhere under a listed key) that change how a job runs, never what it writes. Trainer blocks are
# matched by their last part: `rl.trainer.save_steps`, `rl.sft.trainer.save_steps` and
# `retriever.train.trainer.save_steps` all end in TRAINER_HOW_FIELDS' `save_steps`.
HOW_KEYS = frozenset({
    "traces.teacher.http_concurrency", "traces.teacher.base_url", "traces.teacher.serve",
    "labels.judge.http_concurrency", "labels.judge.base_url",
    "retriever.train.launcher", "retriever.train.mini_batch_size",  # GradCache: same loss, less memory
    "rl.launcher", "rl.eval_batch_size",
})
TRAINER_BLOCKS = ("rl.trainer", "rl.grpo_trainer", "rl.sft.trainer", "retriever.train.trainer")
TRAINER_HOW_FIELDS = frozenset({
    "save_strategy", "save_steps", "save_total_limit", "save_only_model", "logging_strategy", "logging_steps",
    "logging_first_step", "report_to", "disable_tqdm", "dataloader_num_workers", "dataloader_pin_memory",
    "dataloader_persistent_workers", "log_completions", "num_completions_to_print", "gradient_checkpointing",
    "gradient_checkpointing_kwargs", "vllm_gpu_memory_utilization", "vllm_enable_sleep_mode",
})


def is_how_key(dotted: str) -> bool:
    """Whether ``dotted`` changes only how a job runs (HOW_KEYS, or a run-cadence field of a trainer block)."""
    if dotted in HOW_KEYS:
        return True
    block, _, field = dotted.rpartition(".")
    return block in TRAINER_BLOCKS and field in TRAINER_HOW_FIELDS


def generation_keys(config: dict, backend: str | None = None) -> list[str]:
    """What a policy backend (rarft.generation.make_backend) reads that changes its samples: transformers
    and vLLM run the weights in `generation.dtype`; a server (openai) decides that itself. The chat template
    follows `policy.enable_thinking` everywhere. Batch size, vLLM memory share, retries are HOW_KEYS-like:
    not listed."""
    backend = backend or config["generation"]["backend"]
    keys = ["generation.backend", "policy.enable_thinking"]
    if backend == "transformers":
        keys += ["generation.dtype", "generation.attn_implementation", "device"]
    elif backend == "vllm":
        keys += ["generation.dtype", "seed"]
    return keys


def _arm_keys(config: dict, arm: str) -> list[str]:
    trainer = trainer_of(arm)
    keys = ["seed", "device", "policy.base", "policy.enable_thinking", "rl.param_dtype",
            "generation.attn_implementation"]  # the policy loads with it (rarft.generation.attn_implementation)
    if retriever_of(arm, config) is not None:
        keys.append("rl.top_k")
        if arm not in FIXED_RETRIEVER:
            keys.append("rl.retriever")
    if trainer == "sft":
        return keys + ["rl.sft.trainer"]
    keys += ["rl.trainer", "rl.eval_k", "rl.curve_arms"]  # rl.curve_arms: only whether this arm records one
    if trainer in ("grpo", "dapo"):
        keys.append("rl.grpo_trainer")
    if trainer == "dapo":
        keys.append("rl.dapo")
    elif trainer == "grpo":
        keys.append("rl.loss_type")
    return keys


def _retrieve_keys(retriever: str) -> list[str]:
    keys = ["retriever.top_k", "retriever.near_duplicate_jaccard"]
    if retriever == "random":
        return keys + ["seed"]
    if retriever == "bm25":
        return keys
    keys.append("device")
    if retriever == "offshelf":
        keys += ["retriever.base_model", "retriever.query_prompt"]
    elif retriever == "finetuned":
        keys.append("retriever.query_prompt")  # the weights are an input (models/retriever/finetuned)
    elif retriever == "colbert":
        keys.append("retriever.colbert.base_model")
    return keys


def stage_keys(config: dict, rule: str, **wildcards: str) -> list[str]:
    """The dotted config keys one job of ``rule`` (with its wildcards) reads that change its outputs."""
    if rule == "prepare_data":
        return ["data.source", f"data.{config['data']['source']}"]
    if rule == "decontaminate":
        return ["data.decontamination"]
    if rule == "build_traces":
        keys = ["traces.mode", "traces.max_steps"]
        if config["traces"]["mode"] == "rewrite":
            keys += ["traces.teacher", "traces.keep_original_if_invalid", "seed"]
            if config["traces"]["teacher"]["backend"] != "openai":
                keys += generation_keys(config, config["traces"]["teacher"]["backend"])
        return keys
    if rule == "init_policy":
        if config["policy"]["base"] != "tiny":
            return ["policy.base"]  # a pointer to a hub model or local path
        keys = ["policy", "seed", "device", "data.source"]
        if config["data"]["source"] == "world":
            # the warm-up problems' seed; the probe (results/reports/policy_probe.json) samples as evaluate does
            keys += ["data.world.seed", "evaluation.max_new_tokens", "evaluation.temperature"]
        return keys
    if rule == "sample_candidates":
        return ["labels.candidates_per_query", "labels.stratify_by_strategy", "seed"]
    if rule == "label_relevance":
        labeler = wildcards["labeler"]
        if labeler == "oracle":
            return []  # the world's hidden strategy labels
        if labeler == "gain":
            return ["labels.gain", "seed", *generation_keys(config)]
        judge = config["labels"]["judge"]["backend"]  # a local judge runs like a policy backend
        return ["labels.judge", "seed", *(generation_keys(config, judge) if judge != "openai" else [])]
    if rule == "compare_labelers":
        return ["retriever.base_model", "retriever.query_prompt", "device"]
    if rule in ("train_retriever", "train_colbert_retriever"):
        model = ["retriever.base_model", "retriever.query_prompt"] if rule == "train_retriever" else [
            "retriever.colbert.base_model"]
        return [*model, "retriever.train", "seed", "device"]
    if rule == "evaluate_retrievers":
        return ["retriever.compare", "retriever.top_k", "retriever.near_duplicate_jaccard",
                "retriever.base_model", "retriever.query_prompt", "retriever.colbert.base_model",
                "labels.train_on", "evaluation.bootstrap_resamples", "evaluation.ci_level", "seed", "device"]
    if rule == "retrieve":
        return _retrieve_keys(wildcards["retriever"])
    if rule == "train_policy":
        return _arm_keys(config, wildcards["arm"])
    if rule == "evaluate":
        keys = ["evaluation.k", "evaluation.temperature", "evaluation.top_p", "evaluation.max_new_tokens",
                "evaluation.bootstrap_resamples", "evaluation.ci_level", "seed", *generation_keys(config)]
        mode, _retriever = parse_setting(wildcards["setting"])
        if mode == "topk":
            keys.append("analysis.diversity_top_k")  # how many of the top-k traces it scores one by one
        return keys
    if rule == "analyze":
        return ["analysis", "evaluation.bootstrap_resamples", "evaluation.ci_level", "evaluation.k", "seed", "device",
                "data.source", "data.world.control", "data.world.corpus_only", "data.world.training_names",
                "data.world.corpus_only_names", "policy.base", "policy.enable_thinking",
                "rl.retriever", "rl.curve_arms", "rl.eval_k", "retriever.base_model", "retriever.compare",
                "labels.train_on"]
    raise KeyError(f"rarft.stage_keys: no key list for rule {rule!r}")


def lookup(config: dict, dotted: str) -> Any:
    """The value at ``dotted`` in ``config``; None when absent."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _without_how(value: Any, dotted: str) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: _without_how(v, f"{dotted}.{k}") for k, v in value.items() if not is_how_key(f"{dotted}.{k}")}


def stage_values(config: dict, rule: str, **wildcards: str) -> dict[str, Any]:
    """{dotted key: value} of stage_keys, HOW_KEYS left out of every value: a Snakemake job's params (a change
    reruns the job) and, for train_policy, the resume fingerprint's settings (rarft.train.run_fingerprint).

    `rl.curve_arms` of an arm is whether that arm records a validation curve, not the whole list: adding
    another arm to it changes nothing for this one."""
    out = {}
    for key in stage_keys(config, rule, **wildcards):
        if key == "rl.curve_arms" and "arm" in wildcards:
            curve_arms = config["rl"]["curve_arms"]
            out[key] = {"records_curve": curve_arms is None or wildcards["arm"] in curve_arms}
        else:
            out[key] = _without_how(lookup(config, key), key)
    return out
