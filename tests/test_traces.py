"""build-traces: validation of cheatsheet traces, teacher rewrite through a backend, resume after a kill."""

from __future__ import annotations

import json

import pytest

from rarft.config import load_config
from rarft.io import read_jsonl, write_jsonl
from rarft.traces import build_traces, check_trace, clean_teacher_output, cli

GOOD = ("Step 1 (Quantities): 3 and 4.\nStep 2 (Strategy): multiply.\nStep 3 (Compute): 3 * 4 = 12.\n"
        "Therefore, the final answer is: $\\boxed{12}$")


def _steps(n: int) -> str:
    return "".join(f"Step {i} (s): ok.\n" for i in range(1, n + 1))


@pytest.mark.parametrize("trace, gold, reason", [
    (GOOD, "12", None),
    (_steps(7) + "Therefore, the final answer is: $\\boxed{\\frac{1}{2}}$", "0.5", None),  # math-verify equivalence
    (None, "12", "no_trace"),
    ("The answer is 12. Therefore, the final answer is: $\\boxed{12}$", "12", "no_steps"),
    (_steps(8) + "Therefore, the final answer is: $\\boxed{12}$", "12", "too_many_steps"),
    ("Step 1 (a): x.\nStep 3 (b): y.\nTherefore, the final answer is: $\\boxed{12}$", "12", "steps_out_of_order"),
    (GOOD.replace("Therefore, the final answer is:", "So the answer is"), "12", "no_final_line"),
    (GOOD + "\nI hope this helps.", "12", "no_final_line"),
    (GOOD, "13", "wrong_answer"),
])
def test_check_trace(trace, gold, reason):
    assert check_trace(trace, gold, max_steps=7) == reason


def test_validate_mode_keeps_world_traces_and_reports_drops(world_small):
    config = load_config()
    corpus = [dict(item) for item in world_small["corpus"]]
    corpus[0]["trace"] = corpus[0]["trace"].replace(f"{{{corpus[0]['answer']}}}", "{-99999}")
    corpus[1]["trace"] = None
    kept, report = build_traces(corpus, config)
    assert [k["id"] for k in kept] == [c["id"] for c in corpus[2:]]
    assert report["n_in"] == len(corpus) and report["n_kept"] == len(corpus) - 2
    assert report["dropped_by_reason"] == {"no_trace": 1, "wrong_answer": 1}
    assert {d["id"] for d in report["dropped"]} == {corpus[0]["id"], corpus[1]["id"]}


def test_clean_teacher_output_strips_thinking_and_chatter():
    raw = "<think>let me see</think>Sure! Here it is:\n" + GOOD + "\nHope that helps."
    assert clean_teacher_output(raw) == GOOD


class ScriptedTeacher:
    """Test double for the remote teacher LLM (no teacher model exists here): rewrites a prompt's
    solution into a cheatsheet with the answer stated in the prompt, garbles every third call's
    item, and can fail after a number of generate calls like a crashed or quota-limited server."""

    def __init__(self, fail_after_calls: int | None = None):
        self.calls, self.prompts, self.fail_after = 0, 0, fail_after_calls

    def generate(self, prompts, sampling):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("teacher server went away")
        self.calls += 1
        out = []
        for msgs in prompts:
            self.prompts += 1
            text = msgs[-1]["content"]
            answer = text.split("which is ", 1)[1].split(".\n", 1)[0]
            if "wrong" in text:
                answer = "-1"
            out.append([f"Step 1 (Idea): restate.\nStep 2 (Compute): done.\n"
                        f"Therefore, the final answer is: $\\boxed{{{answer}}}$\nExtra chatter."])
        return out

    def close(self):
        pass


def _rewrite_config(tmp_path):
    cfg = tmp_path / "rewrite.yaml"
    cfg.write_text("traces: {mode: rewrite}\n")
    return load_config(["params.yaml", str(cfg)])


def _real_items(n):
    return [{"id": f"c{i}", "problem": f"Compute {i} times 2.", "answer": str(2 * i),
             "solution": f"Doubling {i} gives {2 * i}." + (" wrong" if i % 3 == 0 else ""), "trace": None,
             "problem_type": "algebra", "source": "test"} for i in range(1, 41)]


def test_rewrite_mode_validates_teacher_output_and_resumes_after_a_kill(tmp_path):
    config = _rewrite_config(tmp_path)
    items = _real_items(40)
    cache = tmp_path / "teacher_cache.jsonl"
    with pytest.raises(RuntimeError):
        build_traces(items, config, backend=ScriptedTeacher(fail_after_calls=1), cache_path=cache, progress=False)
    assert len(read_jsonl(cache)) == 32  # the first chunk survived the crash
    with open(cache, "a") as f:
        f.write('{"key": "torn')  # a kill in the middle of a write
    teacher = ScriptedTeacher()
    kept, report = build_traces(items, config, backend=teacher, cache_path=cache, progress=False)
    assert teacher.prompts == 8  # only the missing prompts were sent
    wrong = {f"c{i}" for i in range(1, 41) if i % 3 == 0}
    assert {k["id"] for k in kept} == {it["id"] for it in items} - wrong
    assert report["dropped_by_reason"] == {"wrong_answer": len(wrong)}
    assert all(k["trace"].endswith("}$") and "chatter" not in k["trace"] for k in kept)
    again = ScriptedTeacher(fail_after_calls=0)  # everything is cached now: no call at all
    kept2, _ = build_traces(items, config, backend=again, cache_path=cache, progress=False)
    assert kept2 == kept


def test_cli_validate_writes_corpus_and_report(world_small, tmp_path):
    src = tmp_path / "corpus.jsonl"
    items = [dict(x) for x in world_small["corpus"][:20]]
    items[3]["trace"] = items[3]["trace"].replace("Step 2", "Step 5")
    write_jsonl(src, items)
    out, report = tmp_path / "traces" / "corpus.jsonl", tmp_path / "traces.json"
    assert cli(["--corpus", str(src), "--out", str(out), "--report", str(report)]) == 0
    assert len(read_jsonl(out)) == 19
    rep = json.loads(report.read_text())
    assert rep["mode"] == "validate" and rep["dropped"] == [{"id": items[3]["id"], "reason": "steps_out_of_order"}]


def test_training_queries_get_teacher_traces_for_the_sft_arms(tmp_path):
    """Review A6: at paper scale the training queries (QuestA) have no trace, and SFT / RA-SFT imitate one.
    build-traces rewrites their solutions too, taking a query's solution from the prepared corpus by problem
    text when the query has none; failures keep trace None, and the SFT rows use the queries with a trace."""
    from rarft.traces import train_traces, train_traces_needed
    from rarft.train import sft_rows

    config = _rewrite_config(tmp_path)
    assert not train_traces_needed(load_config("params.yaml"))  # the world's queries carry their traces
    assert train_traces_needed({**config, "rl": {**config["rl"], "arms": ["grpo", "rasft"]}})
    assert not train_traces_needed({**config, "rl": {**config["rl"], "arms": ["grpo", "rarft"]}})
    queries = [{**it, "id": f"q{i}", "solution": None} for i, it in enumerate(_real_items(40)[:6], 1)]
    solutions = _real_items(40)[:5]  # query 6 has no solution anywhere
    solutions[0] = {**solutions[0], "problem": "  COMPUTE 1 times 2. "}  # matched after normalisation
    out, report = train_traces(queries, solutions, config, backend=ScriptedTeacher(),
                               cache_path=tmp_path / "cache.jsonl", progress=False)
    assert [q["id"] for q in out] == [q["id"] for q in queries]  # every query kept, in order
    with_trace = {q["id"] for q in out if q["trace"]}
    assert with_trace == {"q1", "q2", "q4", "q5"}  # q3's solution is garbled ("wrong"), q6 has none
    assert report["n_without_solution"] == 1 and report["n_with_trace"] == 4
    rows = sft_rows(out, None, None, 1, "train", enable_thinking=False)
    assert [r["id"] for r in rows] == ["q1", "q2", "q4", "q5"]
    assert rows[0]["completion"][0]["content"].endswith("$\\boxed{2}$")


def test_the_paper_teacher_is_asked_not_to_think(tmp_path):
    """Review A9: hybrid Qwen3 under `vllm serve` thinks unless told not to; every rewrite request carries
    chat_template_kwargs.enable_thinking = false, and the paper configs keep many requests in flight.
    A local HTTP server stands in for the teacher and records what it is sent."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies = []

    class Teacher(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append(body)
            answer = body["messages"][-1]["content"].split("which is ", 1)[1].split(".\n", 1)[0]
            reply = {"choices": [{"message": {"content": f"Step 1 (Idea): double.\n"
                                              f"Therefore, the final answer is: $\\boxed{{{answer}}}$"}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Teacher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        paper = load_config(["params.yaml", "config/qwen3-1.7b.yaml"])
        assert paper["traces"]["teacher"]["enable_thinking"] is False
        assert paper["traces"]["teacher"]["http_concurrency"] >= 64
        cfg = tmp_path / "teacher.yaml"
        cfg.write_text(f"traces:\n  mode: rewrite\n  teacher:\n    base_url: http://127.0.0.1:{server.server_port}/v1\n"
                       "    enable_thinking: false\n    http_concurrency: 4\n")
        kept, report = build_traces(_real_items(40)[:5], load_config(["params.yaml", str(cfg)]),
                                    cache_path=tmp_path / "cache.jsonl", progress=False)
    finally:
        server.shutdown()
    assert len(bodies) == 5 and report["n_kept"] == 5
    assert all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in bodies)


def test_a_teacher_prompt_too_long_for_the_server_is_dropped_and_counted(tmp_path, fake_chat_server):
    """Review N11: vLLM answers HTTP 400 for a prompt that cannot fit --max-model-len; that item is a counted
    failure (dropped at paper scale, its original kept under keep_original_if_invalid), not the end of the job."""
    items = _real_items(40)[:6]
    items[2]["solution"] = "very long " * 50

    def reply(body):
        user = body["messages"][-1]["content"]
        if "very long" in user:
            return 400, {"message": "This model's maximum context length is 16384 tokens. However, you requested "
                                    "17408 tokens (16384 in the messages, 1024 in the completion)."}, {}, 0.0
        answer = user.split("which is ", 1)[1].split(".\n", 1)[0]
        return 200, {"choices": [{"message": {"content": "Step 1 (Idea): double.\n"
                                              f"Therefore, the final answer is: $\\boxed{{{answer}}}$"}}]}, {}, 0.0

    server = fake_chat_server(reply)
    cfg = tmp_path / "teacher.yaml"
    cfg.write_text(f"traces:\n  mode: rewrite\n  teacher:\n    base_url: {server.url}\n    http_concurrency: 3\n")
    config = load_config(["params.yaml", str(cfg)])
    cache = tmp_path / "cache.jsonl"
    kept, report = build_traces(items, config, cache_path=cache, progress=False)
    assert report["teacher_rejected"] == 1 and report["dropped_by_reason"] == {"teacher_rejected": 1}
    assert [k["id"] for k in kept] == [i["id"] for i in items if i["id"] != items[2]["id"]]
    assert len(read_jsonl(cache)) == 5  # the rejection is not cached: a rerun with a larger window asks again
    config["traces"]["keep_original_if_invalid"] = True
    kept, report = build_traces(items, config, cache_path=cache, progress=False)
    assert len(kept) == 6 and kept[2]["trace"] == items[2]["solution"] and report["teacher_rejected"] == 1
    assert len(server.requests) == 6 + 1  # the second run: only the rejected prompt again


MODELS_SERVER = """
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = json.dumps({"object": "list", "data": [{"id": sys.argv[2], "object": "model"}]}).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(data)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_the_teacher_servers_health_check_wants_the_teacher_model(tmp_path):
    """Review N11: any server answering /v1/models used to pass, e.g. someone else's on the same port."""
    import socket
    import sys

    from rarft.serve import running_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(RuntimeError, match="serves \\['other/model'\\], not the teacher 'Qwen/Qwen3-235B-A22B'"):
        with running_server([sys.executable, "-c", MODELS_SERVER, str(port), "other/model"], url, tmp_path / "log",
                            60, poll_s=0.2, served_model="Qwen/Qwen3-235B-A22B"):
            pass
    with running_server([sys.executable, "-c", MODELS_SERVER, str(port), "Qwen/Qwen3-235B-A22B"], url,
                        tmp_path / "log", 60, poll_s=0.2, served_model="Qwen/Qwen3-235B-A22B") as proc:
        assert proc.poll() is None
