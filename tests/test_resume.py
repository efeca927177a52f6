"""Surviving the cluster (review 2, N8): train-policy saves a checkpoint on SIGTERM and stops, the retry resumes
from it, and a checkpoint torn by a kill during its save is skipped instead of resumed."""

from __future__ import annotations

import json
import os
import signal

import pytest
from test_train import corpus_by_id, digit_reward, fake_retrieval, tiny_config

from rarft.config import load_config
from rarft.train import CHECKPOINT_DIR, Preempted, _last_checkpoint, _sigterm_callback_class, train_policy


def _checkpoint(run_dir, step: int, state: str | None = '{"global_step": 1}'):
    path = run_dir / CHECKPOINT_DIR / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_text("weights")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_a_torn_checkpoint_is_skipped(tmp_path):
    """transformers writes trainer_state.json last; without it (or cut short) the checkpoint is incomplete, and
    the highest complete one is resumed. get_last_checkpoint would take checkpoint-30."""
    from transformers.trainer_utils import get_last_checkpoint

    assert _last_checkpoint(tmp_path) is None
    good = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 9)
    _checkpoint(tmp_path, 20, state='{"global_st')  # killed while writing the state
    _checkpoint(tmp_path, 30, state=None)           # killed while writing the optimizer
    (tmp_path / CHECKPOINT_DIR / "checkpoint-40").write_text("not a directory")
    assert get_last_checkpoint(str(tmp_path / CHECKPOINT_DIR)).endswith("checkpoint-30")
    assert _last_checkpoint(tmp_path) == str(good)


def test_sigterm_asks_the_trainer_to_save_and_stop_at_the_end_of_the_step():
    from transformers import TrainerControl

    callback = _sigterm_callback_class()()
    control = TrainerControl()
    callback.on_step_end(None, None, control)
    assert not (control.should_save or control.should_training_stop or callback.stopped)
    previous = signal.signal(signal.SIGTERM, callback.handle)
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler only sets a flag: this process goes on
    finally:
        signal.signal(signal.SIGTERM, previous)
    callback.on_step_end(None, None, control)
    assert control.should_save and control.should_training_stop and callback.stopped


def test_sigterm_during_training_saves_a_checkpoint_and_the_rerun_resumes_there(world_small, tiny_policy_dir,
                                                                                 tmp_path):
    """A SIGTERM in step 1 (save_steps 100: no scheduled checkpoint) leaves checkpoint-1 and no final model; the
    rerun resumes from it, skipping a torn checkpoint-2, and finishes."""
    config = tiny_config(load_config("params.yaml"), save_steps=100)
    config["rl"]["curve_arms"] = []  # no validation loop: the reward's first call is training step 1
    calls = []

    def reward_then_sigterm(completions, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # what SLURM sends 10 minutes before the time limit
        return digit_reward(completions, **kwargs)

    benches = {b: world_small[b][:2] for b in ("bench_easy", "bench_hard")}
    model, run_dir = tmp_path / "model", tmp_path / "run"

    def train(reward):
        return train_policy("grpo", tiny_policy_dir, world_small["train"][:12], corpus_by_id(world_small),
                            fake_retrieval(world_small), benches, config, model, run_dir, reward_funcs=[reward])

    with pytest.raises(Preempted, match="checkpoint-1"):
        train(reward_then_sigterm)
    assert not model.exists()
    state = json.loads((run_dir / CHECKPOINT_DIR / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["global_step"] == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed after training
    _checkpoint(run_dir, 2, state=None)  # a later save torn by SIGKILL
    summary = train(digit_reward)
    assert summary["resumed_from"].endswith("checkpoint-1") and summary["global_step"] == 2
    assert (model / "model.safetensors").exists()


def test_cli_exits_143_on_sigterm_so_the_job_is_retried(monkeypatch, tmp_path):
    """A job stopped by SIGTERM must fail (the shell's 128 + 15), not look finished: Snakemake retries it."""
    import rarft.train as train

    def preempted(*args, **kwargs):
        raise Preempted("train-policy grpo: SIGTERM; saved checkpoint-3")

    monkeypatch.setattr(train, "train_policy", preempted)
    for name in ("train.jsonl", "corpus.jsonl"):
        (tmp_path / name).write_text("")
    rc = train.cli(["--arm", "grpo", "--base", "b", "--train", str(tmp_path / "train.jsonl"),
                    "--corpus", str(tmp_path / "corpus.jsonl"), "--out", "o", "--run-dir", "r"])
    assert rc == 143


@pytest.mark.slow
def test_sigterm_to_a_two_process_launch_saves_and_the_rerun_resumes(world_small, tiny_policy_dir, tmp_path):
    """What SLURM's `--signal=TERM@600` does to a train_policy job, rehearsed on the CPU: the rule's shell command
    (the trap, the launcher's grace, 2 gloo processes under torchrun) gets SIGTERM in every process mid-training.
    Both processes stop at the same step (the flag is max-reduced), checkpoint it, and the job fails with no
    final model; the rerun resumes from that checkpoint and finishes (~1 min)."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    from rarft.io import write_jsonl
    from rarft.launch import SIGTERM_GRACE_S, train_command

    root = Path(__file__).resolve().parents[1]
    over = tmp_path / "over.yaml"
    over.write_text("device: cpu\nrl:\n  curve_arms: []\n  launcher: {num_processes: 2}\n"
                    "  trainer: {max_steps: 30, save_steps: 1000, num_generations: 2,\n"
                    "            per_device_train_batch_size: 4, max_completion_length: 8}\n")
    write_jsonl(tmp_path / "train.jsonl", world_small["train"][:16])
    write_jsonl(tmp_path / "corpus.jsonl", world_small["corpus"])
    cmd = train_command(load_config([root / "params.yaml", over]))
    log = tmp_path / "train.log"
    shell = (f"set -euo pipefail; trap : TERM; TORCH_ELASTIC_SHUTDOWN_TIMEOUT={SIGTERM_GRACE_S} {cmd} train-policy"
             f" --config params.yaml {over} --arm grpo --base {tiny_policy_dir} --train {tmp_path}/train.jsonl"
             f" --corpus {tmp_path}/corpus.jsonl --out {tmp_path}/model --run-dir {tmp_path}/run > {log} 2>&1")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    job = subprocess.Popen(["bash", "-c", shell], cwd=root, env=env, start_new_session=True)
    deadline = time.time() + 600
    while "'reward'" not in (log.read_text() if log.exists() else "") and job.poll() is None:
        assert time.time() < deadline, "training never logged a step"
        time.sleep(1)
    os.killpg(job.pid, signal.SIGTERM)  # SLURM signals every process of the job step
    # a failure, so Snakemake retries the job: each worker exits 143, torchrun / accelerate launch then re-raise
    # the signal as an error of their own
    assert job.wait(timeout=600) != 0, log.read_text()[-3000:]
    text = log.read_text()
    checkpoints = sorted((tmp_path / "run" / CHECKPOINT_DIR).glob("checkpoint-*"))
    assert len(checkpoints) == 1 and (checkpoints[0] / "trainer_state.json").exists(), text[-3000:]
    step = int(checkpoints[0].name.split("-")[1])
    assert 1 <= step < 30 and not (tmp_path / "model").exists()
    assert f"saved checkpoint-{step}" in text

    # The retry, here in one process: transformers 5.17 cannot resume a multi-process CPU run (it loads the
    # optimizer state with map_location 'cpu:0', which torch refuses; on GPUs it is 'cuda:<rank>'). That the
    # process count is not part of the resume fingerprint is what lets it resume at all.
    over.write_text(over.read_text().replace("  launcher: {num_processes: 2}\n", ""))
    assert train_command(load_config([root / "params.yaml", over])) == "PYTHONPATH=src python -m rarft"
    rerun = subprocess.run(["bash", "-c", shell.replace(cmd, "PYTHONPATH=src python -m rarft")], cwd=root, env=env,
                           timeout=900)
    assert rerun.returncode == 0, log.read_text()[-3000:]
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["resumed_from"].endswith(f"checkpoint-{step}") and summary["global_step"] == 30
