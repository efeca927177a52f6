"""Gold-relevance labels: which corpus traces help which training problems (stage `label-relevance`,
rule label_relevance).

label-relevance --labeler {gain,judge,oracle}: one row per (query, candidate) pair of
data/labels/candidates.jsonl (drawn by rarft.candidates, stage sample-candidates), see docs/architecture.md.
  gain   the paper's Eq. 1 measured: P(correct | q, c) - P(correct | q) under the policy, n rollouts each.
  judge  the paper's labeler: an LLM reads both question/answer pairs, justifies, then says yes/no.
  oracle embedded world only: same latent strategy = relevant (to score the other two, never trained on
         by default).
(compare-labelers, which scores the labelers against each other, is rarft.labels_compare.)

Long labelers append to an on-disk cache as results arrive (`<out>.cache.jsonl`), so a killed or
quota-limited run resumes and pays only for what is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from pathlib import Path

from rarft.config import ConfigError, add_config_argument, load_config
from rarft.contracts import check_candidates, read_candidates, read_items
from rarft.io import DataError, JsonlAppender, model_fingerprint, text_sha256, write_jsonl
from rarft.world import analogous

LABELERS = ("gain", "judge", "oracle")


# what the labelers read of an item (rarft.contracts.read_items adds id and problem)
ITEM_NEED = ("answer", "problem_type")


def _pairs(candidates: list[dict], queries: dict, corpus: dict, path: str) -> list[tuple[dict, list[dict]]]:
    """[(query, [candidate items])] with every id checked against the splits (rarft.contracts)."""
    check_candidates(candidates, path, queries, corpus)
    return [(queries[r["query_id"]], [corpus[c] for c in r["candidates"]]) for r in candidates]


# ---------------------------------------------------------------------------------------------------
# oracle
# ---------------------------------------------------------------------------------------------------

def oracle_labels(pairs: list[tuple[dict, list[dict]]]) -> list[dict]:
    rows = []
    for q, cands in pairs:
        for c in cands:
            if q.get("strategy") is None or c.get("strategy") is None:
                bad = q["id"] if q.get("strategy") is None else c["id"]
                raise DataError(f"oracle labeler: item {bad!r} has no 'strategy' (the oracle exists only on "
                                "the embedded world)")
            label = int(analogous(q, c))
            rows.append({"query_id": q["id"], "context_id": c["id"], "label": label, "score": float(label),
                         "stderr": None, "labeler": "oracle"})
    return rows


# ---------------------------------------------------------------------------------------------------
# gain
# ---------------------------------------------------------------------------------------------------

def gain_estimate(correct_with: int, correct_base: int, n_with: int, n_base: int) -> tuple[float, float]:
    """(gain, stderr): difference of two independent binomial means and its plug-in standard error."""
    p1, p0 = correct_with / n_with, correct_base / n_base
    return p1 - p0, math.sqrt(p1 * (1 - p1) / n_with + p0 * (1 - p0) / n_base)


def gain_labels(pairs: list[tuple[dict, list[dict]]], backend, sampling, threshold: float, cache_path,
                fingerprint: str, sequences_per_call: int, thinking: bool, progress: bool = True) -> list[dict]:
    """Measured Eq. 1 for every (query, candidate) pair.

    Per query: the plain prompt plus one prompt per candidate, each sampled ``sampling.n`` times, all in
    one generate call (several queries per call up to ``sequences_per_call`` sequences), so the backend
    batches them and vLLM's prefix cache reuses every shared prompt prefix. P(correct | q) is estimated
    once per query and shared by its candidates (their gains are therefore correlated within a query;
    each stderr is still the right marginal one). Every prompt has its own seed, derived from the query and
    the candidate (review D8: under vLLM one seed per call made the plain and the candidate prompts' samples
    common random numbers, not the independent draws the stderr assumes). ``thinking``: the policy's
    template thinks (rarft.reward). One cache row per query, appended when it is done.
    """
    from tqdm import tqdm

    from rarft.prompts import build_prompt
    from rarft.reward import math_reward

    settings = json.dumps({k: getattr(sampling, k) for k in ("n", "temperature", "top_p", "max_new_tokens")})

    def key(q, cands):
        return text_sha256(fingerprint, settings, q["id"], *[c["id"] for c in cands])

    with JsonlAppender(cache_path) as cache:
        done = {row["key"]: row for row in cache.rows}
        todo = [(q, c) for q, c in pairs if key(q, c) not in done]
        print(f"label-relevance gain: {len(pairs) - len(todo)} queries cached, {len(todo)} to sample "
              f"({sum(len(c) + 1 for _, c in todo) * sampling.n} rollouts)")
        per_call = max(1, sequences_per_call // max(1, (1 + max((len(c) for _, c in pairs), default=0)) * sampling.n))
        bar = tqdm(total=len(todo), desc="gain", unit="query", disable=not progress)
        for start in range(0, len(todo), per_call):
            group = todo[start:start + per_call]
            prompts, spans, seeds = [], [], []
            for q, cands in group:
                spans.append((len(prompts), len(cands) + 1))
                prompts.append(build_prompt(q["problem"]))
                prompts += [build_prompt(q["problem"], [c], target_id=q["id"]) for c in cands]
                seeds += [prompt_seed(q["id"], None)] + [prompt_seed(q["id"], c["id"]) for c in cands]
            # backends without per-prompt seeds (transformers) draw every sample from one advancing stream,
            # seeded per call as before (the world's labels do not change)
            call_seed = int(text_sha256(group[0][0]["id"])[:8], 16)
            completions = backend.generate(prompts, dataclasses.replace(sampling, seed=call_seed, seeds=tuple(seeds)))
            for (q, cands), (lo, n_prompts) in zip(group, spans):
                correct = [int(sum(math_reward(t, q["answer"], thinking=thinking) for t in comps))
                           for comps in completions[lo:lo + n_prompts]]
                row = {"key": key(q, cands), "query_id": q["id"], "n": sampling.n, "correct_base": correct[0],
                       "correct_with": {c["id"]: k for c, k in zip(cands, correct[1:])}}
                cache.append(row)
                done[row["key"]] = row
            bar.update(len(group))
        bar.close()
    rows = []
    for q, cands in pairs:
        hit = done[key(q, cands)]
        for c in cands:
            g, se = gain_estimate(hit["correct_with"][c["id"]], hit["correct_base"], hit["n"], hit["n"])
            rows.append({"query_id": q["id"], "context_id": c["id"], "label": int(g > threshold), "score": g,
                         "stderr": se, "labeler": "gain", "p_context": hit["correct_with"][c["id"]] / hit["n"],
                         "p_base": hit["correct_base"] / hit["n"], "n_samples": hit["n"]})
    return rows


def prompt_seed(query_id: str, context_id: str | None) -> int:
    """The sampling seed of one gain prompt: the query alone (``context_id`` None) or with one candidate."""
    return int(text_sha256("gain", query_id, "" if context_id is None else context_id)[:8], 16)


# ---------------------------------------------------------------------------------------------------
# judge
# ---------------------------------------------------------------------------------------------------

JUDGE_SYSTEM = ("You are an expert mathematics coach. You decide whether a solved reference problem would "
                "help a student solve a new problem by analogy.")
JUDGE_TEMPLATE = """New problem:
{q_problem}

Its solution:
{q_answer}

Reference problem:
{c_problem}

Reference solution:
{c_answer}

Do the two problems share transferable reasoning: the same theorem, formula, algorithm or proof technique, whatever their story, wording or numbers? Surface similarity alone does not count.
First write "Justification:" followed by at most three sentences. Then, on the last line, write exactly "Verdict: yes" or "Verdict: no"."""  # noqa: E501

_VERDICT_RE = re.compile(r"(?:verdict|final answer|answer|decision)[\s:*_`\"'(\[=-]*(yes|no)\b", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*(yes|no)\s*\}?\s*\}", re.IGNORECASE)
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)


def judge_prompt(query: dict, cand: dict) -> list[dict]:
    def answer(item):
        worked = item.get("solution") or item.get("trace")
        return worked if worked else f"The final answer is {item['answer']}."

    user = JUDGE_TEMPLATE.format(q_problem=query["problem"], q_answer=answer(query),
                                 c_problem=cand["problem"], c_answer=answer(cand))
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str) -> tuple[int | None, str]:
    """(1 | 0 | None, justification) from a judge reply. The LAST explicit verdict counts; a reply whose
    last line is a bare yes/no counts too; anything else is unparsable (None), never guessed."""
    text = _THINK_RE.sub("", text or "").strip()
    matches = list(_VERDICT_RE.finditer(text)) or list(_BOXED_RE.finditer(text))
    if matches:
        m = matches[-1]
        verdict, body = m.group(1).lower(), text[:m.start()]
    else:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        last = re.sub(r"[^a-z]", "", lines[-1].lower()) if lines else ""
        if last not in ("yes", "no"):
            return None, text
        verdict, body = last, "\n".join(lines[:-1])
    body = re.sub(r"^\s*\**justification\**\s*:?\**\s*", "", body.strip(), flags=re.IGNORECASE).strip()
    return (1 if verdict == "yes" else 0), body


def judge_labels(pairs: list[tuple[dict, list[dict]]], backend, model: str, sampling, cache_path,
                 chunk_size: int, dry_run: bool = False, progress: bool = True) -> list[dict] | None:
    """Judge every same-problem_type pair; every reply is cached keyed by (judge model, prompt).

    Prints the number of calls still to make and an estimate of their tokens before making any
    (prompt tokens ~ characters / 4; completion tokens at most max_new_tokens each). With ``dry_run``
    it stops there and returns None. Requests go out through `rarft.generation.generate_each`: the HTTP
    judge keeps labels.judge.http_concurrency in flight over all pairs and each reply is cached as it
    arrives, so a kill loses only those in flight (other backends: ``chunk_size`` prompts per call). A pair
    the judge's server cannot fit (`PromptRejected`) gets no label (null, like an unparsable reply), is not
    cached (a rerun asks again) and is counted in the rows' ``error`` and the stage's summary line.
    """
    from tqdm import tqdm

    from rarft.generation import PromptRejected, generate_each

    jobs, skipped = [], 0
    for q, cands in pairs:
        for c in cands:
            if c["problem_type"] != q["problem_type"]:
                skipped += 1  # the paper's filter: the judge only sees same-type pairs
                continue
            msgs = judge_prompt(q, c)
            jobs.append((q["id"], c["id"], msgs, text_sha256(model, json.dumps(msgs, sort_keys=True))))
    with JsonlAppender(cache_path) as cache:
        replies = {row["key"]: row["output"] for row in cache.rows}
        todo = list({k: (qid, cid, msgs, k) for qid, cid, msgs, k in jobs if k not in replies}.values())
        prompt_tokens = sum(sum(len(m["content"]) for m in msgs) for _, _, msgs, _ in todo) // 4
        print(f"label-relevance judge ({model}): {len(jobs)} pairs, {len(jobs) - len(todo)} cached, "
              f"{len(todo)} calls to make; estimated ~{prompt_tokens:,} prompt tokens + at most "
              f"{len(todo) * sampling.max_new_tokens:,} completion tokens; {skipped} cross-type pairs skipped")
        if dry_run:
            return None
        rejected: dict[str, str] = {}
        with tqdm(total=len(todo), desc="judge", disable=not progress) as bar:
            for i, comps in generate_each(backend, [msgs for _, _, msgs, _ in todo], sampling, chunk_size):
                qid, cid, _, k = todo[i]
                if isinstance(comps, PromptRejected):
                    rejected[k] = str(comps)
                else:
                    cache.append({"key": k, "model": model, "query_id": qid, "context_id": cid,
                                  "output": comps[0]})
                    replies[k] = comps[0]
                bar.update(1)
    if rejected:
        print(f"label-relevance judge: {len(rejected)} prompts rejected by the server (too long for its window); "
              "their pairs have no label")
    rows = []
    for qid, cid, _, k in jobs:
        label, why = parse_verdict(replies[k]) if k in replies else (None, "")
        row = {"query_id": qid, "context_id": cid, "label": label,
               "score": None if label is None else float(label), "stderr": None, "labeler": "judge",
               "justification": why}
        if k in rejected:
            row["error"] = rejected[k][:300]
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------
# one interface
# ---------------------------------------------------------------------------------------------------

def label_relevance(labeler: str, queries: list[dict], corpus: list[dict], candidates: list[dict], config: dict, *,
                    backend=None, policy_dir: str | None = None, cache_path=None, dry_run: bool = False,
                    candidates_path: str = "candidates", progress: bool = True) -> list[dict] | None:
    """Label rows for every (query, candidate) pair with the named labeler.

    ``backend`` replaces the one built from config (the policy for gain, the judge LLM for judge).
    ``cache_path`` is required for gain and judge (their resumable caches).
    """
    if labeler not in LABELERS:
        raise ConfigError(f"--labeler: unknown labeler {labeler!r}; one of {', '.join(LABELERS)}")
    pairs = _pairs(candidates, {q["id"]: q for q in queries}, {c["id"]: c for c in corpus}, candidates_path)
    if labeler == "oracle":
        return oracle_labels(pairs)
    from rarft.generation import Sampling, make_backend

    if cache_path is None:
        raise ValueError(f"the {labeler} labeler needs a cache_path")
    seed = config["seed"]
    own = backend is None
    if labeler == "gain":
        gcfg = config["labels"]["gain"]
        sampling = Sampling(n=gcfg["n_samples"], temperature=gcfg["temperature"],
                            max_new_tokens=gcfg["max_new_tokens"], seed=seed)
        if policy_dir is None:
            raise ConfigError("--policy-dir: required for the gain labeler")
        from rarft.policy import resolve_model

        model = resolve_model(policy_dir)
        if own:
            backend = make_backend(model, config)
        try:
            return gain_labels(pairs, backend, sampling, gcfg["threshold"], cache_path, model_fingerprint(model),
                               config["generation"]["batch_size"], config["policy"]["enable_thinking"], progress)
        finally:
            if own:
                backend.close()
    jcfg = config["labels"]["judge"]
    if "model" not in jcfg:
        raise ConfigError("labels.judge.model: required for the judge labeler")
    sampling = Sampling(n=1, temperature=jcfg["temperature"], max_new_tokens=jcfg["max_new_tokens"],
                        seed=seed)
    if own and not dry_run:
        # The judge has its own endpoint (e.g. api.openai.com); the key variable etc. stay shared.
        backend = make_backend(jcfg["model"], config, backend=jcfg["backend"], base_url=jcfg["base_url"],
                               concurrency=jcfg["http_concurrency"])
    from rarft.generation import chunk_size_for

    concurrency = jcfg["http_concurrency"] or config["generation"]["http_concurrency"]
    try:
        return judge_labels(pairs, backend, jcfg["model"], sampling, cache_path, chunk_size_for(concurrency),
                            dry_run, progress)
    finally:
        if own and backend is not None:
            backend.close()


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft label-relevance", description="Label (query, candidate) pairs.")
    add_config_argument(p)
    p.add_argument("--labeler", required=True, choices=LABELERS)
    p.add_argument("--policy-dir", help="policy for the gain labeler (models/policy/base)")
    p.add_argument("--train", required=True, help="training queries (data/clean/train.jsonl)")
    p.add_argument("--corpus", required=True, help="corpus with traces (data/traces/corpus.jsonl)")
    p.add_argument("--candidates", required=True, help="data/labels/candidates.jsonl")
    p.add_argument("--out", required=True, help="data/labels/<labeler>.jsonl")
    p.add_argument("--cache", help="resumable cache (default: <out stem>.cache.jsonl next to --out)")
    p.add_argument("--dry-run", action="store_true", help="judge: print calls and token estimate, call nothing")
    args = p.parse_args(argv)
    config = load_config(args.config)
    queries = read_items(args.train, need=ITEM_NEED)
    corpus = read_items(args.corpus, need=ITEM_NEED)
    cache = args.cache or str(Path(args.out).with_suffix(".cache.jsonl"))
    rows = label_relevance(args.labeler, queries, corpus, read_candidates(args.candidates), config,
                           policy_dir=args.policy_dir, cache_path=cache, dry_run=args.dry_run,
                           candidates_path=args.candidates)
    if rows is None:
        return 0
    write_jsonl(args.out, rows)
    labelled = [r["label"] for r in rows if r["label"] is not None]
    rejected = sum("error" in r for r in rows)
    print(f"label-relevance {args.labeler}: {len(rows)} pairs, {sum(labelled)} positive, "
          f"{len(rows) - len(labelled) - rejected} unparsable, {rejected} rejected by the server -> {args.out}")
    return 0
