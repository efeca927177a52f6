"""How each stage is launched, and what it asks the scheduler for: pure Python (no torch), so the
Snakefile imports it at parse time and `rarft plan` counts the same processes.

Training on several GPUs is several processes, one data-parallel process per GPU, for the policy and for
the retriever:
- train_policy: transformers sets `n_gpu` to every visible GPU when no distributed launcher is used, and
  TRL 1.16's GRPO/RLOO/SFT trainers then refuse to start (they do not support nn.DataParallel).
- train_retriever and train_colbert_retriever (both on `resources.train_retriever`): sentence-transformers
  would fall back to nn.DataParallel in one process, where `retriever.train.gather_across_devices` (in-batch
  negatives from every GPU, the paper's setting) has no other process to gather from.
So a job whose rule requests more than one GPU runs `accelerate launch --config_file <accelerate config>
--num_processes <gpus>`; one GPU or the CPU default stays a plain single process.

Launcher settings (all optional): `rl.launcher` for train_policy, `retriever.train.launcher` for the retriever:
- `accelerate_config`: config/accelerate/ddp.yaml (the schema's default); for the policy also zero2.yaml,
  zero3.yaml or fsdp.yaml.
- `num_processes`: null = the rule's GPU count (1 on the CPU); an integer forces it, e.g. 2 with
  `device: cpu` for a CPU rehearsal of the multi-process path (`torchrun --nproc_per_node 2`, gloo).
- `num_machines` (policy only): 1. Multi-node runs need one launch per node (see docs/paper-scale.md, "Multi-node"); the
  rule launches on one node.
"""

from __future__ import annotations

from rarft.arms import MODEL_FREE_RETRIEVERS
from rarft.config import rule_resource

RARFT = "PYTHONPATH=src python -m rarft"
# Rules whose job runs a model on the config's `device` (a GPU at paper scale) and so needs the GPU
# stack under --use-conda when that device is cuda. (train_policy and evaluate also need it for vLLM.)
MODEL_RULES = ("build_traces", "init_policy", "label_relevance", "compare_labelers", "train_retriever",
               "train_colbert_retriever", "evaluate_retrievers", "retrieve", "train_policy", "evaluate", "analyze")


# Nodes every job asks for (the rules' `nodes` resource): one. A job's processes expect all of its GPUs on the
# node its batch script runs on (`accelerate launch --num_machines 1`, `vllm serve --tensor-parallel-size 8`);
# snakemake-executor-plugin-slurm maps `gpu: 8` to `--gpus=8`, a total SLURM may spread over several nodes,
# and passes `--nodes` only from this resource (submit_string.py).
JOB_NODES = 1
# Seconds train-policy has, after SIGTERM, to finish its step and save a checkpoint (rarft.train SaveOnSigterm).
# The SLURM profile sends SIGTERM this long before the time limit (`--signal=TERM@600`; tests/test_cluster.py
# checks they agree), and the train_policy rule lets the launcher's agent (torch elastic, under `accelerate
# launch` and torchrun) wait this long for its workers before it SIGKILLs them (its default is 30 s:
# TORCH_ELASTIC_SHUTDOWN_TIMEOUT).
SIGTERM_GRACE_S = 600


def rule_gpus(config: dict, rule: str) -> int:
    """GPUs a rule's job asks the scheduler for: `resources.<rule>.gpu`, else `resources.default.gpu`."""
    return int(rule_resource(config, rule, "gpu"))


def stage_gpus(config: dict, rule: str, labeler: str | None = None, retriever: str | None = None,
               **_other_wildcards) -> int:
    """GPUs one job of ``rule`` asks for: its `resources` row, but none for a job that runs no model on a GPU
    (the API judge, the oracle, BM25 and random retrieval, compare-labelers without gain labels, analysis
    with Jaccard dissimilarity, anything on `device: cpu`), so those do not wait for or hold a GPU."""
    n = rule_gpus(config, rule)
    if not n or config["device"] == "cpu":
        return 0
    teacher = config["traces"]["teacher"]
    if rule == "build_traces" and teacher["backend"] == "openai" and not teacher["serve"]:
        return 0  # the teacher answers at traces.teacher.base_url, on GPUs of its own (or a hosted API)
    if rule == "label_relevance" and (labeler == "oracle" or (
            labeler == "judge" and config["labels"]["judge"]["backend"] == "openai")):
        return 0
    if rule == "retrieve" and retriever in MODEL_FREE_RETRIEVERS:
        return 0
    if rule == "compare_labelers" and "gain" not in config["labels"]["run"]:
        return 0  # the similarity-vs-gain encoder runs only with gain labels
    if rule == "analyze" and config["analysis"]["dissimilarity"] != "embedding":
        return 0
    return n


# training rules launched as one process per GPU -> (their `resources` row, their launcher settings)
LAUNCHED = {"train_policy": ("train_policy", ("rl", "launcher")),
            "train_retriever": ("train_retriever", ("retriever", "train", "launcher")),
            "train_colbert_retriever": ("train_retriever", ("retriever", "train", "launcher"))}


def launcher_settings(config: dict, rule: str) -> dict:
    """`rl.launcher` (train_policy) or `retriever.train.launcher` (the retriever rules)."""
    section = config
    for key in LAUNCHED[rule][1]:
        section = section[key]
    return section


def train_processes(config: dict, rule: str = "train_policy") -> int:
    """Processes one job of a training rule runs: the launcher's `num_processes`, else one per GPU the job
    requests (`resources.<row>.gpu`, through stage_gpus: none on `device: cpu`); at least 1."""
    forced = launcher_settings(config, rule)["num_processes"]
    if forced is not None:
        return max(1, int(forced))
    return max(1, stage_gpus(config, LAUNCHED[rule][0]))


def train_command(config: dict, rule: str = "train_policy") -> str:
    """The command prefix of a training rule (followed by `train-policy --config ...` or
    `train-retriever --config ...`)."""
    n = train_processes(config, rule)
    if n == 1:
        return RARFT
    launcher = launcher_settings(config, rule)
    machines = int(launcher["num_machines"]) if rule == "train_policy" else 1  # the retriever: one node
    if config["device"] == "cpu":
        # CPU rehearsal of the multi-process path: gloo processes on one machine. Not `accelerate launch --cpu
        # --num_processes n`: accelerate 1.15 starts ONE process for that (multi-CPU needs mpirun); torchrun
        # starts n, and accelerate inside them sees MULTI_CPU (checked: world size n, TRL batches scale with it).
        return f"PYTHONPATH=src ACCELERATE_USE_CPU=1 torchrun --standalone --nproc_per_node {n} -m rarft"
    return (f"PYTHONPATH=src accelerate launch --config_file {launcher['accelerate_config']} --num_processes"
            f" {n * machines} --num_machines {machines} -m rarft")


def conda_env(rule: str, config: dict, envs: str = "../envs") -> str:
    """The --use-conda environment of a rule: the GPU stack (CUDA torch, vLLM) when the rule runs a model
    and the config puts it on CUDA (`device: cuda`) or asks for vLLM; the CPU stack otherwise. The CPU env
    installs torch from the CPU wheel index, so a cuda stage there would find no CUDA at all."""
    vllm = config["generation"]["backend"] == "vllm" or bool(config["rl"]["trainer"]["use_vllm"])
    policy_rules = ("build_traces", "init_policy", "label_relevance", "train_policy", "evaluate")
    if rule in MODEL_RULES and (config["device"] == "cuda" or (vllm and rule in policy_rules)):
        return f"{envs}/gpu.yaml"
    return f"{envs}/cpu.yaml"
