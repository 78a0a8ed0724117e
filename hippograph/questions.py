"""Reading a file of questions for batch retrieval (`hippograph query INDEX --questions FILE`).

`.txt`: one question per line (blank lines skipped). `.jsonl`: one object per line with the
question under "question" (or "query", "text") and an optional "id" passed through to the
answer; a bare JSON string is a question too. Every problem is one error naming file:line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import HippoGraphError

QUESTION_KEYS = ("question", "query", "text")


@dataclass(frozen=True)
class Question:
    """One question of a batch file: its text, an optional id, and the line it came from."""

    text: str
    line: int
    id: Any = None


def read_questions(path: str | Path) -> list[Question]:
    """All questions of a .txt or .jsonl file, validated before any retrieval starts."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise HippoGraphError(f"{path}: questions must be a .txt (one per line) or .jsonl file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HippoGraphError(f"{path}: cannot read questions ({exc.strerror or exc})") from exc
    try:
        lines = raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise HippoGraphError(f"{path}:{line}: not UTF-8 text") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        out.append(_parse_jsonl(path, n, line) if suffix == ".jsonl" else Question(line.strip(), n))
    if not out:
        raise HippoGraphError(f"{path}: no questions in the file")
    return out


def _parse_jsonl(path: Path, n: int, line: str) -> Question:
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise HippoGraphError(f"{path}:{n}: not valid JSON ({exc})") from None
    qid = None
    if isinstance(item, dict):
        qid = item.get("id")
        text = next((item[k] for k in QUESTION_KEYS if k in item), None)
        if text is None:
            raise HippoGraphError(f"{path}:{n}: no question (expected a \"question\" field)")
    else:
        text = item
    if not isinstance(text, str):
        raise HippoGraphError(f"{path}:{n}: the question must be a string, got {type(text).__name__}")
    if not text.replace("\x00", " ").strip():
        raise HippoGraphError(f"{path}:{n}: empty question")
    if qid is not None and not isinstance(qid, (str, int)):
        raise HippoGraphError(f"{path}:{n}: \"id\" must be a string or an integer")
    return Question(text, n, qid)
