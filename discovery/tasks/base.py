"""The task interface: a task makes prompt TEXT; the model's tokenizer makes tokens (``discovery.tasks.dataset``).

A task is tokenizer-agnostic: it writes clean and corrupted prompts and the texts of the continuations that
count as right (``answers``) and wrong (``wrong``). Continuations carry the spacing they have in running text
(``" 7"`` after ``"3 4 5 6"``; ``"33"`` after ``"... the year 17"``, since a year ``1733`` is one word), so that
GPT-2's BPE finds its single token and a whitespace tokenizer finds the same word.

Registry: ``get_task(name)`` returns a built-in task or, for ``file:PATH.jsonl``, a researcher's own prompts;
``list_tasks()`` lists the built-ins. Nothing here imports torch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

from discovery.errors import TaskError

LOGIT_DIFF = "logit-diff"
PROB_DIFF = "prob-diff"


@dataclass(frozen=True)
class Prompt:
    """One clean/corrupted pair at text level.

    ``answers`` are the continuations that are right, ``wrong`` those the metric weighs against them; the
    answer position is the prompt's last token. ``members`` are the slot fillers as they appear in ``clean``
    (``" 4"``, ``" Mary"``), which must each be a single token; file prompts leave it empty.
    """

    clean: str
    corrupted: str
    answers: tuple[str, ...]
    wrong: tuple[str, ...]
    members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.answers:
            raise TaskError(f"a prompt needs at least one answer: {self.clean!r}")
        if not self.wrong:
            raise TaskError(f"a prompt needs at least one wrong answer: {self.clean!r}")


class Task(abc.ABC):
    """A family of prompts with a metric and named corruptions.

    Contract of ``prompts``: the same ``(n, seed, corruption)`` gives the same prompts on every machine, and
    the prompts of ``prompts(m, seed, c)`` begin with those of ``prompts(n, seed, c)`` for ``m > n`` (the
    dataset builder relies on this to draw more prompts when some must be dropped).
    """

    name: str
    description: str
    metric: str = LOGIT_DIFF
    corruptions: tuple[str, ...] = ()
    default_corruption: str = ""
    #: Whether the dataset builder may drop prompts whose token length differs from the most common one
    #: (generated tasks) or must refuse them (a researcher's own file).
    may_drop_prompts: bool = True
    #: Whether the tokenizer's BOS token is put before every prompt (TransformerLens's ``to_tokens`` does); a task
    #: whose paper tokenized without one (Lan et al.'s) says False.
    prepend_bos: bool = True
    #: The rule that drops prompts the model gets wrong before a run (``discovery.tasks.filtering``), or None.
    correctness_filter: str | None = None
    #: How many prompts a run uses unless told otherwise (the paper's dataset size where it has one).
    default_n: int = 64
    #: The most prompts a run may ask for: generated tasks stop here (a million prompts would only fill memory),
    #: a file task at its line count.
    max_n: int = 100_000

    @abc.abstractmethod
    def prompts(self, n: int, seed: int, corruption: str | None) -> list[Prompt]:
        """``n`` clean/corrupted pairs drawn with ``seed``; ``corruption`` is one of ``self.corruptions``."""

    def where(self, index: int) -> str:
        """Where prompt ``index`` comes from, for error messages (a file task names its line)."""
        return f"prompt {index + 1}"

    def check_corruption(self, corruption: str | None) -> str:
        """The corruption to use: the default for None, else ``corruption`` if this task has it."""
        if corruption is None or corruption == "":
            return self.default_corruption
        if corruption not in self.corruptions:
            raise TaskError(
                f"task {self.name!r} has no corruption {corruption!r}; it has: {', '.join(self.corruptions)}"
            )
        return corruption

    def check_n(self, n: int) -> None:
        if n < 1:
            raise TaskError(f"need at least one prompt, got n={n}")

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


# ---------------------------------------------------------------------------------------------------------
# Registry. Built-in tasks are made on demand (no import-time work beyond defining the factories).

_FACTORIES: dict[str, Callable[[], Task]] = {}


def register(name: str, factory: Callable[[], Task]) -> None:
    """Add a built-in task; the name is its slug (``"greater-than"``)."""
    _FACTORIES[name] = factory


def _ensure_builtins() -> None:
    if not _FACTORIES:
        from discovery.tasks import builtins  # noqa: F401  (registers the built-in tasks)


def task_names() -> list[str]:
    _ensure_builtins()
    return list(_FACTORIES)


def list_tasks() -> list[Task]:
    """The built-in tasks, in a stable order."""
    _ensure_builtins()
    return [factory() for factory in _FACTORIES.values()]


def get_task(name: str) -> Task:
    """A built-in task by slug, or ``file:PATH.jsonl`` for a researcher's own prompts."""
    if name.startswith("file:"):
        from discovery.tasks.filetask import FileTask

        return FileTask(name[len("file:"):])
    _ensure_builtins()
    factory = _FACTORIES.get(name)
    if factory is None:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(_FACTORIES)}, or file:PATH.jsonl")
    return factory()
