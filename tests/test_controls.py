"""control-contrast: the positive run's RL row minus the negative run's, with a combined interval."""

from __future__ import annotations

import pandas as pd
import pytest

from rarft.cli import main
from rarft.controls import contrast, contrast_markdown
from rarft.io import DataError
from rarft.tables import RA_RFT_VS_BASE_TOP1


def comparisons(rows: dict[str, tuple[float, float, float]], other: bool = True) -> pd.DataFrame:
    out = [{"comparison": RA_RFT_VS_BASE_TOP1, "benchmark": b, "diff": d, "ci_low": lo, "ci_high": hi}
           for b, (d, lo, hi) in rows.items()]
    if other:  # another comparison's rows must not be read as the RL row
        out.append({"comparison": "RA-RFT - GRPO", "benchmark": "mean", "diff": 99.0, "ci_low": 98.0, "ci_high": 100.0})
    return pd.DataFrame(out)


def test_contrast_subtracts_the_rows_and_adds_half_widths_in_quadrature():
    table = contrast(comparisons({"easy": (13.0, 7.0, 19.0), "mean": (13.0, 9.0, 17.0)}),
                     comparisons({"mean": (1.0, -2.0, 4.0), "hard": (5.0, 0.0, 10.0)}))
    assert table["benchmark"].tolist() == ["mean"]  # only benchmarks both runs scored
    row = table.iloc[0]
    assert row["contrast"] == pytest.approx(12.0)
    assert (row["contrast_ci_low"], row["contrast_ci_high"]) == pytest.approx((7.0, 17.0))  # 12 +- hypot(4, 3)
    assert "RL learned to use the analogue" in contrast_markdown(table) and ": holds." in contrast_markdown(table)


def test_a_contrast_whose_interval_reaches_zero_does_not_hold():
    table = contrast(comparisons({"mean": (6.0, 0.0, 12.0)}), comparisons({"mean": (2.0, -6.0, 10.0)}))
    assert table.iloc[0]["contrast_ci_low"] < 0 < table.iloc[0]["contrast_ci_high"]
    assert ": does NOT hold." in contrast_markdown(table)


def test_a_run_without_the_rl_row_is_named():
    with pytest.raises(DataError, match="negative run: no 'RA-RFT - base"):
        contrast(comparisons({"mean": (1.0, 0.0, 2.0)}), comparisons({}, other=True))


def test_cli_reads_both_results_folders_and_writes_the_table(tmp_path, capsys):
    for name, row in (("pos", (10.0, 6.0, 14.0)), ("neg", (0.0, -3.0, 3.0))):
        (tmp_path / name / "tables").mkdir(parents=True)
        comparisons({"mean": row}).to_csv(tmp_path / name / "tables" / "comparisons.csv", index=False)
    out = tmp_path / "contrast.md"
    assert main(["control-contrast", "--positive", str(tmp_path / "pos"), "--negative", str(tmp_path / "neg"),
                 "--out", str(out)]) == 0
    assert "| mean | +10.0 [+6.0, +14.0] | +0.0 [-3.0, +3.0] | +10.0 [+5.0, +15.0] |" in out.read_text()
    assert "holds" in capsys.readouterr().out
    assert main(["control-contrast", "--positive", str(tmp_path / "pos"), "--negative", str(tmp_path / "none"),
                 "--out", str(out)]) == 2
