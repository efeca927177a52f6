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
    cfg["resources"] = {"default": {"gpu": 0, "mem_mb": 4000, "runtime": 60}, "gpu_memory_gb": 80}  # one GPU
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
    # base: none + top1; grpo: none + top1 (Table 4); rarft: top1, none, top-2 separately; sft: none -> 9 x 4 x 3
    ev = rows["evaluate"]
    assert ev.generations == 9 * 4 * 3 and ev.generated_tokens == 108 * 9
    assert rows["build-traces"].generations == 0


def test_gpu_hours_follow_stated_throughput(small):
    grpo = by_stage(plan(small))["train-policy grpo"]
    prompt = 60 + 30                      # world problem + template tokens
    p = model_billions("Qwen/Qwen3-1.7B", small)
    assert p == pytest.approx(1.72, abs=0.01)  # from the architecture table, not the "1.7B" in the name
    decode = (48 * 8 + 48 * prompt / 10) / (20_000 / p) / 3600
    train = 6 * p * 1e9 * 24 * (prompt + 8) / 3.5e14 / 3600
    assert grpo.gpu_hours == pytest.approx(decode + train, rel=1e-9)


def test_more_gpus_more_completions_per_step(small):
    small["resources"]["train_policy"] = {"gpu": 8}
    assert by_stage(plan(small))["train-policy grpo"].generations == 6 * 4 * 8 + 24


def test_real_sizes_and_caps(small):
    small["data"]["source"] = "real"
    small["data"]["real"]["max_train"] = 100
    rows = by_stage(plan(small))
    assert rows["label-relevance judge"].judge_calls == 100 * 3
    assert rows["evaluate"].generations == 9 * 4 * 30 * 3  # 9 policy settings, four 30-problem benchmarks


def test_model_sizes_from_the_table_a_local_config_or_the_name(tmp_path):
    """Hub ids of the table give their published sizes; a local directory's config.json is read (and named as the
    source); an unknown hub id has no shape, and only its name's size for throughput."""
    from rarft.plan import arch_of

    assert model_billions("Qwen/Qwen3-4B", {}) == pytest.approx(4.02, abs=0.01)
    assert model_billions("Qwen/Qwen3-Embedding-4B", {}) == pytest.approx(4.02, abs=0.01)
    assert model_billions("HuggingFaceTB/SmolLM2-135M-Instruct", {}) == pytest.approx(0.1345, abs=0.001)
    assert model_billions("lightonai/Reason-ModernColBERT", {}) == pytest.approx(0.15, abs=0.01)
    assert model_billions("someone/Unknown-150M", {}) == 0.15
    assert arch_of("someone/Unknown-7B", {})[0] is None
    local = tmp_path / "m"
    local.mkdir()
    (local / "config.json").write_text('{"hidden_size": 64, "num_hidden_layers": 3, "intermediate_size": 128, '
                                       '"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}')
    arch, source = arch_of(str(local), {})
    assert source == str(local / "config.json") and arch.kv_heads == 2 and arch.head_dim == 16
    # embeddings (tied) + 3 x (q 64x64 + k, v 64x32 + o 64x64 + MLP 3 x 64x128 + 2 norms) + final norm
    assert arch.n_params == 100 * 64 + 3 * (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128 + 2 * 64) + 64


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
    assert "h per job on 8 GPUs (runtime 72 h" in rows["train-policy rloo"].note
    assert "EXCEEDS" not in rows["train-policy rloo"].note  # no validation curve
    assert "largest job ~" in rows["evaluate"].note and "EXCEEDS" not in rows["evaluate"].note
    tight = copy.deepcopy(cfg)
    tight["resources"]["evaluate"]["runtime"] = 60
    assert "EXCEEDS ITS RUNTIME" in {r.stage: r for r in plan(tight)}["evaluate"].note
    assert cli(["--config", "params.yaml", "config/qwen3-1.7b.yaml"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: train-policy rloo" not in out and "WARNING: evaluate" not in out


def test_curve_arms_wait_for_their_longest_sequences(capsys):
    """Review N13: an RL arm's wall time is at least (steps + evaluations x rounds) waits for a
    max_completion_length sequence at SEQUENCE_DECODE_S_PER_TOKEN; the 1.7B curve arms' 500 steps and 11 x 60
    validation rounds exceed the 72 h runtime, and `rarft plan` says so (the arms without a curve fit)."""
    from rarft.plan import SEQUENCE_DECODE_S_PER_TOKEN, longest_sequence_hours

    cfg = load_config(["params.yaml", "config/qwen3-1.7b.yaml"])
    fixed, per_b = SEQUENCE_DECODE_S_PER_TOKEN
    # 120 problems x 32 samples over 8 processes x 8 per process = 2 problems per round: 60 rounds
    by_hand = (500 + 11 * 60) * 32768 * (fixed + per_b * model_billions("Qwen/Qwen3-1.7B", cfg)) / 3600
    assert longest_sequence_hours(500, 11, 60, 32768, model_billions("Qwen/Qwen3-1.7B", cfg)) == \
        pytest.approx(by_hand)
    rows = {r.stage: r for r in plan(cfg)}
    assert "(60 rounds each)" in rows["train-policy grpo"].note
    # the waits alone are ~69 h; with the training compute (train hours over 8 GPUs) over 72 h
    assert "EXCEEDS ITS RUNTIME" in rows["train-policy grpo"].note and 65 < by_hand < 72
    assert "EXCEEDS" not in rows["train-policy rloo"].note
    cli(["--config", "params.yaml", "config/qwen3-1.7b.yaml"])
    assert "WARNING: train-policy grpo: the estimate does not fit the job's runtime" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- memory
PAPER = ["config/qwen3-1.7b.yaml", "config/qwen3-4b.yaml"]


def memory_rows(tmp_path, *configs, strict=True):
    """(exit status, memory rows of `rarft plan --json`) for params.yaml + ``configs``."""
    import json

    out = tmp_path / "plan.json"
    rc = cli(["--config", "params.yaml", *configs, "--json", str(out)] + (["--strict"] if strict else []))
    rows = [r for r in json.loads(out.read_text()) if r["kind"] == "memory"]
    return rc, {r["stage"]: r for r in rows}


@pytest.mark.parametrize("paper", PAPER)
def test_every_gpu_stage_of_the_paper_configs_fits_its_gpu(paper, tmp_path, capsys):
    """Issue 19 "It fits": `rarft plan --json --strict` gives every GPU stage of both paper configs an estimate
    within resources.gpu_memory_gb (80 GB H100s), prepare-data's host memory within its mem_mb, and exits 0."""
    rc, rows = memory_rows(tmp_path, paper)
    assert rc == 0, capsys.readouterr().out
    cfg = load_config(["params.yaml", paper])
    expected = {"build-traces", "train-retriever", "train-retriever colbert", "retrieve offshelf",
                "retrieve finetuned_colbert", "evaluate", *(f"train-policy {a}" for a in cfg["rl"]["arms"])}
    assert expected <= set(rows)
    for stage, r in rows.items():
        if stage == "prepare-data":
            assert 0 < r["host_memory_gb"] <= r["host_memory_limit_gb"]
            continue
        assert r["gpu_memory_limit_gb"] == 80 and 0 < r["gpu_memory_gb"] <= 80, (stage, r)
        assert r["model_source"] == "rarft.plan.ARCHITECTURES" and not r["error"]
    policy = rows["train-policy grpo"]
    assert policy["launcher"] == "zero2" and policy["processes"] == 8
    # vLLM awake, training; no old-log-prob forward: the paper configs turn vLLM's importance-sampling correction off
    # for the GRPO family (rl.grpo_trainer), while RLOO computes old log-probabilities whatever it is set to
    assert set(policy["phases"]) == {"generate", "train"}
    if "train-policy rloo" in rows:
        assert set(rows["train-policy rloo"]["phases"]) == {"generate", "train", "old logps"}
    assert rows["train-policy grpo"]["disk_gb"] > 0


@pytest.mark.parametrize("override, stage, key", [
    # a larger micro-batch (16 prompts x 16 kept: 8 x 8 x 4)
    ({"rl": {"trainer": {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 4}}},
     "train-policy grpo", "rl.trainer.per_device_train_batch_size"),
    # DDP with fp32 master weights: every GPU holds 16 B per parameter plus DDP's buckets
    ({"rl": {"launcher": {"accelerate_config": "config/accelerate/ddp.yaml"}}},
     "train-policy grpo", "rl.launcher.accelerate_config"),
    # vLLM's share held while training
    ({"rl": {"trainer": {"vllm_enable_sleep_mode": False}}}, "train-policy rarft",
     "rl.trainer.vllm_enable_sleep_mode"),
    # the 4B embedder in fp32 under DDP (review N2)
    ({"retriever": {"train": {"launcher": {"accelerate_config": "config/accelerate/ddp.yaml"}}}},
     "train-retriever", "retriever.train.launcher.accelerate_config"),
    # the cached loss under ZeRO: cannot run, whatever the memory
    ({"retriever": {"train": {"mini_batch_size": 16}}}, "train-retriever", "retriever.train.mini_batch_size"),
])
def test_a_config_change_that_no_longer_fits_fails_strict(override, stage, key, tmp_path, capsys):
    import yaml

    extra = tmp_path / "override.yaml"
    extra.write_text(yaml.safe_dump(override))
    rc, rows = memory_rows(tmp_path, "config/qwen3-1.7b.yaml", str(extra))
    out = capsys.readouterr().out
    assert rc == 1 and rows[stage]["over"]
    error = next(line for line in out.splitlines() if line.startswith(f"ERROR: {stage} "))
    assert key in error
    # without --strict: the same finding is a warning and the exit status 0
    rc, _ = memory_rows(tmp_path, "config/qwen3-1.7b.yaml", str(extra), strict=False)
    assert rc == 0 and f"WARNING: {stage} " in capsys.readouterr().out


def test_a_smaller_gpu_is_the_limit(tmp_path):
    """resources.gpu_memory_gb is the limit every row is checked against: the 1.7B config does not fit 40 GB GPUs."""
    extra = tmp_path / "a100-40.yaml"
    extra.write_text("resources: {gpu_memory_gb: 40}\n")
    rc, rows = memory_rows(tmp_path, "config/qwen3-1.7b.yaml", str(extra))
    assert rc == 1 and rows["train-policy grpo"]["gpu_memory_limit_gb"] == 40 and rows["train-policy grpo"]["over"]


def test_training_state_per_launcher_by_hand():
    """16 B per parameter (+ a gradient-sized DDP bucket) under DDP in fp32; ZeRO-2: bf16 weights on every GPU,
    the fp32 master copy, both moments and the bf16 gradients sharded (2 + 14 / n B), plus the buckets."""
    from rarft.plan import ARCHITECTURES, GIB, ZERO_BUCKETS_GB, static_gb

    arch = ARCHITECTURES["Qwen/Qwen3-1.7B"]
    phi = arch.n_params
    assert sum(static_gb(arch, "ddp", 8, 4, True).values()) == pytest.approx(20 * phi / GIB)
    assert sum(static_gb(arch, "single", 1, 4, True).values()) == pytest.approx(16 * phi / GIB)
    assert sum(static_gb(arch, "zero2", 8, 4, True).values()) == pytest.approx((2 + 14 / 8) * phi / GIB
                                                                                + ZERO_BUCKETS_GB)
    assert sum(static_gb(arch, "zero3", 8, 4, True).values()) > 16 * phi / 8 / GIB


def test_activation_formula_by_hand():
    """One Qwen3 layer's kept bytes per token (the formula's terms), checkpointing keeping L r h T instead of every
    layer, and the sdpa mask growing with the square of the length."""
    from rarft.plan import ARCHITECTURES, GIB, layer_bytes_per_token, train_activation_gb

    arch = ARCHITECTURES["Qwen/Qwen3-1.7B"]
    h, i_, q, kv = 2048, 6144, 16 * 128, 8 * 128
    assert layer_bytes_per_token(arch, 2, 4) == 4 * 4 * h + 4 * 2 * h + (2 + 8) * (q + 2 * kv) + 4 * 2 * i_
    full = train_activation_gb(arch, 1, 4096, 2, 4, False, "sdpa")
    ckpt = train_activation_gb(arch, 1, 4096, 2, 4, True, "sdpa")
    assert ckpt["activations_kept"] < full["activations_kept"] / 10
    assert ckpt["activations_kept"] * GIB > 28 * 4 * h * 4096
    assert train_activation_gb(arch, 1, 8192, 2, 4, True, "sdpa")["attention_mask"] == \
        pytest.approx(4 * ckpt["attention_mask"])
    assert train_activation_gb(arch, 1, 8192, 2, 4, True, "flash_attention_2")["attention_mask"] == 0


def test_the_library_defaults_the_plan_assumes_are_the_installed_ones():
    """rarft.plan reads a trainer field a config leaves out at its library's default (TRL_DEFAULTS,
    SENTENCE_TRANSFORMERS_DEFAULTS): they must be what TRL 1.16 and sentence-transformers 6.2 say."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from trl import GRPOConfig, RLOOConfig

    from rarft.plan import SENTENCE_TRANSFORMERS_DEFAULTS, TRL_DEFAULTS

    for key, value in TRL_DEFAULTS.items():
        field = GRPOConfig.__dataclass_fields__[key]
        # bf16 None: TRL's __post_init__ makes it `not fp16`
        assert (field.default if key != "bf16" else not GRPOConfig.__dataclass_fields__["fp16"].default) == value
        if key != "vllm_importance_sampling_correction":
            assert RLOOConfig.__dataclass_fields__[key].default == field.default
    # RLOO has no switch: it always runs the old-log-probability forward, as the plan counts
    assert "vllm_importance_sampling_correction" not in RLOOConfig.__dataclass_fields__
    assert GRPOConfig.__dataclass_fields__["bf16"].default is None
    for key, value in SENTENCE_TRANSFORMERS_DEFAULTS.items():
        assert SentenceTransformerTrainingArguments.__dataclass_fields__[key].default == value


def test_paper_configs_use_trainer_fields_the_libraries_have():
    """The memory settings of the paper configs are real fields of TRL 1.16 and sentence-transformers 6.2."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from trl import GRPOConfig, RLOOConfig, SFTConfig

    for paper in PAPER:
        cfg = load_config(["params.yaml", paper])
        for cls in (GRPOConfig, RLOOConfig):
            assert set(cfg["rl"]["trainer"]) <= set(cls.__dataclass_fields__), cls
        assert set(cfg["rl"]["sft"]["trainer"]) <= set(SFTConfig.__dataclass_fields__)
        fields = SentenceTransformerTrainingArguments.__dataclass_fields__
        assert set(cfg["retriever"]["train"]["trainer"]) <= set(fields)
        assert cfg["rl"]["trainer"]["vllm_enable_sleep_mode"] is True


def test_prepare_data_host_memory_follows_the_rows_read(small):
    from rarft.plan import memory_plan

    small["data"]["source"] = "real"
    host = {r.stage: r for r in memory_plan(small)}["prepare-data"]
    assert host.host_memory_limit_gb == pytest.approx(4000 / 1024, abs=0.05)  # resources.default.mem_mb
    small["resources"]["prepare_data"] = {"mem_mb": 1000}
    assert {r.stage: r for r in memory_plan(small)}["prepare-data"].over
