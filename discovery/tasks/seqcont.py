"""Lan, Torr & Barez's sequence-continuation tasks (arXiv 2311.04131): ``digits``, ``numwords``, ``months``.

The prompts are those of the authors' data (apartresearch/seqcont_circuits at 884120f): four members of a sequence
in a sentence template, the fifth to be predicted::

    Van done in 1. Hat done in 2. Ring done in 3. Desk done in 4. Sun done in      ->  " 5"
    Oil lost in one. Apple lost in two. Tree lost in three. Snow lost in four. Apple lost in  ->  " five"
    Marcus born in January. Victoria born in February. ... Jamie born in           ->  " May"

- Templates: ``done``, ``lost`` (an object word before each member) and ``born`` (a first name before each
  member), as the generator writes them (``src/generate_data/generate_data.py`` lines 62-82, called three
  times in ``run_gen_data.py`` lines 58, 78, 90) and as the stored prompts read
  (``data/{task}/{task}_prompts_{done,lost,names}.pkl``; the stored texts have no "was", unlike line 79's format
  string). Five distinct words a prompt, drawn from the pools below (the words those stored prompts use).
- Members 1-12 / one-twelve / January-December (``generate_data.py`` lines 67, 88, 90), starts one..eight
  (line 70: ``range(0, 8)``), so the answer is at most the twelfth member.
- 512 prompts a template, 1,536 a task (``src/iter_node_pruning/run_node_ablation.py`` lines 44-57 take the first
  ``num_samps=512`` of each template); here prompt ``i`` uses template ``i mod 3`` and start ``(i div 3) mod 8``,
  so every start is equally frequent in every template, as in the stored data (64 prompts a start and template).
- Wrong answer: the last shown member repeated (``incorr``, line 78); metric: logit difference at the last token
  (``src/iter_node_pruning/metrics.py`` lines 3-9).
- No BOS: the experiments tokenize with the Hugging Face tokenizer, which adds none for GPT-2
  (``src/iter_node_pruning/dataset.py`` line 22).
- Correctness filter: a prompt is kept only where the model's top token is the right answer and
  p(correct) > 2 p(incorrect) (``generate_data.py`` lines 146 and 183); it needs the model, so it is applied when a
  run loads one (``discovery.tasks.filtering``), and the run reports "kept N of M prompts".
- Mean-ablation data (corruption ``random``, the default): the same prompts with each member replaced by a member
  drawn from the twelve, redrawn while the last two would be consecutive (the random-member dataset
  ``data/{task}/randDS_{task}.pkl``, made as the commented code at ``generate_data.py`` lines 193-214 does); node
  pruning takes per-position means over it (``head_ablation_fns.py`` lines 24-49).

Where this differs from the authors' pipeline, on purpose: their generator drew prompts until 1,024 passed GPT-2's
filter, kept number-word and month prompts only in complete blocks of the eight starts that passed for both tasks,
and derived the digit prompts from the kept number-word ones (``generate_data.py`` lines 116-161,
``run_gen_data.py`` lines 99-128). Here each task draws its own prompts and the filter judges each prompt alone,
for whatever model is loaded; the run says how many it kept.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from discovery.tasks.base import LOGIT_DIFF, Prompt, Task
from discovery.tasks.sequences import MONTHS, SEQUENCE_CORRUPTIONS, corrupt, seeded

DIGITS_1_12: tuple[str, ...] = tuple(str(i) for i in range(1, 13))
NUMWORDS_1_12: tuple[str, ...] = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
)  # fmt: skip

# The object words of the stored "done" and "lost" prompts (a subset of src/generate_data/common_words.json that
# are single GPT-2 tokens, filtered at run_gen_data.py lines 72-76), and the first names of the stored "born"
# prompts (100 single-token names, run_gen_data.py lines 46-58): collected from data/*/*_prompts_*.pkl.
OBJECT_WORDS: tuple[str, ...] = (
    "Ant", "Apple", "Arm", "Ax", "Ball", "Bird", "Book", "Box", "Bug", "Camera", "Car", "Cat", "Chair", "Clock",
    "Corn", "Cow", "Desk", "Dog", "Ear", "Eye", "Fan", "Fire", "Fish", "Flag", "Gate", "Glass", "Gold", "Hand",
    "Hat", "Hill", "House", "Ice", "Iron", "Jam", "Jar", "Key", "King", "Lake", "Light", "Map", "Moon", "Mouse",
    "Night", "Nut", "Ocean", "Oil", "Orange", "Pear", "Pen", "Queen", "Rain", "Rat", "Ring", "Road", "Rose", "Sand",
    "Snake", "Snow", "Star", "Sun", "Table", "Train", "Tree", "Van", "Wall", "Wallet", "Watch", "Wheel", "Wind",
    "Window", "Wolf", "Year", "Zip",
)  # fmt: skip
FIRST_NAMES: tuple[str, ...] = (
    "Aaron", "Adam", "Alan", "Albert", "Alex", "Allen", "Andre", "Ann", "Anna", "Anne", "Anthony", "April", "Arthur",
    "Bill", "Brandon", "Bruce", "Carl", "Charles", "Chelsea", "Chris", "Christian", "Christopher", "Connor", "Craig",
    "Danny", "David", "Diamond", "Donald", "Edward", "Elizabeth", "Eric", "Gary", "Gene", "George", "Gordon", "Greg",
    "Henry", "Howard", "Hunter", "Ian", "Jack", "Jacob", "James", "Jamie", "Jay", "Jeff", "Jennifer", "Jeremy",
    "Jessica", "Jim", "Jimmy", "Jo", "John", "Jon", "Jose", "Joseph", "Joshua", "Justin", "Keith", "Kelly", "Kevin",
    "Kim", "Kyle", "Larry", "Laura", "Lee", "Lisa", "Luke", "Madison", "Marc", "Marcus", "Maria", "Mark", "Mary",
    "Matthew", "Michael", "Mike", "Morgan", "Paul", "Peter", "Rachel", "Richard", "Rick", "Robert", "Roger", "Rose",
    "Roy", "Ryan", "Scott", "Sean", "Stephen", "Steve", "Steven", "Taylor", "Terry", "Thomas", "Tom", "Tyler",
    "Victoria", "William",
)  # fmt: skip


@dataclass(frozen=True)
class Template:
    """One of the three sentence templates: ``{word} {verb} in {member}.`` repeated, then ``{word} {verb} in``."""

    name: str
    verb: str
    words: tuple[str, ...]

    def text(self, words: list[str], members: list[str]) -> str:
        parts = [f"{w} {self.verb} in {m}." for w, m in zip(words, members)]
        return " ".join(parts + [f"{words[len(members)]} {self.verb} in"])


TEMPLATES: tuple[Template, ...] = (
    Template("done", "done", OBJECT_WORDS),
    Template("lost", "lost", OBJECT_WORDS),
    Template("born", "born", FIRST_NAMES),
)
SHOWN = 4  # members shown before the answer (the stored prompts' S1..S4)
STARTS = 8  # starts one..eight
LAN_FILTER = "lan2023"  # top-1 right and p(correct) > 2 p(incorrect)


@dataclass(frozen=True, repr=False)
class SeqContTask(Task):
    """One of Lan et al.'s three tasks: ``members`` in the three templates, four shown, the fifth the answer."""

    name: str
    description: str
    members: tuple[str, ...]
    metric: str = LOGIT_DIFF
    corruptions: tuple[str, ...] = SEQUENCE_CORRUPTIONS
    default_corruption: str = "random"
    prepend_bos: bool = False
    correctness_filter: str | None = LAN_FILTER
    default_n: int = len(TEMPLATES) * 512

    def prompts(self, n: int, seed: int, corruption: str | None = None) -> list[Prompt]:
        self.check_n(n)
        corruption = self.check_corruption(corruption)
        return [self.prompt(i, seed, corruption) for i in range(n)]

    def prompt(self, i: int, seed: int, corruption: str) -> Prompt:
        """Prompt ``i``: template ``i mod 3``, start ``(i div 3) mod 8``, words drawn from its own seeded stream."""
        template = TEMPLATES[i % len(TEMPLATES)]
        start = (i // len(TEMPLATES)) % STARTS
        rng = seeded(self.name, seed, i)
        words = rng.sample(template.words, SHOWN + 1)
        shown = list(self.members[start : start + SHOWN])
        corrupted = self.corrupt(shown, corruption, seeded(self.name, seed, i, corruption))
        return Prompt(
            clean=template.text(words, shown),
            corrupted=template.text(words, corrupted),
            answers=(" " + self.members[start + SHOWN],),
            wrong=(" " + shown[-1],),
            members=tuple(" " + m for m in shown + corrupted),
        )

    def corrupt(self, shown: list[str], corruption: str, rng: random.Random) -> list[str]:
        """``random``: Lan et al.'s random members (see the module docstring); the others as for bare lists."""
        if corruption != "random":
            return corrupt(shown, self.members, corruption, rng)
        while True:
            out = [rng.choice(self.members) for _ in shown]
            if self.members.index(out[-1]) - self.members.index(out[-2]) != 1:
                return out

    def template_of(self, index: int) -> str:
        return TEMPLATES[index % len(TEMPLATES)].name


def digits() -> SeqContTask:
    return SeqContTask("digits", "Van done in 1. Hat done in 2. ... Sun done in -> 5 (Lan et al. 2023)", DIGITS_1_12)


def numwords() -> SeqContTask:
    return SeqContTask("numwords", "Oil lost in one. ... Apple lost in -> five (Lan et al. 2023)", NUMWORDS_1_12)


def months() -> SeqContTask:
    return SeqContTask("months", "Marcus born in January. ... Jamie born in -> May (Lan et al. 2023)", MONTHS)
