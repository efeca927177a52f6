"""The paper's comparison grid as data: which retriever an arm trains with, and how each policy is scored.

Pure Python (no torch) so the Snakefile can import it at parse time to expand its targets.
"""

from __future__ import annotations

# The one list of retriever names (the config schema's enums are checked against it in tests):
# offshelf = retriever.base_model as is (single-vector, e.g. Qwen3-Embedding); finetuned = it fine-tuned on
# the labels; colbert = retriever.colbert.base_model as is (multi-vector late interaction, the paper's
# Reason-ModernColBERT); finetuned_colbert = it fine-tuned on the labels (the paper's main retriever);
# bm25; random = a random trace of the same problem type.
RETRIEVERS = ("offshelf", "finetuned", "colbert", "finetuned_colbert", "bm25", "random")
# retrievers that run no model: their jobs get no GPU (rarft.launch) and ignore `device` (rarft.retrieval)
MODEL_FREE_RETRIEVERS = ("bm25", "random")
# retrievers that train-retriever makes, -> the kind of model (train_retriever.py: `--kind`)
TRAINED_RETRIEVERS = {"finetuned": "single_vector", "finetuned_colbert": "multi_vector"}
# -> the off-the-shelf retriever it starts from (the retriever table's paired difference)
BASE_OF_TRAINED = {"finetuned": "offshelf", "finetuned_colbert": "colbert"}

PLAIN_ARMS = {"grpo": "grpo", "sft": "sft", "rloo": "rloo", "dapo": "dapo"}  # arm -> trainer
RA_ARMS = {"rarft": "grpo", "rasft": "sft", "rarloo": "rloo", "radapo": "dapo",
           "rarft_offshelf": "grpo", "rarft_random": "grpo", "rarft_bm25": "grpo", "rarft_colbert": "grpo",
           "rarft_finetuned": "grpo", "rarft_finetuned_colbert": "grpo"}
# RA arms that name their retriever; the others use rl.retriever
FIXED_RETRIEVER = {"rarft_offshelf": "offshelf", "rarft_random": "random", "rarft_bm25": "bm25",
                   "rarft_colbert": "colbert", "rarft_finetuned": "finetuned",
                   "rarft_finetuned_colbert": "finetuned_colbert"}

# Figure 3's arms (validation curves) and their labels; the analyze rule and stage read these.
CURVE_ARMS = {"grpo": "GRPO", "rarft": "RA-RFT"}
# an evaluation setting: none | top1-<retriever> | topk-<retriever> (parse_setting; the evaluate rule's constraint)
SETTING_PATTERN = "none|" + "|".join(f"{mode}-(?:{'|'.join(RETRIEVERS)})" for mode in ("top1", "topk"))


def parse_setting(setting: str) -> tuple[str, str | None]:
    """'none' -> ('none', None); 'top1-bm25' -> ('top1', 'bm25'); 'topk-finetuned' -> ('topk', 'finetuned')."""
    if setting == "none":
        return "none", None
    mode, _, retriever = setting.partition("-")
    if mode not in ("top1", "topk") or not retriever:
        # ValueError, not ConfigError: rarft.config imports this module (evaluate's CLI turns it into one)
        raise ValueError(f"--setting {setting!r}: expected none, top1-<retriever> or topk-<retriever>")
    return mode, retriever


def trained_model_dir(retriever: str) -> str | None:
    """Where train-retriever writes a trained retriever; None for one used as is."""
    return f"models/retriever/{retriever}" if retriever in TRAINED_RETRIEVERS else None


def retrievers_trained(config: dict) -> list[str]:
    """The retrievers train-retriever must make: those retrieval or the retriever table uses."""
    used = set(retrievers_needed(config)) | set(config["retriever"]["compare"])
    return sorted(r for r in used if r in TRAINED_RETRIEVERS)


def trainer_of(arm: str) -> str:
    """'grpo' | 'rloo' | 'dapo' | 'sft': which TRL trainer (and loss) an arm uses."""
    if arm in PLAIN_ARMS:
        return PLAIN_ARMS[arm]
    if arm in RA_ARMS:
        return RA_ARMS[arm]
    raise ValueError(f"unknown arm {arm!r}; known: {', '.join([*PLAIN_ARMS, *RA_ARMS])}")


def trainer_block(trainer: str, config: dict) -> dict:
    """The TRL config arguments a trainer kind (`trainer_of`) gets: `rl.sft.trainer` (SFT), `rl.trainer` (RLOO), or
    `rl.trainer` with `rl.grpo_trainer` over it (GRPO and DAPO: GRPOConfig fields RLOOConfig lacks)."""
    rl = config["rl"]
    if trainer == "sft":
        return rl["sft"]["trainer"]
    return rl["trainer"] if trainer == "rloo" else {**rl["trainer"], **rl["grpo_trainer"]}


def retriever_of(arm: str, config: dict) -> str | None:
    """The retriever whose top-1 trace an arm's prompts carry, or None for a plain arm."""
    trainer_of(arm)  # validates the name
    if arm in PLAIN_ARMS:
        return None
    return FIXED_RETRIEVER.get(arm, config["rl"]["retriever"])


def eval_settings(policy: str, config: dict) -> list[str]:
    """Evaluation settings of a policy: 'none', 'top1-<R>' or 'topk-<R>' (Figure 4).

    Each policy is scored as it was trained (RA arms with their retriever's top-1 trace). On top:
    the base model both ways (Figure 3's step 0; with the main retriever's top-1 trace it is the
    comparison "RA-RFT - base + top-1 at inference", the positive control's test that RL, not the
    context alone, carries the effect), the GRPO checkpoint with the top-1 trace added only at
    inference (Table 4), RA-RFT without its trace (how much the trace gives the policy RL trained with it:
    tables.TRACE_BENEFIT) and under each of its top-k traces separately (Figure 4).
    """
    main = config["rl"]["retriever"]
    if policy == "base":
        return ["none", f"top1-{main}"]
    r = retriever_of(policy, config)
    settings = ["none"] if r is None else [f"top1-{r}"]
    if policy == "grpo":
        settings.append(f"top1-{main}")
    if policy == "rarft":
        settings += ["none", f"topk-{main}"]
    return settings


def retrievers_needed(config: dict) -> list[str]:
    """Every retriever whose retrieval file some arm or evaluation needs."""
    needed = {config["rl"]["retriever"]}
    for arm in config["rl"]["arms"]:
        r = retriever_of(arm, config)
        if r:
            needed.add(r)
    return sorted(needed)


def schedule_priority(rule: str, config: dict, retriever: str | None = None, arm: str | None = None,
                      setting: str | None = None, **_other_wildcards) -> int:
    """Snakemake `priority:` of a job: higher runs first when jobs compete for cores.

    base policy -> gain labels -> retriever -> its retrieval -> RA-RFT -> the top-k evaluation is the
    DAG's longest chain. Started first, it leaves the other jobs to fill the free cores around it; by
    default Snakemake started the cheap jobs first and left a core idle later (measured: 14:56 -> 12:17
    on 2 cores). A priority does not pass to a job's inputs, so the labels' inputs get it too.
    """
    main = config["rl"]["retriever"]
    fixed = {"init_policy": 100, "sample_candidates": 90, "label_relevance": 90, "train_retriever": 80,
             "train_colbert_retriever": 80}
    if rule in fixed:
        return fixed[rule]
    if rule == "retrieve":
        return 70 if retriever == main else 0
    if rule == "train_policy":
        if arm == "rarft":
            return 60
        return 50 if retriever_of(arm, config) == main else 10
    if rule == "evaluate":
        return 55 if setting and setting.startswith("topk-") else 0
    return 0
