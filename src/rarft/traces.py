"""build-traces: turn every corpus item into a verified cheatsheet trace (the paper's corpus form).

A cheatsheet trace has at most `traces.max_steps` labelled steps ("Step 1 (...): ...") and ends with
the line `Therefore, the final answer is: $\\boxed{...}$`, whose boxed answer math-verify accepts
against the item's gold answer. Two modes:
- validate (the embedded world): the corpus already carries its own traces; check them, keep the valid.
- rewrite (real data): a teacher model (any generation backend) rewrites each original solution into
  that form; its raw outputs are cached on disk as they arrive, so a killed run resumes where it stopped.
Items that fail are dropped and counted by reason in the report.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

from rarft.config import ConfigError, load_config
from rarft.contracts import read_items
from rarft.io import DataError, JsonlAppender, text_sha256, write_json, write_jsonl

FINAL_PREFIX = "Therefore, the final answer is: $\\boxed{"
STEP_RE = re.compile(r"^\s*\**Step\s+(\d+)\b", re.MULTILINE)
THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)

# Drop reasons, in the order they are checked (the report counts each item under its first failure).
# teacher_rejected: the teacher's server refused the prompt (the original solution cannot fit its window).
REASONS = ("teacher_rejected", "no_trace", "no_steps", "too_many_steps", "steps_out_of_order", "no_final_line",
           "wrong_answer")

TEACHER_SYSTEM = (
    "You rewrite math solutions into short cheatsheets that another student can reuse on a "
    "similar problem. Keep the key idea (the theorem, algorithm or technique) explicit."
)
TEACHER_TEMPLATE = """Rewrite the solution below as a cheatsheet.

Rules:
- At most {max_steps} steps, each on its own line, written as "Step N (short label): ...", numbered from 1.
- One step must name the transferable idea: the theorem, formula, algorithm or proof technique used.
- Keep only the computations needed to reach the answer; no chit-chat, no restating the problem.
- The very last line must be exactly: Therefore, the final answer is: $\\boxed{{ANSWER}}$
  with ANSWER replaced by the final answer, which is {answer}.

Problem:
{problem}

Original solution:
{solution}

Cheatsheet:"""


def teacher_prompt(item: dict, max_steps: int) -> list[dict]:
    """Chat messages asking the teacher to rewrite ``item``'s solution into a cheatsheet trace.

    The gold answer is given to the teacher so that it formats the known answer rather than re-solving
    the problem; validation still checks that the boxed answer matches it.
    """
    solution = item.get("solution") or item.get("trace")
    if not solution:
        raise DataError(f"item {item.get('id')!r}: rewrite mode needs a 'solution' (or 'trace') to rewrite")
    user = TEACHER_TEMPLATE.format(max_steps=max_steps, answer=item["answer"], problem=item["problem"],
                                   solution=solution)
    return [{"role": "system", "content": TEACHER_SYSTEM}, {"role": "user", "content": user}]


def clean_teacher_output(text: str) -> str:
    """The cheatsheet part of a teacher's reply: reasoning blocks and anything after the final line removed."""
    text = THINK_RE.sub("", text).strip()
    start = STEP_RE.search(text)
    if start:
        text = text[start.start():]
    end = text.rfind(FINAL_PREFIX)
    if end >= 0:
        line_end = text.find("\n", end)
        text = text[: line_end if line_end >= 0 else len(text)]
    return text.strip()


def check_trace(trace: str | None, gold: str, max_steps: int) -> str | None:
    """None when ``trace`` is a valid cheatsheet for answer ``gold``; otherwise the drop reason."""
    from rarft.reward import math_reward

    if not trace or not trace.strip():
        return "no_trace"
    steps = [int(n) for n in STEP_RE.findall(trace)]
    if not steps:
        return "no_steps"
    if len(steps) > max_steps:
        return "too_many_steps"
    if steps != list(range(1, len(steps) + 1)):
        return "steps_out_of_order"
    last = trace.strip().splitlines()[-1].strip()
    if not (last.startswith(FINAL_PREFIX) and last.endswith("}$")):
        return "no_final_line"
    if math_reward(last, gold) != 1.0:
        return "wrong_answer"
    return None


def validate_traces(items: list[dict], max_steps: int) -> tuple[list[dict], list[dict]]:
    """Split ``items`` into (kept, dropped); each dropped entry is {'id', 'reason'}."""
    kept, dropped = [], []
    for item in items:
        reason = check_trace(item.get("trace"), item["answer"], max_steps)
        if reason is None:
            kept.append(item)
        else:
            dropped.append({"id": item["id"], "reason": reason})
    return kept, dropped


def rewrite_traces(items: list[dict], backend, teacher_model: str, sampling, max_steps: int,
                   cache_path: str | Path, chunk_size: int, progress: bool = True) -> tuple[list[dict], set[str]]:
    """(copies of ``items`` with 'trace' set to the teacher's cleaned rewrite of their solution, ids of the
    items whose prompt the teacher's server rejected: those have trace None).

    Requests go out through `rarft.generation.generate_each` (the HTTP teacher: its concurrency in flight,
    reply by reply; other backends: ``chunk_size`` prompts per call). Every raw teacher output is appended
    to ``cache_path`` keyed by (teacher model, prompt) as soon as it arrives; a rerun sends only the prompts
    that have no cached output. A rejected prompt (`PromptRejected`: it cannot fit the server's window) is
    a per-item failure, counted by build_traces, not cached (a rerun with a larger window asks again).
    """
    from tqdm import tqdm

    from rarft.generation import PromptRejected, generate_each
    from rarft.prompts import prompt_text

    prompts = [teacher_prompt(item, max_steps) for item in items]
    keys = [text_sha256(teacher_model, prompt_text(p)) for p in prompts]
    rejected: set[str] = set()
    with JsonlAppender(cache_path) as cache:
        outputs = {row["key"]: row["output"] for row in cache.rows}
        todo = sorted({k: i for i, k in enumerate(keys) if k not in outputs}.values())
        print(f"build-traces: {len(items) - len(todo)} teacher outputs cached, {len(todo)} to generate")
        with tqdm(total=len(todo), desc="teacher", disable=not progress) as bar:
            for j, comps in generate_each(backend, [prompts[i] for i in todo], sampling, chunk_size):
                i = todo[j]
                if isinstance(comps, PromptRejected):
                    rejected.add(items[i]["id"])
                else:
                    outputs[keys[i]] = comps[0]
                    cache.append({"key": keys[i], "model": teacher_model, "id": items[i]["id"], "output": comps[0]})
                bar.update(1)
    if rejected:
        print(f"build-traces: the teacher's server rejected {len(rejected)} prompts (too long for its window)")
    return [{**item, "trace": clean_teacher_output(outputs[k]) if k in outputs else None}
            for item, k in zip(items, keys)], rejected


def teacher_extra_body(teacher: dict) -> dict | None:
    """Request fields for an OpenAI-compatible teacher: `chat_template_kwargs.enable_thinking` (default false).

    Qwen3-235B-A22B (the hybrid model) thinks by default under `vllm serve`: within max_new_tokens most
    replies would be an unfinished <think> block and the trace would be dropped. The cheatsheet is a
    rewrite of a given solution, so thinking is off unless `traces.teacher.enable_thinking: true`. Hosted
    APIs that reject unknown fields: set it to null to send nothing."""
    if teacher["backend"] != "openai" or teacher["enable_thinking"] is None:
        return None
    return {"chat_template_kwargs": {"enable_thinking": bool(teacher["enable_thinking"])}}


def build_traces(items: list[dict], config: dict, backend=None, cache_path: str | Path | None = None,
                 progress: bool = True) -> tuple[list[dict], dict]:
    """(kept items, report) for the configured mode. ``backend`` overrides the teacher (tests)."""
    mode = config["traces"]["mode"]
    max_steps = config["traces"]["max_steps"]
    report: dict = {"mode": mode, "max_steps": max_steps, "n_in": len(items)}
    if mode == "rewrite":
        from rarft.generation import Sampling, chunk_size_for, make_backend

        teacher = config["traces"]["teacher"]
        if "model" not in teacher:
            raise ConfigError("traces.teacher.model: required in rewrite mode")
        if cache_path is None:
            raise ValueError("rewrite mode needs a cache_path for the teacher outputs")
        sampling = Sampling(n=1, temperature=teacher["temperature"],
                            max_new_tokens=teacher["max_new_tokens"], seed=config["seed"])
        own = backend is None
        if own:
            # The teacher has its own endpoint; everything else about generation is shared config.
            backend = make_backend(teacher["model"], config, backend=teacher["backend"],
                                   base_url=teacher["base_url"], concurrency=teacher["http_concurrency"],
                                   extra_body=teacher_extra_body(teacher))
        concurrency = int(teacher["http_concurrency"] or config["generation"]["http_concurrency"])
        try:
            items, rejected = rewrite_traces(items, backend, teacher["model"], sampling, max_steps, cache_path,
                                             chunk_size=chunk_size_for(concurrency), progress=progress)
        finally:
            if own:
                backend.close()
        report["teacher"] = teacher["model"]
        report["teacher_rejected"] = len(rejected)
    elif mode != "validate":
        raise ConfigError(f"traces.mode: unknown mode {mode!r} (validate | rewrite)")
    else:
        rejected = set()
    kept, dropped = validate_traces(items, max_steps)
    # an item the teacher never saw is dropped under its own reason (at paper scale an original solution
    # too long for a 16k window is no cheatsheet); keep_original_if_invalid (rehearsal) keeps it as below
    dropped = [{**d, "reason": "teacher_rejected"} if d["id"] in rejected else d for d in dropped]
    if mode == "rewrite" and config["traces"]["keep_original_if_invalid"]:
        # config/rehearsal.yaml only (never at paper scale): its untrained teacher writes no valid cheatsheet,
        # so the original solution stays the trace and the DAG goes on; the report still counts every failure
        bad = {d["id"] for d in dropped}
        kept = [{**i, "trace": i.get("solution") or i.get("trace")} if i["id"] in bad else i for i in items]
        report["kept_original_solution"] = len(bad)
    counts = Counter(d["reason"] for d in dropped)
    report.update({"n_kept": len(kept), "n_dropped": len(dropped),
                   "dropped_by_reason": {r: counts[r] for r in REASONS if counts[r]},
                   "kept_by_problem_type": dict(sorted(Counter(k.get("problem_type") for k in kept).items())),
                   "dropped": dropped})
    return kept, report


def train_traces_needed(config: dict) -> bool:
    """Whether build-traces must also give the training queries traces: SFT / RA-SFT imitate the queries'
    own traces, and in rewrite mode (real data) only the teacher makes them. The world's queries carry theirs."""
    from rarft.arms import trainer_of

    return config["traces"]["mode"] == "rewrite" and any(
        trainer_of(arm) == "sft" for arm in config["rl"]["arms"])


def train_traces(train: list[dict], solutions: list[dict], config: dict, backend=None,
                 cache_path: str | Path | None = None, progress: bool = True) -> tuple[list[dict], dict]:
    """(every training query, report): a query's 'trace' is the teacher's verified cheatsheet of its solution,
    or None. A query without a solution of its own takes that of the same problem (same normalised text) in
    ``solutions``: the prepared corpus before decontamination, since QuestA's problems come from
    OpenR1-Math-220k with their solutions there. RL arms use every query; SFT arms those with a trace."""
    from rarft.prompts import normalise_text

    by_text = {normalise_text(s["problem"]): s["solution"] for s in solutions if s.get("solution")}
    todo = []
    for item in train:
        solution = item.get("solution") or by_text.get(normalise_text(item["problem"]))
        if solution:
            todo.append({**item, "solution": solution})
    report = {"n_queries": len(train), "n_without_solution": len(train) - len(todo)}
    traces = {}
    if todo:
        kept, rewrite = build_traces(todo, config, backend=backend, cache_path=cache_path, progress=progress)
        traces = {k["id"]: k["trace"] for k in kept}
        report.update(rewrite)
    report["n_with_trace"] = len(traces)
    return [{**item, "trace": traces.get(item["id"])} for item in train], report


def cli(argv: list[str]) -> int:
    from rarft.config import add_config_argument

    p = argparse.ArgumentParser(prog="rarft build-traces", description=__doc__.splitlines()[0])
    add_config_argument(p)
    p.add_argument("--corpus", required=True, help="input corpus JSONL (data/clean/corpus.jsonl)")
    p.add_argument("--out", required=True, help="output corpus with verified traces (data/traces/corpus.jsonl)")
    p.add_argument("--report", required=True, help="kept/dropped report JSON (results/reports/traces.json)")
    p.add_argument("--cache", default=None,
                   help="teacher output cache for rewrite mode (default: <out dir>/teacher_cache.jsonl)")
    p.add_argument("--train", help="training queries (data/clean/train.jsonl): also write their traces (SFT arms)")
    p.add_argument("--solutions", help="where training queries without a solution find one by problem text "
                   "(data/prepared/corpus.jsonl)")
    p.add_argument("--train-out", help="training queries with traces (data/traces/train.jsonl)")
    args = p.parse_args(argv)
    if bool(args.train) != bool(args.train_out):
        raise ConfigError("build-traces: --train and --train-out go together")
    config = load_config(args.config)
    items = read_items(args.corpus, need=("answer",))
    cache = args.cache or str(Path(args.out).parent / "teacher_cache.jsonl")
    from rarft.serve import teacher_server

    with teacher_server(config, Path(cache).parent) as config:  # starts `vllm serve` if traces.teacher.serve
        kept, report = build_traces(items, config, cache_path=cache)
        if not kept:
            raise DataError(f"{args.corpus}: no item has a valid trace ({report['dropped_by_reason']})")
        if args.train:
            queries, train_report = train_traces(read_items(args.train, need=("answer",)),
                                                 read_items(args.solutions) if args.solutions else [], config,
                                                 cache_path=cache)
    if args.train:
        if not train_report["n_with_trace"]:
            raise DataError(f"{args.train}: no training query got a valid trace ({train_report}); the SFT arms "
                            "(rl.arms sft, rasft) have nothing to imitate")
        report["train"] = train_report
        write_jsonl(args.train_out, queries)
        print(f"build-traces: {train_report['n_with_trace']}/{len(queries)} training queries have a trace "
              f"-> {args.train_out}")
    write_jsonl(args.out, kept)
    write_json(args.report, report)
    print(f"build-traces ({report['mode']}): kept {report['n_kept']}/{report['n_in']}, "
          f"dropped {report['n_dropped']} {report['dropped_by_reason']} -> {args.out}")
    return 0
