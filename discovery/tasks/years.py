"""Year comparison: greater-than (Hanna, Liu & Variengien 2023, arXiv 2305.00586) and its mirror, less-than.

greater-than: ``The war lasted from the year 1732 to the year 17`` -> any ``YY'`` > 32 (``"33"`` .. ``"99"``).
less-than:    ``The war ended in the year 1732 and began in the year 17`` -> any ``YY'`` < 32.
The continuation is the two-digit year with no space, as it follows the century inside one word (GPT-2 and
the toy tokenizer both cut ``1732`` into ``17`` + ``32``). ``YY`` is drawn from 02..98, the century from
11..17, as in the paper. Metric: probability difference (sum of p over right years minus sum over the rest).

Corruptions: ``01`` (YY replaced by 01, the paper's; default) and, for less-than, its mirror ``99``.
"""

from __future__ import annotations

from dataclasses import dataclass

from discovery.tasks.base import PROB_DIFF, Prompt, Task
from discovery.tasks.sequences import seeded

NOUNS: tuple[str, ...] = ("war", "deal", "trip", "strike", "project", "contract")
CENTURIES: tuple[str, ...] = tuple(str(c) for c in range(11, 18))
YEARS: tuple[int, ...] = tuple(range(2, 99))


def two_digits(value: int) -> str:
    return f"{value:02d}"


@dataclass(frozen=True, repr=False)
class YearTask(Task):
    """A year ``{c}{yy}`` in ``template``; right answers are the two-digit years above (or below) ``yy``."""

    name: str
    description: str
    template: str  # with {noun}, {c} (century) and {yy}
    greater: bool
    metric: str = PROB_DIFF
    corruptions: tuple[str, ...] = ("01",)
    default_corruption: str = "01"

    def prompts(self, n: int, seed: int, corruption: str | None = None) -> list[Prompt]:
        self.check_n(n)
        corruption = self.check_corruption(corruption)
        rng = seeded(self.name, seed)
        out = []
        for _ in range(n):
            noun, c, y = rng.choice(NOUNS), rng.choice(CENTURIES), rng.choice(YEARS)
            yy = two_digits(y)
            above = tuple(two_digits(v) for v in range(y + 1, 100))
            below = tuple(two_digits(v) for v in range(0, y))
            right = above if self.greater else below
            rest = tuple(two_digits(v) for v in (range(0, y + 1) if self.greater else range(y, 100)))
            out.append(
                Prompt(
                    clean=self.template.format(noun=noun, c=c, yy=yy),
                    corrupted=self.template.format(noun=noun, c=c, yy=corruption),
                    answers=right,
                    wrong=rest,
                    members=(" " + noun, " " + c, yy),
                )
            )
        return out

    def threshold(self, prompt: Prompt) -> int:
        """The ``YY`` of a clean prompt (the first year in it)."""
        for word in prompt.clean.split():
            if len(word) == 4 and word.isdigit():
                return int(word[2:])
        raise ValueError(f"no year in {prompt.clean!r}")


def greater_than() -> YearTask:
    return YearTask(
        name="greater-than",
        description="The war lasted from the year 1732 to the year 17 -> a year above 32 (Hanna et al. 2023)",
        template="The {noun} lasted from the year {c}{yy} to the year {c}",
        greater=True,
    )


def less_than() -> YearTask:
    return YearTask(
        name="less-than",
        description="The war ended in the year 1732 and began in the year 17 -> a year below 32",
        template="The {noun} ended in the year {c}{yy} and began in the year {c}",
        greater=False,
        corruptions=("01", "99"),
    )
