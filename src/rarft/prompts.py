"""The one prompt builder, used by training, evaluation and labeling alike.

The paper's RA template: the reference question and its reasoning trace come first, then the target
question. With no context it is the plain prompt. Prompts are chat messages so that every backend
(transformers, vLLM, an OpenAI-compatible server, TRL's trainers) applies the model's own chat template.
"""

from __future__ import annotations

import re
from typing import Sequence

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def normalise_text(text: str) -> str:
    """The one text normaliser for "is this the same problem": lower case, whitespace runs -> one space.

    Used by prompts (a context must not be its own target), training, labeling and the world generator.
    Not the n-gram tokens of decontaminate, nor retrieval's punctuation-blind copy check.
    """
    return re.sub(r"\s+", " ", text).strip().lower()


def build_prompt(problem: str, contexts: Sequence[dict] = (), target_id: str | None = None) -> list[dict]:
    """Chat messages for ``problem`` with ``contexts`` (dicts with 'problem' and 'trace') prepended.

    Raises ValueError if a context is the target problem itself (same id or same normalised text):
    a prompt that shows the answer to its own question would make every score meaningless.
    """
    parts = []
    for i, ctx in enumerate(contexts, 1):
        same_text = normalise_text(ctx["problem"]) == normalise_text(problem)
        if (target_id is not None and ctx.get("id") == target_id) or same_text:
            raise ValueError(f"context {ctx.get('id')!r} is the target problem {target_id!r} itself")
        label = "Reference problem" if len(contexts) == 1 else f"Reference problem {i}"
        parts.append(f"{label}:\n{ctx['problem']}\n\nReference solution:\n{ctx['trace']}")
    if parts:
        parts.append("Use the reference above if it helps. Now solve this problem.")
    parts.append(f"Problem:\n{problem}\n\n{INSTRUCTION}")
    return [{"role": "user", "content": "\n\n".join(parts)}]


def prompt_text(messages: list[dict]) -> str:
    """The prompt's text alone (for hashing, logging, BM25)."""
    return "\n".join(m["content"] for m in messages)
