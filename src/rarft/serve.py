"""Start the teacher's OpenAI-compatible server inside the build-traces job (`traces.teacher.serve`).

At paper scale the teacher (Qwen3-235B-A22B) runs behind `vllm serve` on the build_traces job's GPUs;
nothing else would start it on a cluster node. With `traces.teacher.serve` set, build-traces launches

    vllm serve <teacher.model> --host 127.0.0.1 --port <port> --tensor-parallel-size <tp>
        --max-model-len <len> --served-model-name <teacher.model> [extra_args...]

waits until `GET /v1/models` answers and lists the teacher (so a server of someone else's on the port is
caught), points `traces.teacher.base_url` at it, rewrites, and stops it
(also on failure). Its output goes to a log file next to the stage's outputs. Without `serve`, the
teacher is whatever answers at `traces.teacher.base_url` (a server started by hand, or a hosted API).
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

from rarft.config import ConfigError

DEFAULTS = {"port": 8000, "tensor_parallel_size": 8, "max_model_len": 16384, "startup_timeout_s": 3600,
            "extra_args": []}


def serve_settings(config: dict) -> dict | None:
    """`traces.teacher.serve` with defaults filled in, or None when the teacher is not started here."""
    serve = config["traces"]["teacher"]["serve"]
    if not serve:
        return None
    if config["traces"]["teacher"]["backend"] != "openai":
        raise ConfigError("traces.teacher.serve: only for the openai backend (a server the stage talks to)")
    return {**DEFAULTS, **(serve if isinstance(serve, dict) else {})}


def server_command(model: str, serve: dict) -> list[str]:
    exe = shutil.which("vllm") or "vllm"
    return [exe, "serve", model, "--host", "127.0.0.1", "--port", str(serve["port"]),
            "--tensor-parallel-size", str(serve["tensor_parallel_size"]),
            "--max-model-len", str(serve["max_model_len"]), "--served-model-name", model,
            *[str(a) for a in serve["extra_args"]]]


@contextlib.contextmanager
def running_server(command: list[str], base_url: str, log_path: str | os.PathLike, timeout_s: float,
                   poll_s: float = 5.0, served_model: str | None = None) -> Iterator[subprocess.Popen]:
    """Run ``command`` until the block ends; enter once ``base_url``/models answers 200 (and lists
    ``served_model``, when given: a server of someone else's on the port answers too, and the job would
    rewrite with the wrong model)."""
    import requests

    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"teacher server exited with code {proc.returncode} before it answered; "
                                       f"see {log_path}")
                try:
                    reply = requests.get(base_url.rstrip("/") + "/models", timeout=5)
                except requests.RequestException:
                    reply = None
                if reply is not None and reply.status_code == 200:
                    served = _model_ids(reply)
                    if served_model is None or served_model in served:
                        break
                    raise RuntimeError(f"the server at {base_url} serves {served}, not the teacher {served_model!r}: "
                                       "another server holds the port; set traces.teacher.serve.port to a free one")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"teacher server did not answer at {base_url} within {timeout_s:.0f} s; "
                                       f"see {log_path}")
                time.sleep(poll_s)
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _model_ids(reply) -> list[str]:
    """The model ids of an OpenAI-compatible `GET /models` reply ({"data": [{"id": ...}, ...]})."""
    try:
        return [str(m.get("id")) for m in reply.json().get("data") or [] if isinstance(m, dict)]
    except (ValueError, AttributeError):
        return []


@contextlib.contextmanager
def teacher_server(config: dict, log_dir: str | os.PathLike) -> Iterator[dict]:
    """The config to rewrite with: unchanged, or pointing at a teacher server started for the block."""
    serve = serve_settings(config)
    if serve is None:
        yield config
        return
    model = config["traces"]["teacher"]["model"]
    url = f"http://127.0.0.1:{serve['port']}/v1"
    served = copy.deepcopy(config)
    served["traces"]["teacher"]["base_url"] = url
    print(f"build-traces: starting the teacher server ({model}, tensor parallel {serve['tensor_parallel_size']})")
    with running_server(server_command(model, serve), url, Path(log_dir) / "teacher_server.log",
                        float(serve["startup_timeout_s"]), served_model=model):
        yield served
