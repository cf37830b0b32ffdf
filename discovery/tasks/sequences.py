"""Bare-list sequence continuation: ``3 4 5 6`` -> `` 7`` (the ``*-list`` tasks and ``decreasing``).

The plain lists Lan, Torr & Barez (2023, arXiv 2311.04131) use for their OV analyses ("1 2 3 4"); their circuits
come from sentence templates, which are the tasks ``digits``/``numwords``/``months`` (``discovery.tasks.seqcont``).
Wrong answer: the last member repeated (the paper's logit-difference metric). Corruptions, each keeping the
prompt's length in members (and so in tokens, members being single tokens), shared with the template tasks:

    random       random members of the same kind (default)
    repeat-all   the first member repeated: ``1 1 1 1``
    random-some  one member, at a random position, replaced by another
    shuffled     the clean members in another order
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from discovery.errors import TaskError
from discovery.tasks.base import LOGIT_DIFF, Prompt, Task

DIGITS: tuple[str, ...] = tuple(str(i) for i in range(100))
NUMWORDS: tuple[str, ...] = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip
MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip

SEQUENCE_CORRUPTIONS = ("random", "repeat-all", "random-some", "shuffled")


def seeded(*parts: object) -> random.Random:
    """A generator seeded from a string, identical on every machine and Python run (not ``hash()``)."""
    return random.Random(":".join(str(p) for p in parts))


def join_members(members: list[str]) -> str:
    return " ".join(members)


def spaced(members: list[str]) -> tuple[str, ...]:
    """Members as they appear in running text: the first bare, the rest after a space."""
    return tuple(m if i == 0 else " " + m for i, m in enumerate(members))


@dataclass(frozen=True, repr=False)
class SequenceTask(Task):
    """``length`` members of ``members`` in steps of ``step`` (no wrapping); the answer is the next one."""

    name: str
    description: str
    members: tuple[str, ...]
    step: int = 1
    length: int = 4
    metric: str = LOGIT_DIFF
    corruptions: tuple[str, ...] = SEQUENCE_CORRUPTIONS
    default_corruption: str = "random"

    def __post_init__(self) -> None:
        if self.step == 0 or self.length < 2 or not self.starts():
            raise ValueError(f"no sequence of {self.length} members in steps of {self.step} fits {self.name}")

    def starts(self) -> list[int]:
        """Indices a sequence may start at so that it and its answer stay inside ``members``."""
        span = self.step * self.length  # from the first member to the answer
        return [s for s in range(len(self.members)) if 0 <= s + span < len(self.members)]

    def prompts(self, n: int, seed: int, corruption: str | None = None) -> list[Prompt]:
        self.check_n(n)
        corruption = self.check_corruption(corruption)
        clean_rng = seeded(self.name, self.step, self.length, seed)
        corrupt_rng = seeded(self.name, self.step, self.length, seed, corruption)
        starts = self.starts()
        out = []
        for _ in range(n):
            s = clean_rng.choice(starts)
            idx = [s + self.step * i for i in range(self.length + 1)]
            shown = [self.members[i] for i in idx[:-1]]
            corrupted = corrupt(shown, self.members, corruption, corrupt_rng)
            out.append(
                Prompt(
                    clean=join_members(shown),
                    corrupted=join_members(corrupted),
                    answers=(" " + self.members[idx[-1]],),
                    wrong=(" " + shown[-1],),
                    members=spaced(shown) + spaced(corrupted),
                )
            )
        return out


def corrupt(shown: list[str], pool: tuple[str, ...], corruption: str, rng: random.Random) -> list[str]:
    """The corrupted members for ``shown`` (same count): see the module docstring."""
    k = len(shown)
    if corruption == "random":
        while True:
            out = rng.sample(pool, k) if len(pool) >= k else [rng.choice(pool) for _ in range(k)]
            if out != shown:
                return out
    if corruption == "repeat-all":
        return [shown[0]] * k
    if corruption == "random-some":
        pos = rng.randrange(k)
        out = list(shown)
        out[pos] = rng.choice([m for m in pool if m != shown[pos]])
        return out
    if corruption == "shuffled":
        if len(set(shown)) < 2:
            return list(shown)
        while True:
            out = rng.sample(shown, k)
            if out != shown:
                return out
    raise TaskError(f"unknown sequence corruption {corruption!r}; known: {', '.join(SEQUENCE_CORRUPTIONS)}")
