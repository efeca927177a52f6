"""Train one arm of the paper's grid through TRL: GRPO, RA-RFT, RLOO, DAPO, SFT and their RA twins.

Every RL arm is a stock TRL trainer (GRPOTrainer or RLOOTrainer); SFT arms use SFTTrainer. An RA arm
differs from its plain twin ONLY in its dataset: the prompt column is `build_prompt(problem, top-k
retrieved traces)` instead of `build_prompt(problem)`. Training loop, sampling, advantages and loss
are TRL's. The reward is the project's math-verify reward (`rarft.reward.accuracy_reward`).

Validation curves (the paper's Figure 3) come from TRL's own evaluation loop: each benchmark is an
eval dataset built like the training set (RA arms WITH their retrieved context), sampled
`rl.eval_k` times per problem, so its mean reward is average@k. That path uses whatever generation
the trainer uses (vLLM when `rl.trainer.use_vllm`, sharded models under DeepSpeed/FSDP), so it scales to the
paper setting. SFT arms have no sampling loop, and RL arms outside `rl.curve_arms` skip it: their curve
file holds no rows (they are scored by the evaluate stage).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal as posix_signal  # `signal` is the rollout signal in train_policy
import time
from pathlib import Path

from rarft.arms import retriever_of, trainer_block, trainer_of
from rarft.config import ConfigError, add_config_argument, load_config, trainer_config
from rarft.contracts import read_retrieval
from rarft.io import (
    DataError,
    JsonlAppender,
    atomic_path,
    model_fingerprint,
    read_jsonl,
    text_sha256,
    write_json,
    write_jsonl,
    write_text,
)
from rarft.prompts import build_prompt, normalise_text

CHECKPOINT_DIR = "checkpoints"
CURVE_PARTIAL = "curve.partial.jsonl"  # survives a kill (Snakemake deletes curve.jsonl before a rerun)
# Settings DAPO adds on top of GRPO, as TRL's paper index gives them (Yu et al. 2025): token-level loss,
# clip-higher, overlong filtering, no KL. Dynamic sampling (resampling zero-variance groups) has no TRL
# switch; it is not reproduced.


# ---------------------------------------------------------------- datasets

def load_retrieval(path: str | os.PathLike) -> dict[str, dict[str, list[dict]]]:
    """`data/retrieval/<R>.jsonl` -> {split: {query id: [{"id", "score"}, ...] best first}}."""
    out: dict[str, dict[str, list[dict]]] = {}
    for row in read_retrieval(path):  # rarft.contracts checks every row
        out.setdefault(row["split"], {})[row["id"]] = row["contexts"]
    return out


def select_contexts(item: dict, ranked: list[dict], corpus_by_id: dict[str, dict], k: int,
                    where: str) -> list[dict]:
    """The top-k corpus items of a retrieval list, skipping the query itself or a copy of it.

    A retrieval file should never hold them (the retrieval stage drops them); skipping them here as
    well means no prompt can ever show a problem its own solution.
    """
    chosen = []
    for ctx in ranked:
        cid = ctx.get("id") if isinstance(ctx, dict) else None
        if cid not in corpus_by_id:
            raise DataError(f"{where}: context id {cid!r} of query {item['id']!r} is not in the corpus")
        doc = corpus_by_id[cid]
        if cid == item["id"] or normalise_text(doc["problem"]) == normalise_text(item["problem"]):
            continue
        if not doc.get("trace"):
            raise DataError(f"{where}: corpus item {cid!r} has no trace")
        chosen.append(doc)
        if len(chosen) == k:
            return chosen
    raise DataError(f"{where}: query {item['id']!r} has {len(chosen)} usable contexts, {k} needed")


def prompt_rows(items: list[dict], corpus_by_id: dict[str, dict] | None,
                contexts_by_id: dict[str, list[dict]] | None, k: int, where: str) -> list[dict]:
    """Rows {id, prompt, answer, context_ids}: plain prompts when ``contexts_by_id`` is None, else
    prompts with the query's top-k retrieved traces prepended."""
    rows = []
    for item in items:
        contexts = []
        if contexts_by_id is not None:
            if item["id"] not in contexts_by_id:
                raise DataError(f"{where}: no retrieval row for query {item['id']!r}")
            contexts = select_contexts(item, contexts_by_id[item["id"]], corpus_by_id, k, where)
        rows.append({"id": item["id"], "prompt": build_prompt(item["problem"], contexts, item["id"]),
                     "answer": str(item["answer"]), "context_ids": [c["id"] for c in contexts]})
    return rows


def sft_rows(items: list[dict], corpus_by_id: dict[str, dict] | None,
             contexts_by_id: dict[str, list[dict]] | None, k: int, where: str,
             enable_thinking: bool) -> list[dict]:
    """Prompt-completion rows for SFT / RA-SFT: the completion is the query's own teacher trace.

    RA-SFT puts the same retrieved trace(s) in the prompt as RA-RFT does. Queries without a trace are
    left out (there is nothing to imitate); none at all is an error.
    """
    with_trace = [it for it in items if it.get("trace")]
    if not with_trace:
        raise DataError(f"{where}: no training query has a 'trace'; SFT arms imitate the queries' traces")
    rows = prompt_rows(with_trace, corpus_by_id, contexts_by_id, k, where)
    for row, item in zip(rows, with_trace):
        row["completion"] = [{"role": "assistant", "content": item["trace"]}]
        row["chat_template_kwargs"] = {"enable_thinking": enable_thinking}
    return rows


# ---------------------------------------------------------------- trainer settings

def _device(config: dict) -> tuple[bool, bool]:
    """(use_cpu, cuda available) from `device` (auto | cpu | cuda), via rarft.device."""
    import torch

    from rarft.device import resolve_device

    return resolve_device(config) == "cpu", torch.cuda.is_available()


def eval_batch_size(n_problems: list[int], eval_k: int, cap: int, n_procs: int = 1) -> int:
    """Per-device eval batch: the global batch holds eval_k samples of m whole problems, m dividing
    every benchmark's size, and at most ``cap`` completions per device.

    TRL needs the global batch divisible by eval_k; equal batches make its mean of per-batch mean
    rewards equal the mean over all samples (average@k). If no m splits evenly over the processes,
    the smallest valid batch is used and the last batch of a benchmark may be partial.
    """
    g = 0
    for n in n_problems:
        g = math.gcd(g, n)
    g = max(g, 1)
    fits = [m * eval_k for m in range(1, g + 1)
            if g % m == 0 and m * eval_k % n_procs == 0 and m * eval_k <= cap * n_procs]
    if fits:
        return max(fits) // n_procs
    step = eval_k // math.gcd(eval_k, n_procs)  # smallest per-device batch with n_procs * b % eval_k == 0
    return step * max(1, cap // step) if step <= cap else step


def decided_args(config: dict, run_dir: Path) -> dict:
    """What rarft sets in every policy trainer's config: where, which seed, which device."""
    use_cpu, _cuda = _device(config)
    return dict(output_dir=str(run_dir / CHECKPOINT_DIR), seed=int(config["seed"]), data_seed=int(config["seed"]),
                use_cpu=use_cpu)


def rl_args(trainer: str, config: dict, run_dir: Path, n_problems: list[int], resume: bool):
    """GRPOConfig / RLOOConfig for an RL arm: `rl.trainer` verbatim, plus the loss per arm (GRPO arms:
    `rl.loss_type`; DAPO arms: 'dapo' with `rl.dapo`) and the validation-curve wiring."""
    from accelerate import PartialState

    rl = config["rl"]
    block = trainer_block(trainer, config)
    gen, batch = block["num_generations"], block["per_device_train_batch_size"]
    accum = block["gradient_accumulation_steps"]
    eval_k = int(rl["eval_k"])
    if batch * accum % gen:
        raise ConfigError(f"rl.trainer.per_device_train_batch_size x gradient_accumulation_steps ({batch} x {accum}) "
                          f"must be divisible by rl.trainer.num_generations ({gen}): TRL samples whole groups")
    temperature = float(block["temperature"])
    if n_problems and temperature != float(config["evaluation"]["temperature"]):
        # TRL samples its eval loop at the training temperature; there is no separate knob
        print(f"train-policy: note: the validation curve samples at rl.trainer.temperature {temperature}, "
              f"not evaluation.temperature {config['evaluation']['temperature']}")
    decided = dict(
        decided_args(config, run_dir),
        chat_template_kwargs={"enable_thinking": bool(config["policy"]["enable_thinking"])},
        # validation curve: TRL's eval loop, eval_k samples per benchmark problem; step 0 unless resumed
        eval_strategy="steps" if n_problems else "no",
        eval_on_start=bool(n_problems) and not resume,
        num_generations_eval=eval_k,
        per_device_eval_batch_size=eval_batch_size(n_problems or [1], eval_k, int(rl["eval_batch_size"]),
                                                   PartialState().num_processes),
    )
    if trainer == "rloo":
        from trl import RLOOConfig

        args = trainer_config(RLOOConfig, block, "rl.trainer", decided)
    else:
        from trl import GRPOConfig

        if trainer == "dapo":
            decided.update(loss_type="dapo", epsilon_high=float(rl["dapo"]["epsilon_high"]),
                           mask_truncated_completions=bool(rl["dapo"]["mask_truncated_completions"]))
        else:
            decided.update(loss_type=loss_type(config))
        args = trainer_config(GRPOConfig, block, "rl.trainer", decided)
    if args.use_vllm:
        import importlib.util

        if args.use_cpu:
            raise ConfigError("rl.trainer.use_vllm: vLLM generation needs a CUDA device; set it false on CPU")
        if args.vllm_mode == "colocate" and importlib.util.find_spec("vllm") is None:
            raise ConfigError("rl.trainer.use_vllm: vllm is not installed (pip install -e '.[gpu]')")
    return args


def loss_type(config: dict) -> str:
    """TRL loss aggregation of the GRPO arms (`rl.loss_type`). 'dapo' is TRL's token-mean over the
    batch, veRL's default `loss_agg_mode: token-mean` (the paper trained with veRL); 'grpo' normalises
    each sequence by its own length (length-biased). DAPO arms always use 'dapo'."""
    value = str(config["rl"]["loss_type"])
    if value not in ("dapo", "grpo", "dr_grpo", "bnpo"):
        raise ConfigError(f"rl.loss_type: {value!r}; one of dapo (token-mean, veRL), grpo, dr_grpo, bnpo")
    return value


def policy_dtype(config: dict):
    """dtype the trained policy's parameters are loaded (and kept) in: `rl.param_dtype`.

    float32 keeps fp32 master weights: with `rl.trainer.bf16: true` the forward/backward run under bf16
    autocast while AdamW updates fp32 parameters and state (veRL's FSDP mixed precision). Updating
    bf16 parameters at lr 1e-6 rounds most steps away (bf16 has 8 significant bits). 'auto' keeps the
    checkpoint's own dtype (bf16 for Qwen3)."""
    import torch

    value = str(config["rl"]["param_dtype"])
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "auto": "auto"}
    if value not in table:
        raise ConfigError(f"rl.param_dtype: {value!r}; one of {', '.join(table)}")
    return table[value]


def sft_args(config: dict, run_dir: Path, resume: bool):
    """SFTConfig for the SFT arms: `rl.sft.trainer` verbatim (no eval loop: SFT arms record no curve)."""
    from trl import SFTConfig

    return trainer_config(SFTConfig, config["rl"]["sft"]["trainer"], "rl.sft.trainer",
                          dict(decided_args(config, run_dir), eval_strategy="no"))


# ---------------------------------------------------------------- recording

# Per-prompt pass-rate bins of the training rollouts: a group whose samples all score the same (bins
# "0" and "1") has zero advantage under GRPO/RLOO and teaches nothing.
PASS_RATE_BINS = ("0", "(0,0.25]", "(0.25,0.5]", "(0.5,0.75]", "(0.75,1)", "1")


def pass_rate_bin(rate: float) -> str:
    if rate <= 0:
        return PASS_RATE_BINS[0]
    if rate >= 1:
        return PASS_RATE_BINS[-1]
    return PASS_RATE_BINS[1 + min(3, int((rate - 1e-9) // 0.25))]


def with_group_stats(reward_func):
    """``reward_func`` (TRL's signature) that also logs, through TRL's ``log_metric``, the share of the
    batch's prompt groups in each pass-rate bin (TRL keeps train and eval metrics apart). A group is
    the completions of one prompt that this process scored (with several processes it may be split);
    its pass rate is its mean reward (0/1 rewards: the share solved)."""
    import functools

    @functools.wraps(reward_func)
    def wrapped(completions, prompts=None, log_metric=None, **kwargs) -> list[float]:
        rewards = reward_func(completions=completions, prompts=prompts, log_metric=log_metric, **kwargs)
        if log_metric is not None and prompts is not None:
            groups: dict[str, list[float]] = {}
            for prompt, r in zip(prompts, rewards):
                groups.setdefault(json.dumps(prompt, sort_keys=True), []).append(float(r))
            bins = [pass_rate_bin(sum(g) / len(g)) for g in groups.values()]
            for name in PASS_RATE_BINS:
                log_metric(f"pass_rate/{name}", bins.count(name) / len(bins))
        return rewards

    return wrapped


def rollout_signal(log_history: list[dict]) -> dict | None:
    """Mean over training steps of TRL's ``frac_reward_zero_std`` and of the pass-rate bins, or None."""
    steps = [h for h in log_history if "frac_reward_zero_std" in h]
    if not steps:
        return None
    out = {"steps": len(steps),
           "zero_variance_share": sum(h["frac_reward_zero_std"] for h in steps) / len(steps)}
    out["pass_rate_hist"] = {name: sum(h.get(f"pass_rate/{name}", 0.0) for h in steps) / len(steps)
                             for name in PASS_RATE_BINS}
    return out


# Column of the eval datasets only: the problem id, which TRL hands to the reward functions as a keyword
# (remove_unused_columns is False for GRPO and RLOO), so ProblemRewards sees which problem a validation
# sample belongs to. Training rows do not carry it: its presence marks a validation batch.
CURVE_ID_COLUMN = "curve_problem_id"


class ProblemRewards:
    """Per-problem rewards of the validation samples, for Figure 3's interval band (bootstrap over problems).

    ``wrap(reward_func)`` records (problem id, reward) for every sample of a batch whose rows carry
    ``CURVE_ID_COLUMN``; the curve callback takes them when TRL logs one benchmark's evaluation.
    """

    def __init__(self):
        self.samples: list[tuple[str, float]] = []

    def wrap(self, reward_func):
        import functools

        @functools.wraps(reward_func)
        def wrapped(completions, **kwargs) -> list[float]:
            ids = kwargs.pop(CURVE_ID_COLUMN, None)
            rewards = reward_func(completions=completions, **kwargs)
            if ids is not None:
                self.samples += [(str(i), float(r)) for i, r in zip(ids, rewards) if r is not None]
            return rewards

        return wrapped

    def take(self) -> list[tuple[str, float]]:
        samples, self.samples = self.samples, []
        return samples


def per_problem_means(samples: list[tuple[str, float]]) -> dict[str, float]:
    """{problem id: mean reward over its samples} (eval_k samples each: that problem's average@k)."""
    sums: dict[str, list[float]] = {}
    for pid, r in samples:
        acc = sums.setdefault(pid, [0.0, 0])
        acc[0] += r
        acc[1] += 1
    return {pid: total / n for pid, (total, n) in sorted(sums.items())}


def _curve_callback_class():
    from transformers import TrainerCallback

    class CurveCallback(TrainerCallback):
        """Turns TRL's per-benchmark eval logs into curve rows {step, benchmark, average_at_k, k, per_problem}.

        With a dict of eval datasets the Trainer evaluates each under the prefix `eval_<name>_` and
        TRL adds the mean sampled reward as `eval_reward`: with eval_k samples per problem and 0/1
        rewards, that is average@k. `per_problem` (problem id -> mean reward over its eval_k samples)
        comes from ``rewards`` (ProblemRewards), gathered from every process.
        """

        def __init__(self, path: Path, k: int, rewards: ProblemRewards | None = None):
            self.path, self.k, self.rewards, self.appender = path, k, rewards, None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "eval_reward" not in logs:
                return
            samples = None
            if self.rewards is not None:
                # every process logs each evaluation (Trainer.log), so every process joins the gather;
                # a process scored only its share of the samples. Multi-process: not run here (no GPUs).
                from accelerate.utils import gather_object

                samples = gather_object(self.rewards.take())
            if not state.is_world_process_zero:
                return
            if self.appender is None:  # opened on the main process only
                self.appender = JsonlAppender(self.path)
            names = [m.group(1) for key in logs if (m := re.fullmatch(r"eval_(.+)_runtime", key))]
            if len(names) == 1:
                row = {"step": int(state.global_step), "benchmark": names[0],
                       "average_at_k": float(logs["eval_reward"]), "k": self.k}
                if samples:
                    row["per_problem"] = per_problem_means(samples)
                self.appender.append(row)

        def on_train_end(self, args, state, control, **kwargs):
            if self.appender is not None:
                self.appender.close()
                self.appender = None

    return CurveCallback


def final_curve(rows: list[dict]) -> list[dict]:
    """One row per (step, benchmark), the latest written (a resumed run may redo a step), by step."""
    latest = {(r["step"], r["benchmark"]): r for r in rows}
    return [latest[key] for key in sorted(latest)]


# ---------------------------------------------------------------- entry point

def _complete(checkpoint: Path) -> bool:
    """Whether transformers finished writing ``checkpoint``: Trainer._save_checkpoint writes trainer_state.json
    last (after the weights, optimizer, scheduler and RNG states; transformers 5.17 trainer.py:3215-3270)."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def _last_checkpoint(run_dir: Path) -> str | None:
    """The highest-numbered complete checkpoint under ``run_dir``, or None. A torn one (a kill during its save:
    no trainer_state.json, or a cut one) is skipped, where transformers' get_last_checkpoint would take it and
    the resumed run fail to load it; the next save at that step writes it again."""
    ckpt_dir = run_dir / CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        return None
    steps = {int(m.group(1)): d for d in ckpt_dir.iterdir()
             if d.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", d.name))}
    for step in sorted(steps, reverse=True):
        if _complete(steps[step]):
            return str(steps[step])
        print(f"train-policy: {steps[step]} is incomplete (killed while saving?); skipped")
    return None


class Preempted(RuntimeError):
    """Training stopped at a checkpoint on SIGTERM (SLURM's warning before a time limit or preemption)."""


def _sigterm_callback_class():
    from transformers import TrainerCallback

    class SaveOnSigterm(TrainerCallback):
        """On SIGTERM, save a checkpoint at the end of the current step and stop, so the retried or requeued
        job resumes there, not at the last `save_steps` checkpoint hours earlier. The SLURM profile asks for
        SIGTERM 10 minutes before the time limit (`--signal=TERM@600`); the step in progress and the save
        must fit in them.

        Every process decides at the same step: the flag is max-reduced across processes (the signal reaches
        the processes at slightly different times, and a save under ZeRO-3 / FSDP needs all of them)."""

        def __init__(self):
            self.requested = False  # set by the signal handler
            self.stopped = False    # training was stopped for it

        def handle(self, signum, frame):
            self.requested = True

        def any_requested(self) -> bool:
            import torch
            from accelerate import PartialState

            state = PartialState()
            if state.num_processes == 1:
                return self.requested
            flag = torch.tensor([int(self.requested)], device=state.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            return bool(flag.item())

        def on_step_end(self, args, state, control, **kwargs):
            if self.any_requested():
                control.should_save = True
                control.should_training_stop = True
                self.stopped = True
            return control

    return SaveOnSigterm


def run_fingerprint(arm: str, base_dir, train_rows: list[dict], eval_rows: dict, config: dict) -> str:
    """What a checkpoint must have been trained with to be resumed: arm, base (path AND weights: a
    re-initialised base at the same path must not resume an arm trained from the old one), data, and the
    settings this arm's training reads (rarft.stage_keys, the train_policy rule's params): not `rl.arms`, the
    other arms' settings, `rl.launcher`, the process count, checkpoint/logging cadence or evaluation-only keys,
    whose edits must not delete a 70-hour arm's checkpoints."""
    import json

    from rarft.stage_keys import stage_values

    keys = {"arm": arm, "base": str(base_dir), "base_weights": model_fingerprint(base_dir),
            "settings": stage_values(config, "train_policy", arm=arm)}
    return text_sha256(json.dumps(keys, sort_keys=True, default=str),
                       json.dumps([train_rows, eval_rows], sort_keys=True))


def _resumable_checkpoint(run_dir: Path, fingerprint: str) -> str | None:
    """The last checkpoint of an earlier run of the same training, or None. Checkpoints of a run with
    other settings or data are deleted (with the partial curve): resuming them would mix two runs."""
    from accelerate import PartialState

    stamp = run_dir / "run_fingerprint.txt"
    same = stamp.exists() and stamp.read_text().strip() == fingerprint
    state = PartialState()
    if not same and state.is_main_process:
        if (run_dir / CHECKPOINT_DIR).exists() or (run_dir / CURVE_PARTIAL).exists():
            print(f"train-policy: {run_dir} holds a run with other settings or data; starting over")
        shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
        (run_dir / CURVE_PARTIAL).unlink(missing_ok=True)
        write_text(stamp, fingerprint + "\n")
    state.wait_for_everyone()
    return _last_checkpoint(run_dir) if same else None


def build_datasets(arm: str, train_items: list[dict], corpus_by_id: dict[str, dict],
                   retrieval: dict[str, dict[str, list[dict]]] | None, val_benchmarks: dict[str, list[dict]],
                   config: dict, retrieval_name: str = "retrieval") -> tuple[list[dict], dict[str, list[dict]]]:
    """(train rows, {benchmark: eval rows}) for an arm; RA arms need ``retrieval``, plain ones ignore it."""
    trainer = trainer_of(arm)
    retriever = retriever_of(arm, config)
    k = int(config["rl"]["top_k"])
    if retriever is not None and retrieval is None:
        raise DataError(f"arm {arm!r} trains with retriever {retriever!r}: pass its retrieval file")

    def ctx(split: str) -> dict[str, list[dict]] | None:
        if retriever is None:
            return None
        if split not in retrieval:
            raise DataError(f"{retrieval_name}: no rows with split {split!r}")
        return retrieval[split]

    if trainer == "sft":
        train = sft_rows(train_items, corpus_by_id, ctx("train"), k, retrieval_name,
                         bool(config["policy"]["enable_thinking"]))
        return train, {}
    train = prompt_rows(train_items, corpus_by_id, ctx("train"), k, retrieval_name)
    curve_arms = config["rl"]["curve_arms"]  # None: every RL arm records a validation curve
    if curve_arms is not None and arm not in curve_arms:
        return train, {}  # no validation sampling: this arm is scored by the evaluate stage only
    evals = {name: prompt_rows(items, corpus_by_id, ctx(name), k, retrieval_name)
             for name, items in val_benchmarks.items()}
    return train, evals


def check_launch(config: dict) -> int:
    """Refuse a single process that sees several CUDA devices; return the number of processes.

    transformers then sets n_gpu to all of them (nn.DataParallel), which TRL 1.16's GRPO/RLOO/SFT trainers
    reject with a ValueError deep in their constructor, after the model has loaded. One process per GPU is
    what `accelerate launch --num_processes <gpus>` gives (the train_policy rule does so when
    resources.train_policy.gpu > 1, rarft.launch)."""
    import torch

    from rarft.device import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if resolve_device(config) == "cpu" or world > 1:
        return world
    n = torch.cuda.device_count()
    if n > 1:
        raise ConfigError(
            f"train-policy runs as a single process but sees {n} CUDA devices; TRL trains one process per GPU. "
            f"Launch it with `accelerate launch --config_file config/accelerate/ddp.yaml --num_processes {n} "
            "-m rarft train-policy ...` (the train_policy rule does this when resources.train_policy.gpu > 1, "
            "or set rl.launcher.num_processes), or make one GPU visible (CUDA_VISIBLE_DEVICES=0)")
    return world


def train_policy(arm: str, base_dir: str | os.PathLike, train_items: list[dict], corpus_by_id: dict[str, dict],
                 retrieval: dict[str, dict[str, list[dict]]] | None, val_benchmarks: dict[str, list[dict]],
                 config: dict, out_dir: str | os.PathLike, run_dir: str | os.PathLike,
                 retrieval_name: str = "retrieval", reward_funcs: list | None = None) -> dict:
    """Train ``arm`` from the base policy; write the final model to ``out_dir`` (atomically) and the
    curve, log history, TensorBoard log and checkpoints under ``run_dir``. Resumes from the last
    checkpoint in ``run_dir`` if there is one. Returns the run summary.

    ``reward_funcs`` defaults to the math-verify accuracy reward (TRL's reward-function signature).
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarft.policy import resolve_model

    trainer_kind = trainer_of(arm)
    check_launch(config)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_rows, eval_rows = build_datasets(arm, train_items, corpus_by_id, retrieval, val_benchmarks, config,
                                           retrieval_name)
    last = _resumable_checkpoint(run_dir, run_fingerprint(arm, base_dir, train_rows, eval_rows, config))
    if last:
        print(f"train-policy {arm}: resuming from {last}")

    # transformers 5 takes the TensorBoard directory from the environment only (no logging_dir)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
    name = resolve_model(base_dir)
    tokenizer = AutoTokenizer.from_pretrained(name)
    from rarft.generation import attn_implementation

    model = AutoModelForCausalLM.from_pretrained(name, dtype=policy_dtype(config),
                                                 attn_implementation=attn_implementation(config))
    preempt = _sigterm_callback_class()()
    callbacks = [preempt]
    k = int(config["rl"]["eval_k"])
    if trainer_kind == "sft":
        from trl import SFTTrainer

        args = sft_args(config, run_dir, resume=bool(last))
        train_ds = Dataset.from_list([{key: r[key] for key in ("prompt", "completion", "chat_template_kwargs")}
                                      for r in train_rows])
        trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer,
                             callbacks=callbacks)
    else:
        if reward_funcs is None:
            from rarft.reward import accuracy_reward_for

            reward_funcs = [accuracy_reward_for(config)]  # thinking templates: the answer follows </think>
        reward_funcs = [with_group_stats(reward_funcs[0]), *reward_funcs[1:]]
        args = rl_args(trainer_kind, config, run_dir, [len(v) for v in eval_rows.values()], resume=bool(last))
        columns = ("prompt", "answer")
        train_ds = Dataset.from_list([{c: r[c] for c in columns} for r in train_rows])
        eval_ds = {b: Dataset.from_list([{**{c: r[c] for c in columns}, CURVE_ID_COLUMN: r["id"]} for r in rows])
                   for b, rows in eval_rows.items()}
        curve_rewards = ProblemRewards()  # the validation samples' per-problem rewards (Figure 3's band)
        reward_funcs = [curve_rewards.wrap(reward_funcs[0]), *reward_funcs[1:]]
        callbacks.append(_curve_callback_class()(run_dir / CURVE_PARTIAL, k, curve_rewards))
        if trainer_kind == "rloo":
            from trl import RLOOTrainer as Trainer
        else:
            from trl import GRPOTrainer as Trainer
        trainer = Trainer(model=model, reward_funcs=reward_funcs, args=args, train_dataset=train_ds,
                          eval_dataset=eval_ds or None, processing_class=tokenizer, callbacks=callbacks)

    start = time.time()
    previous = posix_signal.signal(posix_signal.SIGTERM, preempt.handle)
    try:
        result = trainer.train(resume_from_checkpoint=last)
    finally:
        posix_signal.signal(posix_signal.SIGTERM, previous)
    elapsed = time.time() - start
    if preempt.stopped:
        raise Preempted(f"train-policy {arm}: SIGTERM; saved checkpoint-{trainer.state.global_step} under "
                        f"{run_dir / CHECKPOINT_DIR} and stopped; the next run resumes from it")

    # Every process takes part in save_model (ZeRO-3 / FSDP gather the sharded weights); the main one
    # then moves the finished directory into place, so out_dir is either complete or absent.
    main = trainer.is_world_process_zero()
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    if main:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(staging))
    trainer.accelerator.wait_for_everyone()
    if main:
        tokenizer.save_pretrained(staging)
        with atomic_path(out_dir) as tmp:
            os.replace(staging, tmp)
        write_json(run_dir / "log_history.json", trainer.state.log_history)
        curve = []
        if (run_dir / CURVE_PARTIAL).exists():
            with JsonlAppender(run_dir / CURVE_PARTIAL) as log:  # drops a torn last row
                curve = final_curve(log.rows)
        write_jsonl(run_dir / "curve.jsonl", curve)
        train_logs = [h for h in trainer.state.log_history if "reward" in h or "loss" in h]
        signal = rollout_signal(trainer.state.log_history)
        summary = {
            "arm": arm, "trainer": trainer_kind, "retriever": retriever_of(arm, config), "base": name,
            "seed": args.seed, "resumed_from": last, "global_step": trainer.state.global_step,
            "train_loss": result.training_loss, "final_reward": next((h["reward"] for h in reversed(train_logs)
                                                                     if "reward" in h), None),
            "n_train": len(train_rows), "seconds": round(elapsed, 1), "rollout_signal": signal,
            "final_curve": {r["benchmark"]: r["average_at_k"] for r in curve
                            if r["step"] == max(c["step"] for c in curve)} if curve else {},
            "training_args": args.to_dict(),
        }
        write_json(run_dir / "train_summary.json", summary)
        return summary
    return {}


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft train-policy", description="Train one arm of the grid with TRL.")
    add_config_argument(p)
    p.add_argument("--arm", required=True,
                   help="grpo | rarft | sft | rasft | rloo | rarloo | dapo | radapo | rarft_<R>")
    p.add_argument("--base", required=True, help="base policy dir (models/policy/base)")
    p.add_argument("--train", required=True, help="training queries (data/clean/train.jsonl)")
    p.add_argument("--corpus", required=True, help="corpus with traces (data/traces/corpus.jsonl)")
    p.add_argument("--retrieval", help="data/retrieval/<R>.jsonl of the arm's retriever (RA arms)")
    p.add_argument("--benchmarks", nargs="*", default=[], help="validation benchmarks data/clean/bench/<name>.jsonl")
    p.add_argument("--out", required=True, help="final model dir (models/policy/<arm>)")
    p.add_argument("--run-dir", required=True, help="curve, logs, checkpoints (runs/train/<arm>)")
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = load_config(args.config)
    try:
        trainer_of(args.arm)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    retriever = retriever_of(args.arm, config)
    if retriever is None and args.retrieval:
        print(f"train-policy {args.arm}: plain arm, --retrieval {args.retrieval} ignored")
    retrieval = load_retrieval(args.retrieval) if retriever is not None and args.retrieval else None
    corpus = read_jsonl(args.corpus)
    benchmarks = {Path(b).stem: read_jsonl(b) for b in args.benchmarks}
    try:
        summary = train_policy(args.arm, args.base, read_jsonl(args.train), {c["id"]: c for c in corpus}, retrieval,
                               benchmarks, config, args.out, args.run_dir,
                               retrieval_name=args.retrieval or "retrieval")
    except Preempted as e:
        print(e)
        return 128 + posix_signal.SIGTERM  # the shell's code for a SIGTERM: a failure, so Snakemake retries the job
    if summary:
        curve = ", ".join(f"{b} {v:.3f}" for b, v in summary["final_curve"].items()) or "no curve"
        print(f"train-policy {args.arm}: {summary['global_step']} steps in {summary['seconds']}s, "
              f"final train reward {summary['final_reward']}, validation average@{config['rl']['eval_k']}: "
              f"{curve} -> {args.out}")
    return 0
