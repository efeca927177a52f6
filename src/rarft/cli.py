"""`python -m rarft <stage> [args]`: the only entry point Snakemake and DVC call.

Each stage lives in its own module with a `cli(argv)` function; this file only dispatches.
Errors the user must fix (bad config, bad data) are printed as one clear message, exit code 2.
"""

from __future__ import annotations

import importlib
import os
import sys

# CPU kernels pinned to AVX2, set before any stage imports torch: torch's own kernels (ATEN_CPU_CAPABILITY), MKL
# (MKL_CBWR) and oneDNN (ONEDNN_MAX_CPU_ISA) otherwise pick them by the CPU's instruction set, and a tiny warm-up
# on this machine's AVX-512 gave other weights than the same run capped at AVX2 (ATEN_CPU_CAPABILITY alone made
# the difference; docs/reproducibility.md). With the cap, runs on any x86-64 CPU with AVX2 use the same kernels
# (not checked on a second machine here). Set a variable yourself to override it (e.g. ATEN_CPU_CAPABILITY=avx512).
PINNED_CPU_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}

STAGES = {
    "prepare-data": "rarft.data",
    "decontaminate": "rarft.decontam",
    "build-traces": "rarft.traces",
    "init-policy": "rarft.policy",
    "sample-candidates": "rarft.candidates",
    "label-relevance": "rarft.labels",
    "compare-labelers": "rarft.labels_compare:cli",
    "train-retriever": "rarft.train_retriever",
    "evaluate-retrievers": "rarft.evaluate_retrievers",
    "retrieve": "rarft.retrieval",
    "train-policy": "rarft.train",
    "evaluate": "rarft.evaluate",
    "analyze": "rarft.analysis",
    "seed-spread": "rarft.seeds",
    "control-contrast": "rarft.controls",
    "summary": "rarft.summary",
    "plan": "rarft.plan",
    "export-dvc": "rarft.dvcgen",
    "rehearsal-setup": "rarft.rehearsal",
    "config-apply": "rarft.dvcgen:cli_apply",
    "validate-config": "rarft.config:cli_validate",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m rarft <stage> [options]\n\nstages:\n  " + "\n  ".join(STAGES))
        return 0 if argv else 2
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        print(f"rarft: unknown stage {stage!r}; one of: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    module, _, func = STAGES[stage].partition(":")
    for key, value in PINNED_CPU_KERNELS.items():
        os.environ.setdefault(key, value)
    from rarft.config import ConfigError
    from rarft.io import DataError

    try:
        return getattr(importlib.import_module(module), func or "cli")(rest) or 0
    except (ConfigError, DataError) as e:
        print(f"rarft {stage}: error: {e}", file=sys.stderr)
        return 2
