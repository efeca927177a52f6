"""seed-spread: per-seed values, mean / sample sd / min / max / n over seeds, blanks for missing measures,
errors for a folder without metrics.json and for seeds that do not match the folders; the CLI writes both files.

The fake results/ folders copy the layout of the committed results/ (metrics.json keys, the columns of
reports/retrievers.csv and reports/labelers.csv)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from rarft import seeds
from rarft.cli import main
from rarft.io import DataError, write_json

ROOT = Path(__file__).resolve().parents[1]
# the RA arms' retriever and the recall ground truths, best first (params.yaml's, as the CLI passes them)
HEADLINE = ("finetuned", ("oracle-strategy", "gain-labels"))
# evaluate-retrievers' columns: among the labelled candidates, then over the whole corpus (corpus_*), then vs_base
RETRIEVER_COLS = ["retriever", "against", "n_queries", "recall@1", "recall@1_low", "recall@1_high", "recall@4", "mrr",
                  "chance@1", "corpus_n_queries", "corpus_recall@1", "corpus_recall@4", "corpus_mrr",
                  "vs_base", "vs_base_low", "vs_base_high"]
# the columns the fakes below fill (the rest stay empty: seed-spread reads recall@1)
FAKE_COLS = [c for c in RETRIEVER_COLS if c != "chance@1" and not c.startswith("corpus_")]
LABELER_COLS = ["section", "labeler", "other", "metric", "value"]

# Per seed: base, grpo, rarft (average@k %, mean over benchmarks), finetuned / offshelf recall@1, kappa.
SEEDS = {
    0: dict(base=30.0, grpo=31.0, rarft=59.0, fine=0.85, off=0.02, kappa=0.45, probe=((0.9, 32), (0.7, 16))),
    1: dict(base=28.0, grpo=33.0, rarft=55.0, fine=0.75, off=0.04, kappa=0.40, probe=((0.8, 32), (0.8, 32))),
    2: dict(base=29.0, grpo=35.0, rarft=57.0, fine=0.80, off=0.00, kappa=None, probe=None),  # no agreement, no probe
}


def make_results(root: Path, v: dict, *, rarft: bool = True, labelers: bool = True) -> Path:
    metrics = {"avg_at_k.base.none.mean": v["base"], "avg_at_k.base.none.world_easy": v["base"] + 5,
               "avg_at_k.grpo.none.mean": v["grpo"],
               "diff.grpo_base.mean": v["grpo"] - v["base"], "diff.grpo_base.world_easy": 99.0,
               "similarity_vs_gain.n": 960}
    if rarft:
        metrics |= {"avg_at_k.rarft.top1-finetuned.mean": v["rarft"], "diff.ra_rft_grpo.mean": v["rarft"] - v["grpo"],
                    "avg_at_k.rarft.topk-finetuned.world_easy": 1.0}
    write_json(root / "metrics.json", dict(sorted(metrics.items())))
    (root / "reports").mkdir(parents=True)
    nan = math.nan  # the intervals' values play no part here: seed-spread reads recall@1
    pd.DataFrame([["offshelf", "gain-labels", 38, 0.5, 0.3, 0.7, 0.5, 0.5, nan, nan, nan],
                  ["offshelf", "oracle-strategy", 48, v["off"], 0.0, 0.2, 0.1, 0.1, nan, nan, nan],
                  ["finetuned", "gain-labels", 38, 0.5, 0.3, 0.7, 0.5, 0.5, 0.0, -0.2, 0.2],
                  ["finetuned", "oracle-strategy", 48, v["fine"], 0.5, 1.0, 0.9, 0.9, v["fine"] - v["off"], 0.3, 0.9],
                  ["random", "oracle-strategy", 48, 0.375, 0.2, 0.5, 0.79, 0.59, nan, nan, nan]],
                 columns=FAKE_COLS).reindex(columns=RETRIEVER_COLS).to_csv(root / "reports" / "retrievers.csv",
                                                                          index=False)
    if v["probe"]:  # init-policy's report, as rarft.policy.probe_benchmarks writes it
        write_json(root / "reports" / "policy_probe.json",
                   {"temperature": 1.0, "benchmarks": {f"b{i}": {"n": n, "none": 0.3, "same_strategy": acc}
                                                        for i, (acc, n) in enumerate(v["probe"])}})
    if labelers:
        rows = [["labeler", "gain", "", "n_pairs", 960.0], ["agreement", "gain", "oracle", "n_pairs", 960.0],
                ["agreement", "gain", "oracle", "agreement_pct", 73.6]]
        if v["kappa"] is not None:
            rows.append(["agreement", "gain", "oracle", "cohen_kappa", v["kappa"]])
        rows.append(["similarity", "offshelf_cosine", "gain", "spearman", 0.28])
        pd.DataFrame(rows, columns=LABELER_COLS).to_csv(root / "reports" / "labelers.csv", index=False)
    return root


@pytest.fixture
def three(tmp_path):
    return [make_results(tmp_path / f"seed_{s}", v) for s, v in SEEDS.items()]


def _row(df, start):
    hits = df[df["measure"].str.startswith(start)]
    assert len(hits) == 1, (start, list(df["measure"]))
    return hits.iloc[0]


def committed(path: str) -> str:
    """A file of the committed results/ as git holds it (HEAD), not the working tree's copy, which `make run`
    rewrites: the test reads the same layout whatever ran before it."""
    import subprocess

    done = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"no git checkout with a committed {path}: {done.stderr.strip()}")
    return done.stdout


def test_fake_results_use_the_committed_layout():
    """The fakes must stay in the real formats, or the other tests prove nothing about real runs."""
    import io

    assert list(pd.read_csv(io.StringIO(committed("results/reports/retrievers.csv"))).columns) == RETRIEVER_COLS
    assert list(pd.read_csv(io.StringIO(committed("results/reports/labelers.csv"))).columns) == LABELER_COLS
    probe = json.loads(committed("results/reports/policy_probe.json"))
    assert all({"n", "same_strategy"} <= set(row) for row in probe["benchmarks"].values())
    metrics = json.loads(committed("results/metrics.json"))
    for key in ("avg_at_k.base.none.mean", "avg_at_k.grpo.none.mean", "avg_at_k.rarft.top1-finetuned.mean",
                "diff.ra_rft_grpo.mean", "diff.grpo_base.mean"):
        assert key in metrics, key
    # percent, not fractions: the table keeps metrics.json's unit
    assert metrics["avg_at_k.rarft.top1-finetuned.mean"] > 1


def test_values_mean_sd_min_max_n(three):
    df = seeds.spread_table(three, [0, 1, 2], *HEADLINE)
    assert list(df.columns) == ["measure", "unit", "seed_0", "seed_1", "seed_2", "mean", "sd", "min", "max", "n",
                                "source"]
    grpo = _row(df, "Table 1: GRPO,")
    assert [grpo["seed_0"], grpo["seed_1"], grpo["seed_2"]] == [31.0, 33.0, 35.0]
    assert grpo["mean"] == pytest.approx(33.0) and grpo["sd"] == pytest.approx(2.0)  # sample sd (n - 1)
    assert (grpo["min"], grpo["max"], grpo["n"], grpo["unit"]) == (31.0, 35.0, 3, "%")
    diff = _row(df, "Table 1: RA-RFT - GRPO")
    assert [diff[f"seed_{s}"] for s in SEEDS] == [28.0, 22.0, 22.0] and diff["unit"] == "points"
    assert diff["mean"] == pytest.approx(24.0) and diff["sd"] == pytest.approx(math.sqrt(12.0))
    assert _row(df, "Table 1: GRPO - base")["mean"] == pytest.approx((1 + 5 + 6) / 3)
    fine = _row(df, "retrievers: finetuned recall@1")
    assert fine["unit"] == "fraction" and fine["mean"] == pytest.approx(0.80)  # oracle-strategy rows, as a fraction
    gap = _row(df, "retrievers: finetuned - offshelf")
    assert [gap[f"seed_{s}"] for s in SEEDS] == pytest.approx([0.83, 0.71, 0.80])
    assert gap["sd"] == pytest.approx(pd.Series([0.83, 0.71, 0.80]).std())


def test_a_missing_measure_is_blank_and_counted_out(three, tmp_path):
    df = seeds.spread_table(three, [0, 1, 2], *HEADLINE)
    kappa = _row(df, "labelers: gain vs oracle")
    assert math.isnan(kappa["seed_2"]) and kappa["n"] == 2
    assert kappa["mean"] == pytest.approx(0.425) and kappa["sd"] == pytest.approx(pd.Series([0.45, 0.40]).std())
    # a seed without the RA-RFT arm and without labelers.csv: blanks, not an error
    partial = make_results(tmp_path / "partial", SEEDS[1], rarft=False, labelers=False)
    df = seeds.spread_table([three[0], partial], [0, 7], *HEADLINE)
    ra = _row(df, "Table 1: RA-RFT (top1-finetuned)")
    assert ra["seed_0"] == 59.0 and math.isnan(ra["seed_7"]) and ra["n"] == 1 and ra["mean"] == 59.0
    assert math.isnan(ra["sd"])  # one value has no sample sd
    assert _row(df, "labelers: gain vs oracle")["n"] == 1
    md = seeds.spread_markdown(df, [three[0], partial], [0, 7])
    assert "Table 1: RA-RFT (top1-finetuned), average@k, mean over benchmarks (seed 7)" in md
    assert "counts only the seeds that have it" in md and "Only 2 seed(s)" in md


def test_the_controls_rows_appear_when_some_seed_has_them(three):
    """RA-RFT - base + top-1, RA-RFT - GRPO on corpus-only items, the curve's gain and the zero-variance share:
    rows only when a seed's metrics have them (absent from these fakes' first table: test_cli's 11 rows). analyze
    writes them to metrics_full.json (every number; metrics.json keeps the headline), read in preference."""
    from rarft.io import read_json

    extra = {"diff.ra_rft_base_top_1_at_inference.mean": (12.0, 14.0),
             "diff.ra_rft_grpo_corpus_only_knowledge.mean": (20.0, 10.0),
             "curve.rarft.last_minus_step0.mean": (15.0, 11.0), "rl_signal.rarft.zero_variance_share": (40.0, 50.0)}
    for i, folder in enumerate(three[:2]):  # seed 2 ran without them, and has only the older single metrics.json
        metrics = read_json(folder / "metrics.json") | {key: values[i] for key, values in extra.items()}
        write_json(folder / "metrics_full.json", metrics)
        write_json(folder / "metrics.json", {"diff.ra_rft_grpo.mean": 0.0})  # the headline: not read
    df = seeds.spread_table(three, [0, 1, 2], *HEADLINE)
    assert len(df) == 11 + 4
    for start, key in (("comparisons: RA-RFT - base + top-1 at inference", "diff.ra_rft_base_top_1_at_inference.mean"),
                       ("comparisons: RA-RFT - GRPO, corpus-only knowledge",
                        "diff.ra_rft_grpo_corpus_only_knowledge.mean"),
                       ("Figure 3: RA-RFT validation curve", "curve.rarft.last_minus_step0.mean"),
                       ("RL signal: RA-RFT rollout groups", "rl_signal.rarft.zero_variance_share")):
        row = _row(df, start)
        assert [row["seed_0"], row["seed_1"]] == list(extra[key]) and math.isnan(row["seed_2"]) and row["n"] == 2
        assert row["mean"] == pytest.approx(sum(extra[key]) / 2) and row["source"] == f"metrics_full.json: {key}"
    md = seeds.spread_markdown(df, three, [0, 1, 2])
    assert "| comparisons: RA-RFT - base + top-1 at inference (mean) | points | 12.00 | 14.00 |  | 13.00 |" in md


def test_a_folder_without_metrics_json_is_an_error_naming_it(three, tmp_path):
    empty = tmp_path / "run_that_failed"
    empty.mkdir()
    with pytest.raises(DataError, match="run_that_failed: no metrics.json"):
        seeds.spread_table([*three, empty], [0, 1, 2, 3], *HEADLINE)


def test_seeds_must_match_the_folders(three):
    with pytest.raises(DataError, match="3 results folder"):
        seeds.spread_table(three, [0, 1], *HEADLINE)
    with pytest.raises(DataError, match="repeat"):
        seeds.spread_table(three, [0, 1, 1], *HEADLINE)
    (three[1] / "seed.yaml").write_text("seed: 1\n")  # make seeds copies its override file
    seeds.spread_table(three, [0, 1, 2], *HEADLINE)
    with pytest.raises(DataError, match="seed.yaml says seed 1"):
        seeds.spread_table(three, [0, 5, 2], *HEADLINE)


def test_cli_writes_markdown_and_csv(three, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["seed-spread", "--config", str(ROOT / "params.yaml"), "--results", *map(str, three),
               "--seeds", "0", "1", "2", "--out", str(out)])
    assert rc == 0
    csv = pd.read_csv(out / "seeds.csv")
    assert len(csv) == 11 and _row(csv, "Table 1: GRPO,")["sd"] == pytest.approx(2.0)
    overall, lowest = _row(csv, "policy probe: with an analogue, all"), _row(csv, "policy probe: with an analogue, "
                                                                             "lowest")
    assert overall["seed_0"] == pytest.approx((0.9 * 32 + 0.7 * 16) / 48) and overall["seed_1"] == pytest.approx(0.8)
    assert lowest["seed_0"] == pytest.approx(0.7) and lowest["n"] == 2 and math.isnan(lowest["seed_2"])
    md = (out / "seeds.md").read_text()
    assert "| Table 1: GRPO, average@k, mean over benchmarks | % | 31.00 | 33.00 | 35.00 | 33.00 | 2.00 | 31.00 " \
           "| 35.00 | 3 |" in md
    assert "Only" not in md  # 3 seeds: no warning
    assert sorted(p.name for p in out.iterdir()) == ["seeds.csv", "seeds.md"]  # no temp files left
    rc = main(["seed-spread", "--config", str(ROOT / "params.yaml"), "--results", str(tmp_path / "nope"),
               "--seeds", "0", "--out", str(out)])
    assert rc == 2 and "nope: no metrics.json" in capsys.readouterr().err


def test_results_readme_points_to_the_seed_spread():
    from rarft.analysis import readme

    text = readme([], [], {}, [], False)
    assert "`seeds/seeds.{md,csv}`" in text and "`make seeds`" in text
