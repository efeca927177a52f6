"""The paper's reward on tricky pairs; verdicts checked against math-verify 0.9 itself, not guessed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rarft import reward
from rarft.reward import AccuracyReward, accuracy_reward, accuracy_reward_for, extract_boxed, math_reward

DEEP = "{" * 200 + "1" + "}" * 200

# (completion, gold, expected reward). Each verdict was observed with math-verify 0.9.
TRICKY = [
    ("The answer is \\boxed{0.5}.", "\\frac{1}{2}", 1.0),          # decimal vs fraction
    ("\\boxed{\\dfrac{1}{2}}", "\\frac12", 1.0),                     # \dfrac, \frac12 shorthand
    ("\\boxed{1/2}", "0.5", 1.0),
    ("\\boxed{0.333}", "\\frac13", 0.0),                             # a rounded decimal is not 1/3
    ("\\boxed{10\\text{ cm}}", "10", 1.0),                          # units dropped
    ("\\boxed{30^\\circ}", "30", 1.0),
    ("\\boxed{\\$5}", "5", 1.0),
    ("\\boxed{50\\%}", "0.5", 0.0),                                  # math-verify does not equate these
    ("\\boxed{\\{1,2\\}}", "\\{2,1\\}", 1.0),                        # sets: order free
    ("\\boxed{2,3}", "3,2", 1.0),
    ("\\boxed{[1,2)}", "[1,2)", 1.0),                                # intervals: ends matter
    ("\\boxed{(1,2)}", "[1,2]", 0.0),
    ("\\boxed{x = 3}", "3", 1.0),                                    # an assignment counts as its value
    ("\\boxed{3}", "x=3", 1.0),
    ("\\boxed{1,000}", "1000", 1.0),                                 # thousands separator
    ("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt2}{2}", 1.0),
    ("\\boxed{\\pi}", "3.14159", 0.0),
    ("The answer is 3.", "3", 0.0),                                  # missing box: no credit
    ("\\boxed{3} no wait, \\boxed{4}", "4", 1.0),                    # several boxes: the last counts
    ("\\boxed{3} no wait, \\boxed{4}", "3", 0.0),
    ("\\boxed{3} then \\boxed{4", "3", 0.0),                         # truncated last box: no answer
    ("", "3", 0.0),                                                  # empty output
    ("\\boxed{}", "3", 0.0),
    ("\\boxed{3}", "", 0.0),                                         # empty gold never matches
    ("\\boxed{" + DEEP + "}", "1", 0.0),                             # pathological LaTeX
    ("<think>\n\n</think>\n\nStep 1 ... $\\boxed{42}$", "42", 1.0),  # thinking block, $-wrapped box
    # review D4 (TRL's reasoning_accuracy_reward rule): the answer is what follows the last </think>
    ("<think>try \\boxed{41}</think>So \\boxed{42}", "42", 1.0),  # closed thinking, box after it
    ("<think>so \\boxed{42}</think>The answer is 42.", "42", 0.0),  # box only inside the thinking
    ("<think>so \\boxed{42}</think>Final: \\boxed{41}", "42", 0.0),  # the visible answer differs
    ("<think>long reasoning ... \\boxed{42} and then cut off", "42", 0.0),  # thinking never closed
    ("\\boxed 12", "12", 0.0),  # no braces: math-verify has no braceless pattern (reward.py's comment)
]


@pytest.mark.parametrize("completion,gold,expected", TRICKY)
def test_tricky_pairs(completion, gold, expected):
    assert math_reward(completion, gold) == expected
    assert math_reward(completion, gold, memoise=False) == expected


def test_thinking_template_needs_a_closed_thinking_block():
    # policy.enable_thinking: the template opened <think> itself, so the response shows only </think>
    assert math_reward("reasoning ...</think>\n\n\\boxed{42}", "42", thinking=True) == 1.0
    assert math_reward("reasoning ... \\boxed{42} (cut off)", "42", thinking=True) == 0.0
    assert math_reward("\\boxed{42}", "42", thinking=True) == 0.0  # no thinking at all: TRL's 0 too
    # non-thinking mode: a response without any think tag is scored as before
    assert math_reward("\\boxed{42}", "42", thinking=False) == 1.0
    assert math_reward("\\boxed{42}", "42") == 1.0
    completions = [[{"role": "assistant", "content": "\\boxed{7}"}], "hm</think>\\boxed{7}"]
    assert accuracy_reward_for({"policy": {"enable_thinking": True}})(completions, answer="7") == [0.0, 1.0]
    assert accuracy_reward_for({"policy": {"enable_thinking": False}})(completions, answer="7") == [1.0, 1.0]


def test_accuracy_reward_pickles_and_keeps_its_name():
    import pickle

    reward_fn = pickle.loads(pickle.dumps(AccuracyReward(thinking=True)))
    assert reward_fn.thinking and reward_fn.__name__ == "accuracy_reward"  # TRL logs rewards/accuracy_reward/...


def test_extract_boxed_last_balanced_and_escaped_braces():
    assert extract_boxed("a \\boxed{1} b \\boxed{\\frac{2}{3}} c") == "\\frac{2}{3}"
    assert extract_boxed("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"
    assert extract_boxed("\\fbox{7}") == "7"
    assert extract_boxed("no box") is None
    assert extract_boxed("\\boxed{3") is None
    assert extract_boxed(None) is None


def test_accuracy_reward_trl_signature_plain_and_conversational():
    completions = ["\\boxed{7}", [{"role": "assistant", "content": "so \\boxed{7}"}],
                   [{"role": "assistant", "content": "\\boxed{8}"}]]
    out = accuracy_reward(prompts=["p"] * 3, completions=completions, completion_ids=[[1]] * 3,
                          answer=["7", "7", "7"], problem_type=["x"] * 3)
    assert out == [1.0, 1.0, 0.0]


def test_memoised_on_normalised_answer(monkeypatch):
    calls = []
    real = reward._WORKER.verify
    monkeypatch.setattr(reward._WORKER, "verify", lambda a, g, t: calls.append((a, g)) or real(a, g, t))
    gold = "\\frac{17}{19}"  # a pair no other test uses, so the cache starts cold for it
    assert math_reward("\\boxed{\\frac{17}{19}}", gold) == 1.0
    assert math_reward("$\\boxed{ \\frac{17}{19} }$ done", gold) == 1.0  # same after normalisation
    assert math_reward("\\boxed{\\frac{17}{19}.}", gold) == 1.0
    assert calls == [("\\frac{17}{19}", gold)]


def test_safe_and_consistent_in_threads():
    pairs = [(c, g) for c, g, _ in TRICKY]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda p: math_reward(p[0], p[1], memoise=False), pairs))
    assert got == [e for _, _, e in TRICKY]


def test_hard_time_limit_kills_a_stuck_verification(monkeypatch):
    # Lift the pre-check so the pathological nest reaches math-verify: only the hard limit stops it.
    monkeypatch.setattr(reward, "MAX_BRACE_DEPTH", 10_000)
    monkeypatch.setattr(reward, "MAX_ANSWER_CHARS", 10_000)  # DEEP is 401 characters
    monkeypatch.setattr(reward, "VERIFY_TIMEOUT_S", 1.0)
    math_reward("\\boxed{1}", "1", memoise=False)  # worker warm, so the limit below is the 1 s
    result = {}

    def run():
        t = time.monotonic()
        result["r"] = math_reward("\\boxed{" + DEEP + "}", "1", memoise=False)
        result["t"] = time.monotonic() - t

    th = threading.Thread(target=run)  # off the main thread, where SIGALRM cannot help
    th.start()
    th.join(60)
    assert not th.is_alive() and result["r"] == 0.0 and result["t"] < 30
    assert math_reward("\\boxed{2}", "2", memoise=False) == 1.0  # a fresh worker took over


def test_consecutive_hangs_each_cost_the_timeout_not_the_startup_allowance(monkeypatch):
    # review D5: the first call after a restart had a 35 s window (5 s + 30 s start-up allowance), so a run
    # of hanging answers cost 35 s each. Now the start-up is waited for apart and the window is the timeout.
    monkeypatch.setattr(reward, "MAX_BRACE_DEPTH", 10_000)
    monkeypatch.setattr(reward, "MAX_ANSWER_CHARS", 10_000)  # DEEP is 401 characters
    monkeypatch.setattr(reward, "VERIFY_TIMEOUT_S", 1.0)
    math_reward("\\boxed{1}", "1", memoise=False)
    windows = []
    real_select = reward.select.select

    def recording_select(rlist, wlist, xlist, timeout):
        windows.append(timeout)
        return real_select(rlist, wlist, xlist, timeout)

    monkeypatch.setattr(reward.select, "select", recording_select)
    for _ in range(2):  # the second hang is the first call its restarted worker gets
        t = time.monotonic()
        assert math_reward("\\boxed{" + DEEP + "}", "1", memoise=False) == 0.0
        assert time.monotonic() - t < 25  # was > 31 s for the second one
    verify_windows = [w for w in windows if w != reward.WORKER_STARTUP_TIMEOUT_S]
    assert verify_windows == [1.0, 1.0]
    assert math_reward("\\boxed{2}", "2", memoise=False) == 1.0
