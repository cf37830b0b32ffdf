"""Indirect object identification (Wang et al. 2022, arXiv 2211.00593).

``When Mary and John went to the store, John gave a drink to`` -> `` Mary`` (the indirect object, IO);
wrong: the subject (S, the repeated name). ABBA and BABA orders in equal measure (drawn per prompt).
Templates share one shape and word count, so every prompt of a dataset has one token length for a
tokenizer that keeps names, places and objects whole (GPT-2 does for the words below).
Corruption ``abc`` (default): the three name slots get three new names, none of the clean two.
"""

from __future__ import annotations

from dataclasses import dataclass

from discovery.tasks.base import LOGIT_DIFF, Prompt, Task
from discovery.tasks.sequences import seeded

NAMES: tuple[str, ...] = (
    "Mary", "John", "Michael", "Jessica", "Daniel", "Sarah", "David", "James", "Robert", "Joseph", "Andrew",
    "Ryan", "William", "Thomas", "Kevin", "Laura", "Rachel", "Emily", "Paul", "Lisa", "Mark", "Amy", "Sean",
    "Kelly",
)  # fmt: skip
PLACES: tuple[str, ...] = ("store", "park", "school", "office", "station", "garden")
OBJECTS: tuple[str, ...] = ("drink", "book", "ball", "gift", "snack", "letter")
TEMPLATES: tuple[str, ...] = (
    "When {a} and {b} went to the {place}, {s} gave a {obj} to",
    "After {a} and {b} arrived at the {place}, {s} handed a {obj} to",
    "While {a} and {b} were at the {place}, {s} passed a {obj} to",
)


@dataclass(frozen=True, repr=False)
class IOITask(Task):
    name: str = "ioi"
    description: str = "When Mary and John went to the store, John gave a drink to -> Mary (Wang et al. 2022)"
    metric: str = LOGIT_DIFF
    corruptions: tuple[str, ...] = ("abc",)
    default_corruption: str = "abc"

    def prompts(self, n: int, seed: int, corruption: str | None = None) -> list[Prompt]:
        self.check_n(n)
        self.check_corruption(corruption)
        rng = seeded(self.name, seed)
        out = []
        for _ in range(n):
            template = rng.choice(TEMPLATES)
            io, s, x, y, z = rng.sample(NAMES, 5)
            place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
            a, b = (io, s) if rng.random() < 0.5 else (s, io)  # ABBA or BABA
            out.append(
                Prompt(
                    clean=template.format(a=a, b=b, s=s, place=place, obj=obj),
                    corrupted=template.format(a=x, b=y, s=z, place=place, obj=obj),
                    answers=(" " + io,),
                    wrong=(" " + s,),
                    members=tuple(" " + w for w in (a, b, s, x, y, z, place, obj)),
                )
            )
        return out
