"""The SLURM profile on a cluster (review 2, N5 and N8), checked on the paper config's SLURM dry run: every
multi-GPU job on one node, requeue on, and train-policy warned with SIGTERM before its time limit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_paper_scale import _dry_run_jobs, _fresh_clone

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"


@pytest.fixture(scope="module")
def slurm_dry_run(tmp_path_factory):
    return _dry_run_jobs(_fresh_clone(tmp_path_factory.mktemp("clone")), "config/qwen3-1.7b.yaml")


def test_every_multi_gpu_job_is_pinned_to_one_node(slurm_dry_run):
    """The plugin maps gpu: 8 to `--gpus=8`, a total SLURM may spread over nodes, and emits `--nodes` only from
    a `nodes` resource: train_policy, build_traces and both retriever trainings need all GPUs on one node."""
    _, jobs = slurm_dry_run
    multi = [j for j in jobs if int(j["resources"].get("gpu", 0)) > 1]
    assert {j["rule"] for j in multi} == {"train_policy", "build_traces", "train_retriever",
                                          "train_colbert_retriever"}
    assert all(j["resources"].get("nodes") == "1" for j in multi), [j for j in multi if "nodes" not in j["resources"]]


def test_training_gets_sigterm_before_its_time_limit_and_jobs_are_requeued(slurm_dry_run):
    _, jobs = slurm_dry_run
    from rarft.launch import SIGTERM_GRACE_S

    train = [j for j in jobs if j["rule"] == "train_policy"]
    # no `B:`: the signal goes to the job step's processes (the training), not only to the batch shell
    assert train and all(j["resources"]["slurm_extra"] == f"--signal=TERM@{SIGTERM_GRACE_S}" for j in train)
    # the job's shell survives it and the launcher's agent waits as long for the workers' save
    assert all(j["shell"].startswith(f"trap : TERM; TORCH_ELASTIC_SHUTDOWN_TIMEOUT={SIGTERM_GRACE_S} ") for j in train)
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["slurm-requeue"] is True and profile["retries"] >= 1


def test_the_profile_option_names_are_the_plugins():
    """`slurm-requeue` is the plugin's `requeue` setting (snakemake-executor-plugin-slurm ExecutorSettings), and
    no slurm_extra sets an option the plugin manages itself (it refuses those)."""
    import dataclasses

    from snakemake_executor_plugin_slurm import ExecutorSettings
    from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options

    assert "requeue" in {f.name for f in dataclasses.fields(ExecutorSettings)}
    import re

    for row in yaml.safe_load(PROFILE.read_text())["set-resources"].values():
        extra = str(row.get("slurm_extra", ""))
        assert not [name for pattern, name in get_forbidden_slurm_options().items() if re.search(pattern, extra)]
