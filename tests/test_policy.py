"""The policy stage: tokenizer, chat template, tiny Qwen3 checkpoint, model resolution, SFT warm-up."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_TEST_CFG


def test_tokenizer_round_trips_any_text(world_small):
    from rarft.policy import build_tokenizer, world_texts

    tok = build_tokenizer(world_texts(world_small["train"]), 320)
    assert len(tok) <= 320
    for text in [world_small["corpus"][0]["trace"], "gcd(84, 36) = 12 ünïcödé 漢字 \t\n  $\\boxed{7}$"]:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    # digits are single tokens (Qwen's pre-tokenisation), so numbers are spelled digit by digit
    assert len(tok.encode("1234567", add_special_tokens=False)) == 7
    # the special tokens are single tokens and the ids the model config uses
    for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"):
        assert len(tok.encode(t, add_special_tokens=False)) == 1
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    # <think> is not a "special" token (as in Qwen3): it survives skip_special_tokens
    ids = tok.encode("<think>\nhi\n</think><|im_end|>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "<think>\nhi\n</think>"


def test_rule_names_are_two_tokens_whether_frequent_or_not(world_small):
    """The world's names fill its texts and the warm-up's random names are rare: the tokenizer must still
    split both the same way (one token per syllable), or the name matching learnt in the warm-up would
    meet the world's names in another form."""
    import random

    from rarft.policy import build_tokenizer, world_texts
    from rarft.world import NAME_PIECES, RULE_NAMES, random_rule_name

    texts = world_texts(world_small["train"] + world_small["corpus"])
    rng = random.Random(0)
    names = list(RULE_NAMES.values()) + [random_rule_name(rng) for _ in range(50)]
    plain = build_tokenizer(texts, 320)
    # without the pieces, frequent and rare names split differently (the failure this guards against)
    assert len({len(plain.tokenize(f" the {n} rule")) for n in names}) > 1
    tok = build_tokenizer(texts, 320, NAME_PIECES)
    for name in names:
        first, second = name.split("-")
        assert tok.tokenize(f" the {name} rule") == ["Ġthe", f"Ġ{first}", f"-{second}", "Ġrule"], name
    text = world_small["corpus"][0]["problem"] + " ünïcödé"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_chat_template_thinking_on_and_off(tiny_policy_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    msgs = [{"role": "user", "content": "What is 2 + 3?"}]
    off = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    on = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    assert on == "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    assert off == on + "<think>\n\n</think>\n\n"
    # prompt-completion: the rendered prompt is a prefix of prompt + completion (TRL's completion mask)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "5"}], tokenize=False,
                                   enable_thinking=False)
    assert full == off + "5<|im_end|>\n"


def test_tiny_policy_loads_with_auto_classes(tiny_policy_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    assert model.config.model_type == "qwen3"
    assert model.config.hidden_size == TINY_TEST_CFG["hidden_size"]
    assert model.config.vocab_size == len(tok)
    assert model.config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.padding_side == "left"
    batch = tok(["a", "a longer prompt"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=3, do_sample=True)
    assert out.shape[0] == 2 and out.shape[1] <= batch["input_ids"].shape[1] + 3


def test_tiny_policy_is_deterministic_per_seed(world_small, tiny_policy_dir, tmp_path):
    from safetensors.torch import load_file

    from rarft.policy import build_tiny_policy, world_texts

    texts = world_texts(world_small["train"] + world_small["corpus"])
    same = build_tiny_policy(texts, TINY_TEST_CFG, tmp_path / "same", seed=0)
    other = build_tiny_policy(texts, TINY_TEST_CFG, tmp_path / "other", seed=1)
    ref = load_file(tiny_policy_dir / "model.safetensors")
    again, diff = load_file(same / "model.safetensors"), load_file(other / "model.safetensors")
    assert ref.keys() == again.keys()
    assert all((ref[k] == again[k]).all() for k in ref)
    assert any(not (ref[k] == diff[k]).all() for k in ref)
    assert (same / "tokenizer.json").read_text() == (tiny_policy_dir / "tokenizer.json").read_text()
    assert not list(tmp_path.glob(".same.*")), "atomic write left a temp directory behind"


def test_resolve_model(tiny_policy_dir, tmp_path):
    from rarft.io import DataError
    from rarft.policy import resolve_model, write_pointer

    pointer_dir = write_pointer("Qwen/Qwen3-1.7B", tmp_path / "base")
    assert json.loads((pointer_dir / "rarft_model.json").read_text()) == {"name_or_path": "Qwen/Qwen3-1.7B"}
    assert resolve_model(pointer_dir) == "Qwen/Qwen3-1.7B"
    assert resolve_model(str(tiny_policy_dir)) == str(tiny_policy_dir)
    assert resolve_model("Qwen/Qwen3-4B") == "Qwen/Qwen3-4B"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "rarft_model.json").write_text('{"path": "x"}')
    with pytest.raises(DataError, match="name_or_path"):
        resolve_model(bad)


def test_sft_examples_use_same_strategy_contexts_never_self(world_small):
    from rarft.policy import sft_examples

    train, corpus = world_small["train"], world_small["corpus"]
    examples = sft_examples(train, corpus, context_fraction=0.5, seed=0, enable_thinking=False)
    assert len(examples) == len(train) + len(corpus)
    by_problem = {it["problem"]: it for it in corpus}
    with_ctx = [e for e in examples if "Reference problem" in e["prompt"][0]["content"]]
    assert 0.3 < len(with_ctx) / len(examples) < 0.7
    by_target = {it["problem"]: it for it in train + corpus}  # texts are unique; traces need not be
    for e in with_ctx:
        text = e["prompt"][0]["content"]
        target = by_target[text.split("Problem:\n")[-1].split("\n\n")[0]]
        ctx = by_problem[text.split("Reference problem:\n")[1].split("\n\nReference solution")[0]]
        assert ctx["strategy"] == target["strategy"] and ctx["id"] != target["id"]
        assert e["completion"][0]["content"] == target["trace"]
    assert sft_examples(train, corpus, 0.5, seed=0, enable_thinking=False) == examples
    plain = sft_examples(train, corpus, 0.0, seed=0, enable_thinking=False)
    assert not any("Reference" in e["prompt"][0]["content"] for e in plain)


def test_sft_warmup_lowers_loss_and_changes_weights(world_small, tiny_policy_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarft.policy import sft_examples, sft_warmup

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    examples = sft_examples(world_small["train"][:12], world_small["corpus"][:12], 0.0, seed=0, enable_thinking=False)
    trainer = sft_warmup(model, tok, examples, {"epochs": 4, "learning_rate": 0.01, "batch_size": 8}, 0,
                         tmp_path / "work")
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < 0.8 * losses[0]
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_cli_writes_pointer_for_hub_base(world_small, tmp_path):
    import yaml

    from rarft.cli import main
    from rarft.config import REPO_ROOT
    from rarft.io import write_jsonl
    from rarft.policy import resolve_model

    override = tmp_path / "qwen.yaml"
    override.write_text(yaml.safe_dump({"policy": {"base": "Qwen/Qwen3-1.7B"}}))
    write_jsonl(tmp_path / "train.jsonl", world_small["train"][:3])
    write_jsonl(tmp_path / "corpus.jsonl", world_small["corpus"][:3])
    rc = main(["init-policy", "--config", str(REPO_ROOT / "params.yaml"), str(override),
               "--train", str(tmp_path / "train.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
               "--out", str(tmp_path / "base")])
    assert rc == 0
    assert resolve_model(tmp_path / "base") == "Qwen/Qwen3-1.7B"
    assert [p.name for p in (tmp_path / "base").iterdir()] == ["rarft_model.json"]


def test_init_policy_rejects_items_without_trace(world_small, tmp_path):
    from rarft.config import REPO_ROOT, load_config
    from rarft.io import DataError
    from rarft.policy import init_policy

    config = load_config(REPO_ROOT / "params.yaml")
    corpus = [dict(it) for it in world_small["corpus"][:3]]
    corpus[1]["trace"] = None
    with pytest.raises(DataError, match=r"corpus.jsonl, row 2: key 'trace'"):
        init_policy(world_small["train"][:3], corpus, config, tmp_path / "base",
                    sources=("train.jsonl", "corpus.jsonl"))
    assert not (tmp_path / "base").exists()


@pytest.mark.slow
def test_init_policy_tiny_end_to_end(world_small, tmp_path):
    """The whole tiny stage on a small world with a shrunken config: a loadable, trained checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarft.config import REPO_ROOT, deep_merge, load_config
    from rarft.policy import init_policy

    config = deep_merge(load_config(REPO_ROOT / "params.yaml"),
                        {"policy": {"tiny": {**TINY_TEST_CFG, "sft": {"epochs": 1, "batch_size": 16,
                                                                         "warmup_items": 48}}}})
    bench = world_small["bench_easy"]
    summary = init_policy(world_small["train"][:20], world_small["corpus"][:20], config, tmp_path / "base",
                          exclude_items=bench)
    # on the world, the warm-up is generated problems (48 / batch 16 = 3 steps), not train + corpus
    assert summary["sft_examples"] == 48
    assert summary["sft_steps"] == 3 and summary["final_loss"] < summary["first_loss"]
    AutoTokenizer.from_pretrained(tmp_path / "base")
    AutoModelForCausalLM.from_pretrained(tmp_path / "base")


def test_probe_benchmarks_reports_each_phrasing_and_their_weighted_mean(world_small, tiny_policy_dir):
    """The probe of the positive control's first premise: accuracy alone and with a same-strategy trace."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rarft.config import REPO_ROOT, deep_merge, load_config
    from rarft.policy import probe_benchmarks

    config = deep_merge(load_config(REPO_ROOT / "params.yaml"),
                        {"policy": {"tiny": {"probe_samples": 2}}, "evaluation": {"max_new_tokens": 8}})
    tok, model = AutoTokenizer.from_pretrained(tiny_policy_dir), AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    bench = {"b": world_small["bench_easy"] + world_small["bench_hard"]}
    corpus = world_small["corpus"][:20]  # too small to hold every (strategy, name): some items fall back
    report = probe_benchmarks(model, tok, bench, corpus, config)
    row = report["benchmarks"]["b"]
    assert report["samples_per_item"] == 2 and report["temperature"] == config["evaluation"]["temperature"]
    n_named = sum(it["named_rule"] for it in bench["b"])
    assert row["n"] == 16 and row.get("named_rule_n", 0) == n_named and row.get("plain_n", 0) == 16 - n_named
    for setting in ("none", "same_strategy"):
        expected = sum(row.get(f"{p}_{setting}", 0) * row.get(f"{p}_n", 0) for p in ("named_rule", "plain")) / 16
        assert row[setting] == pytest.approx(expected) and 0 <= row[setting] <= 1
    # items whose name no corpus trace carries fall back to a same-strategy trace, and the row counts them
    missing = sum(not any(c["strategy"] == it["strategy"] and (not it["named_rule"] or c["rule"] == it["rule"])
                          for c in corpus) for it in bench["b"])
    assert missing > 0 and row["no_analogue"] == missing
