"""Tasks: prompts as text (``base``, one module per task family) and as checked token tensors (``dataset``).

Importing this package imports no torch; ``build_dataset`` and ``TaskDataset`` load ``dataset`` (and torch)
on first use.
"""

from __future__ import annotations

from typing import Any

from discovery.tasks.base import LOGIT_DIFF, PROB_DIFF, Prompt, Task, get_task, list_tasks, task_names
from discovery.tasks.filetask import FileTask, export_jsonl
from discovery.tasks.tokenizer import load_tokenizer

__all__ = [
    "LOGIT_DIFF",
    "PROB_DIFF",
    "FileTask",
    "Prompt",
    "Task",
    "TaskDataset",
    "build_dataset",
    "export_jsonl",
    "get_task",
    "list_tasks",
    "load_tokenizer",
    "task_names",
]


def __getattr__(name: str) -> Any:
    if name in ("TaskDataset", "build_dataset"):
        from discovery.tasks import dataset

        return getattr(dataset, name)
    raise AttributeError(name)
