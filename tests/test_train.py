"""rarft.train: each arm's dataset, a short TRL run that moves the weights, resume and determinism."""

from __future__ import annotations

import copy
import json
import random
import shutil

import pytest

from rarft.arms import PLAIN_ARMS, RA_ARMS
from rarft.config import load_config
from rarft.io import DataError, read_jsonl, write_jsonl
from rarft.train import build_datasets, eval_batch_size, final_curve, load_retrieval, train_policy

BENCHES = ("bench_easy", "bench_hard")


@pytest.fixture(scope="module")
def config():
    return load_config("params.yaml")


def fake_retrieval(world, seed=0, n=3):
    """Random same-type corpus contexts for every train and benchmark query (best first)."""
    rng = random.Random(seed)
    out = {}
    for split in ("train", *BENCHES):
        out[split] = {}
        for item in world[split]:
            pool = [c for c in world["corpus"] if c["problem_type"] == item["problem_type"]]
            out[split][item["id"]] = [{"id": c["id"], "score": 1.0 - i / 10} for i, c in enumerate(rng.sample(pool, n))]
    return out


def corpus_by_id(world):
    return {c["id"]: c for c in world["corpus"]}


@pytest.mark.parametrize("arm", sorted([*PLAIN_ARMS, *RA_ARMS]))
def test_dataset_of_each_arm(arm, world_small, config):
    retrieval = fake_retrieval(world_small)
    benches = {b: world_small[b] for b in BENCHES}
    train, evals = build_datasets(arm, world_small["train"], corpus_by_id(world_small), retrieval, benches, config)
    assert len(train) == len(world_small["train"])
    ra = arm in RA_ARMS
    corpus = corpus_by_id(world_small)
    for split, rows in [("train", train), *evals.items()]:
        for row, item in zip(rows, world_small[split] if split != "train" else world_small["train"]):
            text = row["prompt"][0]["content"]
            assert item["problem"] in text
            if ra:
                top = corpus[retrieval[split][item["id"]][0]["id"]]
                assert row["context_ids"] == [top["id"]]
                assert top["trace"] in text and top["problem"] in text
            else:
                assert row["context_ids"] == [] and "Reference" not in text
    if arm in ("sft", "rasft"):
        assert evals == {}
        assert all(r["completion"][0]["content"] == it["trace"] for r, it in zip(train, world_small["train"]))
    elif arm in config["rl"]["curve_arms"]:
        assert set(evals) == set(BENCHES) and all(r["answer"] for r in train)
    else:  # an RL arm that Figure 3 does not show samples no validation curve
        assert evals == {} and all(r["answer"] for r in train)


def test_curve_arms_null_gives_every_rl_arm_a_curve(world_small, config, tmp_path):
    cfg = copy.deepcopy(config)
    cfg["rl"]["curve_arms"] = None
    benches = {b: world_small[b] for b in BENCHES}
    _, evals = build_datasets("rloo", world_small["train"], corpus_by_id(world_small), None, benches, cfg)
    assert set(evals) == set(BENCHES)
    from rarft.train import rl_args

    cfg["rl"]["curve_arms"] = ["grpo"]
    _, none = build_datasets("rloo", world_small["train"], corpus_by_id(world_small), None, benches, cfg)
    assert none == {}
    assert rl_args("rloo", cfg, tmp_path, [len(v) for v in none.values()], resume=False).eval_strategy == "no"


def test_no_self_retrieval(world_small, config):
    query = world_small["train"][0]
    copy_of_query = {**world_small["corpus"][0], "id": "corpus-copy", "problem": "  " + query["problem"].upper()}
    corpus = {**corpus_by_id(world_small), "corpus-copy": copy_of_query, query["id"]: query}
    ranked = [{"id": query["id"], "score": 1.0}, {"id": "corpus-copy", "score": 0.9},
              {"id": world_small["corpus"][5]["id"], "score": 0.5}]
    retrieval = {"train": {query["id"]: ranked}}
    train, _ = build_datasets("rarft", [query], corpus, retrieval, {}, config)
    assert train[0]["context_ids"] == [world_small["corpus"][5]["id"]]
    # nothing usable left -> an error naming the query, never a prompt showing its own answer
    retrieval = {"train": {query["id"]: ranked[:2]}}
    with pytest.raises(DataError, match=query["id"]):
        build_datasets("rarft", [query], corpus, retrieval, {}, config)


def test_bad_retrieval_inputs(world_small, config, tmp_path):
    query = world_small["train"][0]
    with pytest.raises(DataError, match="retrieval file"):
        build_datasets("rarft", [query], corpus_by_id(world_small), None, {}, config)
    with pytest.raises(DataError, match="not in the corpus"):
        build_datasets("rarft", [query], corpus_by_id(world_small), {"train": {query["id"]: [{"id": "nope"}]}}, {},
                       config)
    with pytest.raises(DataError, match="no retrieval row"):
        build_datasets("rarft", [query], corpus_by_id(world_small), {"train": {}}, {}, config)
    bad = tmp_path / "r.jsonl"
    write_jsonl(bad, [{"id": "a", "split": "train"}])
    with pytest.raises(DataError, match=r"r.jsonl, row 1: key 'contexts' is missing"):
        load_retrieval(bad)


def test_eval_batch_divides_benchmarks():
    assert eval_batch_size([32, 32], 4, 16) == 16     # 4 problems x 4 samples, 32 % 4 == 0
    assert eval_batch_size([30, 30], 32, 512) == 15 * 32
    assert eval_batch_size([32, 32], 2, 64) == 64
    assert eval_batch_size([7], 4, 16) == 4           # prime size: one problem per batch
    # 8 processes, 32 samples per problem: one problem per global batch = 4 completions per device
    assert eval_batch_size([30] * 4, 32, 4, n_procs=8) == 4
    assert eval_batch_size([30] * 4, 32, 64, n_procs=8) == 60  # 15 problems x 32 samples / 8 devices
    # no m in divisors of 30 makes 2m divisible by 8: smallest valid per-device batch, capped
    assert eval_batch_size([30], 2, 3, n_procs=8) == 3


def test_final_curve_keeps_latest_row_per_step():
    rows = [{"step": 0, "benchmark": "a", "average_at_k": 0.1, "k": 2},
            {"step": 5, "benchmark": "a", "average_at_k": 0.2, "k": 2},
            {"step": 5, "benchmark": "a", "average_at_k": 0.3, "k": 2}]
    assert [r["average_at_k"] for r in final_curve(rows)] == [0.1, 0.3]


# ---------------------------------------------------------------- short real TRL runs

def digit_reward(completions, **kwargs):
    """A reward with variance on a random policy (the accuracy reward is 0 everywhere there)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [sum(ch.isdigit() or ch == " " for ch in t) / max(1, len(t)) for t in texts]


def tiny_config(config, **trainer):
    """A 2-step run on the CPU; ``trainer`` overrides keys of rl.trainer (GRPOConfig / RLOOConfig)."""
    cfg = copy.deepcopy(config)
    cfg["device"] = "cpu"
    cfg["rl"]["eval_k"] = 2
    cfg["rl"]["trainer"].update({"max_steps": 2, "save_steps": 1, "eval_steps": 1, "num_generations": 2,
                                 "per_device_train_batch_size": 4, "max_completion_length": 8, "learning_rate": 1e-2,
                                 "report_to": ["tensorboard"], **trainer})
    return cfg


def run(arm, world, policy, cfg, tmp, name):
    benches = {b: world[b][:2] for b in BENCHES}
    return train_policy(arm, policy, world["train"][:12], corpus_by_id(world), fake_retrieval(world), benches, cfg,
                        tmp / name / "model", tmp / name / "run", reward_funcs=[digit_reward])


def weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def max_diff(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_two_ra_rft_steps_change_weights_and_record(world_small, tiny_policy_dir, config, tmp_path):
    arm = "rarft"
    summary = run(arm, world_small, tiny_policy_dir, tiny_config(config), tmp_path, arm)
    assert summary["global_step"] == 2 and summary["retriever"] == "finetuned"
    assert max_diff(weights(tiny_policy_dir), weights(tmp_path / arm / "model")) > 1e-4
    run_dir = tmp_path / arm / "run"
    curve = read_jsonl(run_dir / "curve.jsonl")
    assert {(r["step"], r["benchmark"]) for r in curve} == {(s, b) for s in (0, 1, 2) for b in BENCHES}
    assert all(r["k"] == 2 and 0.0 <= r["average_at_k"] <= 1.0 for r in curve)
    # per problem, the mean reward of its eval_k samples (Figure 3's band): every validation problem, and
    # equal problems' means average to TRL's eval_reward
    for r in curve:
        assert set(r["per_problem"]) == {item["id"] for item in world_small[r["benchmark"]][:2]}
        assert sum(r["per_problem"].values()) / 2 == pytest.approx(r["average_at_k"], abs=1e-5)
    logs = json.loads((run_dir / "log_history.json").read_text())
    train_logs = [h for h in logs if "reward" in h]
    assert len(train_logs) == 2 and all("frac_reward_zero_std" in h and "completions/mean_length" in h
                                        for h in train_logs)
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tensorboard").rglob("*"))
    # the rollouts' signal: pass-rate bins of the prompt groups, consistent with TRL's zero-std share
    signal = summary["rollout_signal"]
    assert signal["steps"] == 2 and sum(signal["pass_rate_hist"].values()) == pytest.approx(1.0)
    hist = signal["pass_rate_hist"]
    # groups at pass rate 0 or 1 have zero reward std; this test's graded reward can also give a zero-std group
    # in a middle bin (identical completions), so the converse holds only for 0/1 rewards
    assert hist["0"] + hist["1"] <= signal["zero_variance_share"] + 1e-9


def test_pass_rate_bins_and_group_stats():
    from rarft.reward import accuracy_reward
    from rarft.train import pass_rate_bin, with_group_stats

    assert [pass_rate_bin(r) for r in (0, 0.125, 0.25, 0.5, 0.625, 0.875, 1)] == [
        "0", "(0,0.25]", "(0,0.25]", "(0.25,0.5]", "(0.5,0.75]", "(0.75,1)", "1"]
    logged = {}
    prompts = [[{"role": "user", "content": p}] for p in ("a", "a", "b", "b")]
    completions = [[{"role": "assistant", "content": f"\\boxed{{{x}}}"}] for x in (1, 2, 3, 3)]
    rewards = with_group_stats(accuracy_reward)(completions=completions, answer=["1", "1", "3", "3"], prompts=prompts,
                                               log_metric=lambda k, v: logged.__setitem__(k, v))
    assert rewards == [1.0, 0.0, 1.0, 1.0]
    assert logged["pass_rate/(0.25,0.5]"] == 0.5 and logged["pass_rate/1"] == 0.5 and logged["pass_rate/0"] == 0


def test_the_broken_trainer_config_leaves_the_weights_of_the_base(world_small, tiny_policy_dir, tmp_path):
    """make broken-trainer-control's premise: with config/broken-trainer.yaml's learning rate, RL samples and
    scores but the policy stays the base model, so RA-RFT must fail the positive control."""
    broken = load_config(["params.yaml", "config/broken-trainer.yaml"])
    cfg = tiny_config(broken, learning_rate=broken["rl"]["trainer"]["learning_rate"])
    summary = run("rarft", world_small, tiny_policy_dir, cfg, tmp_path, "broken")
    assert summary["global_step"] == 2 and summary["rollout_signal"]["steps"] == 2
    assert max_diff(weights(tiny_policy_dir), weights(tmp_path / "broken" / "model")) == 0.0
    assert broken["rl"]["sft"]["trainer"]["learning_rate"] == 0.0  # the SFT arms too


def test_validation_rewards_are_recorded_per_problem_only_for_eval_batches(tmp_path):
    from types import SimpleNamespace

    from rarft.train import CURVE_ID_COLUMN, ProblemRewards, _curve_callback_class

    seen = []

    def reward(completions, answer, **kwargs):
        seen.append(sorted(kwargs))
        return [float(c == a) for c, a in zip(completions, answer)]

    recorder = ProblemRewards()
    wrapped = recorder.wrap(reward)
    assert wrapped.__name__ == "reward"  # TRL names the logged reward after the function
    # a training batch (no id column): scored, not recorded
    assert wrapped(completions=["1", "2"], answer=["1", "1"], prompts=["p", "p"]) == [1.0, 0.0]
    assert recorder.samples == []
    # a validation batch: the id column is taken off before the reward function sees it
    wrapped(completions=["1", "2", "3", "3"], answer=["1", "1", "3", "4"], prompts=["p"] * 4,
            **{CURVE_ID_COLUMN: ["a", "a", "b", "b"]})
    assert seen[-1] == ["prompts"]
    callback = _curve_callback_class()(tmp_path / "curve.partial.jsonl", 2, recorder)
    state = SimpleNamespace(global_step=5, is_world_process_zero=True)
    callback.on_log(None, state, None, logs={"loss": 0.1})  # a training log: nothing taken
    assert len(recorder.samples) == 4
    callback.on_log(None, state, None, logs={"eval_reward": 0.5, "eval_bench_easy_runtime": 1.0})
    callback.on_train_end(None, state, None)
    assert read_jsonl(tmp_path / "curve.partial.jsonl") == [
        {"step": 5, "benchmark": "bench_easy", "average_at_k": 0.5, "k": 2, "per_problem": {"a": 0.5, "b": 0.5}}]
    assert recorder.samples == []  # taken: the next benchmark's evaluation starts empty


def test_same_seed_same_result_and_resume_after_kill(world_small, tiny_policy_dir, config, tmp_path):
    cfg = tiny_config(config)
    a = run("grpo", world_small, tiny_policy_dir, cfg, tmp_path, "a")
    b = run("grpo", world_small, tiny_policy_dir, cfg, tmp_path, "b")
    wa = weights(tmp_path / "a" / "model")
    assert a["retriever"] is None and max_diff(weights(tiny_policy_dir), wa) > 1e-4  # plain GRPO learns too
    assert max_diff(wa, weights(tmp_path / "b" / "model")) == 0.0
    assert a["final_reward"] == b["final_reward"] and a["final_curve"] == b["final_curve"]

    # A kill after the step-1 checkpoint: no final model, no step-2 checkpoint; the rerun resumes.
    killed = tmp_path / "b"
    shutil.rmtree(killed / "model")
    shutil.rmtree(killed / "run" / "checkpoints" / "checkpoint-2")
    (killed / "run" / "curve.jsonl").unlink()
    c = run("grpo", world_small, tiny_policy_dir, cfg, tmp_path, "b")
    assert c["resumed_from"].endswith("checkpoint-1") and c["global_step"] == 2
    assert max_diff(wa, weights(killed / "model")) < 1e-6
    curve = read_jsonl(killed / "run" / "curve.jsonl")  # step 0 and 1 kept from before the kill
    assert sorted({r["step"] for r in curve}) == [0, 1, 2]

    # Changed settings: the old checkpoints belong to another run and are not resumed.
    shutil.rmtree(killed / "run" / "checkpoints" / "checkpoint-2")
    d = run("grpo", world_small, tiny_policy_dir, tiny_config(config, learning_rate=5e-3), tmp_path, "b")
    assert d["resumed_from"] is None and d["global_step"] == 2


def test_cli_rasft_end_to_end_and_missing_retrieval(world_small, tiny_policy_dir, tmp_path):
    import yaml

    from rarft.train import cli

    write_jsonl(tmp_path / "train.jsonl", world_small["train"][:8])
    write_jsonl(tmp_path / "corpus.jsonl", world_small["corpus"])
    write_jsonl(tmp_path / "bench_easy.jsonl", world_small["bench_easy"][:2])
    retrieval = fake_retrieval(world_small)
    write_jsonl(tmp_path / "finetuned.jsonl", [{"id": qid, "split": split, "contexts": ctx}
                                               for split, rows in retrieval.items() for qid, ctx in rows.items()])
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(
        {"device": "cpu", "rl": {"sft": {"trainer": {"num_train_epochs": 1, "per_device_train_batch_size": 4,
                                                     "learning_rate": 1e-3, "report_to": []}}}}))
    common = ["--config", "params.yaml", str(tmp_path / "small.yaml"), "--base", str(tiny_policy_dir),
              "--train", str(tmp_path / "train.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
              "--benchmarks", str(tmp_path / "bench_easy.jsonl"), "--out", str(tmp_path / "model"),
              "--run-dir", str(tmp_path / "run")]
    with pytest.raises(DataError, match="retrieval"):
        cli(["--arm", "rasft", *common])
    assert cli(["--arm", "rasft", "--retrieval", str(tmp_path / "finetuned.jsonl"), *common]) == 0
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "model" / "tokenizer.json").exists()
    assert read_jsonl(tmp_path / "run" / "curve.jsonl") == []  # SFT arms: scored by the evaluate stage
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["retriever"] == "finetuned" and summary["global_step"] == 2 and summary["seed"] == 0
    assert not list(tmp_path.glob(".model*"))  # no staging leftovers


def test_answer_column_feeds_the_accuracy_reward(world_small, config):
    """The RL rows' `answer` column is what TRL hands the reward: the query's own trace scores 1, another's 0."""
    from rarft.reward import accuracy_reward

    items = world_small["train"][:4]
    rows, _ = build_datasets("rarft", items, corpus_by_id(world_small), fake_retrieval(world_small), {}, config)
    own = [[{"role": "assistant", "content": it["trace"]}] for it in items]
    assert accuracy_reward(own, answer=[r["answer"] for r in rows]) == [1.0] * 4
    wrong = [r["answer"] for r in rows[1:] + rows[:1]]
    assert sum(accuracy_reward(own, answer=wrong)) < 4


def test_vllm_on_cpu_is_a_config_error(config, tmp_path):
    from rarft.config import ConfigError
    from rarft.train import rl_args

    cfg = tiny_config(config, use_vllm=True)
    with pytest.raises(ConfigError, match="use_vllm"):
        rl_args("grpo", cfg, tmp_path, [4], resume=False)
    args = rl_args("dapo", tiny_config(config), tmp_path, [4], resume=False)
    assert (args.loss_type, args.epsilon_high, args.mask_truncated_completions, args.beta) == ("dapo", 0.28, True, 0.0)
    assert rl_args("grpo", tiny_config(config), tmp_path, [4], resume=False).loss_type == "grpo"


def test_a_retrained_base_at_the_same_path_is_not_resumed(world_small, tiny_policy_dir, config, tmp_path):
    # `snakemake --forceall` re-initialises models/policy/base in place: an arm killed before must start
    # over from the new base, not resume a checkpoint trained from the old one.
    from safetensors.torch import save_file

    base = tmp_path / "base"
    shutil.copytree(tiny_policy_dir, base)
    cfg = tiny_config(config)
    run("grpo", world_small, base, cfg, tmp_path, "arm")
    shutil.rmtree(tmp_path / "arm" / "model")  # killed after its last checkpoint
    same = run("grpo", world_small, base, cfg, tmp_path, "arm")
    assert same["resumed_from"] is not None
    shutil.rmtree(tmp_path / "arm" / "model")
    w = weights(base)
    name = next(iter(w))
    w[name] = w[name] + 0.01
    save_file(w, str(base / "model.safetensors"), metadata={"format": "pt"})
    fresh = run("grpo", world_small, base, cfg, tmp_path, "arm")
    assert fresh["resumed_from"] is None and fresh["global_step"] == 2


# ---- paper fidelity: fp32 master weights (review B2) and veRL's token-mean loss (B3) ----
@pytest.mark.parametrize("paper", ["config/qwen3-1.7b.yaml", "config/qwen3-4b.yaml"])
def test_paper_configs_state_fp32_master_weights_and_token_mean_loss(paper, tmp_path):
    import torch

    from rarft.config import load_config
    from rarft.train import loss_type, policy_dtype, rl_args

    cfg = load_config(["params.yaml", paper])
    assert policy_dtype(cfg) is torch.float32 and cfg["rl"]["trainer"]["bf16"] is True
    assert loss_type(cfg) == "dapo"
    if "4b" in paper:  # fp32 weights + grads + AdamW of 4B do not fit a GPU unsharded: ZeRO-2
        assert cfg["rl"]["launcher"]["accelerate_config"] == "config/accelerate/zero2.yaml"
    cpu = copy.deepcopy(cfg)
    cpu["device"] = "cpu"
    cpu["rl"]["trainer"].update(use_vllm=False, bf16=False)
    assert rl_args("grpo", cpu, tmp_path, [30], resume=False).loss_type == "dapo"


def test_policy_loads_in_fp32_when_the_config_says_so(tiny_policy_dir, config, tmp_path):
    """A bf16 checkpoint (as Qwen3's are) comes back with fp32 parameters under rl.param_dtype: float32."""
    import torch
    from transformers import AutoModelForCausalLM

    from rarft.train import policy_dtype

    bf16_dir = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_policy_dir, dtype=torch.bfloat16).save_pretrained(bf16_dir)
    cfg = copy.deepcopy(config)
    for want, expected in (("float32", torch.float32), ("auto", torch.bfloat16), ("bfloat16", torch.bfloat16)):
        cfg["rl"]["param_dtype"] = want
        model = AutoModelForCausalLM.from_pretrained(bf16_dir, dtype=policy_dtype(cfg))
        assert {p.dtype for p in model.parameters()} == {expected}, want


@pytest.mark.parametrize("paper", ["config/qwen3-1.7b.yaml", "config/qwen3-4b.yaml"])
def test_paper_validation_curves_batch_several_problems_per_round(paper):
    """Review C2: an eval round holds several whole problems x eval_k samples across the 8 processes,
    not one problem at a time (120 straggler-bound rounds per evaluation)."""
    from rarft.config import load_config
    from rarft.launch import train_processes
    from rarft.train import eval_batch_size

    cfg = load_config(["params.yaml", paper])
    procs, k = train_processes(cfg), cfg["rl"]["eval_k"]
    per_device = eval_batch_size([30] * 4, k, cfg["rl"]["eval_batch_size"], procs)
    problems_per_round = per_device * procs // k
    # >= 2, not more: rl.eval_batch_size 8 is what the eval forward's sdpa mask leaves room for (rarft plan)
    assert procs == 8 and problems_per_round >= 2 and 30 % problems_per_round == 0


# ---- rl.trainer / rl.sft.trainer / retriever.train.trainer go verbatim to the trainers' config classes ----
SHIPPED = [["params.yaml"], ["params.yaml", "config/qwen3-1.7b.yaml"], ["params.yaml", "config/qwen3-4b.yaml"],
           ["params.yaml", "config/qwen3-1.7b.yaml", "config/rehearsal.yaml"],
           ["params.yaml", "config/negative-control.yaml"], ["params.yaml", "config/broken-trainer.yaml"]]


@pytest.mark.parametrize("files", SHIPPED, ids=lambda fs: "+".join(f.split("/")[-1] for f in fs))
def test_every_trainer_config_builds_from_every_shipped_config(files, tmp_path):
    """What TrlParser gives open-r1: each trainer's config class accepts the shipped blocks (an unknown key or
    a refused value fails here, not on a cluster). On this CPU: device cpu, so rarft turns bf16 off, and
    vLLM rollouts (a CUDA feature) off."""
    from rarft.config import load_config
    from rarft.train import rl_args, sft_args
    from rarft.train_retriever import _stack, training_args

    cfg = load_config(files)
    cfg["device"] = "cpu"
    cfg["rl"]["trainer"]["use_vllm"] = False
    block = cfg["rl"]["trainer"]
    for kind in ("grpo", "dapo", "rloo"):
        args = rl_args(kind, cfg, tmp_path, [30, 30], resume=False)
        assert args.max_steps == block["max_steps"] and args.use_cpu and not args.bf16
        if kind != "rloo":
            assert args.loss_type == ("dapo" if kind == "dapo" else cfg["rl"]["loss_type"])
        assert args.num_generations_eval == cfg["rl"]["eval_k"] and args.eval_strategy == "steps"
    sft = sft_args(cfg, tmp_path, resume=False)
    assert sft.num_train_epochs == cfg["rl"]["sft"]["trainer"]["num_train_epochs"] and not sft.bf16
    for kind in ("single_vector", "multi_vector"):  # sentence-transformers' args: Qwen3-Embedding, ColBERT
        st = training_args(_stack(kind)["args"], cfg, str(tmp_path), "cpu", None, True, "eval_recall")
        assert st.num_train_epochs == cfg["retriever"]["train"]["trainer"]["num_train_epochs"] and not st.bf16
        assert st.load_best_model_at_end and st.eval_strategy == cfg["retriever"]["train"]["trainer"]["eval_strategy"]
        # nothing held out to score (e.g. every labelled candidate relevant): no per-epoch evaluation, last epoch kept
        unscored = training_args(_stack(kind)["args"], cfg, str(tmp_path), "cpu", None, False, "eval_recall")
        assert unscored.eval_strategy == "no" and not unscored.load_best_model_at_end


def test_a_key_the_trainer_does_not_know_or_rarft_sets_is_a_config_error(config, tmp_path):
    from rarft.config import ConfigError
    from rarft.train import rl_args

    cfg = tiny_config(config, num_generationz=4)
    with pytest.raises(ConfigError, match=r"rl\.trainer -> GRPOConfig.*num_generationz"):
        rl_args("grpo", cfg, tmp_path, [4], resume=False)
    cfg = tiny_config(config, eval_strategy="no")
    with pytest.raises(ConfigError, match=r"rl\.trainer: eval_strategy set by rarft"):
        rl_args("grpo", cfg, tmp_path, [4], resume=False)


def test_the_embedded_default_grpo_config_is_what_the_code_used_to_build(config, tmp_path):
    """The pass-through kept the effective GRPOConfig of the embedded default (checked before/after on every
    shipped config with args.to_dict()); pinned here: every rl.trainer value reaches the args, and so do the
    settings that were code defaults before (static KV cache, logging every step, tensorboard, no vLLM)."""
    from rarft.train import rl_args

    cfg = copy.deepcopy(config)
    cfg["device"] = "cpu"
    args = rl_args("grpo", cfg, tmp_path, [32, 32], resume=False)
    for key, value in cfg["rl"]["trainer"].items():
        assert getattr(args, key) == (False if key == "bf16" else value), key  # bf16 off on the CPU
    assert (args.cache_implementation, args.logging_steps, args.report_to, args.use_vllm, args.scale_rewards) == \
        ("static", 1, ["tensorboard"], False, "group")
    assert (args.seed, args.data_seed, args.use_cpu, args.bf16, args.loss_type) == (0, 0, True, False, "grpo")
    assert (args.eval_strategy, args.eval_on_start, args.num_generations_eval, args.per_device_eval_batch_size) == \
        ("steps", True, 4, 64)
    assert args.chat_template_kwargs == {"enable_thinking": False} and not args.gradient_checkpointing
