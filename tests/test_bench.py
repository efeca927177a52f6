"""Every script under bench/ runs (issue #20): each is called as a user would, `python bench/<script> --tiny`, in a
subprocess from an empty directory, so a refactor that breaks one (a changed signature, a removed function) fails
here instead of on the next person who wants its numbers. `--tiny` shrinks every size to seconds of work; what a run
costs is the interpreter starting and importing torch / transformers (about 5-12 s each on 2 CPU cores). The ratios the
scripts print are measurements, not checked here: only that the run completes and prints its result line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py"))
# the line each script prints last, once its measurement is done (a crash before it fails the test)
RESULT_LINE = {
    "bench_gain_labeling.py": "speed-up",
    "bench_generation.py": "throughput (tokens/s) relative to per-sample",
    "bench_grpo_step.py": "slowest:",
    "bench_memory.py": "| tiny-smallest |",
    "bench_reward.py": "memoised / plain throughput",
    "bench_search.py": "encode 8 docs",
}


def test_every_bench_script_is_covered():
    """A new bench script needs its result line here (and a --tiny flag), or it would run untested."""
    assert SCRIPTS, f"no scripts in {BENCH}"
    assert sorted(RESULT_LINE) == SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_runs_at_tiny_sizes(script, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the installed rarft, as for a user
    done = subprocess.run([sys.executable, str(BENCH / script), "--tiny"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{script} --tiny failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert RESULT_LINE[script] in done.stdout, done.stdout[-2000:]
    # from an empty directory: the script read nothing of the working tree's data/ or models/ and wrote nothing here
    assert not any(tmp_path.iterdir()), sorted(p.name for p in tmp_path.iterdir())
