"""Small file helpers shared by every stage.

Every output is written atomically (temp file in the same directory, then ``os.replace``) so a
killed stage never leaves a half-written file that a later stage would take as done.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


class DataError(ValueError):
    """A problem with an input file that the user must fix; the message names file, row and key."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds.

    Works for files and directories (``save_pretrained`` into the yielded path, for example).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            import shutil

            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(target, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, path)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a JSONL file, streamed; blank lines are skipped. A bad line raises DataError
    naming the file and line number."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {i}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {i}: expected a JSON object, got {type(row).__name__}")
            yield i, row


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a bad line raises DataError naming the file and line number."""
    return [row for _, row in iter_jsonl(path)]


class JsonlAppender:
    """Append-only JSONL log for resumable stages: each row is flushed and fsynced as it arrives.

    On open, a torn last line (a kill mid-write) is dropped, so the file always holds whole rows.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        if self.path.exists():
            good = []
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        self.rows.append(json.loads(line))
                        good.append(line if line.endswith("\n") else line + "\n")
                    except json.JSONDecodeError:
                        break  # torn tail from a killed run; everything after it is dropped
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(good), encoding="utf-8")
        self._f = open(self.path, "a", encoding="utf-8")

    def append(self, row: dict) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.rows.append(row)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_sha256(path: str | os.PathLike, limit: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read() if limit is None else f.read(limit))
    return h.hexdigest()


def model_fingerprint(model: str | os.PathLike) -> str:
    """Identifies a model's weights, so that nothing computed with an older checkpoint at the same path
    (cached rollouts, evaluation samples, a training checkpoint to resume) is reused for a newer one.

    A directory: every weight file's name and size, hashed whole up to 64 MiB and by its first and last
    MiB above that (a full hash of a multi-GB shard on every stage start would cost minutes), plus a
    pointer file's content. Anything else (a hub id): the name itself.
    """
    path = Path(model)
    if not path.is_dir():
        return str(model)
    parts = [str(model)]
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) + sorted(path.glob("rarft_model.json")):
        size = f.stat().st_size
        if size <= 64 << 20:
            digest = file_sha256(f)
        else:
            with open(f, "rb") as fh:
                head = fh.read(1 << 20)
                fh.seek(size - (1 << 20))
                digest = text_sha256(head.hex(), fh.read().hex())
        parts += [f.name, str(size), digest]
    return text_sha256(*parts)


def text_sha256(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
