"""Where the time of one GRPO step goes, on the embedded default (tiny Qwen3, params.yaml `rl`).

Runs a few real GRPOTrainer steps (RA-RFT prompts by default: the longer ones) and times, per step,
  generation    TRL's sampling call (transformers generate here; vLLM on GPU with rl.trainer.use_vllm)
  reward        the math-verify reward over the step's completions
  other prep    the rest of TRL's batch preparation (tokenisation, old log-probs, advantages)
  optimisation  forward + backward of the loss and the AdamW update
both as wall and process-CPU time, and prints each part's share. TRL's loop is not modified: the
bench wraps the trainer's own methods with timers.

  python bench/bench_grpo_step.py [--config params.yaml] [--steps 4] [--arm rarft] [--device cpu|cuda] [--tiny]

Without a base policy (--base) it builds the tiny policy the config describes, untrained: it samples
to max_completion_length every time, the worst case for generation.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


class Timer:
    """Accumulates wall and CPU seconds per phase; nested phases are subtracted from their parent."""

    def __init__(self):
        self.wall, self.cpu = defaultdict(float), defaultdict(float)

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.wall[name] += time.perf_counter() - w
                self.cpu[name] += time.process_time() - c
        return timed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", nargs="+", default=[str(Path(__file__).resolve().parents[1] / "params.yaml")])
    p.add_argument("--steps", type=int, default=4, help="timed steps (after one warm-up step)")
    p.add_argument("--arm", default="rarft", help="an RL arm: grpo | rarft | dapo | ...")
    p.add_argument("--base", help="a policy dir; default: build the config's tiny policy")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--tiny", action="store_true",
                   help="smallest sizes, seconds: checks that the script runs (tests/test_bench.py), not its ratios")
    args = p.parse_args(argv)
    if args.tiny:
        args.steps = 1

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer, RLOOTrainer

    from rarft.arms import trainer_of
    from rarft.config import load_config
    from rarft.policy import build_tiny_policy, world_texts
    from rarft.train import build_datasets, rl_args
    from rarft.world import generate_world

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    config["device"] = args.device
    config["rl"]["trainer"].update(max_steps=args.steps + 1, report_to=[], save_steps=10_000)  # GRPOConfig args
    if args.device == "cpu":
        config["rl"]["trainer"]["use_vllm"] = False
    w = config["data"]["world"]
    if args.tiny:  # one prompt of 2 rollouts of 4 tokens per step, on a world of a few items
        config["rl"]["trainer"].update(num_generations=2, per_device_train_batch_size=2, max_completion_length=4,
                                       gradient_accumulation_steps=1, disable_tqdm=True)
        w = {**w, "n_train": 8, "n_corpus": 24}
    world = generate_world(**{**w, "benchmarks": {}})
    rng = random.Random(0)
    retrieval = {"train": {it["id"]: [{"id": c["id"], "score": 1.0} for c in rng.sample(
        [c for c in world["corpus"] if c["problem_type"] == it["problem_type"]], 1)] for it in world["train"]}}
    corpus = {c["id"]: c for c in world["corpus"]}
    train_rows, _ = build_datasets(args.arm, world["train"], corpus, retrieval, {}, config)

    from datasets import Dataset

    from rarft.reward import accuracy_reward

    tmp = Path(tempfile.mkdtemp(prefix="bench_grpo_"))
    base = args.base or build_tiny_policy(world_texts(world["train"] + world["corpus"]), config["policy"]["tiny"],
                                          tmp / "policy", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    targs = rl_args(trainer_of(args.arm), config, tmp / "run", [], resume=False)
    Trainer = RLOOTrainer if trainer_of(args.arm) == "rloo" else GRPOTrainer
    trainer = Trainer(model=model, reward_funcs=[accuracy_reward], args=targs, processing_class=tokenizer,
                      train_dataset=Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]}
                                                       for r in train_rows]))

    timer = Timer()
    trainer._generate = timer.wrap("generation", trainer._generate)
    trainer._calculate_rewards = timer.wrap("reward", trainer._calculate_rewards)
    trainer._prepare_inputs = timer.wrap("prep", trainer._prepare_inputs)

    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        """Whole optimizer steps (batch preparation, forward, backward, AdamW update); step 1 is warm-up."""

        def on_step_begin(self, a, state, control, **kw):
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, a, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            timer.wall["step"] += time.perf_counter() - self.wall
            timer.cpu["step"] += time.process_time() - self.cpu
            if state.global_step == 1:
                timer.wall.clear()
                timer.cpu.clear()

    trainer.add_callback(StepClock())
    trainer.train()

    rl = config["rl"]["trainer"]
    print(f"\nGRPO step on the embedded default ({args.arm}, {args.device}, torch threads {torch.get_num_threads()}): "
          f"{rl['per_device_train_batch_size']} completions/step ({rl['num_generations']} per prompt), "
          f"max {rl['max_completion_length']} new tokens, {args.steps} timed steps")
    for clock, t in (("wall", timer.wall), ("cpu", timer.cpu)):
        parts = {"generation": t["generation"], "reward": t["reward"],
                 "other prep": t["prep"] - t["generation"] - t["reward"],
                 "optimisation": t["step"] - t["prep"]}
        total = sum(parts.values())
        print(f"  {clock:4s} {total / args.steps:6.2f} s/step: " + ", ".join(
            f"{k} {v / args.steps:.2f}s ({100 * v / total:.0f}%)" for k, v in parts.items()))
    slowest = max(parts, key=parts.get)
    ratio = parts["generation"] / max(parts["optimisation"], 1e-9)
    print(f"  slowest: {slowest}; generation/optimisation = {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
