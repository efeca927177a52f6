"""Generation backends share one contract: same prompts -> n completion strings each.

transformers runs here on CPU; the HTTP client runs against a real OpenAI-compatible server on localhost
(`transformers serve` with the tiny policy, offline); vLLM needs a CUDA GPU and is skipped otherwise.
"""

from __future__ import annotations

import os
import time

import pytest
from conftest import free_port, transformers_serve, with_params

from rarft.generation import (
    OpenAIBackend,
    PromptRejected,
    Sampling,
    TransformersBackend,
    batch_plan,
    chat_text,
    make_backend,
)
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
                            concurrency=8, backoff_max_s=300.0, backoff_s=0.01)
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


# ---- the HTTP client's pool, rate limits and rejected prompts (review N6 / C4 / N11), against a local server ----

def _ok(text):
    return 200, {"choices": [{"message": {"content": text}}]}, {}, 0.0


def _http(url, concurrency=4, max_retries=3):
    return OpenAIBackend("m", url, api_key_env=None, max_retries=max_retries, timeout_s=30.0,
                         concurrency=concurrency, backoff_max_s=300.0, backoff_s=0.01)


def test_http_keeps_concurrency_in_flight_over_all_prompts_not_chunks(fake_chat_server):
    # one slow prompt must not hold up the rest: a chunk of 16 used to wait for its slowest reply
    server = fake_chat_server(lambda body: (*_ok(body["messages"][-1]["content"])[:3],
                                            2.0 if body["messages"][-1]["content"] == "p0" else 0.1))
    backend = _http(server.url, concurrency=6)
    prompts = [[{"role": "user", "content": f"p{i}"}] for i in range(40)]
    order = [i for i, _ in backend.stream(prompts, Sampling(n=1, max_new_tokens=4))]
    assert sorted(order) == list(range(40)) and order[-1] == 0  # the slow one arrives last, the others go on
    assert server.max_in_flight == 6  # the pool is kept full, never more
    assert backend.generate(prompts[:3], Sampling(n=1, max_new_tokens=4)) == [["p0"], ["p1"], ["p2"]]


def test_http_honours_retry_after_on_429_then_succeeds(fake_chat_server):
    seen = []

    def reply(body):
        seen.append(body["messages"][-1]["content"])
        if len(seen) <= 2:  # a rate limit asking for 1 s, twice
            return 429, "rate limit", {"Retry-After": "1"}, 0.0
        return _ok("fine")

    server = fake_chat_server(reply)
    t = time.monotonic()
    out = _http(server.url, concurrency=1).generate([[{"role": "user", "content": "x"}]], Sampling(n=1))
    assert out == [["fine"]] and len(seen) == 3
    gaps = [b - a for (a, _), (b, _) in zip(server.requests, server.requests[1:])]
    assert all(g >= 0.95 for g in gaps)  # the server's 1 s, not the client's 0.01 s backoff
    assert time.monotonic() - t < 10


def test_retry_waits_are_capped_and_read_both_header_forms():
    from email.utils import formatdate

    from rarft.generation import retry_after_s

    assert retry_after_s("120") == 120.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert 58 <= retry_after_s(formatdate(time.time() + 60, usegmt=True)) <= 60
    backend = _http("http://127.0.0.1:9/v1")
    backend.backoff_max_s = 0.05
    slept = []
    import rarft.generation as generation

    real_sleep = generation.time.sleep
    generation.time.sleep = lambda s: slept.append(s)
    try:
        with pytest.raises(RuntimeError, match="gave up after 4 attempts"):
            backend._post({})
    finally:
        generation.time.sleep = real_sleep
    assert slept == [0.01, 0.02, 0.04]  # doubling from backoff_s, capped at backoff_max_s (0.05)


def test_a_prompt_too_long_for_the_server_is_a_per_item_failure(fake_chat_server):
    # vLLM's answer to a prompt that cannot fit --max-model-len
    too_long = (400, {"object": "error", "message": "This model's maximum context length is 16384 tokens. However, "
                      "you requested 17000 tokens.", "type": "BadRequestError", "code": 400}, {}, 0.0)
    server = fake_chat_server(lambda body: too_long if "long" in body["messages"][-1]["content"]
                              else _ok(body["messages"][-1]["content"]))
    backend = _http(server.url)
    prompts = [[{"role": "user", "content": c}] for c in ("a", "long", "b")]
    got = dict(backend.stream(prompts, Sampling(n=1)))
    assert got[0] == ["a"] and got[2] == ["b"] and isinstance(got[1], PromptRejected)
    assert "maximum context length" in str(got[1])
    with pytest.raises(PromptRejected):  # generate() (evaluation) has no per-item result to give: it raises
        backend.generate(prompts, Sampling(n=1))
    # any other 400 is a configuration error: the stage stops at once, nothing retried
    other = fake_chat_server(lambda body: (400, "unknown parameter: foo", {}, 0.0))
    with pytest.raises(RuntimeError, match="HTTP 400"):
        list(_http(other.url, concurrency=1).stream(prompts, Sampling(n=1)))
    assert len(other.requests) == 1
