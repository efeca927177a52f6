"""prepare-data: build the normalised splits (train queries, corpus, benchmarks) from the world or real sources.

Every source, whatever its columns, becomes rows of the item schema of docs/architecture.md:
id, problem, answer, trace, solution, problem_type, source (+ strategy, story, difficulty for the world).
Rows that cannot be used (empty problem, no answer, an answer math-verify cannot parse, a duplicate id
or problem) are dropped and counted per source and reason in data/prepared/report.json and
results/reports/data_report.md: never silently, never a crash.

Real sources are read by Hugging Face dataset id (`datasets.load_dataset`, needs hub access) or from a
local JSONL / Parquet file. Their column layouts, as published:
- questa   foreverlasting1202/QuestA (config default, split train): problem, answer
- openr1   open-r1/OpenR1-Math-220k: problem, solution, answer, problem_type, question_type, source, uuid, ...
- aime     HuggingFaceH4/aime_2024 (id, problem, solution, answer, url, year), yentinglin/aime_2025 (its columns
           could not be confirmed from here: an `id` is used when present, else the row's position)
- matharena  MathArena/hmmt_feb_2025, MathArena/brumo_2025: problem_idx, problem, answer, problem_type (list)
- math     the MATH test set / MATH-500: problem, solution (answer boxed inside) or answer, type / subject,
           idx / unique_id
- rarft    this project's own item schema (a prepared split read back)
`auto` picks the first of these whose required columns are all present. Only the columns a schema reads are
turned into Python rows (`columns_to_read`): OpenR1-Math-220k `all` holds 9.7 GB of Arrow data, most of it R1
`generations` and `messages` that rarft never reads (review N7).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Iterable

from rarft.config import ConfigError, add_config_argument, load_config
from rarft.io import DataError, read_jsonl, write_json, write_jsonl, write_text
from rarft.prompts import normalise_text

# Column names each schema reads, per item field: the first present column wins. A field listed in
# REQUIRED must resolve to a column or the source fails with a DataError naming file and column.
SCHEMAS: dict[str, dict[str, tuple[str, ...]]] = {
    "questa": {"problem": ("problem", "question"), "answer": ("answer",), "solution": ("solution",),
               "id": ("id", "uuid", "idx"), "problem_type": ("problem_type", "type")},
    "openr1": {"problem": ("problem",), "answer": ("answer",), "solution": ("solution",),
               "id": ("uuid",), "problem_type": ("problem_type",)},
    "aime": {"problem": ("problem",), "answer": ("answer",), "solution": ("solution",), "id": ("id",),
             "problem_type": ()},
    "matharena": {"problem": ("problem",), "answer": ("answer",), "solution": (), "id": ("problem_idx",),
                  "problem_type": ("problem_type",)},
    "math": {"problem": ("problem",), "answer": ("answer", "solution"), "solution": ("solution",),
             "id": ("unique_id", "idx", "id"), "problem_type": ("type", "subject")},
    "rarft": {"problem": ("problem",), "answer": ("answer",), "solution": ("solution",), "id": ("id",),
              "problem_type": ("problem_type",)},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "questa": ("problem", "answer"),
    "openr1": ("problem", "answer", "problem_type"),
    # no `id`: yentinglin/aime_2025's columns are unconfirmed (review N17); a row without one gets its position
    "aime": ("problem", "answer"),
    "matharena": ("problem", "answer", "id"),
    "math": ("problem", "answer"),
    "rarft": ("problem", "answer", "id", "problem_type"),
}
# `auto`: the most specific layouts first, judged by their characteristic columns.
AUTO_ORDER = ("rarft", "openr1", "matharena", "math", "aime", "questa")
AUTO_SIGNATURE = {
    "rarft": {"id", "problem", "answer", "problem_type", "source"},
    "openr1": {"problem", "answer", "problem_type", "uuid"},
    "matharena": {"problem_idx", "problem", "answer"},
    "math": {"problem", "solution", "type"},
    "aime": {"id", "problem", "answer"},
}
# Aliases tried for a source whose layout matches no signature (schema auto).
ALIASES: dict[str, tuple[str, ...]] = {
    "problem": ("problem", "question", "Problem", "Question", "prompt"),
    "answer": ("answer", "Answer", "expected_answer", "final_answer", "solution", "Solution"),
    "solution": ("solution", "Solution"),
    "id": ("id", "problem_idx", "idx", "uuid", "unique_id", "ID"),
    "problem_type": ("problem_type", "type", "subject"),
}
REQUIRED_AUTO = ("problem", "answer")
# Row fields normalise_rows reads besides the SCHEMAS mapping (the project's own prepared layout).
ROW_EXTRAS: dict[str, tuple[str, ...]] = {"rarft": ("trace", "strategy", "story", "difficulty", "named_rule", "rule")}

# Answers that mark "no final answer" in the real data (OpenR1 uses 'proof' and 'notfound').
PLACEHOLDER_ANSWERS = {"proof", "notfound", "not found", "none", "n/a", "null", "-"}

# A trailing instruction (a sentence or line that asks for \boxed) or a QuestA hint section.
_INSTRUCTION = re.compile(
    r"(?i)\b(reason|think|put|return|output|present|write|enclose|give|provide)\b[^\n]*\\boxed")
_HINT = re.compile(r"\n+\s*#+\s*Hint\b.*\Z", re.S | re.I)
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SENTENCE_END = re.compile(r"(?<=[.?!:])\s+")


class SourceReport(dict):
    """Per-source counts: rows read, kept, dropped by reason (with a few example rows)."""

    def __init__(self, name: str, origin: str, schema: str):
        super().__init__(name=name, origin=origin, schema=schema, columns={}, rows_read=0, rows_kept=0,
                         dropped={}, examples={}, capped=0)

    def drop(self, reason: str, row_ref: str) -> None:
        self["dropped"][reason] = self["dropped"].get(reason, 0) + 1
        examples = self["examples"].setdefault(reason, [])
        if len(examples) < 3:
            examples.append(row_ref)


# ---------------------------------------------------------------------------------------------- text
def strip_instructions(text: str) -> str:
    """Remove trailing prompt instructions ('Please reason step by step, ... \\boxed{}.') and hints.

    Only a last line or a last sentence that asks for a \\boxed answer is removed: problem statements
    themselves never ask for \\boxed, while they do say things like 'Express your answer as a fraction'.
    """
    text = _HINT.sub("", text).strip()
    while text:
        head, _, last_line = text.rpartition("\n")
        if _INSTRUCTION.search(last_line) and head.strip():
            text = head.strip()
            continue
        sentences = _SENTENCE_END.split(last_line)
        if len(sentences) > 1 and _INSTRUCTION.search(sentences[-1]):
            # cut at the start of the instruction sentence, keeping the line's earlier sentences
            cut = last_line.rfind(sentences[-1])
            text = (head + "\n" + last_line[:cut]).strip() if head else last_line[:cut].strip()
            continue
        break
    return text


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}) in ``text``, braces balanced; None if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
    return None  # unbalanced: no usable answer


def normalise_type(value: Any) -> str:
    """'Counting & Probability' -> 'counting_probability'; a list (MathArena) -> its first entry."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None or not str(value).strip():
        return "unknown"
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_") or "unknown"


def answer_parses(answer: str) -> bool:
    """True when math-verify extracts a mathematical expression from the gold answer.

    Tried as \\boxed{answer} first, then as $answer$ (math-verify rejects \\boxed{44\\%} but reads $44\\%$).
    """
    from math_verify import parse

    if _PLAIN_NUMBER.fullmatch(answer):  # most gold answers: no need to spend ~10 ms in sympy
        return True
    if len(answer) > 1000:  # bounded: math-verify can take seconds on huge nested LaTeX
        return False
    for wrapped in ("\\boxed{" + answer + "}", "$" + answer + "$"):
        try:  # math-verify's own SIGALRM timeout applies (main thread of this process or a worker)
            if parse(wrapped, fallback_mode="no_fallback", parsing_timeout=5):
                return True
        except Exception:  # a parser crash on odd LaTeX counts as unparseable, and is reported
            continue
    return False


def answers_parse(answers: list[str], desc: str) -> list[bool]:
    """answer_parses over many answers, in worker processes for real-size sources (about 10 ms each)."""
    from tqdm import tqdm

    if len(answers) < 2000:
        return [answer_parses(a) for a in tqdm(answers, desc=desc, leave=False, disable=len(answers) < 500)]
    from concurrent.futures import ProcessPoolExecutor

    from rarft.device import allocated_cpus

    with ProcessPoolExecutor(max_workers=allocated_cpus()) as pool:
        return list(tqdm(pool.map(answer_parses, answers, chunksize=256), total=len(answers), desc=desc,
                         leave=False))


# ------------------------------------------------------------------------------------------- loading
def columns_to_read(columns: Iterable[str], schema: str, origin: str) -> list[str]:
    """The source's columns its schema reads, in the source's order: the mapped ones, those `auto` recognises
    the layout by (so the kept rows resolve to the same schema) and the project's own extras. A source that
    lacks a required column fails here, before any row is read (DataError naming it)."""
    columns = list(columns)
    resolved, mapping = resolve_columns(set(columns), schema, origin)
    keep = {c for c in mapping.values() if c} | AUTO_SIGNATURE.get(resolved, set()) | set(ROW_EXTRAS.get(resolved, ()))
    return [c for c in columns if c in keep]


def read_rows(source: dict, where: str) -> tuple[list[dict], str]:
    """Rows of a source as plain dicts of the columns its schema reads, and where they came from."""
    schema = source.get("schema", "auto")
    if source.get("path"):
        path = Path(source["path"])
        if not path.exists():
            raise DataError(f"{path}: file not found ({where})")
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json"):
            rows = read_jsonl(path)
            if not rows:
                return rows, str(path)
            keep = columns_to_read(dict.fromkeys(k for r in rows for k in r), schema, str(path))
            return [{k: r[k] for k in keep if k in r} for r in rows], str(path)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                names = pq.read_schema(path).names
            except Exception as e:  # pyarrow's own message says what is wrong with the file
                raise DataError(f"{path}: not a readable Parquet file ({e})") from None
            return pq.read_table(path, columns=columns_to_read(names, schema, str(path))).to_pylist(), str(path)
        raise DataError(f"{path}: unsupported file type {suffix!r} ({where}); use .jsonl or .parquet")
    # Hugging Face hub (or its local cache). Needs network access the first time.
    import datasets

    hf_id, split, config = source["hf_id"], source.get("split", "train"), source.get("config")
    origin = f"hf://{hf_id}" + (f"/{config}" if config else "") + f"[{split}]"
    try:
        ds = datasets.load_dataset(hf_id, config, split=split)
    except Exception as e:  # no network, unknown id, bad split: one clear message
        raise DataError(f"{origin}: could not load ({type(e).__name__}: {e}) ({where})") from None
    # only the schema's columns become Python objects (Arrow keeps the rest on disk, memory-mapped)
    ds = ds.select_columns(columns_to_read(ds.column_names, schema, origin))
    return [dict(r) for r in ds], origin


def resolve_columns(columns: set[str], schema: str, origin: str) -> tuple[str, dict[str, str | None]]:
    """Map item fields to the source's columns; DataError naming the file and missing column."""
    if schema == "auto":
        for name in AUTO_ORDER[:-1]:
            if AUTO_SIGNATURE[name] <= columns:
                schema = name
                break
        else:
            mapping = {f: next((c for c in ALIASES[f] if c in columns), None) for f in ALIASES}
            missing = [f for f in REQUIRED_AUTO if mapping[f] is None]
            if missing:
                wanted = " or ".join(repr(c) for c in ALIASES[missing[0]])
                raise DataError(f"{origin}: unknown layout, missing column {wanted} for '{missing[0]}' "
                                f"(columns present: {', '.join(sorted(columns)) or 'none'})")
            return "auto", mapping
    if schema not in SCHEMAS:
        raise ConfigError(f"data.real: unknown schema {schema!r}; one of auto, {', '.join(SCHEMAS)}")
    mapping = {f: next((c for c in cols if c in columns), None) for f, cols in SCHEMAS[schema].items()}
    for field in REQUIRED[schema]:
        if mapping[field] is None:
            wanted = " or ".join(repr(c) for c in SCHEMAS[schema][field])
            raise DataError(f"{origin}: schema {schema!r} needs column {wanted} (for '{field}'), "
                            f"not found; columns present: {', '.join(sorted(columns)) or 'none'}")
    return schema, mapping


def normalise_rows(rows: list[dict], *, name: str, origin: str, schema: str = "auto",
                   source_label: str | None = None) -> tuple[list[dict], SourceReport]:
    """Map raw rows of one source to items; return (items, report of what was dropped and why)."""
    columns = set().union(*(r.keys() for r in rows)) if rows else set()
    schema, mapping = resolve_columns(columns, schema, origin) if rows else (schema, {})
    report = SourceReport(name, origin, schema)
    report["columns"] = {f: c for f, c in mapping.items() if c}
    report["rows_read"] = len(rows)
    candidates: list[tuple[int, str, Any, dict]] = []  # (row index, row ref, raw id, item without id)
    for index, row in enumerate(rows):
        def value(field: str) -> Any:
            col = mapping.get(field)
            return row.get(col) if col else None

        raw_id = value("id")
        has_id = raw_id is not None and str(raw_id).strip() != ""
        ref = f"row {index} (id {raw_id})" if has_id else f"row {index}"
        problem = value("problem")
        if not isinstance(problem, str) or not problem.strip():
            report.drop("empty or missing problem", ref)
            continue
        problem = strip_instructions(problem)
        if not problem:
            report.drop("problem is only an instruction", ref)
            continue
        solution = value("solution")
        solution = solution if isinstance(solution, str) and solution.strip() else None
        answer = value("answer")
        if isinstance(answer, (list, tuple)):  # QuestA's processed form keeps ['\\boxed{...}']
            answer = answer[0] if answer else None
        if answer is not None and not isinstance(answer, str):
            answer = str(answer)
        if answer is not None and ("\\boxed" in answer or "\\fbox" in answer):
            answer = last_boxed(answer)  # a solution text (MATH) or a boxed gold answer
        if (answer is None or not answer.strip()) and solution:
            answer = last_boxed(solution)
        if answer is None or not answer.strip():
            report.drop("no answer (missing column value and no \\boxed{} in the solution)", ref)
            continue
        answer = answer.strip()
        if answer.lower() in PLACEHOLDER_ANSWERS:
            report.drop(f"placeholder answer ({answer.lower()!r})", ref)
            continue
        item = {"problem": problem, "answer": answer,
                "trace": row.get("trace") if schema == "rarft" else None,
                "solution": solution,
                "problem_type": normalise_type(value("problem_type")),
                "source": source_label or origin,
                "strategy": row.get("strategy") if schema == "rarft" else None}
        if schema == "rarft":
            item.update({k: row[k] for k in ("story", "difficulty", "named_rule", "rule") if k in row})
        candidates.append((index, ref, raw_id if has_id else None, item))

    parses = answers_parse([c[3]["answer"] for c in candidates], desc=f"{name}: math-verify")
    items: list[dict] = []
    seen_ids: set[str] = set()
    seen_problems: set[str] = set()
    for (index, ref, raw_id, item), ok in zip(candidates, parses):
        if not ok:
            report.drop("answer math-verify cannot parse", f"{ref}: {item['answer'][:60]!r}")
            continue
        if raw_id is None:
            item_id = f"{name}-{index:05d}"  # the row's position: stable for a given file
        else:  # prefixed by the split, so ids are unique across splits (reports name the split)
            item_id = str(raw_id) if schema == "rarft" else f"{name}-{raw_id}"
        if item_id in seen_ids:
            report.drop("duplicate id", ref)
            continue
        key = normalise_text(item["problem"])
        if key in seen_problems:
            report.drop("duplicate problem text", ref)
            continue
        seen_ids.add(item_id)
        seen_problems.add(key)
        items.append({"id": item_id, **item})
    report["rows_kept"] = len(items)
    return items, report


def load_source(source: dict, name: str, where: str) -> tuple[list[dict], SourceReport]:
    rows, origin = read_rows(source, where)
    label = Path(source["path"]).name if source.get("path") else source["hf_id"]
    return normalise_rows(rows, name=name, origin=origin, schema=source.get("schema", "auto"),
                          source_label=label)


def fill_types_from_corpus(train: list[dict], corpus: list[dict]) -> int:
    """Give train items without a problem_type the type of the same problem in the corpus.

    QuestA's queries are OpenR1-Math problems but carry no type; the judge's candidate filter needs one.
    """
    by_text = {normalise_text(c["problem"]): c["problem_type"] for c in corpus
               if c["problem_type"] != "unknown"}
    filled = 0
    for item in train:
        if item["problem_type"] == "unknown":
            found = by_text.get(normalise_text(item["problem"]))
            if found:
                item["problem_type"] = found
                filled += 1
    return filled


# -------------------------------------------------------------------------------------------- stage
def prepare_world(world_cfg: dict) -> tuple[dict[str, list[dict]], list[str], dict]:
    from rarft.world import generate_world

    splits = generate_world(**world_cfg)
    benchmarks = list(world_cfg["benchmarks"])
    reports = {}
    out = {}
    for split, items in splits.items():
        # the same checks as real data: a generator bug shows up in the report, not downstream
        kept, rep = normalise_rows(items, name=split, origin=f"world(seed={world_cfg['seed']})",
                                   schema="rarft", source_label="world")
        out[split] = kept
        reports[split] = rep
    return out, benchmarks, reports


def prepare_real(real_cfg: dict) -> tuple[dict[str, list[dict]], list[str], dict]:
    benchmarks = list((real_cfg.get("benchmarks") or {}).keys())
    for key in ("train", "corpus"):
        if key not in real_cfg:
            raise ConfigError(f"data.real.{key}: missing (data.source is 'real')")
    if not benchmarks:
        raise ConfigError("data.real.benchmarks: at least one benchmark is needed")
    out, reports = {}, {}
    for split, source, where in ([("train", real_cfg["train"], "data.real.train"),
                                  ("corpus", real_cfg["corpus"], "data.real.corpus")]
                                 + [(b, real_cfg["benchmarks"][b], f"data.real.benchmarks.{b}")
                                    for b in benchmarks]):
        out[split], reports[split] = load_source(source, split, where)
    for split, cap_key in (("train", "max_train"), ("corpus", "max_corpus")):
        cap = real_cfg.get(cap_key)
        if cap is not None and len(out[split]) > cap:
            reports[split]["capped"] = len(out[split]) - cap
            out[split] = out[split][:cap]
            reports[split]["rows_kept"] = cap
    reports["train"]["problem_type_from_corpus"] = fill_types_from_corpus(out["train"], out["corpus"])
    return out, benchmarks, reports


def prepare_data(config: dict) -> tuple[dict[str, list[dict]], list[str], dict]:
    """Return ({'train', 'corpus', <benchmark>...: items}, benchmark names, report)."""
    source = config["data"]["source"]
    if source == "world":
        splits, benchmarks, reports = prepare_world(config["data"]["world"])
    else:
        splits, benchmarks, reports = prepare_real(config["data"]["real"])
    for name in ("train", "corpus", *benchmarks):
        if not splits[name]:
            raise DataError(f"prepare-data: split {name!r} ({reports[name]['origin']}) has no usable rows; "
                            f"dropped: {reports[name]['dropped']}")
    report = {"source": source, "benchmarks": benchmarks, "splits": reports}
    return splits, benchmarks, report


def report_markdown(report: dict) -> str:
    lines = [f"# Data preparation report (source: {report['source']})", "",
             "| split | origin | schema | rows read | kept | dropped | capped |", "|---|---|---|---|---|---|---|"]
    for name, rep in report["splits"].items():
        lines.append(f"| {name} | {rep['origin']} | {rep['schema']} | {rep['rows_read']} | {rep['rows_kept']} "
                     f"| {sum(rep['dropped'].values())} | {rep.get('capped', 0)} |")
    lines += ["", "## Dropped rows by reason", ""]
    any_dropped = False
    for name, rep in report["splits"].items():
        for reason, count in sorted(rep["dropped"].items(), key=lambda kv: -kv[1]):
            any_dropped = True
            examples = "; ".join(rep["examples"].get(reason, []))
            lines.append(f"- {name}: {count} x {reason} (e.g. {examples})")
    if not any_dropped:
        lines.append("No row was dropped.")
    lines += ["", "## Column mapping", ""]
    for name, rep in report["splits"].items():
        mapped = ", ".join(f"{f} <- {c}" for f, c in rep["columns"].items())
        lines.append(f"- {name}: {mapped}")
    filled = report["splits"].get("train", {}).get("problem_type_from_corpus")
    if filled:
        lines += ["", f"{filled} training queries took their problem_type from the same problem in the corpus."]
    return "\n".join(lines) + "\n"


def write_prepared(splits: dict[str, list[dict]], benchmarks: Iterable[str], report: dict, out_dir: Path,
                   report_md: Path | None) -> None:
    write_jsonl(out_dir / "train.jsonl", splits["train"])
    write_jsonl(out_dir / "corpus.jsonl", splits["corpus"])
    for name in benchmarks:
        write_jsonl(out_dir / "bench" / f"{name}.jsonl", splits[name])
    write_json(out_dir / "report.json", report)
    if report_md is not None:
        write_text(report_md, report_markdown(report))


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rarft prepare-data", description=__doc__.split("\n")[0])
    add_config_argument(p)
    p.add_argument("--out-dir", default="data/prepared", help="where train/corpus/bench/*.jsonl go")
    p.add_argument("--report-md", default=None, help="readable data report (default: <out-dir>/data_report.md)")
    args = p.parse_args(argv)
    if args.report_md is None:
        args.report_md = str(Path(args.out_dir) / "data_report.md")
    config = load_config(args.config)
    splits, benchmarks, report = prepare_data(config)
    write_prepared(splits, benchmarks, report, Path(args.out_dir), Path(args.report_md))
    dropped = sum(sum(r["dropped"].values()) for r in report["splits"].values())
    sizes = ", ".join(f"{n} {len(splits[n])}" for n in ("train", "corpus", *benchmarks))
    print(f"prepare-data: {sizes}; {dropped} rows dropped (see {args.report_md}) -> {args.out_dir}")
    return 0

