"""control-contrast: the positive run's RL-stage rows minus the negative run's, with a combined interval."""

from __future__ import annotations

import pandas as pd
import pytest

from rarft.cli import main
from rarft.controls import CONTRASTED, contrast, contrast_markdown
from rarft.io import DataError
from rarft.tables import RA_RFT_VS_BASE_TOP1, TRACE_BENEFIT


def comparisons(rl_row: dict[str, tuple[float, float, float]],
                benefit: dict[str, tuple[float, float, float]] | None = None) -> pd.DataFrame:
    out = [{"comparison": label, "benchmark": b, "diff": d, "ci_low": lo, "ci_high": hi}
           for label, rows in ((RA_RFT_VS_BASE_TOP1, rl_row), (TRACE_BENEFIT, rl_row if benefit is None else benefit))
           for b, (d, lo, hi) in rows.items()]
    # another comparison's rows must not be read as one of the contrasted rows
    out.append({"comparison": "RA-RFT - GRPO", "benchmark": "mean", "diff": 99.0, "ci_low": 98.0, "ci_high": 100.0})
    return pd.DataFrame(out)


def test_contrast_subtracts_the_rows_and_adds_half_widths_in_quadrature():
    table = contrast(comparisons({"easy": (13.0, 7.0, 19.0), "mean": (13.0, 9.0, 17.0)}),
                     comparisons({"mean": (1.0, -2.0, 4.0), "hard": (5.0, 0.0, 10.0)}))
    assert table["comparison"].tolist() == list(CONTRASTED)  # one row each: only benchmarks both runs scored
    assert set(table["benchmark"]) == {"mean"}
    row = table.iloc[0]
    assert row["contrast"] == pytest.approx(12.0)
    assert (row["contrast_ci_low"], row["contrast_ci_high"]) == pytest.approx((7.0, 17.0))  # 12 +- hypot(4, 3)
    assert f"- {RA_RFT_VS_BASE_TOP1}, positive - negative" in contrast_markdown(table)


def test_each_row_gets_its_own_verdict():
    table = contrast(comparisons({"mean": (13.0, 9.0, 17.0)}, benefit={"mean": (6.0, 0.0, 12.0)}),
                     comparisons({"mean": (1.0, -2.0, 4.0)}, benefit={"mean": (2.0, -6.0, 10.0)}))
    text = contrast_markdown(table)
    rl_line, benefit_line = (next(line for line in text.splitlines() if line.startswith(f"- {label},"))
                             for label in CONTRASTED)
    assert rl_line.endswith(": holds.") and benefit_line.endswith(": does NOT hold.")


def test_a_run_without_a_contrasted_row_or_column_is_named():
    bare = comparisons({"mean": (1.0, 0.0, 2.0)})
    with pytest.raises(DataError, match=f"negative run: no '{TRACE_BENEFIT}' rows"):
        contrast(bare, bare[bare["comparison"] != TRACE_BENEFIT])
    with pytest.raises(DataError, match=r"positive run: tables/comparisons.csv lacks column\(s\) \['ci_high'\]"):
        contrast(bare.drop(columns="ci_high"), bare)


def test_cli_reads_both_results_folders_and_writes_the_table(tmp_path, capsys):
    for name, row in (("pos", (10.0, 6.0, 14.0)), ("neg", (0.0, -3.0, 3.0))):
        (tmp_path / name / "tables").mkdir(parents=True)
        comparisons({"mean": row}).to_csv(tmp_path / name / "tables" / "comparisons.csv", index=False)
    out = tmp_path / "contrast.md"
    assert main(["control-contrast", "--positive", str(tmp_path / "pos"), "--negative", str(tmp_path / "neg"),
                 "--out", str(out)]) == 0
    assert f"| {TRACE_BENEFIT} | mean | +10.0 [+6.0, +14.0] | +0.0 [-3.0, +3.0] | +10.0 [+5.0, +15.0] |" \
        in out.read_text()
    assert "holds" in capsys.readouterr().out
    assert main(["control-contrast", "--positive", str(tmp_path / "pos"), "--negative", str(tmp_path / "none"),
                 "--out", str(out)]) == 2
