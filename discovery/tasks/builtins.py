"""The built-in tasks, registered by slug in the order ``circuits tasks list`` shows them.

``digits``, ``numwords`` and ``months`` are Lan et al.'s templates (``discovery.tasks.seqcont``); the bare lists
(``3 4 5 6`` -> `` 7``) they grew out of stay as ``digits-list``, ``numwords-list``, ``months-list`` and
``decreasing``, for models that only know lists and for plain OV analyses.
"""

from __future__ import annotations

from discovery.tasks.base import register
from discovery.tasks.ioi import IOITask
from discovery.tasks.seqcont import digits, months, numwords
from discovery.tasks.sequences import DIGITS, MONTHS, NUMWORDS, SequenceTask
from discovery.tasks.years import greater_than, less_than

register("digits", digits)
register("numwords", numwords)
register("months", months)
register("digits-list", lambda: SequenceTask("digits-list", "3 4 5 6 -> 7 (a bare list of numbers 0-99)", DIGITS))
register("numwords-list", lambda: SequenceTask("numwords-list", "three four five six -> seven (a bare list)", NUMWORDS))
register("months-list", lambda: SequenceTask("months-list", "March April May June -> July (a bare list)", MONTHS))
register("decreasing", lambda: SequenceTask("decreasing", "9 8 7 6 -> 5 (a bare list, decreasing by one)", DIGITS,
                                            step=-1))
register("greater-than", greater_than)
register("less-than", less_than)
register("ioi", IOITask)
