"""Covers: a researcher's own prompts (file:PATH.jsonl): parsing, token checks naming the bad line, export round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from discovery.errors import TaskError
from discovery.tasks import FileTask, build_dataset, export_jsonl, get_task


def write(tmp_path: Path, lines: list) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return str(path)


GOOD = {"clean": "3 4 5 6", "corrupted": "8 1 4 2", "answer": " 7", "wrong": " 6"}


@pytest.mark.parametrize("task", ["digits", "greater-than", "ioi", "months"])
def test_export_import_round_trip(tmp_path: Path, toy_tokenizer, task: str) -> None:
    original = build_dataset(task, toy_tokenizer, n=25, seed=4)
    path = tmp_path / f"{task}.jsonl"
    assert export_jsonl(original, path) == 25
    again = build_dataset(f"file:{path}", toy_tokenizer, n=25)
    assert again.task == f"file:{path}" and again.corruption == "file"
    for name in ("clean", "corrupted", "answers", "answers_mask", "wrong", "wrong_mask"):
        assert torch.equal(getattr(original, name), getattr(again, name)), name
    assert again.spec.content_hash == original.spec.content_hash
    assert [(p.clean, p.corrupted, p.answers, p.wrong) for p in again.prompts] == [
        (p.clean, p.corrupted, p.answers, p.wrong) for p in original.prompts
    ]


def test_answer_or_answers_text_or_list(tmp_path: Path, toy_tokenizer) -> None:
    path = write(tmp_path, [GOOD, "", {**{k: v for k, v in GOOD.items() if k != "answer"}, "answers": [" 7", " 8"], "wrong": [" 6"]}])
    task = get_task(f"file:{path}")
    assert isinstance(task, FileTask) and len(task) == 2
    data = build_dataset(task, toy_tokenizer, n=2)
    assert data.answers_mask.sum(-1).tolist() == [1, 2]
    with pytest.raises(TaskError, match="holds 2 prompts"):
        build_dataset(task, toy_tokenizer, n=3)


@pytest.mark.parametrize(
    "bad,message",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "wrong"}, "'wrong' is missing"),
        ({k: v for k, v in GOOD.items() if k != "answer"}, "exactly one of 'answer'"),
        ({**GOOD, "clean": ""}, "'clean' must be"),
        ({**GOOD, "answer": []}, "'answer' must be"),
        ({**GOOD, "extra": 1}, "unknown keys: extra"),
    ],
)
def test_parse_errors_name_the_line(tmp_path: Path, bad, message: str) -> None:
    path = write(tmp_path, [GOOD, "", GOOD, bad, "{also bad"])
    with pytest.raises(TaskError, match=rf"prompts.jsonl line 4: .*{message}"):
        get_task(f"file:{path}")


def test_token_errors_name_the_line(tmp_path: Path, toy_tokenizer) -> None:
    multi = {**GOOD, "answer": " 7 8"}
    path = write(tmp_path, [GOOD, GOOD, multi, {**GOOD, "answer": " 7 9"}])
    with pytest.raises(TaskError, match=r"' 7 8' -> \['7', '8'\] \(answer at .*prompts.jsonl line 3\)"):
        build_dataset(f"file:{path}", toy_tokenizer, n=4)
    unknown = {**GOOD, "clean": "3 4 5 zebra"}
    path = write(tmp_path, [GOOD, unknown])
    with pytest.raises(TaskError, match="line 2: words unknown to this tokenizer: 'zebra'"):
        build_dataset(f"file:{path}", toy_tokenizer, n=2)
    pair = {**GOOD, "corrupted": "8 1 4"}
    path = write(tmp_path, ["", GOOD, pair])
    with pytest.raises(TaskError, match=r"line 3: clean and corrupted differ in token length \(4 vs 3\)"):
        build_dataset(f"file:{path}", toy_tokenizer, n=2)
    longer = {**GOOD, "clean": "2 3 4 5 6", "corrupted": "1 1 1 1 1"}
    path = write(tmp_path, [GOOD, GOOD, GOOD, GOOD, longer])
    with pytest.raises(TaskError, match="line 5: 5 tokens, but .*line 1 has 4"):
        build_dataset(f"file:{path}", toy_tokenizer, n=5)


def test_missing_file() -> None:
    with pytest.raises(TaskError, match="no prompts file"):
        get_task("file:/nonexistent/prompts.jsonl")
