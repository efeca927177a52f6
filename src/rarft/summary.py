"""`summary`: what a finished run found, on the terminal (`make run` ends with it; issue #20).

Reads the results/ folder the analyze stage wrote, nothing else: the control verdict (the embedded world's
positive or negative control, computed by `analysis.control_verdict` from tables/comparisons.csv, the same
words as results/README.md), Table 1's means over the benchmarks with their 95% intervals (tables/table1.csv,
formatted as the Markdown table does), and where the tables, figures, results/README.md and the HTML report are.

    python -m rarft summary [--config params.yaml ...] [--results results] [--report report.html]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from rarft import tables
from rarft.config import add_config_argument, load_config
from rarft.io import DataError

# What a reader looks at next, in order: (path under the results folder, what it holds)
WHERE = (("README.md", "what every file below shows (generated)"),
         ("tables", "Tables 1-5, paired differences, diversity and RL signal (.md, .csv, .tex)"),
         ("figures", "Figures 3 and 4, gain vs similarity (.png, .pdf)"),
         ("reports", "data, decontamination, traces, labelers, retrievers, the policy probe"))


def read_table_csv(path: Path) -> pd.DataFrame:
    """A table analyze wrote as CSV (long form: one row per table row and benchmark); a clear error if absent."""
    if not path.is_file():
        raise DataError(f"{path}: not found (is this the results/ folder of a finished run? `make run` writes it)")
    return pd.read_csv(path)


def table1_means(results: Path) -> list[str]:
    """Table 1's rows of this run, mean over benchmarks: 'RA-RFT  90.4 [85.4, 94.8]' (quoted paper rows left out)."""
    df = read_table_csv(results / "tables" / "table1.csv")
    rows = df[(df["benchmark"] == "mean") & (df["status"] != tables.QUOTED)].to_dict("records")
    width = max((len(str(r["row"])) for r in rows), default=0)
    return [f"{str(r['row']):<{width}}  {tables._cell({**r, 'best': False})}" for r in rows]


def summarise(config: dict, results: Path, report: Path | None) -> str:
    from rarft.analysis import control_verdict, run_source

    lines = [f"What this run found ({results}/):", run_source(config), ""]
    comparisons = results / "tables" / "comparisons.csv"
    verdict = control_verdict(config, read_table_csv(comparisons)) if config["data"]["source"] == "world" else ""
    if verdict:
        lines += [verdict, ""]
    lines += ["Table 1, average@k in % (mean over the benchmarks, 95% interval):",
              *(f"  {line}" for line in table1_means(results)), "", "Where to look:"]
    places = [(results / name, what) for name, what in WHERE]
    if report is not None:
        places.append((report, "one HTML page with every table and figure" if report.is_file() else
                       "not written yet: snakemake --cores 1 --report " + str(report)))
    width = max(len(str(p)) for p, _ in places)
    lines += [f"  {str(p):<{width}}  {what}" for p, what in places]
    return "\n".join(lines)


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft summary", description=__doc__.split("\n\n")[0])
    add_config_argument(p)
    p.add_argument("--results", default="results", help="the results folder analyze wrote (default: results)")
    p.add_argument("--report", help="the HTML report's path, if one was made (snakemake --report)")
    args = p.parse_args(argv)
    print(summarise(load_config(args.config), Path(args.results), Path(args.report) if args.report else None))
    return 0
