"""`rarft summary`, the lines `make run` ends with (issue #20): the control verdict, Table 1's means with intervals,
and where to look, read from a results/ folder made here (never the working tree's results/)."""

from __future__ import annotations

import pandas as pd
from conftest import with_params

from rarft import analysis, summary, tables
from rarft.cli import main

TABLE1_COLUMNS = ["table", "block", "row", "policy", "setting", "status", "benchmark", "score", "ci_low", "ci_high",
                  "n_problems", "k", "best"]
COMPARISON_COLUMNS = ["comparison", "a", "b", "benchmark", "diff", "ci_low", "ci_high", "p_le_0", "n_problems"]


def fake_results(root, diff=(10.0, 5.0, 15.0)):
    """results/tables/{table1,comparisons}.csv in analyze's columns: three rows of ours, one quoted paper row, and
    every key comparison at ``diff`` = (mean, ci_low, ci_high)."""
    (root / "tables").mkdir(parents=True)
    t1 = [["table1", "ours", "base", "base", "none", "ok", "mean", 51.61, 43.5, 59.38, 64, 32, False],
          ["table1", "ours", "GRPO", "grpo", "none", "ok", "mean", 53.6, 44.8, 62.1, 64, 32, False],
          ["table1", "ours", "RA-RFT", "rarft", "top1-finetuned", "ok", "world_easy", 94.1, 88.7, 97.8, 32, 32, True],
          ["table1", "ours", "RA-RFT", "rarft", "top1-finetuned", "ok", "mean", 90.43, 85.4, 94.8, 64, 32, True],
          ["table1", "Qwen3-1.7B (quoted)", "GRPO", None, None, tables.QUOTED, "mean", 40.0, None, None, 0, 0, False]]
    pd.DataFrame(t1, columns=TABLE1_COLUMNS).to_csv(root / "tables" / "table1.csv", index=False)
    mean, lo, hi = diff
    comp = [[label, "/".join(a), "/".join(b), "mean", mean, lo, hi, 0.0, 64]
            for label, a, b in tables.comparison_pairs(with_params({}))]
    pd.DataFrame(comp, columns=COMPARISON_COLUMNS).to_csv(root / "tables" / "comparisons.csv", index=False)
    return root


def test_summary_gives_the_verdict_table1_means_and_where_to_look(tmp_path):
    results = fake_results(tmp_path / "results")
    text = summary.summarise(with_params({}), results, tmp_path / "report.html")
    assert "the control holds" in text
    lines = text.splitlines()
    table = lines[lines.index("Table 1, average@k in % (mean over the benchmarks, 95% interval):") + 1:][:3]
    assert table == ["  base    51.6 [43.5, 59.4]", "  GRPO    53.6 [44.8, 62.1]", "  RA-RFT  90.4 [85.4, 94.8]"]
    assert "40.0" not in text and "94.1" not in text  # the quoted paper row and per-benchmark cells stay out
    for place in ("README.md", "tables", "figures"):
        assert f"{results / place}  " in text
    assert "not written yet: snakemake --cores 1 --report" in text
    (tmp_path / "report.html").write_text("<html></html>")
    assert "one HTML page with every table and figure" in summary.summarise(with_params({}), results,
                                                                            tmp_path / "report.html")


def test_a_negative_control_that_retrieval_helps_is_reported_as_failing(tmp_path):
    results = fake_results(tmp_path / "results", diff=(10.0, 5.0, 15.0))
    text = summary.summarise(with_params({"data": {"world": {"control": "negative"}}}), results, None)
    assert "negative control" in text and "the control FAILS" in text
    assert "HTML" not in text and "--report" not in text  # no report path given: none is promised


def test_summary_of_what_analyze_writes_with_no_runs(tmp_path, capsys):
    """The real writer's files (analyze with nothing evaluated): every Table 1 row 'not run', the verdict unscored."""
    over = tmp_path / "over.yaml"
    over.write_text("evaluation: {k: 4, bootstrap_resamples: 100}\n")
    out = tmp_path / "results"
    assert analysis.cli(["--config", "params.yaml", str(over), "--runs", str(tmp_path / "runs"), "--data",
                         str(tmp_path / "data"), "--reports", str(tmp_path / "in"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["summary", "--results", str(out)]) == 0
    text = capsys.readouterr().out
    assert "not scored" in text
    assert [line.split()[-2:] for line in text.splitlines() if line.startswith("  ") and "not run" in line] == \
        [["not", "run"]] * 3


def test_summary_of_a_folder_without_results_names_the_missing_file(tmp_path, capsys):
    assert main(["summary", "--results", str(tmp_path / "nothing")]) == 2
    assert "comparisons.csv: not found" in capsys.readouterr().err


def test_paper_scale_summary_has_no_control_verdict(tmp_path):
    results = fake_results(tmp_path / "results")
    text = summary.summarise(with_params({"data": {"source": "real"}}), results, None)
    assert "Control verdict" not in text and "RA-RFT  90.4 [85.4, 94.8]" in text
