"""experiments/world_rl.py, the world's learnability experiment (docs/world.md F, G): its --set parsing, and one
tiny run end to end on the random tiny policy (a warm-up of its own would take minutes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from rarft.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("world_rl", ROOT / "experiments" / "world_rl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_set_pairs_nest_and_read_values_as_yaml():
    world_rl = load_script()
    over = world_rl.parse_sets(["policy.tiny.sft.same_name_reference_right=0.6", "rl.arms=[grpo]", "seed=3"])
    assert over == {"policy": {"tiny": {"sft": {"same_name_reference_right": 0.6}}}, "rl": {"arms": ["grpo"]},
                    "seed": 3}
    with pytest.raises(ConfigError, match="'rl.trainer.max_steps'"):
        world_rl.parse_sets(["rl.trainer.max_steps"])


def test_a_bad_set_key_is_named_by_the_schema(tmp_path):
    world_rl = load_script()
    with pytest.raises(ConfigError, match="same_name_reference_rigth"):
        world_rl.main(["--config", str(ROOT / "params.yaml"), "--out", str(tmp_path),
                       "--set", "policy.tiny.sft.same_name_reference_rigth=0.6"])


@pytest.mark.slow
def test_one_tiny_experiment_writes_probes_diagnostics_and_rl(tiny_policy_dir, tmp_path):
    world_rl = load_script()
    sets = ["data.world.n_train=60", "data.world.n_corpus=90",
            "data.world.benchmarks.world_easy.n=8", "data.world.benchmarks.world_hard.n=8",
            "policy.tiny.probe_samples=1", "evaluation.max_new_tokens=8",
            "rl.trainer.max_steps=2", "rl.trainer.num_generations=2", "rl.trainer.per_device_train_batch_size=4",
            "rl.trainer.max_completion_length=8", "rl.trainer.save_steps=100", "rl.trainer.report_to=[]"]
    out = tmp_path / "exp"
    world_rl.main(["--config", str(ROOT / "params.yaml"), "--out", str(out), "--base", str(tiny_policy_dir),
                   "--diag-queries", "3", "--diag-samples", "2", "--set", *sets])
    result = json.loads((out / "result.json").read_text())
    assert result["rl"]["rollout_signal"]["steps"] == 2 and (out / "rarft" / "model.safetensors").exists()
    for stage in ("base", "rarft"):
        assert set(result[stage]["probe"]) == {"world_easy", "world_hard"}
        assert all(0.0 <= row["same_strategy"] <= 1.0 for row in result[stage]["probe"].values())
        diag = result[stage]["diagnostic"]
        assert list(diag) == list(world_rl.CONTEXT_KINDS)
        assert diag["alone"]["n"] == 3 * 2  # every query alone; each other kind where the corpus has such a trace
        assert all(d["n"] <= 6 and (d["n"] == 0 or 0.0 <= d["query_strategy"] <= 1.0) for d in diag.values())


def test_a_base_that_is_not_a_policy_is_named(tmp_path):
    world_rl = load_script()
    with pytest.raises(ConfigError, match="--base .*not a saved policy"):
        world_rl.main(["--config", str(ROOT / "params.yaml"), "--out", str(tmp_path), "--base", str(tmp_path / "nope")])


@pytest.mark.slow
def test_labels_on_the_base_only_give_kappa_and_every_candidate_a_kind(tiny_policy_dir, tmp_path):
    world_rl = load_script()
    sets = ["data.world.n_train=24", "data.world.n_corpus=90", "data.world.benchmarks.world_easy.n=4",
            "data.world.benchmarks.world_hard.n=4", "policy.tiny.probe_samples=1", "evaluation.max_new_tokens=8",
            "labels.gain.n_samples=2", "labels.gain.max_new_tokens=8"]
    out = tmp_path / "exp"
    result = world_rl.main(["--config", str(ROOT / "params.yaml"), "--out", str(out), "--base", str(tiny_policy_dir),
                            "--diag-queries", "2", "--diag-samples", "1", "--labels", "--skip-rl", "--set", *sets])
    assert "rl" not in result and not (out / "rarft").exists()  # --skip-rl: the base only
    labels = json.loads((out / "result.json").read_text())["labels"]
    assert -1.0 <= labels["kappa"] <= 1.0
    # every candidate pair falls in one kind: 24 queries x labels.candidates_per_query (4)
    assert sum(kind["pairs"] for kind in labels["by_kind"].values()) == 24 * 4
    assert set(labels["by_kind"]) <= {*world_rl.CONTEXT_KINDS[1:], "plain_question"}
    assert labels["by_kind"]["analogue"]["pairs"] >= 1


@pytest.mark.slow
def test_name_check_samples_the_warm_ups_own_questions_by_kind_of_reference(tiny_policy_dir, tmp_path):
    world_rl = load_script()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarft.config import load_config

    config = load_config([str(ROOT / "params.yaml")])
    config["evaluation"]["max_new_tokens"] = 8
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy_dir)
    check = world_rl.warmup_name_check(model, tokenizer, config, items=12, samples=2, seed=5)
    assert list(check) == list(world_rl.NAME_CHECK_KINDS)
    assert sum(row["n"] for row in check.values()) == 12 * 2  # every question once per sample, in one kind
    assert check["same_name"]["n"] > 0 and all(r["follows"] is None or 0 <= r["follows"] <= 1 for r in check.values())
    # with no other-name references in the mix, every question's reference carries its name
    config["policy"]["tiny"]["sft"]["other_name_reference"] = 0.0
    only_same = world_rl.warmup_name_check(model, tokenizer, config, items=6, samples=1, seed=5)
    assert only_same["same_name"]["n"] == 6 and only_same["other_name_same_strategy"]["n"] == 0


def test_name_check_counts_who_follows_the_reference_by_kind(monkeypatch):
    """The counting itself, with two stand-in policies: one that always copies the reference's strategy (follows
    every kind at 1.0) and one that always writes the question's own (follows only right same-name references)."""
    world_rl = load_script()
    from rarft.config import load_config
    from rarft.world import STRATEGIES

    config = load_config([str(ROOT / "params.yaml")])
    describe = {st.name: st.describe for st in STRATEGIES}
    strategy_of = {}  # problem text -> its hidden strategy, from the same draw the check makes (same seed)

    def copier(model, tokenizer, problem, contexts, *, samples, **_):
        return [f"Step 1 (Strategy): {describe[contexts[0]['strategy']]}"] * samples

    def own(model, tokenizer, problem, contexts, *, samples, **_):
        return [f"Step 1 (Strategy): {describe[strategy_of[problem]]}"] * samples

    from rarft.world import generate_warmup, warmup_mix

    mix = {**warmup_mix(config["policy"]["tiny"]["sft"]), "named_rule_share": 1.0, "named_without_reference": 0.0}
    strategy_of.update({it["problem"]: it["strategy"] for it in generate_warmup(7, 60, set(), **mix)})

    monkeypatch.setattr(world_rl, "sample", copier)
    follows_all = world_rl.warmup_name_check(None, None, config, items=60, samples=2, seed=7)
    assert all(row["follows"] == 1.0 for row in follows_all.values())
    monkeypatch.setattr(world_rl, "sample", own)
    follows_own = world_rl.warmup_name_check(None, None, config, items=60, samples=2, seed=7)
    assert follows_own["other_name_same_strategy"]["follows"] == 1.0
    assert follows_own["other_name_other_strategy"]["follows"] == 0.0
    # same-name references are right at same_name_reference_right (0.8): the question's own strategy follows them
    # exactly when they are right
    assert 0.5 < follows_own["same_name"]["follows"] < 1.0


def test_a_negative_name_check_is_refused(tmp_path, capsys):
    world_rl = load_script()
    with pytest.raises(SystemExit):
        world_rl.main(["--config", str(ROOT / "params.yaml"), "--out", str(tmp_path), "--name-check", "-3"])
    assert "--name-check -3" in capsys.readouterr().err
