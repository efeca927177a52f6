"""Relevance labels: candidate sampling (rarft.candidates), the three labelers' contracts, and compare-labelers."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from rarft.candidates import sample_candidates
from rarft.config import load_config
from rarft.generation import chunk_size_for
from rarft.io import DataError, read_jsonl, write_jsonl
from rarft.labels import gain_estimate, judge_prompt, label_relevance, parse_verdict, prompt_seed
from rarft.labels_compare import compare_labelers
from rarft.world import analogous


def draw(*args, **kw):
    """sample_candidates as the world's default config runs it (>= 1 same- and 1 other-strategy candidate)."""
    return sample_candidates(*args, stratify_by_strategy=True, **kw)


# ------------------------------------------------------------------------------------------ candidates

def test_candidates_same_type_no_self_stratified_and_seeded(world_small):
    train, corpus = world_small["train"], world_small["corpus"]
    dup = dict(train[0], id="dup")  # the text of query 0 under another id
    by_id = {c["id"]: c for c in corpus + [dup]}
    rows = sample_candidates(train, corpus + [dup], m=6, seed=3, stratify_by_strategy=True)
    assert "dup" not in rows[0]["candidates"]  # a query's own text is never its candidate
    assert [r["query_id"] for r in rows] == [q["id"] for q in train]
    for q, row in zip(train, rows):
        cands = row["candidates"]
        assert len(cands) == 6 and len(set(cands)) == 6
        assert all(by_id[c]["problem_type"] == q["problem_type"] for c in cands)
        strategies = [by_id[c]["strategy"] for c in cands]
        assert any(s != q["strategy"] for s in strategies)
        if any(analogous(q, c) for c in corpus):  # the small corpus lacks some names
            assert any(analogous(q, by_id[c]) for c in cands), q["id"]
    assert draw(train, corpus, 6, seed=3) == draw(train, corpus, 6, seed=3)
    assert draw(train, corpus, 6, seed=3) != draw(train, corpus, 6, seed=4)
    # a query's candidates do not depend on which other queries are sampled
    assert draw(train[5:9], corpus, 6, seed=3) == draw(train, corpus, 6, seed=3)[5:9]


def test_candidates_normalise_each_item_once(world_small, monkeypatch):
    """Review N12: every corpus item was normalised once per query (~8e8 regex calls at paper scale)."""
    import rarft.candidates
    from rarft.prompts import normalise_text

    train, corpus = world_small["train"], world_small["corpus"]
    expected = sample_candidates(train, corpus, m=6, seed=3, stratify_by_strategy=False)
    calls = []
    monkeypatch.setattr(rarft.candidates, "normalise_text", lambda t: calls.append(t) or normalise_text(t))
    assert sample_candidates(train, corpus, m=6, seed=3, stratify_by_strategy=False) == expected
    assert len(calls) == len(corpus) + len(train)


def test_candidates_uniform_without_strategy_and_short_pools():
    corpus = [{"id": f"c{i}", "problem": f"p{i}", "problem_type": "algebra" if i < 3 else "geometry"}
              for i in range(10)]
    queries = [{"id": "q", "problem": "new", "problem_type": "algebra"},
               {"id": "r", "problem": "other", "problem_type": "topology"}]
    rows = sample_candidates(queries, corpus, m=6, seed=0, stratify_by_strategy=True)
    assert sorted(rows[0]["candidates"]) == ["c0", "c1", "c2"]  # the pool has only 3 of that type
    assert rows[1]["candidates"] == []


# ------------------------------------------------------------------------------------------ oracle

def test_oracle_labels_are_same_strategy_under_the_questions_name(world_small):
    config = load_config()
    train, corpus = world_small["train"][:10], world_small["corpus"]
    cands = sample_candidates(train, corpus, 6, 0, stratify_by_strategy=True)
    rows = label_relevance("oracle", train, corpus, cands, config)
    by_id = {c["id"]: c for c in corpus + train}
    assert len(rows) == 60
    for r in rows:
        q, c = by_id[r["query_id"]], by_id[r["context_id"]]
        assert r["label"] == int(q["strategy"] == c["strategy"] and (not q["named_rule"] or q["rule"] == c["rule"]))
    assert 0 < sum(r["label"] for r in rows) < 60
    real = [dict(c, strategy=None) for c in corpus]
    with pytest.raises(DataError, match="strategy"):
        label_relevance("oracle", train, real, cands, config)
    with pytest.raises(DataError, match="not in the corpus"):
        label_relevance("oracle", train, corpus[:5], cands, config)


# ------------------------------------------------------------------------------------------ judge

@pytest.mark.parametrize("reply, label", [
    ("Justification: both use gcd.\nVerdict: yes", 1),
    ("Justification: different ideas.\nVerdict: No", 0),
    ("Both count pairs.\n**Verdict:** **Yes**", 1),
    ("Reasoning differs.\n\nVerdict - no.", 0),
    ("Same technique.\nAnswer: YES", 1),
    ("<think>maybe yes</think>Justification: unrelated.\nVerdict: no", 0),
    ("They differ.\nNo.", 0),
    ("Verdict: yes\nOn reflection they differ.\nVerdict: no", 0),  # the last verdict counts
    ("The final decision is \\boxed{yes}", 1),
    ("I cannot decide.", None),
    ("Verdict: maybe", None),
    ("", None),
])
def test_parse_verdict(reply, label):
    assert parse_verdict(reply)[0] == label


def test_parse_verdict_keeps_justification():
    assert parse_verdict("Justification: both use the gcd.\nVerdict: yes") == (1, "both use the gcd.")


class ScriptedJudge:
    """Test double for the remote judge API (no judge LLM exists here): answers 'yes' when the two
    reference solutions name the same strategy sentence, 'no' otherwise, and an unparsable reply for
    one pair in seven; it can raise after a number of calls like a crash or a quota error."""

    def __init__(self, fail_after_calls=None):
        self.calls, self.prompts, self.fail_after = 0, 0, fail_after_calls

    def generate(self, prompts, sampling):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("429 insufficient_quota")
        self.calls += 1
        out = []
        for msgs in prompts:
            self.prompts += 1
            text = msgs[-1]["content"]
            steps = [ln for ln in text.splitlines() if "(Strategy)" in ln]
            if len(text) % 7 == 0:
                out.append(["I am not sure about this one."])
            else:
                # the world's relevance (rarft.world.analogous): the same strategy sentence and, when the
                # question names its rule, the same rule name
                names = [re.search(r"the (\w+-\w+) rule", st) for st in steps]
                named = "applies the" in text.split("Its solution:")[0]
                same_name = all(names) and len(names) == 2 and names[0].group(1) == names[1].group(1)
                same = len(steps) == 2 and steps[0].split(": ")[-1] == steps[1].split(": ")[-1] and (
                    not named or same_name)
                out.append([f"Justification: compared the strategies.\nVerdict: {'yes' if same else 'no'}"])
        return out

    def close(self):
        pass


def test_judge_resumes_after_quota_error_paying_only_for_missing_pairs(world_small, tmp_path):
    config = load_config()
    train, corpus = world_small["train"][:12], world_small["corpus"]
    cands = sample_candidates(train, corpus, 6, 0, stratify_by_strategy=True)
    n_pairs = sum(len(r["candidates"]) for r in cands)
    chunk = chunk_size_for(config["generation"]["http_concurrency"])  # a backend without `stream`
    assert n_pairs > 2 * chunk
    cache = tmp_path / "judge.cache.jsonl"
    with pytest.raises(RuntimeError, match="quota"):
        label_relevance("judge", train, corpus, cands, config, backend=ScriptedJudge(fail_after_calls=2),
                        cache_path=cache, progress=False)
    assert len(read_jsonl(cache)) == 2 * chunk
    with open(cache, "a") as f:
        f.write('{"key": "half a li')  # killed mid-write
    judge = ScriptedJudge()
    rows = label_relevance("judge", train, corpus, cands, config, backend=judge, cache_path=cache, progress=False)
    assert judge.prompts == n_pairs - 2 * chunk
    fresh = label_relevance("judge", train, corpus, cands, config, backend=ScriptedJudge(),
                            cache_path=tmp_path / "fresh.jsonl", progress=False)
    assert rows == fresh
    assert len(rows) == n_pairs
    oracle = {(r["query_id"], r["context_id"]): r["label"]
              for r in label_relevance("oracle", train, corpus, cands, config)}
    parsed = [r for r in rows if r["label"] is not None]
    assert all(r["label"] == oracle[(r["query_id"], r["context_id"])] for r in parsed)
    assert 0 < n_pairs - len(parsed) < n_pairs  # unparsable replies are null, not guessed
    # a rerun with everything cached makes no call; a dry run prints the estimate and calls nothing
    label_relevance("judge", train, corpus, cands, config, backend=ScriptedJudge(fail_after_calls=0),
                    cache_path=cache, progress=False)
    assert label_relevance("judge", train, corpus, cands, config, cache_path=tmp_path / "d.jsonl",
                           dry_run=True, progress=False) is None


# ------------------------------------------------------------------------------------------ gain

def test_gain_estimate_hand_checked():
    g, se = gain_estimate(4, 2, 4, 4)
    assert g == 0.5 and se == pytest.approx(0.25)  # sqrt(1*0/4 + .5*.5/4)
    g, se = gain_estimate(1, 2, 4, 4)
    assert g == -0.25 and se == pytest.approx(math.sqrt(0.25 * 0.75 / 4 + 0.25 / 4))


class KnownCompletions:
    """A backend whose completions are fixed per prompt: the plain prompt is right 2 times in 4, with
    candidate A in the prompt 4 in 4, with candidate B 1 in 4. Records every generate call."""

    def __init__(self, fail_after_calls=None):
        self.calls, self.fail_after, self.seeds = [], fail_after_calls, []

    def generate(self, prompts, sampling):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("killed")
        self.calls.append(len(prompts))
        assert sampling.seeds is not None and len(sampling.seeds) == len(prompts)
        self.seeds += [(msgs[-1]["content"], seed) for msgs, seed in zip(prompts, sampling.seeds)]
        out = []
        for msgs in prompts:
            text = msgs[-1]["content"]
            answer = text.split("ANSWER=", 1)[1].split()[0]
            right = 4 if "Alpha" in text else 1 if "Beta" in text else 2
            out.append([f"\\boxed{{{answer}}}"] * right + ["\\boxed{-1}"] * (sampling.n - right))
        return out

    def close(self):
        pass


def _gain_fixture(n_queries):
    queries = [{"id": f"q{i}", "problem": f"Query {i}: ANSWER={i} ", "answer": str(i), "problem_type": "t"}
               for i in range(n_queries)]
    corpus = [{"id": "A", "problem": "Alpha", "answer": "1", "trace": "t", "problem_type": "t"},
              {"id": "B", "problem": "Beta", "answer": "2", "trace": "t", "problem_type": "t"}]
    cands = [{"query_id": q["id"], "candidates": ["A", "B"]} for q in queries]
    return queries, corpus, cands


def test_gain_labels_known_completions_batched_and_resumable(tmp_path, monkeypatch):
    import rarft.policy

    monkeypatch.setattr(rarft.policy, "resolve_model", lambda d: str(d))
    cfg = tmp_path / "g.yaml"
    # 3 prompts x 4 samples per query; 24 sequences per call -> 2 queries per generate call
    cfg.write_text("labels: {gain: {n_samples: 4, threshold: 0.125}}\ngeneration: {batch_size: 24}\n")
    config = load_config(["params.yaml", str(cfg)])
    queries, corpus, cands = _gain_fixture(5)
    cache = tmp_path / "gain.cache.jsonl"
    with pytest.raises(RuntimeError):
        label_relevance("gain", queries, corpus, cands, config, backend=KnownCompletions(fail_after_calls=1),
                        policy_dir="tiny-model-id", cache_path=cache, progress=False)
    assert len(read_jsonl(cache)) == 2  # the two queries of the first call are kept
    backend = KnownCompletions()
    rows = label_relevance("gain", queries, corpus, cands, config, backend=backend, policy_dir="tiny-model-id",
                           cache_path=cache, progress=False)
    assert backend.calls == [6, 3]  # 3 remaining queries; all candidates of a query in one call
    # review D8: every prompt of a call has its own seed (vLLM would otherwise reuse one stream for all),
    # derived from (query, candidate) alone, so it does not depend on which call the prompt falls in
    seeds = [seed for _, seed in backend.seeds]
    assert len(set(seeds)) == len(seeds) == 9
    assert seeds[:3] == [prompt_seed("q2", None), prompt_seed("q2", "A"), prompt_seed("q2", "B")]
    assert len(rows) == 10
    for r in rows:
        if r["context_id"] == "A":
            assert (r["score"], r["label"], r["p_base"], r["p_context"]) == (0.5, 1, 0.5, 1.0)
            assert r["stderr"] == pytest.approx(0.25)
        else:
            assert (r["score"], r["label"]) == (-0.25, 0)
            assert r["stderr"] == pytest.approx(math.sqrt(0.25 * 0.75 / 4 + 0.25 / 4))
    # a different policy must not reuse cached rollouts
    other = KnownCompletions()
    label_relevance("gain", queries, corpus, cands, config, backend=other, policy_dir="another-model",
                    cache_path=cache, progress=False)
    assert sum(other.calls) == 15


def test_gain_on_tiny_policy_end_to_end(world_small, tiny_policy_dir, tmp_path):
    """The real transformers backend on the tiny random policy: the contract, not the values."""
    cfg = tmp_path / "g.yaml"
    cfg.write_text("labels: {gain: {n_samples: 2, max_new_tokens: 8}}\n")
    config = load_config(["params.yaml", str(cfg)])
    train, corpus = world_small["train"][:2], world_small["corpus"]
    cands = sample_candidates(train, corpus, 3, 0, stratify_by_strategy=True)
    rows = label_relevance("gain", train, corpus, cands, config, policy_dir=str(tiny_policy_dir),
                           cache_path=tmp_path / "c.jsonl", progress=False)
    assert len(rows) == 6
    for r in rows:
        assert -1 <= r["score"] <= 1 and r["stderr"] >= 0 and r["label"] == int(r["score"] > 0.125)
        assert r["n_samples"] == 2


# ------------------------------------------------------------------------------------------ compare

class TableEncoder:
    """Embeds a text as a fixed 2-d unit vector looked up by its first word (test double for MiniLM)."""

    def __init__(self, angles):
        self.angles = angles

    def encode(self, texts, normalize_embeddings=True, convert_to_numpy=True):
        return np.array([[math.cos(self.angles[t.split()[0]]), math.sin(self.angles[t.split()[0]])]
                         for t in texts])


@pytest.mark.parametrize("a,b", [([1, 1, 1, 1], [0, 0, 0, 0]),       # both constant, disagreeing (review D3)
                                 ([1, 1, 1, 1], [1, 1, 1, 1]),       # both constant, agreeing: undefined
                                 ([1, 1, 1, 1], [1, 0, 1, 0]),       # one constant
                                 ([1, 0, 1, 0], [1, 0, 0, 0])])
def test_compare_labelers_kappa_is_sklearns(a, b):
    import warnings

    from sklearn.metrics import cohen_kappa_score

    rows = {name: [{"query_id": "q", "context_id": f"c{i}", "label": v, "score": None, "stderr": None}
                   for i, v in enumerate(labels)] for name, labels in (("judge", a), ("oracle", b))}
    metrics, _ = compare_labelers(rows, {}, {})
    kappa = metrics.query("metric == 'cohen_kappa'")["value"].item()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = cohen_kappa_score(a, b)
    assert kappa == pytest.approx(expected, nan_ok=True)
    assert (kappa == 0.0) if a == [1, 1, 1, 1] and b == [0, 0, 0, 0] else True


def test_compare_labelers_agreement_auc_and_similarity():
    pairs = [("q", f"c{i}") for i in range(6)]
    gains = [0.5, 0.4, 0.3, -0.1, 0.0, -0.2]
    gain = [{"query_id": q, "context_id": c, "label": int(g > 0.125), "score": g, "stderr": 0.1}
            for (q, c), g in zip(pairs, gains)]
    oracle = [{"query_id": q, "context_id": c, "label": int(i < 3), "score": None, "stderr": None}
              for i, (q, c) in enumerate(pairs)]
    judge = [{"query_id": q, "context_id": c, "label": [0, 1, None, 1, 0, 0][i], "score": None, "stderr": None}
             for i, (q, c) in enumerate(pairs)]
    queries = {"q": {"problem": "q0 text"}}
    # similarity falls as gain rises: the opposite of what a useful retriever needs
    corpus = {f"c{i}": {"problem": f"c{i} text"} for i in range(6)}
    angles = {"q0": 0.0, **{f"c{i}": 0.1 * (5 - i) for i in range(6)}}
    angles["c3"] = 0.05  # c3's gain (-0.1) ranks between c4 (0.0) and c5 (-0.2): so does its angle
    metrics, sim = compare_labelers({"gain": gain, "oracle": oracle, "judge": judge}, queries, corpus,
                                    TableEncoder(angles))
    val = {(r.section, r.labeler, r.other, r.metric): r.value for r in metrics.itertuples()}
    assert val[("agreement", "gain", "oracle", "agreement_pct")] == 100.0
    assert val[("agreement", "gain", "oracle", "cohen_kappa")] == pytest.approx(1.0)
    assert val[("agreement", "gain", "judge", "n_pairs")] == 5
    assert val[("agreement", "gain", "judge", "agreement_pct")] == pytest.approx(60.0)
    assert val[("labeler", "judge", "", "n_null")] == 1
    assert val[("labeler", "oracle", "gain", "auc_label_vs_gain")] == 1.0
    assert val[("labeler", "oracle", "gain", "mean_gain_positive")] == pytest.approx(0.4)
    assert val[("labeler", "oracle", "gain", "mean_gain_negative")] == pytest.approx(-0.1)
    # judge positives c1 (0.4), c3 (-0.1) vs negatives c0 (0.5), c4 (0.0), c5 (-0.2): 3 of 6 orderings
    assert val[("labeler", "judge", "gain", "auc_label_vs_gain")] == pytest.approx(0.5)
    assert val[("similarity", "offshelf_cosine", "gain", "spearman")] == pytest.approx(-1.0)
    assert val[("similarity", "offshelf_cosine", "gain", "pearson")] < -0.5
    assert val[("similarity", "oracle", "gain", "auc_label_vs_gain")] == 1.0
    assert list(sim.columns) == ["query_id", "context_id", "similarity", "gain", "stderr", "oracle"]
    assert len(sim) == 6 and sim["oracle"].tolist() == [1, 1, 1, 0, 0, 0]


@pytest.mark.slow
def test_cli_chain_on_world(world_small, tmp_path):
    """sample-candidates -> oracle labels -> compare-labelers through the CLIs (loads MiniLM)."""
    from rarft.candidates import cli as cli_candidates
    from rarft.labels import cli
    from rarft.labels_compare import cli as cli_compare

    train, corpus = tmp_path / "train.jsonl", tmp_path / "corpus.jsonl"
    write_jsonl(train, world_small["train"][:20])
    write_jsonl(corpus, world_small["corpus"])
    cands, oracle = tmp_path / "cand.jsonl", tmp_path / "oracle.jsonl"
    assert cli_candidates(["--train", str(train), "--corpus", str(corpus), "--out", str(cands)]) == 0
    assert cli(["--labeler", "oracle", "--train", str(train), "--corpus", str(corpus), "--candidates", str(cands),
                "--out", str(oracle)]) == 0
    gain = [dict(r, labeler="gain", score=r["score"] - 0.3, stderr=0.1) for r in read_jsonl(oracle)]
    write_jsonl(tmp_path / "gain.jsonl", gain)
    out = tmp_path / "tables"
    assert cli_compare(["--labels", str(tmp_path / "gain.jsonl"), str(oracle), "--train", str(train),
                        "--corpus", str(corpus), "--out-dir", str(out)]) == 0
    assert "Agreement" in (out / "labelers.md").read_text()
    assert len((out / "similarity_vs_gain.csv").read_text().splitlines()) == 1 + len(gain)


def test_judge_over_http_caches_each_reply_as_it_arrives_and_counts_a_rejected_pair(world_small, tmp_path,
                                                                                  fake_chat_server):
    """Reviews N6 / N11 against a local OpenAI-compatible server: http_concurrency requests in flight over all
    pairs, every reply cached when it arrives (a crash loses only those in flight), a pair too long for the
    judge's window left unlabelled and counted, and the rerun asks only for what is missing."""
    train, corpus = world_small["train"][:6], world_small["corpus"]
    cands = sample_candidates(train, corpus, 4, 0, stratify_by_strategy=True)
    by_id = {c["id"]: c for c in corpus}
    too_long = by_id[cands[0]["candidates"][0]]["problem"]
    failing = by_id[cands[1]["candidates"][0]]["problem"]
    broken = {"on": True}

    def reply(body):
        user = body["messages"][-1]["content"]
        if too_long in user:
            return 400, {"message": "This model's maximum context length is 128000 tokens."}, {}, 0.0
        if failing in user and broken["on"]:
            return 500, "internal error", {}, 2.0  # slow to fail: the other pairs' replies arrive first
        return 200, {"choices": [{"message": {"content": "Justification: same idea.\nVerdict: yes"}}]}, {}, 0.01

    server = fake_chat_server(reply)
    cfg = tmp_path / "judge.yaml"
    cfg.write_text(f"labels:\n  judge:\n    base_url: {server.url}\n    http_concurrency: 3\n"
                   "generation:\n  max_retries: 0\n")
    config = load_config(["params.yaml", str(cfg)])
    n_pairs = sum(len(r["candidates"]) for r in cands)
    queries = {q["id"]: q for q in train}
    prompts = [judge_prompt(queries[r["query_id"]], by_id[c])[-1]["content"] for r in cands for c in r["candidates"]]
    n_rejected = sum(too_long in p for p in prompts)
    n_failing = sum(failing in p and too_long not in p for p in prompts)
    cache = tmp_path / "judge.cache.jsonl"
    with pytest.raises(RuntimeError, match="HTTP 500"):
        label_relevance("judge", train, corpus, cands, config, cache_path=cache, progress=False)
    assert server.max_in_flight == 3
    assert len(read_jsonl(cache)) == n_pairs - n_rejected - n_failing  # every reply that came back
    broken["on"] = False
    before = len(server.requests)
    rows = label_relevance("judge", train, corpus, cands, config, cache_path=cache, progress=False)
    assert len(server.requests) - before == n_rejected + n_failing  # only what is missing is asked again
    unlabelled = [r for r in rows if r["label"] is None]
    assert len(unlabelled) == n_rejected >= 1 and all("maximum context length" in r["error"] for r in unlabelled)
    assert cands[0]["candidates"][0] in {r["context_id"] for r in unlabelled}
    assert sum(r["label"] == 1 for r in rows) == n_pairs - n_rejected
