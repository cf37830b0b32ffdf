"""Covers: the role rules, their thresholds and precedence, on hand-written figures."""

from __future__ import annotations

import pytest

from discovery.analysis.roles import DLA_SHARE_MIN, OV_MIN, ROLES, label


def ov(**mean: float) -> dict:
    return {"ov": {"digits": {"successor_top1": mean.get("successor_top1", 0.0)}, "mean": mean}}


def attention(**fields) -> dict:
    base = {"shares": {"first": 0.0, "self": 0.0, "previous": 0.0, "same_type": 0.0, "other": 0.0},
            "kind": "mixed", "offsets": [0.0] * 5, "top_offset": 0, "follow": {},
            "random_tokens": {"previous_token": 0.0, "induction": 0.0, "duplicate_token": 0.0}}
    for key, value in fields.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) else value
    return {"attention": base}


def test_successor_needs_top1_at_the_threshold_and_a_positive_sign() -> None:
    got = label(ov(successor_top1=OV_MIN, successor_top5=0.9, successor_sign=1.2, copy_top1=0.0, copy_sign=-0.1))
    assert (got.role, got.score) == ("successor", OV_MIN) and "digits" in got.note
    assert label(ov(successor_top1=OV_MIN - 0.01, successor_sign=1.0)).role is None
    assert label(ov(successor_top1=0.9, successor_sign=-0.5)).role is None  # top-1 but pushed down: not boosting


def test_copy_and_suppression_from_the_sign() -> None:
    assert label(ov(copy_top1=0.8, copy_sign=2.0, suppress_top1=0.0)).role == "copy"
    got = label(ov(copy_top1=0.0, copy_sign=-2.0, suppress_top1=0.9))
    assert got.role == "inhibition" and got.score == 0.9


def test_attention_roles() -> None:
    assert label(attention(random_tokens={"induction": 0.6})).role == "induction"
    assert label(attention(random_tokens={"previous_token": 0.7})).role == "previous-token"
    assert label(attention(shares={"previous": 0.8}, kind="positional")).role == "previous-token"
    assert label(attention(shares={"previous": 0.8}, kind="type")).role == "same-type"  # the previous MEMBER
    assert label(attention(shares={"previous": 0.3, "same_type": 0.3}, kind="type")).role == "same-type"
    assert label(attention(offsets=[0, 0.1, 0.7, 0.1, 0.1], top_offset=2, kind="positional")).role == "positional"
    assert label(attention(offsets=[0, 0.1, 0.7, 0.1, 0.1], top_offset=2, kind="type")).role is None
    assert label(attention(shares={"first": 0.9})).role == "first-token"


def test_dla_sign_gives_boosting_or_inhibition_and_mlps_get_only_those() -> None:
    assert label({"dla": {"dla": 3.0, "share": DLA_SHARE_MIN}}).role == "boosting"
    got = label({"dla": {"dla": -2.0, "share": -0.3}})
    assert got.role == "inhibition" and got.score == pytest.approx(-0.3) and "lowers" in got.note
    assert label({"dla": {"dla": 0.1, "share": 0.01}}).role is None


def test_precedence_and_candidates() -> None:
    figures = {**ov(successor_top1=0.9, successor_sign=1.0, copy_top1=0.0, copy_sign=0.1),
               **attention(shares={"first": 0.8}), "dla": {"dla": 5.0, "share": 0.4}}
    got = label(figures)
    assert got.role == "successor"
    assert [r for r, _ in got.candidates] == ["successor", "boosting", "first-token"]
    assert "also boosting 0.40, first-token 0.80" in got.note


def test_no_rule_says_why_and_every_role_is_documented() -> None:
    got = label({**attention(shares={"other": 1.0}), "dla": {"dla": 0.0, "share": 0.0}})
    assert got.role is None and got.score is None and got.note.startswith("no rule fits")
    import discovery.analysis.roles as roles

    assert all(role in (roles.__doc__ or "") for role in ROLES)
