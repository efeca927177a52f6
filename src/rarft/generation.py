"""Generation backends: chat prompts in, n sampled completions per prompt out.

Three implementations of one small interface (`Backend.generate(prompts, sampling)`):
- `TransformersBackend`: `model.generate`, batched and left-padded, CPU or GPU; n samples per prompt by
  repeating the prompt n times in the batch.
- `VLLMBackend`: vLLM's `LLM.generate` with `SamplingParams(n=...)` and prefix caching (the n samples
  of a prompt, and the shared retrieved context, are prefilled once). GPU only; imported lazily.
- `OpenAIBackend`: an OpenAI-compatible chat-completions server (`vllm serve`, `transformers serve`, a
  hosted judge/teacher). The API key comes from the environment variable named in the config and is
  never logged or stored.
Every backend applies the model's own chat template (server-side for the HTTP client) with
`enable_thinking` from `policy.enable_thinking`.
"""

from __future__ import annotations

import email.utils
import itertools
import os
import re
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Iterator, Protocol

from rarft.config import ConfigError


@dataclass
class Sampling:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0
    # one seed per prompt (same length as the prompts), for backends that take a whole benchmark in one
    # call (vLLM, HTTP): each problem's samples then come from its own stream; None = `seed` for all
    seeds: tuple[int, ...] | None = None


class Backend(Protocol):
    def generate(self, prompts: list[list[dict]], sampling: Sampling) -> list[list[str]]:
        """For each prompt (chat messages), ``sampling.n`` completion strings."""
        ...

    def close(self) -> None: ...


def resolve_model(model: str) -> str:
    """A policy directory (checkpoint or pointer file) or hub id -> what `from_pretrained` takes."""
    from rarft.policy import resolve_model as resolve  # lazy: policy imports heavy libraries

    return resolve(model)


def pick_device(config: dict) -> str:
    """The config's `device` (rarft.device: one resolver for every stage)."""
    from rarft.device import resolve_device

    return resolve_device(config)


def attn_implementation(config: dict) -> str | None:
    """`generation.attn_implementation` for `from_pretrained` (None: transformers' default), checked first:
    the FlashAttention kernels need a CUDA device, and transformers' own error about it comes from deep
    inside model loading."""
    impl = config["generation"]["attn_implementation"]
    if impl and impl.startswith("flash_attention"):
        if pick_device(config) == "cpu":
            raise ConfigError(f"config: generation.attn_implementation is {impl!r}, which needs a CUDA device; "
                              "use eager or sdpa (or null) on CPU")
    return impl


def chat_text(tokenizer, messages: list[dict], enable_thinking: bool | None) -> str:
    """The prompt string the model's chat template makes of ``messages``, ready for generation."""
    kwargs = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)


def batch_plan(lengths: list[int], n: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """Chunks of (prompt index, samples of it in this chunk) with at most ``batch_size`` sequences each.

    Prompts of similar length share a chunk (less padding); a prompt's samples stay together unless
    n exceeds the batch size, in which case they are split across chunks.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    chunks: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    room = batch_size
    for i in order:
        left = n
        while left:
            take = min(left, room)
            current.append((i, take))
            left, room = left - take, room - take
            if room == 0:
                chunks.append(current)
                current, room = [], batch_size
    if current:
        chunks.append(current)
    return chunks


def torch_repeat_index(repeats):
    """[2, 1, 3] -> tensor([0, 0, 1, 2, 2, 2]): the batch rows a repeat_interleave would pick."""
    import torch

    return torch.repeat_interleave(torch.arange(len(repeats), device=repeats.device), repeats)


class TransformersBackend:
    """Batched sampling with `model.generate`; ``batch_size`` counts sequences (prompts x samples).

    ``share_prefix`` (default on): each prompt is prefilled once for all its samples (`prefill`); off,
    every sample prefills its own copy. ``static_cache`` (default on): the shared prefill goes into a
    preallocated cache (`static_copy`). Both switches are kept for the benchmark that measures them."""

    def __init__(self, model, tokenizer, batch_size: int, enable_thinking: bool | None = None,
                 show_progress: bool = True, share_prefix: bool = True, static_cache: bool = True):
        self.model, self.tokenizer, self.share_prefix = model, tokenizer, share_prefix
        self.static_cache = static_cache
        self._max_new_tokens = 0  # set by each generate call: the static cache's room for the completion
        self.batch_size, self.enable_thinking, self.show_progress = batch_size, enable_thinking, show_progress
        if tokenizer.pad_token_id is None:
            raise ConfigError("tokenizer has no pad token: batched generation needs one")

    @classmethod
    def from_model(cls, model, tokenizer, config: dict) -> "TransformersBackend":
        """Wrap an in-memory model (the trainer's validation callback); the caller keeps ownership."""
        return cls(model, tokenizer, batch_size=int(config["generation"]["batch_size"]),
                   enable_thinking=config["policy"]["enable_thinking"], show_progress=False)

    @classmethod
    def load(cls, model: str, config: dict) -> "TransformersBackend":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(model)
        dtype = config["generation"]["dtype"]
        tokenizer = AutoTokenizer.from_pretrained(path)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype if dtype == "auto" else getattr(torch, dtype),
                                                  attn_implementation=attn_implementation(config))
        lm.to(pick_device(config))
        lm.eval()
        return cls(lm, tokenizer, batch_size=int(config["generation"]["batch_size"]),
                   enable_thinking=config["policy"]["enable_thinking"])

    def generate(self, prompts: list[list[dict]], sampling: Sampling) -> list[list[str]]:
        import torch
        from tqdm.auto import tqdm

        texts = [chat_text(self.tokenizer, p, self.enable_thinking) for p in prompts]
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        out: list[list[str]] = [[""] * sampling.n for _ in texts]
        done = [0] * len(texts)  # samples of each prompt filled so far
        do_sample = sampling.temperature > 0
        kwargs = dict(do_sample=do_sample, max_new_tokens=sampling.max_new_tokens,
                      pad_token_id=self.tokenizer.pad_token_id)
        if do_sample:  # top_k=0: plain temperature/top-p sampling, as vLLM and the paper sample
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        was_training = self.model.training
        device = self.model.device
        cuda_ids = ([device.index if device.index is not None else torch.cuda.current_device()]
                    if device.type == "cuda" else [])
        self._max_new_tokens = sampling.max_new_tokens  # the static cache's room for the completion
        bar = tqdm(total=len(texts) * sampling.n, desc="generate", unit="seq", disable=not self.show_progress,
                   leave=False)
        # A forked RNG: a trainer's validation call must not reset the trainer's own random stream.
        with torch.random.fork_rng(devices=cuda_ids), torch.inference_mode():
            torch.manual_seed(sampling.seed)
            self.model.eval()
            try:
                for chunk in batch_plan(lengths, sampling.n, self.batch_size):
                    enc = self.tokenizer([texts[i] for i, _ in chunk], return_tensors="pt", padding=True,
                                         padding_side="left", add_special_tokens=False).to(device)
                    repeats = torch.tensor([r for _, r in chunk], device=device)
                    cache = (self.prefill(enc["input_ids"], enc["attention_mask"], repeats)
                             if self.share_prefix else None)
                    ids = self.model.generate(input_ids=enc["input_ids"].repeat_interleave(repeats, 0),
                                              attention_mask=enc["attention_mask"].repeat_interleave(repeats, 0),
                                              past_key_values=cache, **kwargs)
                    decoded = self.tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                    rows = [i for i, r in chunk for _ in range(r)]
                    for i, text in zip(rows, decoded):
                        out[i][done[i]] = text
                        done[i] += 1
                    bar.update(len(decoded))
            finally:
                bar.close()
                self.model.train(was_training)
        return out

    def prefill(self, input_ids, attention_mask, repeats):
        """The KV cache of each distinct prompt (all but its last token), computed ONCE and then copied
        to its samples: the n samples of a prompt share it, as vLLM's prefix caching does. A prompt with a
        retrieved context is several times longer than its completion, so prefilling it n times would
        dominate the cost. Positions follow `generate`'s own rule for left padding (mask cumsum - 1), so
        the result equals generating from scratch."""
        if input_ids.shape[1] < 2:
            return None
        positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        cache = self.model(input_ids=input_ids[:, :-1], attention_mask=attention_mask[:, :-1],
                           position_ids=positions[:, :-1], use_cache=True).past_key_values
        return self.static_copy(cache, torch_repeat_index(repeats), input_ids.shape[1] - 1)

    def static_copy(self, cache, rows, prompt_len: int):
        """The prefilled cache copied, row ``rows[j]`` to row j, into a preallocated `StaticCache` with
        room for the completion. A `DynamicCache` concatenates every layer's keys and values at every
        decoding step, copying the whole cache each time: with a retrieved context in the prompt that
        copy was ~60% of the generation time on CPU (cProfile). The static one writes in place.
        Models whose cache is not plain full attention (sliding windows, hybrids) keep the dynamic cache."""
        from transformers.cache_utils import DynamicLayer, StaticCache

        if not self.static_cache or not all(type(layer) is DynamicLayer for layer in cache.layers):
            cache.batch_select_indices(rows)
            return cache
        static = StaticCache(config=self.model.config, max_cache_len=prompt_len + self._max_new_tokens)
        for i, layer in enumerate(cache.layers):
            static.update(layer.keys[rows], layer.values[rows], i)
        return static

    def close(self) -> None:
        pass


class VLLMBackend:
    """vLLM offline engine (GPU only). Not importable on a CPU machine; tests skip it with a reason."""

    # vLLM schedules its own batches (continuous batching): give it every prompt at once, as its
    # docstring asks; a chunked call waits for its longest sample before the next chunk starts
    whole_batches = True

    def __init__(self, model: str, config: dict):
        try:
            from vllm import LLM
        except ImportError as e:
            raise ConfigError("generation.backend is 'vllm' but vLLM is not installed "
                              "(pip install -e '.[gpu]' on a CUDA machine)") from e
        vcfg = config["generation"]["vllm"]
        dtype = config["generation"]["dtype"]
        self.enable_thinking = config["policy"]["enable_thinking"]
        self.llm = LLM(
            model=resolve_model(model),
            dtype=dtype,
            seed=int(config["seed"]),
            gpu_memory_utilization=float(vcfg["gpu_memory_utilization"]),
            enable_prefix_caching=bool(vcfg["enable_prefix_caching"]),
            tensor_parallel_size=int(vcfg["tensor_parallel_size"]),
            trust_remote_code=False,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: list[list[dict]], sampling: Sampling) -> list[list[str]]:
        from vllm import SamplingParams

        seeds = sampling.seeds or [sampling.seed] * len(prompts)
        params = [SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                 max_tokens=sampling.max_new_tokens, seed=s) for s in seeds]
        texts = [chat_text(self.tokenizer, p, self.enable_thinking) for p in prompts]
        outputs = self.llm.generate(texts, params, use_tqdm=True)
        return [[o.text for o in req.outputs] for req in outputs]

    def close(self) -> None:
        del self.llm


class PromptRejected(Exception):
    """The server refused one prompt for good: it cannot fit the model's window (HTTP 400, context length).
    A per-item failure for the caller to count (the judge's label stays missing, the teacher's item is
    dropped), never the end of a long job; any other 400 is a configuration error and stops the stage."""


# vLLM: "This model's maximum context length is 16384 tokens. However, you requested ..." / "... is longer than
# the maximum model length of ..."; OpenAI: code "context_length_exceeded"
_CONTEXT_LENGTH_RE = re.compile(r"context[ _]length|maximum model length|too long", re.IGNORECASE)


def retry_after_s(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIBackend:
    """Chat completions over HTTP, n samples per prompt.

    ``concurrency`` requests stay in flight over all prompts of a call (`stream`: a bounded pool, each
    reply handed back as it arrives, so a caller caches it at once and one slow reply holds up nobody).
    Rate limits and server errors are retried: the wait honours ``Retry-After`` and otherwise doubles from
    ``backoff_s``, each wait capped at ``backoff_max_s``, at most ``max_retries`` times. A prompt the server
    cannot fit is a `PromptRejected` for that prompt alone. Servers that return fewer than n choices (some
    ignore ``n``) are asked again for the rest.
    """

    whole_batches = True  # a whole benchmark per call: generation.http_concurrency bounds what is in flight
    RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}

    def __init__(self, model: str, base_url: str, *, api_key_env: str | None, max_retries: int, timeout_s: float,
                 concurrency: int, backoff_max_s: float, extra_body: dict | None = None, backoff_s: float = 1.0):
        import requests

        self.model, self.url = model, base_url.rstrip("/") + "/chat/completions"
        self.max_retries, self.timeout_s, self.concurrency = max_retries, timeout_s, concurrency
        self.extra_body, self.backoff_s, self.backoff_max_s = dict(extra_body or {}), backoff_s, backoff_max_s
        self.session = requests.Session()
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:  # held only in the session's headers: never printed, logged or written
            self.session.headers["Authorization"] = f"Bearer {key}"

    def __repr__(self) -> str:  # no headers, so no key, in any repr
        return f"OpenAIBackend(model={self.model!r}, url={self.url!r})"

    def _post(self, body: dict) -> dict:
        import requests

        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            asked = None
            try:
                r = self.session.post(self.url, json=body, timeout=self.timeout_s)
                if r.status_code == 200:
                    return r.json()
                if r.status_code == 400 and _CONTEXT_LENGTH_RE.search(r.text):
                    raise PromptRejected(f"{self.url}: HTTP 400: {r.text[:300]}")
                if r.status_code not in self.RETRY_STATUS:
                    raise RuntimeError(f"{self.url}: HTTP {r.status_code}: {r.text[:300]}")
                error, asked = f"HTTP {r.status_code}", retry_after_s(r.headers.get("Retry-After"))
            except (requests.ConnectionError, requests.Timeout) as e:
                error = type(e).__name__
            if attempt == self.max_retries:
                raise RuntimeError(f"{self.url}: gave up after {attempt + 1} attempts ({error})")
            time.sleep(min(self.backoff_max_s, delay if asked is None else max(asked, delay)))
            delay = min(self.backoff_max_s, delay * 2)
        raise AssertionError("unreachable")

    def _one_prompt(self, messages: list[dict], sampling: Sampling) -> list[str]:
        texts: list[str] = []
        request = 0
        while len(texts) < sampling.n:
            body = {"model": self.model, "messages": messages, "n": sampling.n - len(texts),
                    "temperature": sampling.temperature, "top_p": sampling.top_p,
                    "max_tokens": sampling.max_new_tokens, "seed": sampling.seed + request, **self.extra_body}
            choices = self._post(body).get("choices") or []
            if not choices:
                raise RuntimeError(f"{self.url}: response without choices")
            texts.extend((c.get("message") or {}).get("content") or "" for c in choices)
            request += 1
        return texts[:sampling.n]

    def stream(self, prompts: list[list[dict]], sampling: Sampling) -> Iterator[tuple[int, list[str] | PromptRejected]]:
        """(prompt index, its n completions or its `PromptRejected`) for every prompt, in the order the replies
        arrive, with ``concurrency`` requests in flight throughout. Any other failure is raised once the
        replies before it have been handed back (a caller that caches each one loses only those in flight)."""
        seeds = sampling.seeds or [sampling.seed] * len(prompts)

        def one(i: int):
            try:
                return i, self._one_prompt(prompts[i], replace(sampling, seed=seeds[i], seeds=None))
            except PromptRejected as e:
                return i, e

        pool = ThreadPoolExecutor(max(1, self.concurrency))
        try:
            waiting = iter(range(len(prompts)))
            in_flight = {pool.submit(one, i) for i in itertools.islice(waiting, max(1, self.concurrency))}
            while in_flight:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    nxt = next(waiting, None)
                    if nxt is not None:  # refill first: the pool stays full while the caller writes
                        in_flight.add(pool.submit(one, nxt))
                    yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def generate(self, prompts: list[list[dict]], sampling: Sampling) -> list[list[str]]:
        from tqdm.auto import tqdm

        out: list[list[str]] = [[] for _ in prompts]
        for i, texts in tqdm(self.stream(prompts, sampling), total=len(prompts), desc="generate (http)",
                             unit="prompt", leave=False):
            if isinstance(texts, PromptRejected):
                raise texts
            out[i] = texts
        return out

    def close(self) -> None:
        self.session.close()


def generate_each(backend, prompts: list[list[dict]], sampling: Sampling,
                  chunk_size: int) -> Iterator[tuple[int, list[str] | PromptRejected]]:
    """(prompt index, completions or `PromptRejected`) for every prompt as soon as each is ready: the
    HTTP backend's `stream` (``concurrency`` in flight, reply by reply); other backends, ``chunk_size``
    prompts per `generate` call (each chunk waits for its slowest)."""
    if hasattr(backend, "stream"):
        yield from backend.stream(prompts, sampling)
        return
    for start in range(0, len(prompts), chunk_size):
        chunk = prompts[start:start + chunk_size]
        seeds = sampling.seeds[start:start + chunk_size] if sampling.seeds else None
        yield from enumerate(backend.generate(chunk, replace(sampling, seeds=seeds)), start)


def chunk_size_for(concurrency: int) -> int:
    """Prompts per call for a backend without `stream`: several per connection keep a server batched."""
    return max(32, 4 * int(concurrency))


def make_backend(model: str, config: dict, backend: str | None = None, *, base_url: str | None = None,
                 api_key_env: str | None = None, concurrency: int | None = None,
                 extra_body: dict | None = None) -> Backend:
    """The configured backend for ``model`` (policy dir, local path or hub id / served model name).

    ``backend`` defaults to ``generation.backend``; ``base_url``/``api_key_env``/``concurrency`` override the
    ``generation`` section for the HTTP client (a judge or teacher has its own endpoint); ``extra_body`` is
    added to every HTTP request (e.g. vLLM's ``chat_template_kwargs``).
    """
    backend = backend or config["generation"]["backend"]
    if backend == "transformers":
        return TransformersBackend.load(model, config)
    if backend == "vllm":
        return VLLMBackend(model, config)
    if backend == "openai":
        from pathlib import Path

        return OpenAIBackend(
            resolve_model(model) if Path(model).exists() else model,  # a served policy dir's name
            base_url or config["generation"]["base_url"],
            api_key_env=api_key_env or config["generation"]["api_key_env"],
            max_retries=int(config["generation"]["max_retries"]),
            backoff_max_s=float(config["generation"]["backoff_max_s"]),
            timeout_s=float(config["generation"]["request_timeout_s"]),
            concurrency=int(concurrency or config["generation"]["http_concurrency"]),
            extra_body=extra_body,
        )
    raise ConfigError(f"config: generation.backend: unknown backend {backend!r} (transformers | vllm | openai)")
