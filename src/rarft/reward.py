"""The paper's reward: the last ``\\boxed{}`` of a response's answer, verified against the gold by math-verify.

A thinking model's answer is what follows its last ``</think>``: a box inside the thinking does not count,
and a response whose thinking never closed (cut off at the token limit) scores 0. This is TRL's
``reasoning_accuracy_reward`` rule (trl/rewards/accuracy_rewards.py: text after the last ``</think>``,
0.0 for incomplete reasoning). A response "thinks" when it contains ``<think>`` or when the chat template
opened the block itself (``policy.enable_thinking``; passed as ``thinking``); without either, the whole
response is the answer, as before.

math-verify bounds its own work with SIGALRM, which only works in the main thread; TRL, thread pools and
worker processes call rewards elsewhere. So verification runs with math-verify's timeouts off inside a
small worker subprocess (one per calling process, shared by its threads), which is killed and restarted
when a call exceeds ``VERIFY_TIMEOUT_S``: a hard limit that also covers time spent in C code (regex
backtracking) that no signal can interrupt. Answers are memoised on (normalised answer, gold), so the
few distinct answers a batch of samples repeats are verified once. A pre-check rejects answers no
benchmark has (very long, or deeply nested braces, whose parse time grows exponentially with depth).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
from functools import lru_cache
from pathlib import Path

VERIFY_TIMEOUT_S = 5.0
# a fresh worker's start-up (python + sympy import): waited for separately, so that each verification,
# also the first after a restart, gets exactly VERIFY_TIMEOUT_S (review D5: a restart used to get 35 s)
WORKER_STARTUP_TIMEOUT_S = 120.0
MAX_ANSWER_CHARS = 400
MAX_BRACE_DEPTH = 6  # a 10-deep nest already takes ~1 s to parse, 20-deep minutes

# Only the braced form. `\boxed 12` (no braces) scores 0 (review D5): every math-verify boxed pattern
# needs `\boxed{` (math_verify/parser.py, make_latex_env_pattern and the plain-boxed regex) and no extraction
# setting changes that, and TeX itself reads `\boxed 12` as `\boxed{1}2`, so there is no right reading to
# accept. Models rarely write it, and it scores 0 the same way for every arm.
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def extract_boxed(text: str) -> str | None:
    """Content of the LAST ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced; None if none.

    An unclosed last box (a truncated response) yields None rather than an earlier box: the model's
    final answer is the last one it started.
    """
    if not isinstance(text, str):
        return None
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    if not starts:
        return None
    start = starts[-1]
    depth = 1
    for i in range(start, len(text)):
        c = text[i]
        escaped = text[i - 1] == "\\"  # \{ and \} (set braces) are content, not structure
        if c == "{" and not escaped:
            depth += 1
        elif c == "}" and not escaped:
            depth -= 1
            if depth == 0:
                return text[start:i].strip()
    return None


def final_answer_text(completion: str, thinking: bool = False) -> str | None:
    """The part of ``completion`` that holds its final answer: the text after the last ``</think>``; None
    when the response thinks (``thinking``, or a ``<think>`` in it) and its thinking never closed; the
    whole text for a response that does not think."""
    if not isinstance(completion, str):
        return None
    if THINK_CLOSE in completion:
        return completion.rsplit(THINK_CLOSE, 1)[1]
    if thinking or THINK_OPEN in completion:
        return None
    return completion


def extract_answer(completion: str, thinking: bool = False) -> str | None:
    """The boxed final answer of a response (`final_answer_text`, then `extract_boxed`), or None."""
    answer_text = final_answer_text(completion, thinking)
    return None if answer_text is None else extract_boxed(answer_text)


def normalise_answer(answer: str) -> str:
    """Memo key: whitespace collapsed, surrounding $ and a trailing period dropped (meaning unchanged)."""
    answer = re.sub(r"\s+", " ", answer).strip()
    answer = answer.strip("$").strip()
    return answer[:-1].rstrip() if answer.endswith(".") else answer


def _brace_depth(s: str) -> int:
    depth = best = 0
    for c in s:
        if c == "{":
            depth += 1
            best = max(best, depth)
        elif c == "}":
            depth -= 1
    return best


def plausible_answer(answer: str) -> bool:
    """False for answers too long or too deeply nested to be a final answer (and slow to parse)."""
    return 0 < len(answer) <= MAX_ANSWER_CHARS and _brace_depth(answer) <= MAX_BRACE_DEPTH


# ---- verification proper (runs inside the worker subprocess) ----

def verify_answer(answer: str, gold: str) -> bool:
    """math-verify's verdict for an extracted answer against the gold, math-verify timeouts off.

    Only call where a hard time limit is enforced around it (the worker subprocess does that).
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold_parsed = parse(f"${gold}$", parsing_timeout=None)
    if not gold_parsed:
        return False
    pred = parse("\\boxed{" + answer + "}", parsing_timeout=None,
                 extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()])
    return bool(pred) and bool(verify(gold_parsed, pred, timeout_seconds=None))


def _worker_main() -> None:
    """Subprocess loop: one JSON [answer, gold] per stdin line -> '1' or '0' per stdout line."""
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # the "timeout disabled" warning: we bound it
    import math_verify  # noqa: F401  (imported before saying ready: the start-up is not a verification's time)

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            answer, gold = json.loads(line)
            ok = verify_answer(answer, gold)
        except Exception:  # a parse/verify failure is a wrong answer, never a crash of the worker
            ok = False
        sys.stdout.write("1\n" if ok else "0\n")
        sys.stdout.flush()


class _Worker:
    """One verification subprocess per calling process; a lock serialises threads' calls to it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.ready = False  # the live worker has finished its imports
        self.pid = os.getpid()

    def _spawn(self) -> None:
        """Start a worker without waiting for it: its imports run while the caller goes on."""
        src = str(Path(__file__).resolve().parents[1])  # the child imports rarft from where we did
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
                   OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from rarft.reward import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1, env=env,
        )
        self.ready = False

    def _wait_ready(self) -> bool:
        """Whether a live worker has said it is ready (started if needed); its start-up has its own limit."""
        if self.proc is None or self.proc.poll() is not None:
            self._spawn()
        if not self.ready:
            answered, _, _ = select.select([self.proc.stdout], [], [], WORKER_STARTUP_TIMEOUT_S)
            if not answered or self.proc.stdout.readline().strip() != "ready":
                self.kill()
                return False
            self.ready = True
        return True

    def kill(self) -> None:
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except Exception:
                pass
            self.proc = None

    def verify(self, answer: str, gold: str, timeout: float) -> bool | None:
        """The verdict, or None when the call ran past ``timeout`` (the worker is then replaced)."""
        with self.lock:
            if self.pid != os.getpid():  # forked child: the parent's pipe is not ours to use
                self.proc, self.ready, self.pid = None, False, os.getpid()
            # a (re)started worker's start-up is waited for apart (`_wait_ready`): the window below is `timeout`
            if not self._wait_ready():
                return None
            try:
                self.proc.stdin.write(json.dumps([answer, gold]) + "\n")
                self.proc.stdin.flush()
                ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
                reply = self.proc.stdout.readline() if ready else ""
            except (BrokenPipeError, OSError):
                reply = ""
            if reply.strip() in ("0", "1"):
                return reply.strip() == "1"
            self.kill()  # timed out or died: never reuse a worker in an unknown state
            self._spawn()  # its replacement imports now, not inside the next call's window
            return None


_WORKER = _Worker()


def close_worker() -> None:
    """Stop this process's verification subprocess (it is restarted on the next call)."""
    with _WORKER.lock:
        _WORKER.kill()


import atexit  # noqa: E402  (registered next to the worker it cleans up)

atexit.register(close_worker)


@lru_cache(maxsize=1 << 16)
def _cached_verdict(answer: str, gold: str) -> float:
    return 1.0 if _WORKER.verify(answer, gold, VERIFY_TIMEOUT_S) else 0.0  # a timeout counts as wrong


def answer_reward(answer: str | None, gold: str, memoise: bool = True) -> float:
    """1.0 if the extracted ``answer`` equals ``gold`` by math-verify, else 0.0 (None/implausible -> 0.0)."""
    if answer is None:
        return 0.0
    answer, gold = normalise_answer(answer), str(gold).strip()
    if not plausible_answer(answer) or not gold:
        return 0.0
    if memoise:
        return _cached_verdict(answer, gold)
    return 1.0 if _WORKER.verify(answer, gold, VERIFY_TIMEOUT_S) else 0.0


def math_reward(completion: str, gold: str, memoise: bool = True, thinking: bool = False) -> float:
    """The paper's reward: 1.0 if the last \\boxed{} of ``completion``'s final answer (after its thinking:
    `final_answer_text`) verifies against ``gold``, else 0.0. ``thinking``: the chat template opened a
    thinking block (``policy.enable_thinking``), so a response without ``</think>`` never finished thinking.

    Never raises and never hangs (hard per-call limit); safe from any thread or process.
    """
    try:
        return answer_reward(extract_answer(completion, thinking), gold, memoise=memoise)
    except Exception:
        return 0.0


def completion_text(completion) -> str:
    """A TRL completion as text: a plain string, or conversational messages (assistant contents joined)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)):
        return "".join(str(m.get("content") or "") for m in completion
                       if isinstance(m, dict) and m.get("role", "assistant") == "assistant")
    return ""


class AccuracyReward:
    """TRL reward function: ``answer`` is the dataset's gold column (one per completion). ``thinking``:
    the policy's chat template thinks (``policy.enable_thinking``), see `math_reward`. A class, not a
    closure, so it pickles (TRL's async rollout worker sends reward functions to a child process)."""

    __name__ = "accuracy_reward"  # TRL names the reward's logged metrics after it

    def __init__(self, thinking: bool = False):
        self.thinking = bool(thinking)

    def __call__(self, completions, answer, **kwargs) -> list[float]:
        if isinstance(answer, str):
            answer = [answer] * len(completions)
        return [math_reward(completion_text(c), str(a), thinking=self.thinking) for c, a in zip(completions, answer)]


accuracy_reward = AccuracyReward(thinking=False)  # a response thinks only if it opened <think> itself


def accuracy_reward_for(config: dict) -> AccuracyReward:
    """The reward for the policy of ``config``: thinking as ``policy.enable_thinking`` says."""
    return AccuracyReward(thinking=config["policy"]["enable_thinking"])
