"""The embedded world and its warm-up set: the properties the pipeline's claims rest on."""

from __future__ import annotations

import re

from rarft.world import RULE_NAMES, STRATEGY_BY_NAME, generate_warmup, generate_world, normalise_text

RULE_RE = re.compile(r"applies the (\w+-\w+) rule")


def test_named_rule_problems_use_their_strategys_fixed_name():
    world = generate_world(0, 90, 90, {"hard": {"n": 40, "difficulty": "hard"}})
    items = [it for split in world.values() for it in split]
    named = [it for it in items if it["named_rule"]]
    assert named and len(named) < len(items)
    for it in items:
        m = RULE_RE.search(it["problem"])
        assert bool(m) == it["named_rule"], it["problem"]
        if m:
            assert m.group(1) == RULE_NAMES[it["strategy"]]
    # hard problems use the named phrasing about twice as often as the mixed splits
    share = lambda split: sum(it["named_rule"] for it in world[split]) / len(world[split])  # noqa: E731
    assert share("hard") > share("train")


def test_world_answers_follow_the_trace():
    world = generate_world(1, 45, 45, {})
    for it in world["train"] + world["corpus"]:
        assert it["trace"].endswith(f"$\\boxed{{{it['answer']}}}$")
        assert STRATEGY_BY_NAME[it["strategy"]].describe in it["trace"]


def test_warmup_never_uses_world_rule_names_and_pairs_named_rules_with_same_rule_reference():
    warm = generate_warmup(seed=3, n=400)
    assert [it["id"] for it in warm] == [f"warmup-{i:05d}" for i in range(400)]
    named = [it for it in warm if it["named_rule"]]
    assert len(named) > 40
    for it in warm:
        for text in [it["problem"]] + [c["problem"] for c in it["contexts"]]:
            m = RULE_RE.search(text)
            assert not m or m.group(1) not in RULE_NAMES.values()
        assert all(normalise_text(c["problem"]) != normalise_text(it["problem"]) for c in it["contexts"])
    for it in named:
        (ref,) = it["contexts"]
        assert ref["strategy"] == it["strategy"] and ref["named_rule"]
        assert RULE_RE.search(ref["problem"]).group(1) == RULE_RE.search(it["problem"]).group(1)
    plain_with_ref = [it for it in warm if not it["named_rule"] and it["contexts"]]
    wrong = [it for it in plain_with_ref if it["contexts"][0]["strategy"] != it["strategy"]]
    assert all(it["contexts"][0]["problem_type"] == it["problem_type"] for it in wrong)
    assert 0.15 < len(wrong) / len(plain_with_ref) < 0.45  # wrong_context_fraction 0.3


def test_warmup_is_deterministic_and_excludes_given_problems():
    first = generate_warmup(seed=7, n=200)
    assert generate_warmup(seed=7, n=200) == first
    assert generate_warmup(seed=8, n=200) != first
    banned = {normalise_text(it["problem"]) for it in first[:50]}
    again = generate_warmup(seed=7, n=200, exclude=banned)
    assert len(again) == 200
    assert not banned & {normalise_text(it["problem"]) for it in again}
