"""Role labels from analysis figures: one role per node, with the score behind it and the rule that gave it.

``label(figures)`` reads a node's figures as the analyses store them (``{"attention": ..., "ov": ...,
"dla": ...}``, any subset) and applies these rules in order; the node takes the first role whose rule
passes, and every passing rule is kept as a candidate. Thresholds are module constants:

    role            rule (score = the figure named first)
    successor       OV successor top-1 (mean over token sets) >= 0.5 and successor sign > 0
    copy            OV copy top-1 >= 0.5 and copy sign > 0
    inhibition      OV suppress top-1 >= 0.5 and copy sign < 0 (it lowers the token it attends to)
    induction       induction score on repeated random tokens >= 0.4
    previous-token  previous-token score on random tokens >= 0.5, or previous share on the task's prompts
                    >= 0.5 for a head the irregular prompts show to be positional
    same-type       members' share (previous + same_type) >= 0.5 for a head the irregular prompts show to
                    follow token types
    positional      a head the irregular prompts show to be positional, with >= 0.5 of its attention at one
                    offset of 2 or more (an n-2 or n-3 head; offset 1 is previous-token)
    boosting        direct logit attribution >= 10 % of the logit difference
    inhibition      direct logit attribution <= -10 % of the logit difference
    first-token     first-token share >= 0.7 (the head mostly rests on BOS)

The OV thresholds are on top-1 accuracy, not Lan et al.'s top-5: with sets of 7 days or 12 months, top-5
chance is 40-70 %; top-1 chance is at most 1/7. MLPs have no attention or OV figures, so only the DLA rules
apply to them. A node no rule fits gets no role (None).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

ROLES = ("successor", "copy", "inhibition", "induction", "previous-token", "same-type", "positional", "boosting",
         "first-token")
SOURCE = "analysis"

OV_MIN = 0.5
INDUCTION_MIN = 0.4
PREVIOUS_MIN = 0.5
SAME_TYPE_MIN = 0.5
OFFSET_MIN = 0.5
DLA_SHARE_MIN = 0.1
FIRST_MIN = 0.7


@dataclass(frozen=True)
class RoleLabel:
    role: Optional[str]
    score: Optional[float]
    note: str
    candidates: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "score": self.score, "note": self.note,
                "candidates": [{"role": r, "score": s} for r, s in self.candidates]}


Rule = Callable[[Mapping[str, Any]], Optional[tuple[float, str]]]


def _get(figures: Mapping[str, Any], *path: str) -> Optional[float]:
    value: Any = figures
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) else None


def _successor(f: Mapping[str, Any]) -> Optional[tuple[float, str]]:
    top1, sign = _get(f, "ov", "mean", "successor_top1"), _get(f, "ov", "mean", "successor_sign")
    if top1 is not None and sign is not None and top1 >= OV_MIN and sign > 0:
        top5 = _get(f, "ov", "mean", "successor_top5")
        sets = _sets(f, "successor_top1")
        return top1, f"OV successor top-1 {top1:.2f} (top-5 {_show(top5)}), sign {sign:+.2f}{sets}"
    return None


def _copy(f: Mapping[str, Any]) -> Optional[tuple[float, str]]:
    top1, sign = _get(f, "ov", "mean", "copy_top1"), _get(f, "ov", "mean", "copy_sign")
    if top1 is not None and sign is not None and top1 >= OV_MIN and sign > 0:
        return top1, f"OV copy top-1 {top1:.2f}, sign {sign:+.2f}{_sets(f, 'copy_top1')}"
    return None


def _suppress(f: Mapping[str, Any]) -> Optional[tuple[float, str]]:
    low, sign = _get(f, "ov", "mean", "suppress_top1"), _get(f, "ov", "mean", "copy_sign")
    if low is not None and sign is not None and low >= OV_MIN and sign < 0:
        return low, f"OV lowers the attended token: suppress top-1 {low:.2f}, copy sign {sign:+.2f}"
    return None


def _induction(f: Mapping[str, Any]) -> Optional[tuple[float, str]]:
    score = _get(f, "attention", "random_tokens", "induction")
    if score is not None and score >= INDUCTION_MIN:
        return score, f"induction score {score:.2f} on repeated random tokens"
    return None


def _previous(f: Mapping[str, Any]) -> Optional[tuple[float, str]]:
    rand = _get(f, "attention", "random_tokens", "previous_token")
    share = _get(f, "attention", "shares", "previous")
    kind = (f.get("attention") or {}).get("kind")
    if rand is not None and rand >= PREVIOUS_MIN:
        return rand, f"previous-token score {rand:.2f} on random tokens; task previous share {_show(share)} ({kind})"
    if share is not None and share >= PREVIOUS_MIN and kind == "positional":
        return share, f"previous share {share:.2f} on the task's prompts, positional on irregular prompts"
    return None


def _same_type(f: Mapping[str, Any]) -> Optional[tuple[float, str]]:
    prev, same = _get(f, "attention", "shares", "previous"), _get(f, "attention", "shares", "same_type")
    kind = (f.get("attention") or {}).get("kind")
    if prev is None or same is None or kind != "type":
        return None
    score = prev + same
    if score >= SAME_TYPE_MIN:
        gap = _get(f, "attention", "follow", "token_gap")
        return score, f"members' share {score:.2f}, follows tokens on irregular prompts (token follow {_show(gap)})"
    return None


def _positional(f: Mapping[str, Any]) -> Optional[tuple[float, str]]:
    att = f.get("attention") or {}
    offsets, top = att.get("offsets"), att.get("top_offset")
    if att.get("kind") != "positional" or not isinstance(offsets, list) or not isinstance(top, int) or top < 2:
        return None
    share = float(offsets[top])
    if share >= OFFSET_MIN:
        relative = _get(f, "attention", "follow", "relative_gap")
        return share, f"attends n-{top} ({share:.2f}) by position (relative follow {_show(relative)} with fillers)"
    return None


def _dla(sign: int) -> Rule:
    def rule(f: Mapping[str, Any]) -> Optional[tuple[float, str]]:
        share, value = _get(f, "dla", "share"), _get(f, "dla", "dla")
        if share is not None and value is not None and sign * share >= DLA_SHARE_MIN:
            word = "raises" if sign > 0 else "lowers"
            return share, f"direct logit attribution {value:+.3g} {word} the logit difference ({share:+.0%} of it)"
        return None

    return rule


def _first(f: Mapping[str, Any]) -> Optional[tuple[float, str]]:
    share = _get(f, "attention", "shares", "first")
    if share is not None and share >= FIRST_MIN:
        return share, f"first-token share {share:.2f}"
    return None


RULES: tuple[tuple[str, Rule], ...] = (
    ("successor", _successor),
    ("copy", _copy),
    ("inhibition", _suppress),
    ("induction", _induction),
    ("previous-token", _previous),
    ("same-type", _same_type),
    ("positional", _positional),
    ("boosting", _dla(+1)),
    ("inhibition", _dla(-1)),
    ("first-token", _first),
)


def label(figures: Mapping[str, Any]) -> RoleLabel:
    """The role of a node from its stored figures (see the module docstring)."""
    passed = [(role, hit) for role, rule in RULES if (hit := rule(figures)) is not None]
    if not passed:
        return RoleLabel(None, None, "no rule fits: " + _summary(figures))
    role, (score, note) = passed[0]
    seen: dict[str, float] = {}
    for r, (s, _) in passed:
        seen.setdefault(r, round(s, 4))
    others = [f"{r} {s:.2f}" for r, s in seen.items() if r != role]
    if others:
        note += "; also " + ", ".join(others)
    return RoleLabel(role, round(score, 4), note, tuple(seen.items()))


def _show(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _sets(f: Mapping[str, Any], score: str) -> str:
    ov = f.get("ov") or {}
    parts = [f"{name} {v[score]:.2f}" for name, v in ov.items()
             if isinstance(v, Mapping) and name != "mean" and isinstance(v.get(score), (int, float))]
    return f" [{', '.join(parts)}]" if parts else ""


def _summary(f: Mapping[str, Any]) -> str:
    bits = []
    att = f.get("attention") or {}
    if att:
        bits.append(f"attends mostly {att.get('dominant')} ({att.get('kind')})")
    succ = _get(f, "ov", "mean", "successor_top1")
    if succ is not None:
        bits.append(f"OV successor top-1 {succ:.2f}, copy top-1 {_show(_get(f, 'ov', 'mean', 'copy_top1'))}")
    share = _get(f, "dla", "share")
    if share is not None:
        bits.append(f"DLA {share:+.0%} of the logit difference")
    return "; ".join(bits) or "no figures"
