"""rarft plan: counts implied by a small config, checked against numbers worked out by hand."""

from __future__ import annotations

import copy

import pytest

from rarft.config import load_config
from rarft.plan import cli, model_billions, plan


@pytest.fixture
def small():
    cfg = copy.deepcopy(load_config("params.yaml"))
    cfg["data"]["source"] = "world"
    cfg["data"]["world"].update(n_train=10, n_corpus=20, benchmarks={"a": {"n": 4, "difficulty": "easy"}})
    cfg["traces"]["mode"] = "validate"
    cfg["labels"].update(run=["gain", "judge"], candidates_per_query=3)
    cfg["labels"]["gain"].update(n_samples=2, max_new_tokens=5)
    cfg["labels"]["judge"]["max_new_tokens"] = 7
    cfg["rl"].update(arms=["grpo", "rarft", "sft"], retriever="finetuned", eval_k=2)
    cfg["rl"]["trainer"].update(max_steps=6, eval_steps=3, per_device_train_batch_size=4,
                                gradient_accumulation_steps=1, max_completion_length=8)
    cfg["evaluation"].update(k=3, max_new_tokens=9)
    cfg["analysis"]["diversity_top_k"] = 2
    cfg["policy"]["base"] = "Qwen/Qwen3-1.7B"
    cfg["resources"] = {"default": {"gpu": 0, "mem_mb": 4000, "runtime": 60}}  # one GPU
    return cfg


def by_stage(rows):
    return {r.stage: r for r in rows}


def test_counts_match_hand_computation(small):
    rows = by_stage(plan(small))
    gain = rows["label-relevance gain"]
    assert gain.generations == 10 * (3 + 1) * 2 == 80 and gain.generated_tokens == 80 * 5
    judge = rows["label-relevance judge"]
    assert judge.judge_calls == 30 and judge.generated_tokens == 210 and judge.gpu_hours == 0
    grpo = rows["train-policy grpo"]
    # 6 steps x 4 completions, plus the curve: evaluations at steps 0, 3, 6 x 4 problems x 2 samples
    assert grpo.generations == 24 + 24 and grpo.generated_tokens == 48 * 8
    assert rows["train-policy rarft"].generations == 48
    assert rows["train-policy rarft"].prompt_tokens > grpo.prompt_tokens  # RA prompts carry a trace
    assert rows["train-policy sft"].generations == 0 and rows["train-policy sft"].train_tokens > 0
    # base: none + top1; grpo: none + top1 (Table 4); rarft: top1 + top-2 separately; sft: none -> 8 x 4 x 3
    ev = rows["evaluate"]
    assert ev.generations == 8 * 4 * 3 and ev.generated_tokens == 96 * 9
    assert rows["build-traces"].generations == 0


def test_gpu_hours_follow_stated_throughput(small):
    grpo = by_stage(plan(small))["train-policy grpo"]
    prompt = 60 + 30                      # world problem + template tokens
    decode = (48 * 8 + 48 * prompt / 10) / (20_000 / 1.7) / 3600
    train = 6 * 1.7e9 * 24 * (prompt + 8) / 3.5e14 / 3600
    assert grpo.gpu_hours == pytest.approx(decode + train, rel=1e-9)


def test_more_gpus_more_completions_per_step(small):
    small["resources"]["train_policy"] = {"gpu": 8}
    assert by_stage(plan(small))["train-policy grpo"].generations == 6 * 4 * 8 + 24


def test_real_sizes_and_caps(small):
    small["data"]["source"] = "real"
    small["data"]["real"]["max_train"] = 100
    rows = by_stage(plan(small))
    assert rows["label-relevance judge"].judge_calls == 100 * 3
    assert rows["evaluate"].generations == 8 * 4 * 30 * 3  # four 30-problem benchmarks


def test_model_size_from_name():
    assert model_billions("Qwen/Qwen3-4B", {}) == 4.0
    assert model_billions("lightonai/Reason-ModernColBERT-150M", {}) == 0.15


def test_cli_prints_every_stage(capsys, tmp_path):
    assert cli(["--config", "params.yaml", "config/qwen3-1.7b.yaml", "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    for stage in ("build-traces", "label-relevance judge", "train-policy rarft", "evaluate", "total"):
        assert stage in out
    assert (tmp_path / "p.json").exists()


def test_plan_warns_when_a_job_exceeds_its_runtime_and_counts_the_corpus_config(capsys):
    """Review C1/C2: each train-policy row and the largest evaluate job are compared with the rule's runtime
    (on the rule's GPUs); `rarft plan` prints a warning for a job that cannot finish. The paper configs'
    corpus size follows data.real.corpus.config (OpenR1-Math-220k 'all')."""
    from rarft.plan import OPENR1_CONFIG_ROWS, dataset_sizes

    cfg = load_config(["params.yaml", "config/qwen3-1.7b.yaml"])
    assert dataset_sizes(cfg)[1] == OPENR1_CONFIG_ROWS["all"]
    rows = {r.stage: r for r in plan(cfg)}
    assert "h per job on 8 GPUs (runtime 72 h)" in rows["train-policy grpo"].note
    assert "largest job ~" in rows["evaluate"].note and "EXCEEDS" not in rows["evaluate"].note
    tight = copy.deepcopy(cfg)
    tight["resources"]["evaluate"]["runtime"] = 60
    assert "EXCEEDS ITS RUNTIME" in {r.stage: r for r in plan(tight)}["evaluate"].note
    assert cli(["--config", "params.yaml", "config/qwen3-1.7b.yaml"]) == 0
    assert "WARNING" not in capsys.readouterr().out
