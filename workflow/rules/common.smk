# Shared names for the rules: file lists expanded from the config, resources, params and input functions.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # rarft.arms is pure Python
from rarft.arms import RETRIEVERS as RETRIEVER_NAMES
from rarft.arms import (
    CURVE_ARMS,
    SETTING_PATTERN,
    eval_settings,
    parse_setting,
    retriever_of,
    retrievers_needed,
    retrievers_trained,
    schedule_priority,
    trained_model_dir,
    trainer_of,
)
from rarft.labels import LABELERS as LABELER_NAMES  # the one list of labeler names
from rarft.launch import JOB_NODES, SIGTERM_GRACE_S, conda_env, stage_gpus, train_command
from rarft.policy import probes_benchmarks
from rarft.stage_keys import stage_values
from rarft.traces import train_traces_needed

if workflow.config_settings.config:
    raise ValueError(
        "rarft: `--config key=value` is not forwarded to the stages; put overrides in a YAML file "
        "and pass it with --configfile (see config/*.yaml)."
    )

# params.yaml first, then --configfile overrides, as the stages merge them (later files win). Relative to the
# working directory (Snakemake gives them absolute), so a moved or re-cloned checkout runs the same commands.
CONFIG_FILES = " ".join(
    ["params.yaml"]
    + [os.path.relpath(p) for p in workflow.overwrite_configfiles if Path(p).name != "params.yaml"]
)
# Every stage is this CLI. PYTHONPATH=src makes the same command work in the project venv (where
# rarft is installed) and inside --use-conda envs (which carry the dependencies but not the package;
# Snakemake blocks an inherited PYTHONPATH there, so it is set in the command itself).
RARFT = "PYTHONPATH=src python -m rarft"
ENVS = "../envs"
# train_policy: `accelerate launch --num_processes <gpus>` when resources.train_policy.gpu > 1 (TRL refuses a
# single process that sees several GPUs), the plain command otherwise (rarft.launch.train_command).
TRAIN_RARFT = train_command(config)
# train_retriever / train_colbert_retriever: the same, one process per GPU of resources.train_retriever (in-batch
# negatives gathered across the processes: retriever.train.gather_across_devices).
TRAIN_RETRIEVER_RARFT = train_command(config, "train_retriever")

BENCHMARKS = sorted(
    config["data"]["world"]["benchmarks"] if config["data"]["source"] == "world"
    else config["data"]["real"]["benchmarks"]
)
LABELERS = list(config["labels"]["run"])
TINY_WORLD_POLICY = probes_benchmarks(config)
ARMS = list(config["rl"]["arms"])
RETRIEVERS = retrievers_needed(config)
COMPARE_RETRIEVERS = list(config["retriever"]["compare"])
POLICIES = ["base"] + ARMS
EVALS = [f"runs/eval/{p}/{s}/summary.json" for p in POLICIES for s in eval_settings(p, config)]

# A GPU policy stack when the config asks for vLLM; the CPU stack otherwise.
POLICY_ENV = (
    f"{ENVS}/gpu.yaml"
    if config["generation"]["backend"] == "vllm" or config["rl"]["trainer"]["use_vllm"]
    else f"{ENVS}/cpu.yaml"
)


def conda_env_of(rule):
    """A rule's --use-conda env: the GPU stack when it runs a model and `device: cuda` (rarft.launch.conda_env)."""
    return conda_env(rule, config, ENVS)


def res(rule):
    """A rule's cluster resources (local runs ignore them unless --resources is given): `resources: **res(rule)`.

    mem_mb and runtime come from config `resources.<rule>`, else `resources.default` (params.yaml, the one
    default); gpu from rarft.launch.stage_gpus (none for jobs that run no model on a GPU); nodes: one, so a
    cluster never splits a job's GPUs over nodes (rarft.launch.JOB_NODES).
    """
    table = config["resources"]
    return {
        "gpu": gpus(rule),
        "nodes": JOB_NODES,
        **{key: table.get(rule, {}).get(key, table["default"][key]) for key in ("mem_mb", "runtime")},
    }


def gpus(rule):
    """A rule's `gpu` resource per job (rarft.launch.stage_gpus: none for jobs that run no model on a GPU)."""
    return lambda wildcards: stage_gpus(config, rule, **dict(wildcards.items()))


def stage_params(rule, rarft=RARFT):
    """A job's params: `cfg`, the config keys its stage reads that change what it writes (rarft.stage_keys, per
    job: Snakemake reruns the job when they change), then the CLI and the config files, passed as params so the
    shell command uses nothing from outside the rule.

    `rarft` (the launcher: plain, or `accelerate launch` over the job's GPUs) and `configs` (which files hold
    the values, not the values) are functions of the job's `resources`: Snakemake does not record such params
    as a rerun trigger (snakemake/rules.py `_is_deriving_function`, persistence `params_changed`). Switching
    to ZeRO-2, changing the GPU count, moving the checkout or adding an override file then reruns no finished
    job; the values the stage reads are in `cfg`."""
    return {
        "cfg": lambda wildcards: stage_values(config, rule, **dict(wildcards.items())),
        "rarft": lambda wildcards, resources: rarft,
        "configs": lambda wildcards, resources: CONFIG_FILES,
    }


def bench_files(stage_dir):
    return [f"data/{stage_dir}/bench/{b}.jsonl" for b in BENCHMARKS]


def retrieval_file(retriever):
    return expand(rules.retrieve.output.retrieval, retriever=retriever)[0]


# Input functions (Snakemake calls them with a job's wildcards once every rule is defined).


def sft_train():
    """The training queries SFT arms imitate: with teacher traces at paper scale (build_traces writes them)."""
    return rules.build_traces.output.train if train_traces_needed(config) else rules.decontaminate.output.train


def arm_train(wildcards):
    return sft_train() if trainer_of(wildcards.arm) == "sft" else rules.decontaminate.output.train


def arm_retrieval(wildcards):
    r = retriever_of(wildcards.arm, config)
    return [retrieval_file(r)] if r else []


def eval_retrieval(wildcards):
    r = parse_setting(wildcards.setting)[1]
    return [retrieval_file(r)] if r else []


def retriever_model(wildcards):
    path = trained_model_dir(wildcards.retriever)
    return [path] if path else []


def label_policy(wildcards):
    """The oracle reads hidden strategy labels; only gain and judge need the policy (or endpoint)."""
    return [] if wildcards.labeler == "oracle" else [rules.init_policy.output.model]


ANALYSIS_OUTPUTS = [
    "results/README.md",
    "results/metrics.json",
    "results/metrics_full.json",
    "results/tables",
    "results/figures",
    "results/plots/curves.csv",
    "results/plots/context_accuracy.csv",
    # Not committed (runs/ is ignored): on a fresh clone it is missing, so `rule all` is never satisfied by
    # the committed results/ of the embedded default, whatever the files' times (a paper run schedules the grid).
    "runs/analyze/manifest.json",
]


def priority(rule):
    """Scheduling hint for a rule's jobs (rarft.arms.schedule_priority): the longest chain first."""
    return lambda wildcards: schedule_priority(rule, config, **dict(wildcards.items()))
