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
