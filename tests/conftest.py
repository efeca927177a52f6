"""Shared fixtures: a small seeded world and a tiny random Qwen3 policy built from it (session-scoped,
built once per test run in a few seconds)."""

from __future__ import annotations

import os

import pytest

# Tests never reach the hub: every model they load is built locally or ships its weights.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_TEST_CFG = {
    "vocab_size": 384,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 1024,
}


@pytest.fixture(scope="session")
def world_small() -> dict[str, list[dict]]:
    """{'train': 60, 'corpus': 90, 'bench_easy': 8, 'bench_hard': 8} world items (seed 0)."""
    from rarft.world import generate_world

    return generate_world(0, 60, 90, {"bench_easy": {"n": 8, "difficulty": "easy"},
                                      "bench_hard": {"n": 8, "difficulty": "hard"}})


@pytest.fixture(scope="session")
def tiny_policy_dir(world_small, tmp_path_factory):
    """A saved tiny random Qwen3 + locally trained tokenizer (a Hugging Face checkpoint directory)."""
    from rarft.policy import build_tiny_policy, world_texts

    out = tmp_path_factory.mktemp("policy") / "tiny"
    return build_tiny_policy(world_texts(world_small["train"] + world_small["corpus"]), TINY_TEST_CFG, out, seed=0)
