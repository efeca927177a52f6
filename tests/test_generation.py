"""Generation backends share one contract: same prompts -> n completion strings each.

transformers runs here on CPU; the HTTP client runs against a real OpenAI-compatible server on localhost
(`transformers serve` with the tiny policy, offline); vLLM needs a CUDA GPU and is skipped otherwise.
"""

from __future__ import annotations

import os
import time

import pytest
from conftest import free_port, transformers_serve, with_params

from rarft.generation import OpenAIBackend, Sampling, TransformersBackend, batch_plan, chat_text, make_backend
from rarft.prompts import build_prompt

# attn_implementation null: transformers' default kernel, as these contracts were written against
CONFIG = with_params({"seed": 0, "device": "cpu", "policy": {"enable_thinking": False},
                      "generation": {"backend": "transformers", "batch_size": 4, "dtype": "float32",
                                     "attn_implementation": None}})


@pytest.fixture(scope="module")
def prompts(world_small):
    items = world_small["bench_easy"][:3]
    ctx = world_small["corpus"][0]
    return [build_prompt(items[0]["problem"]), build_prompt(items[1]["problem"], [ctx]),
            build_prompt(items[2]["problem"])]


def check_contract(backend, prompts, n=3, max_new_tokens=8):
    out = backend.generate(prompts, Sampling(n=n, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=1))
    assert len(out) == len(prompts)
    assert all(len(samples) == n and all(isinstance(s, str) for s in samples) for samples in out)
    assert any(s for samples in out for s in samples)  # something was generated
    return out


@pytest.fixture(scope="module")
def tf_backend(tiny_policy_dir):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return make_backend(str(tiny_policy_dir), CONFIG)


def test_transformers_contract_seeded_and_batch_size_invariant(tf_backend, prompts):
    out = check_contract(tf_backend, prompts)
    again = tf_backend.generate(prompts, Sampling(n=3, max_new_tokens=8, seed=1))
    assert again == out  # same seed, same samples
    other = tf_backend.generate(prompts, Sampling(n=3, max_new_tokens=8, seed=2))
    assert other != out
    # the n samples of one prompt differ (sampling, not n copies of one sequence)
    assert any(len(set(samples)) > 1 for samples in out)


def test_transformers_greedy_matches_per_sample_generation(tf_backend, prompts):
    # Left padding in a batch must not change what the model generates: greedy batched == one by one.
    greedy = Sampling(n=2, temperature=0.0, max_new_tokens=8)
    batched = tf_backend.generate(prompts, greedy)
    single = [tf_backend.generate([p], greedy)[0] for p in prompts]
    assert batched == single
    assert all(s[0] == s[1] for s in batched)


def test_shared_prompt_prefill_equals_generation_from_scratch(tf_backend, prompts):
    # The backend prefills each prompt once and copies its cache to the samples (and splits a prompt's
    # samples across batches when n > batch size: here 3 prompts x 3 samples in batches of 4).
    # Greedy output must equal plain `model.generate` on the prompt alone, with no cache tricks.
    import torch

    model, tok = tf_backend.model, tf_backend.tokenizer
    out = tf_backend.generate(prompts, Sampling(n=3, temperature=0.0, max_new_tokens=12))
    for prompt, samples in zip(prompts, out):
        enc = tok([chat_text(tok, prompt, False)], return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(**enc, do_sample=False, max_new_tokens=12, pad_token_id=tok.pad_token_id,
                                 temperature=None, top_p=None, top_k=None)
        expected = tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        assert samples == [expected] * 3


@pytest.mark.parametrize("n,batch_size", [(3, 4), (8, 4), (1, 16), (5, 5)])
def test_batch_plan_covers_every_sample_once_within_batch_size(n, batch_size):
    lengths = [7, 30, 12, 30, 1]
    plan = batch_plan(lengths, n, batch_size)
    assert all(0 < sum(r for _, r in chunk) <= batch_size for chunk in plan)
    counts = {}
    for chunk in plan:
        for i, r in chunk:
            counts[i] = counts.get(i, 0) + r
    assert counts == {i: n for i in range(len(lengths))}
    order = [i for chunk in plan for i, _ in chunk]
    assert [lengths[i] for i in dict.fromkeys(order)] == sorted(lengths, reverse=True)  # longest first


def test_from_model_wraps_in_memory_model_restores_mode_and_rng(tiny_policy_dir, prompts):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir)
    model.train()
    backend = TransformersBackend.from_model(model, AutoTokenizer.from_pretrained(tiny_policy_dir), CONFIG)
    import torch

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_contract(backend, prompts[:1], n=2)
    assert model.training
    assert torch.equal(torch.rand(3), expected)  # the caller's (trainer's) RNG stream is untouched


def test_unknown_backend_is_a_config_error():
    from rarft.config import ConfigError

    with pytest.raises(ConfigError, match="unknown backend"):
        make_backend("x", CONFIG, backend="nope")


def test_vllm_backend_contract(tiny_policy_dir, prompts):
    torch = pytest.importorskip("torch")
    pytest.importorskip("vllm", reason="vLLM is not installed (GPU stack: pip install -e '.[gpu]')")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU; none on this machine")
    cfg = with_params({"device": "cuda", "generation": {"backend": "vllm", "dtype": "float32",
                                                        "vllm": {"gpu_memory_utilization": 0.3}}})
    backend = make_backend(str(tiny_policy_dir), cfg)
    try:
        check_contract(backend, prompts)
    finally:
        backend.close()


# ---- OpenAI-compatible HTTP client, against a real server ----

@pytest.fixture(scope="module")
def served_tiny(tiny_policy_dir):
    """`transformers serve` (transformers 5.17) with the tiny policy on localhost, offline."""
    with transformers_serve(str(tiny_policy_dir), dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")) as url:
        yield url


def test_http_client_contract_against_transformers_serve(served_tiny, tiny_policy_dir, prompts, monkeypatch):
    # transformers serve ignores `n`: the client must ask again until it has n samples.
    monkeypatch.setenv("RARFT_TEST_KEY", "sk-secret-not-to-be-shown")
    cfg = with_params({"device": "cpu", "generation": {"backend": "openai", "base_url": served_tiny,
                                                       "api_key_env": "RARFT_TEST_KEY"}})
    backend = make_backend(str(tiny_policy_dir), cfg)
    assert "sk-secret" not in repr(backend)
    check_contract(backend, prompts[:2], n=2)
    backend.close()


def test_http_client_retries_then_fails_clearly():
    port = free_port()  # nothing listens there
    backend = OpenAIBackend("m", f"http://127.0.0.1:{port}/v1", api_key_env=None, max_retries=2, timeout_s=30.0,
                            concurrency=8, backoff_s=0.01)
    t = time.monotonic()
    with pytest.raises(RuntimeError, match="gave up after 3 attempts"):
        backend.generate([[{"role": "user", "content": "hi"}]], Sampling(n=1, max_new_tokens=4))
    assert time.monotonic() - t < 30


def test_flash_attention_on_cpu_is_a_config_error():
    from rarft.config import ConfigError
    from rarft.generation import attn_implementation

    cpu = {"device": "cpu", "generation": {"attn_implementation": "flash_attention_2"}}
    with pytest.raises(ConfigError, match="generation.attn_implementation"):
        attn_implementation(cpu)
    assert attn_implementation({"device": "cpu", "generation": {"attn_implementation": "eager"}}) == "eager"
    assert attn_implementation({"device": "cpu", "generation": {"attn_implementation": None}}) is None
