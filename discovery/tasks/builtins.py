"""The built-in tasks, registered by slug in the order ``circuits tasks list`` shows them."""

from __future__ import annotations

from discovery.tasks.base import register
from discovery.tasks.ioi import IOITask
from discovery.tasks.sequences import DIGITS, MONTHS, NUMWORDS, SequenceTask
from discovery.tasks.years import greater_than, less_than

register("digits", lambda: SequenceTask("digits", "3 4 5 6 -> 7 (increasing by one; Lan et al. 2023)", DIGITS))
register("numwords", lambda: SequenceTask("numwords", "three four five six -> seven (number words)", NUMWORDS))
register("months", lambda: SequenceTask("months", "March April May June -> July", MONTHS))
register("decreasing", lambda: SequenceTask("decreasing", "9 8 7 6 -> 5 (decreasing by one)", DIGITS, step=-1))
register("greater-than", greater_than)
register("less-than", less_than)
register("ioi", IOITask)
