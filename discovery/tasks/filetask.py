"""A researcher's own prompts: ``--task file:PROMPTS.jsonl``, and ``export_jsonl`` to write any task's.

One JSON object a line::

    {"clean": "3 4 5 6", "corrupted": "8 1 4 2", "answer": " 7", "wrong": " 6"}

``answer`` (a text) or ``answers`` (a list of texts), and ``wrong`` (a text or a list). Continuations keep
their leading space when they follow one (`` 7``). ``"bos": false`` on every line says the prompts go to the
model without the tokenizer's BOS token (as Lan et al.'s do; the default is with it). Blank lines are skipped. Every error names the file and
the line number of the first bad line; the dataset builder's token checks name the line too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from discovery.errors import TaskError
from discovery.tasks.base import LOGIT_DIFF, Prompt, Task

FILE_CORRUPTION = "file"
MAX_FILE_BYTES = 256 * 2**20


def _texts(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key!r} must be a non-empty text or a non-empty list of texts")
    return tuple(value)


def parse_line(text: str) -> tuple[Prompt, bool]:
    """One line's prompt and whether it wants BOS; raises ValueError saying what is wrong with it."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    for key in ("clean", "corrupted"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise ValueError(f"{key!r} must be a non-empty text")
    if ("answer" in obj) == ("answers" in obj):
        raise ValueError("give exactly one of 'answer' (a text) or 'answers' (a list)")
    answers = _texts(obj.get("answer", obj.get("answers")), "answer" if "answer" in obj else "answers")
    if "wrong" not in obj:
        raise ValueError("'wrong' is missing")
    wrong = _texts(obj["wrong"], "wrong")
    unknown = set(obj) - {"clean", "corrupted", "answer", "answers", "wrong", "bos"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    bos = obj.get("bos", True)
    if not isinstance(bos, bool):
        raise ValueError("'bos' must be true or false")
    return Prompt(clean=obj["clean"], corrupted=obj["corrupted"], answers=answers, wrong=wrong), bos


@dataclass(frozen=True, repr=False)
class FileTask(Task):
    """Prompts read from a JSONL file, in file order; ``seed`` does not change them."""

    path: str
    name: str = ""
    description: str = ""
    metric: str = LOGIT_DIFF
    corruptions: tuple[str, ...] = (FILE_CORRUPTION,)
    default_corruption: str = FILE_CORRUPTION
    may_drop_prompts: bool = False
    prepend_bos: bool = True  # set from the file
    default_n: int = 0  # every prompt of the file: set from it
    max_n: int = 0  # likewise
    _prompts: tuple[Prompt, ...] = field(default=(), compare=False)
    _lines: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"file:{self.path}")
        object.__setattr__(self, "description", f"prompts from {self.path}")
        p = Path(self.path)
        if not p.is_file():
            raise TaskError(f"no prompts file {self.path!r}")
        prompts: list[Prompt] = []
        lines: list[int] = []
        wants_bos: set[bool] = set()
        for number, text in enumerate(_read_lines(p), start=1):
            if not text.strip():
                continue
            try:
                prompt, bos = parse_line(text)
            except (ValueError, TaskError) as err:
                raise TaskError(f"{self.path} line {number}: {err}") from None
            if wants_bos and bos not in wants_bos:
                raise TaskError(f"{self.path} line {number}: 'bos' differs from the lines before it")
            prompts.append(prompt)
            wants_bos.add(bos)
            lines.append(number)
        if not prompts:
            raise TaskError(f"{self.path}: no prompts in the file")
        object.__setattr__(self, "_prompts", tuple(prompts))
        object.__setattr__(self, "_lines", tuple(lines))
        object.__setattr__(self, "prepend_bos", wants_bos != {False})
        object.__setattr__(self, "default_n", len(prompts))
        object.__setattr__(self, "max_n", len(prompts))

    def __len__(self) -> int:
        return len(self._prompts)

    def prompts(self, n: int, seed: int = 0, corruption: str | None = None) -> list[Prompt]:
        self.check_n(n)
        self.check_corruption(corruption)
        if n > len(self._prompts):
            raise TaskError(f"{self.path} holds {len(self._prompts)} prompts, fewer than the {n} asked for")
        return list(self._prompts[:n])

    def where(self, index: int) -> str:
        return f"{self.path} line {self._lines[index]}"


def _read_lines(path: Path) -> list[str]:
    """The file's lines (split at newlines only, as editors number them), refusing a file over ``MAX_FILE_BYTES``
    or not UTF-8 in one line."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise TaskError(f"{path} is over the {MAX_FILE_BYTES // 2**20} MiB a prompts file may have")
        raw = path.read_bytes()
    except OSError as err:
        raise TaskError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise TaskError(f"{path} is not UTF-8 text (byte {err.start} is not); save it as UTF-8") from None


def prompt_record(p: Prompt, bos: bool = True) -> dict[str, Any]:
    """The JSONL object of one prompt (lists for answers and wrong, so every task exports alike)."""
    record: dict[str, Any] = {"clean": p.clean, "corrupted": p.corrupted, "answers": list(p.answers),
                              "wrong": list(p.wrong)}
    return record if bos else {**record, "bos": False}


def jsonl_lines(data: Union["TaskDatasetLike", Iterable[Prompt]]) -> Iterable[str]:
    """Prompts (a dataset's, or any iterable of ``Prompt``) as the JSONL lines ``file:PATH`` reads back."""
    bos = getattr(data, "bos_prepended", True)
    for p in getattr(data, "prompts", data):
        yield json.dumps(prompt_record(p, bos), ensure_ascii=False) + "\n"


def export_jsonl(data: Union["TaskDatasetLike", Iterable[Prompt]], path: str | Path) -> int:
    """Write prompts as JSONL (see ``jsonl_lines``), whole or not at all (``discovery.files``)."""
    from discovery.files import write_text_atomic

    lines = list(jsonl_lines(data))
    write_text_atomic(path, "".join(lines))
    return len(lines)


TaskDatasetLike = Any  # a TaskDataset; named loosely so this module does not import torch
