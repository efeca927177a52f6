"""control-contrast: the positive run's RL-stage rows minus the negative run's, paired by problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rarft.cli import main
from rarft.controls import CONTRASTED, contrast, contrast_markdown
from rarft.io import DataError
from rarft.stats import paired_difference
from rarft.tables import RA_RFT_VS_BASE_TOP1, TRACE_BENEFIT

RESAMPLES, LEVEL, SEED = 2000, 0.95, 0


def run_tables(rl_row: dict[str, list[float]], benefit: dict[str, list[float]] | None = None):
    """A run's comparisons.csv and comparisons_per_problem.csv from per-problem differences (fractions) of the
    two contrasted rows; comparisons.csv's intervals are the run's own paired bootstrap, as analyze writes them."""
    comp, per_problem = [], []
    for label, rows in ((RA_RFT_VS_BASE_TOP1, rl_row), (TRACE_BENEFIT, rl_row if benefit is None else benefit)):
        pp = {b: {f"{b}-{i:03d}": d for i, d in enumerate(diffs)} for b, diffs in rows.items()}
        per_problem += [{"comparison": label, "benchmark": b, "problem_id": p, "diff": d}
                        for b, by_id in pp.items() for p, d in by_id.items()]
        comp += [{"comparison": label, **r} for r in _own_rows(pp)]
    # another comparison's rows must not be read as one of the contrasted rows
    comp.append({"comparison": "RA-RFT - GRPO", "benchmark": "mean", "diff": 99.0, "ci_low": 98.0, "ci_high": 100.0})
    per_problem.append({"comparison": "RA-RFT - GRPO", "benchmark": "easy", "problem_id": "x", "diff": 1.0})
    return pd.DataFrame(comp), pd.DataFrame(per_problem)


def _own_rows(pp: dict[str, dict[str, float]]) -> list[dict]:
    """The run's own row: its per-problem differences against zero."""
    zeros = {b: dict.fromkeys(by_id, 0.0) for b, by_id in pp.items()}
    return paired_difference(pp, zeros, sorted(pp), RESAMPLES, LEVEL, np.random.default_rng(1))


def contrast_of(pos, neg):
    return contrast(pos[0], neg[0], pos[1], neg[1], RESAMPLES, LEVEL, SEED)


def test_contrast_is_the_paired_bootstrap_over_problems_of_the_two_runs_differences():
    rng = np.random.default_rng(3)
    # problems share most of their difference across the two runs (the same base, the same benchmark items):
    # pairing removes that, so the contrast's interval is far narrower than the runs' own intervals combined
    shared = {b: rng.choice([-0.5, 0.0, 0.5, 1.0], size=40) for b in ("easy", "hard")}
    pos = run_tables({b: list(v + 0.10) for b, v in shared.items()})
    neg = run_tables({b: list(v + rng.choice([-0.05, 0.0, 0.05], size=40)) for b, v in shared.items()})
    table = contrast_of(pos, neg)
    assert table["comparison"].tolist() == [label for label in CONTRASTED for _ in range(3)]
    mean = table[(table["comparison"] == RA_RFT_VS_BASE_TOP1) & (table["benchmark"] == "mean")].iloc[0]
    pos_mean = pos[0][(pos[0]["comparison"] == RA_RFT_VS_BASE_TOP1) & (pos[0]["benchmark"] == "mean")].iloc[0]
    neg_mean = neg[0][(neg[0]["comparison"] == RA_RFT_VS_BASE_TOP1) & (neg[0]["benchmark"] == "mean")].iloc[0]
    assert mean["contrast"] == pytest.approx(pos_mean["diff"] - neg_mean["diff"])
    assert mean["positive"] == pos_mean["diff"] and mean["negative"] == neg_mean["diff"]
    paired = mean["contrast_ci_high"] - mean["contrast_ci_low"]
    unpaired = np.hypot(pos_mean["ci_high"] - pos_mean["ci_low"], neg_mean["ci_high"] - neg_mean["ci_low"])
    assert paired < unpaired / 3
    assert mean["contrast_ci_low"] > 0 and mean["n_problems"] == 80
    assert f"- {RA_RFT_VS_BASE_TOP1}, positive - negative" in contrast_markdown(table)


def test_each_row_gets_its_own_verdict():
    pos = run_tables({"mean_only": [0.2] * 20 + [0.1] * 20}, benefit={"mean_only": [0.5, -0.5] * 20})
    neg = run_tables({"mean_only": [0.0] * 20 + [0.05] * 20}, benefit={"mean_only": [-0.5, 0.5] * 20})
    text = contrast_markdown(contrast_of(pos, neg))
    rl_line, benefit_line = (next(line for line in text.splitlines() if line.startswith(f"- {label},"))
                             for label in CONTRASTED)
    assert rl_line.endswith(": holds.") and benefit_line.endswith(": does NOT hold.")


def test_a_run_without_a_contrasted_row_or_column_or_with_other_problems_is_named():
    run = run_tables({"easy": [0.1, 0.2, 0.3]})
    comp, pp = run
    with pytest.raises(DataError, match=f"negative run: tables/comparisons.csv has no '{TRACE_BENEFIT}' rows"):
        contrast(comp, comp[comp["comparison"] != TRACE_BENEFIT], pp, pp, RESAMPLES, LEVEL, SEED)
    with pytest.raises(DataError, match=r"positive run: tables/comparisons.csv lacks column\(s\) \['ci_high'\]"):
        contrast(comp.drop(columns="ci_high"), comp, pp, pp, RESAMPLES, LEVEL, SEED)
    with pytest.raises(DataError, match=r"negative run: tables/comparisons_per_problem.csv has no"):
        contrast(comp, comp, pp, pp[pp["comparison"] != RA_RFT_VS_BASE_TOP1], RESAMPLES, LEVEL, SEED)
    broken = pp.astype({"diff": object})
    broken.loc[broken.index[1], "diff"] = "n/a"
    with pytest.raises(DataError, match=r"positive run: .*'RA-RFT - base \+ top-1 at inference', easy problem "
                                        r"easy-001: diff 'n/a' is not a number"):
        contrast(comp, comp, broken, pp, RESAMPLES, LEVEL, SEED)
    other = run_tables({"easy": [0.1, 0.2, 0.3, 0.4]})
    with pytest.raises(DataError, match=r"on easy: the runs scored different problems \(3 vs 4, 1 in one only\)"):
        contrast_of(run, other)


def test_cli_reads_both_results_folders_and_the_config_and_writes_the_table(tmp_path, capsys):
    for name, diffs in (("pos", [0.1, 0.1, 0.1, 0.1]), ("neg", [0.0, 0.0, 0.0, 0.0])):
        (tmp_path / name / "tables").mkdir(parents=True)
        comp, pp = run_tables({"easy": diffs})
        comp.to_csv(tmp_path / name / "tables" / "comparisons.csv", index=False)
        pp.to_csv(tmp_path / name / "tables" / "comparisons_per_problem.csv", index=False)
    out = tmp_path / "contrast.md"
    argv = ["control-contrast", "--positive", str(tmp_path / "pos"), "--negative", str(tmp_path / "neg"),
            "--out", str(out)]
    assert main(argv) == 0
    # every problem's contrast is exactly +10 points, so every resample is too
    assert f"| {TRACE_BENEFIT} | easy | +10.0 [+10.0, +10.0] | +0.0 [+0.0, +0.0] | +10.0 [+10.0, +10.0] |" \
        in out.read_text()
    assert "holds" in capsys.readouterr().out
    (tmp_path / "pos" / "tables" / "comparisons_per_problem.csv").unlink()
    assert main(argv) == 2
    assert "comparisons_per_problem.csv: not found" in capsys.readouterr().err
