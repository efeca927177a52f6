"""evaluate_policy's files, settings and resume after a kill."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rarft.evaluate import build_units, evaluate_policy, parse_setting, problem_bootstrap_ci, summarise
from rarft.io import DataError, read_json, read_jsonl


def test_parse_setting():
    assert parse_setting("none") == ("none", None)
    assert parse_setting("top1-bm25") == ("top1", "bm25")
    assert parse_setting("topk-finetuned") == ("topk", "finetuned")
    for bad in ("top2-x", "top1-", "random"):  # ValueError here; evaluate's CLI reports it as a ConfigError
        with pytest.raises(ValueError, match="expected none, top1-<retriever> or topk-<retriever>"):
            parse_setting(bad)


# ---- evaluate_policy with a scripted backend (deterministic text per prompt and sample) ----

class ScriptedBackend:
    """Right on every sample of problems with an even-length text, wrong on the others; counts sequences.

    Independent of the seed and the sample index, so a resumed run must reproduce the full run exactly.
    """

    def __init__(self, answers: dict[str, str]):
        self.answers, self.sequences, self.prompts = answers, 0, []

    def generate(self, prompts, sampling):
        out = []
        for p in prompts:
            text = p[-1]["content"]
            self.prompts.append(text)
            problem = text.split("Problem:\n", 1)[1].split("\n\n")[0]
            gold = self.answers[problem]
            out.append([f"so \\boxed{{{gold if len(problem) % 2 == 0 else 'x'}}}"] * sampling.n)
            self.sequences += sampling.n
        return out

    def close(self):
        pass


CFG = {"seed": 0, "generation": {"batch_size": 8}, "analysis": {"diversity_top_k": 2},
       "policy": {"enable_thinking": False},
       "evaluation": {"k": 4, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 16, "bootstrap_resamples": 200,
                      "ci_level": 0.95}}


@pytest.fixture()
def benches(world_small):
    """3 + 2 items, each benchmark with one the scripted backend gets wrong (odd problem length) and the rest right,
    chosen rather than sliced so that both verdicts occur whatever the world's wording (the tests can fail)."""
    def pick(items: list[dict], n: int) -> list[dict]:
        even = [i for i in items if len(i["problem"]) % 2 == 0]
        odd = [i for i in items if len(i["problem"]) % 2]
        assert len(even) >= n - 1 and odd, "world_small lacks items of both parities"
        return even[: n - 1] + odd[:1]

    return {"bench_easy": pick(world_small["bench_easy"], 3), "bench_hard": pick(world_small["bench_hard"], 2)}


def scripted(benches):
    return ScriptedBackend({i["problem"]: i["answer"] for items in benches.values() for i in items})


def test_evaluate_none_writes_samples_and_summary(benches, tmp_path):
    backend = scripted(benches)
    summary = evaluate_policy(backend, "base", "none", benches, CFG, tmp_path)
    rows = read_jsonl(tmp_path / "samples.jsonl")
    assert len(rows) == 5 * 4 and backend.sequences == 20
    assert set(rows[0]) == {"benchmark", "problem_id", "context_id", "context_rank", "sample", "completion",
                            "extracted", "reward"}
    assert all(r["context_id"] is None and r["context_rank"] == 0 for r in rows)
    for bench, items in benches.items():
        right = {i["id"]: float(len(i["problem"]) % 2 == 0) for i in items}
        b = summary["benchmarks"][bench]
        expected = sum(right.values()) / len(items)
        assert b["average_at_k"] == pytest.approx(expected) and b["n_problems"] == len(items)
        assert b["pass_at_1"] == pytest.approx(expected) and b["pass_at_k"] == pytest.approx(expected)
        assert b["ci_low"] <= expected <= b["ci_high"]
        assert summary["per_problem"][bench] == right
    assert 0 < sum(r["reward"] for r in rows) < len(rows)  # both verdicts occur: the test can fail
    assert read_json(tmp_path / "summary.json") == summary
    assert summary["k"] == 4 and summary["policy"] == "base" and summary["setting"] == "none"


def test_evaluate_resumes_after_kill_with_torn_line(benches, tmp_path):
    full = evaluate_policy(scripted(benches), "base", "none", benches, CFG, tmp_path / "a")
    lines = (tmp_path / "a" / "samples.jsonl").read_text().splitlines(keepends=True)
    out = tmp_path / "b"
    out.mkdir()
    # a kill after 9 whole rows, in the middle of writing the 10th: only the undeclared partial
    # file exists (Snakemake/DVC would have deleted a declared samples.jsonl)
    (out / "samples.partial.jsonl").write_text("".join(lines[:9]) + lines[9][: len(lines[9]) // 2])
    (out / "run.json").write_text((tmp_path / "a" / "run.json").read_text())  # written before any sample
    backend = scripted(benches)
    resumed = evaluate_policy(backend, "base", "none", benches, CFG, out)
    assert backend.sequences == 20 - 9  # only the missing samples were generated
    assert not (out / "samples.partial.jsonl").exists()  # published as samples.jsonl when complete
    rows = read_jsonl(out / "samples.jsonl")
    keys = [(r["benchmark"], r["problem_id"], r["sample"]) for r in rows]
    assert len(keys) == 20 and len(set(keys)) == 20
    assert resumed == full
    # a complete run resumes to the same result without generating anything
    again = scripted(benches)
    assert evaluate_policy(again, "base", "none", benches, CFG, out) == full and again.sequences == 0


def test_samples_of_other_weights_or_another_run_are_never_resumed(benches, tmp_path, capsys):
    first = scripted(benches)
    evaluate_policy(first, "base", "none", benches, CFG, tmp_path, model_id="weights-1")
    # same weights: everything resumed, nothing generated
    same = scripted(benches)
    evaluate_policy(same, "base", "none", benches, CFG, tmp_path, model_id="weights-1")
    assert same.sequences == 0
    # the policy was retrained at the same path: every sample is generated again
    retrained = scripted(benches)
    evaluate_policy(retrained, "base", "none", benches, CFG, tmp_path, model_id="weights-2")
    assert retrained.sequences == first.sequences > 0
    assert "starting over" in capsys.readouterr().out
    other_policy = scripted(benches)
    evaluate_policy(other_policy, "grpo", "none", benches, CFG, tmp_path, model_id="weights-2")
    assert other_policy.sequences == first.sequences
    assert len(read_jsonl(tmp_path / "samples.jsonl")) == first.sequences  # no stale rows kept


def _retrieval(world_small, benches):
    corpus = world_small["corpus"]
    return [{"id": i["id"], "split": b, "contexts": [{"id": corpus[j]["id"], "score": 1.0 - j / 10}
                                                     for j in range(n, n + 3)]}
            for b, items in benches.items() for n, i in enumerate(items)]


def test_top1_and_topk_settings_use_retrieved_contexts(world_small, benches, tmp_path):
    retrieval, corpus = _retrieval(world_small, benches), world_small["corpus"]
    backend = scripted(benches)
    top1 = evaluate_policy(backend, "rarft", "top1-bm25", benches, CFG, tmp_path / "top1", retrieval, corpus)
    rows = read_jsonl(tmp_path / "top1" / "samples.jsonl")
    first = next(r for r in rows if r["problem_id"] == benches["bench_easy"][0]["id"])
    assert first["context_id"] == corpus[0]["id"] and first["context_rank"] == 0
    assert corpus[0]["trace"] in backend.prompts[0]
    assert top1["benchmarks"]["bench_easy"]["n_problems"] == 3

    topk = evaluate_policy(scripted(benches), "rarft", "topk-bm25", benches, CFG, tmp_path / "topk", retrieval, corpus)
    rows = read_jsonl(tmp_path / "topk" / "samples.jsonl")
    assert len(rows) == 5 * 2 * 4  # diversity_top_k = 2 contexts, each evaluated separately
    pid = benches["bench_hard"][1]["id"]
    assert {r["context_id"] for r in rows if r["problem_id"] == pid} == {corpus[1]["id"], corpus[2]["id"]}
    assert set(topk["per_problem"]["bench_hard"]) == {f"{i['id']}#{r}" for i in benches["bench_hard"] for r in (0, 1)}
    assert topk["benchmarks"]["bench_hard"]["n_problems"] == 2


def test_missing_retrieval_row_is_a_data_error(world_small, benches):
    retrieval = _retrieval(world_small, benches)[1:]
    with pytest.raises(DataError, match="no row with split='bench_easy'"):
        build_units(benches, "top1-bm25", CFG, retrieval, world_small["corpus"])


def test_cli_end_to_end_with_tiny_policy(world_small, tiny_policy_dir, tmp_path, monkeypatch):
    import yaml

    from rarft.cli import main
    from rarft.io import write_jsonl

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    bench = tmp_path / "bench" / "mini.jsonl"
    write_jsonl(bench, world_small["bench_easy"][:2])
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"device": "cpu", "evaluation": {"k": 2, "max_new_tokens": 8,
                                                                         "bootstrap_resamples": 100}}))
    out = tmp_path / "eval"
    rc = main(["evaluate", "--config", "params.yaml", str(override), "--policy-dir", str(tiny_policy_dir),
               "--policy-name", "base", "--setting", "none", "--benchmarks", str(bench), "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["k"] == 2 and summary["benchmarks"]["mini"]["n_problems"] == 2
    assert len(read_jsonl(out / "samples.jsonl")) == 4
    # a missing benchmark file is a clean error naming the file, exit code 2
    assert main(["evaluate", "--policy-dir", str(tiny_policy_dir), "--policy-name", "base", "--setting", "none",
                 "--benchmarks", str(tmp_path / "nope.jsonl"), "--out", str(out)]) == 2


class WholeBatchBackend(ScriptedBackend):
    """Like vLLM: takes whole benchmarks (`whole_batches`); records each call's size and per-prompt seeds."""

    whole_batches = True

    def __init__(self, answers):
        super().__init__(answers)
        self.calls = []

    def generate(self, prompts, sampling):
        assert sampling.seeds is not None and len(sampling.seeds) == len(prompts)
        self.calls.append((len(prompts), sampling.seeds))
        return super().generate(prompts, sampling)


def test_a_whole_batch_backend_gets_each_benchmark_in_one_call_with_a_seed_per_problem(benches, tmp_path):
    """Review C1: vLLM gets all of a benchmark's prompts at once (generation.batch_size 8 // k 4 would have
    made 2-prompt calls), each problem with its own seed; the samples equal the chunked run's."""
    whole = WholeBatchBackend({i["problem"]: i["answer"] for items in benches.values() for i in items})
    summary = evaluate_policy(whole, "base", "none", benches, CFG, tmp_path / "whole")
    assert [size for size, _ in whole.calls] == [len(v) for v in benches.values()]
    seeds = [s for _, call in whole.calls for s in call]
    assert len(set(seeds)) == len(seeds)
    chunked = scripted(benches)
    assert evaluate_policy(chunked, "base", "none", benches, CFG, tmp_path / "chunked") == summary
    # resumable per benchmark: a run killed after its first benchmark regenerates only the second
    rows = read_jsonl(tmp_path / "whole" / "samples.jsonl")
    first = [r for r in rows if r["benchmark"] == "bench_easy"]
    (tmp_path / "whole" / "samples.jsonl").rename(tmp_path / "whole" / "samples.partial.jsonl")
    (tmp_path / "whole" / "samples.partial.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first))
    again = WholeBatchBackend(whole.answers)
    assert evaluate_policy(again, "base", "none", benches, CFG, tmp_path / "whole") == summary
    assert [size for size, _ in again.calls] == [len(benches["bench_hard"])]


def test_topk_interval_resamples_problems_with_their_contexts(tmp_path):
    """Review D2: a top-k summary's units are (problem, context) pairs; the interval resamples problems."""
    from rarft.stats import bootstrap_ci

    rng = np.random.default_rng(3)
    problems = [f"p{i}" for i in range(30)]
    solved = rng.random(30) < 0.5  # a problem's contexts agree: the units are not independent
    units = [{"benchmark": "b", "problem_id": p, "context_rank": r} for p in problems for r in range(3)]
    rows = [{"benchmark": "b", "problem_id": u["problem_id"], "context_rank": u["context_rank"], "sample": s,
             "reward": float(solved[problems.index(u["problem_id"])])} for u in units for s in range(2)]
    cfg = {**CFG, "evaluation": {**CFG["evaluation"], "bootstrap_resamples": 2000}}
    summary = summarise(rows, units, "p", "topk-bm25", 2, cfg)["benchmarks"]["b"]
    # equal contexts per problem: the clustered interval is the problem-level one exactly
    assert (summary["ci_low"], summary["ci_high"]) == bootstrap_ci(solved.astype(float), 2000, 0.95, seed=0)
    naive_low, naive_high = bootstrap_ci(np.repeat(solved.astype(float), 3), 2000, 0.95, seed=0)
    assert summary["ci_high"] - summary["ci_low"] > 1.4 * (naive_high - naive_low)  # units as if independent
    # unequal context counts: the point estimate stays the unit mean, inside the interval
    lo, hi = problem_bootstrap_ci([1.0, 1.0, 1.0, 0.0, 0.5], ["a", "a", "a", "b", "c"], 500, 0.95, seed=1)
    assert lo <= 3.5 / 5 <= hi and lo < hi


def test_thinking_policy_scores_only_the_answer_after_its_thinking(benches, tmp_path):
    """policy.enable_thinking: a box inside unclosed thinking is no answer (rarft.reward, review D4)."""
    class Thinking(ScriptedBackend):
        def generate(self, prompts, sampling):
            out = super().generate(prompts, sampling)
            return [[f"<think>{t}" if i % 2 else f"<think>{t}</think>{t}" for i, t in enumerate(c)] for c in out]

    cfg = {**CFG, "policy": {"enable_thinking": True}}
    evaluate_policy(Thinking({i["problem"]: i["answer"] for v in benches.values() for i in v}), "base", "none",
                    benches, cfg, tmp_path)
    rows = read_jsonl(tmp_path / "samples.jsonl")
    unclosed = [r for r in rows if "</think>" not in r["completion"]]
    assert unclosed and all(r["reward"] == 0.0 and r["extracted"] is None for r in unclosed)
    closed = [r for r in rows if "</think>" in r["completion"]]
    assert any(r["reward"] == 1.0 for r in closed)
