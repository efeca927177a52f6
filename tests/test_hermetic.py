"""Tests are hermetic (issue #20): none reads or depends on the working tree's data/, models/, runs/, logs/ or
results/, so `make run` then `make test` passes as a fresh clone's `make test` does.

Two guards. A static one (fast): no test joins the repository root with one of those folders. A dynamic one (slow):
the tests that run in the repository root (Snakemake and DVC dry runs, relative model paths) run again in a copy of
the repository whose data/, models/ (a fine-tuned retriever and a policy among them), runs/, logs/ and results/ hold
junk, as after a `make run` of other code; they must pass there too. `.ci/run` adds the real order: `make run`, then
`make test`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_rehearsal import _copy_repo

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
OUTPUT_DIRS = ("data", "models", "runs", "logs", "results", "benchmarks")  # what a run writes (.gitignore, results/)
# the tests that run with the repository root as working directory (or resolve relative paths against it)
ROOT_TESTS = [*(f"tests/test_workflow.py::{t}" for t in (
                  "test_dvc_yaml_is_generated_from_the_snakemake_dag", "test_a_changed_dag_is_detected",
                  "test_dvc_reads_the_same_stage_graph", "test_snakemake_dry_run_builds_the_whole_dag",
                  "test_snakemake_lint_is_clean", "test_resources_come_from_one_table")),
              "tests/test_config.py::test_snakemake_drops_a_benchmark_deleted_with_null",
              "tests/test_paper_scale.py::test_load_encoder_still_rejects_a_missing_local_directory",
              "tests/test_summary.py"]


def root_joins(source: str) -> list[int]:
    """Line numbers where the source joins a name bound to the repository root with an output folder."""
    names = {"REPO_ROOT", *re.findall(r"^\s*(\w+)\s*=\s*Path\(__file__\)\.resolve\(\)\.parents\[1\]\s*$", source,
                                      re.M)}
    join = re.compile(rf"\b(?:{'|'.join(sorted(names))})\s*/\s*[\"'](?:\./)?(?:{'|'.join(OUTPUT_DIRS)})\b")
    return [n for n, line in enumerate(source.splitlines(), 1) if join.search(line)]


def test_the_static_guard_catches_a_read_of_the_working_trees_results():
    bad = 'ROOT = Path(__file__).resolve().parents[1]\n\nx = (ROOT / "results" / "metrics.json").read_text()\n'
    assert root_joins(bad) == [3]
    assert root_joins(bad.replace('"results"', '"params.yaml"')) == []
    assert root_joins('from rarft.config import REPO_ROOT\nm = REPO_ROOT / "models/policy"\n') == [2]


def test_no_test_joins_the_repository_root_with_an_output_folder():
    offenders = [f"{path.name}:{line}" for path in sorted(TESTS.glob("*.py")) if path.name != Path(__file__).name
                 for line in root_joins(path.read_text(encoding="utf-8"))]
    assert not offenders, f"tests reading the working tree's outputs (make them in tmp_path): {offenders}"


def fill_with_junk(repo: Path) -> None:
    """What a finished (or killed) run of other code leaves: every output folder exists and holds something."""
    junk = {"data/prepared/train.jsonl": '{"not": "a row"}\n', "data/clean/train.jsonl": "garbage\n",
            "models/retriever/finetuned/config.json": "{}", "models/retriever/finetuned/model.safetensors": "x",
            "models/policy/base/config.json": "{}", "models/enc/config.json": "{}",
            "runs/analyze/manifest.json": "{}", "runs/eval/base/none/summary.json": "{}",
            "logs/analyze.log": "killed\n", "results/metrics.json": '{"stale": 1}',
            "results/tables/table1.csv": "not,a,table\n", "benchmarks/analyze.tsv": "s\n"}
    for rel, text in junk.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)


@pytest.mark.slow
def test_root_tests_pass_in_a_repository_full_of_stale_outputs(tmp_path):
    """About 40 s: Snakemake and DVC dry runs in the copy, as in the repository itself."""
    repo = _copy_repo(tmp_path / "repo")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)  # DVC looks for the clone's git repository
    fill_with_junk(repo)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *ROOT_TESTS],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
