"""Covers: kept evaluations (catalog.evaluations: keys, save/replace, find, list, cascade on delete) and circuit
groups (catalog.groups, Catalog.finish(group=...)), on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import Engine

from catalog import queries
from catalog.db import session_scope
from catalog.errors import InvalidCircuit, NotFound
from catalog.evaluations import circuit_hash, evaluation_key
from catalog.records import NewEvaluation
from tests.stats.builders import edges_circuit, nodes_circuit

RECIPE = {"task": "digits", "n_prompts": 8, "seed": 0, "corruption": "random", "filter": "lan2023", "resample": None}


def _key(**changes: Any) -> str:
    args: dict[str, Any] = dict(circuit="c" * 64, weights_hash="w", dataset=RECIPE, metric="logit-diff",
                                ablation="mean", positions=None, level="nodes", dtype="float32", code_version="v1")
    args.update(changes)
    return evaluation_key(**args)


def _evaluation(circuit: str, key: str, value: float = 0.5) -> NewEvaluation:
    return NewEvaluation(circuit=circuit, eval_key=key, model="toy", task="digits", metric="logit-diff",
                         ablation="mean", level="nodes", settings={"kind": "circuit", "prompts": "8"},
                         results={"value": value, "kept_fraction": value, "spread": [math.nan, math.inf]},
                         dataset_hash="d" * 64, code_version="v1")


def test_every_input_of_the_key_changes_it() -> None:
    base = _key()
    changed = [_key(circuit="e" * 64), _key(weights_hash="w2"), _key(dataset={**RECIPE, "seed": 1}),
               _key(dataset={**RECIPE, "resample": 3}), _key(metric="kl"), _key(ablation="patch"),
               _key(positions=[-1]), _key(level="edges"), _key(dtype="bfloat16"), _key(code_version="v2"),
               _key(kind="random", params={"n": 5})]
    assert len({base, *changed}) == len(changed) + 1
    assert _key() == base  # and nothing else does


def test_the_circuit_hash_is_its_content_not_its_name() -> None:
    a, b = nodes_circuit("a", ["a0.1", "m2"]), nodes_circuit("b", ["m2", "a0.1"])
    assert circuit_hash(a, "nodes") == circuit_hash(b, "nodes")
    assert circuit_hash(a, "nodes") != circuit_hash(nodes_circuit("c", ["a0.1"]), "nodes")
    e1 = edges_circuit("e1", ["embed->a0.1.v", "a0.1->logits"])
    e2 = edges_circuit("e2", ["embed->a0.1.q", "a0.1->logits"])
    assert circuit_hash(e1, "nodes") == circuit_hash(e2, "nodes") and circuit_hash(e1, "edges") != circuit_hash(
        e2, "edges")
    with pytest.raises(InvalidCircuit):
        circuit_hash(a, "heads")


def test_save_find_replace_list_and_cascade(engine: Engine) -> None:
    with session_scope(engine) as s:
        queries.save_circuit(s, nodes_circuit("a", ["a0.1"]))
        queries.save_circuit(s, nodes_circuit("b", ["a1.1"]))
        first = queries.save_evaluation(s, _evaluation("a", "k1", 0.25))
        queries.save_evaluation(s, _evaluation("b", "k2", 0.75))
    assert first.circuit == "a" and first.results["value"] == 0.25
    with session_scope(engine, read_only=True) as s:
        found = queries.find_evaluation(s, "k1")
        assert found is not None and found.settings["prompts"] == "8" and found.dataset_hash == "d" * 64
        spread = found.results["spread"]
        assert math.isnan(spread[0]) and spread[1] == math.inf  # non-finite figures round-trip on both backends
        assert queries.find_evaluation(s, "nope") is None
        assert [e.circuit for e in queries.list_evaluations(s)] == ["a", "b"]
        assert [e.eval_key for e in queries.list_evaluations(s, "b")] == ["k2"]
        with pytest.raises(NotFound):
            queries.list_evaluations(s, "zzz")
    with session_scope(engine) as s:  # measured again (--fresh): replaced, not duplicated
        queries.save_evaluation(s, _evaluation("a", "k1", 0.3))
    with session_scope(engine, read_only=True) as s:
        assert [e.results["value"] for e in queries.list_evaluations(s, "a")] == [0.3]
    with session_scope(engine) as s:
        queries.delete_circuit(s, "a")
    with session_scope(engine, read_only=True) as s:
        assert queries.find_evaluation(s, "k1") is None and len(queries.list_evaluations(s)) == 1


def test_an_evaluation_of_an_unknown_circuit_or_with_bad_text_is_refused(engine: Engine) -> None:
    with session_scope(engine) as s:
        with pytest.raises(NotFound):
            queries.save_evaluation(s, _evaluation("ghost", "k"))
    with session_scope(engine) as s:
        queries.save_circuit(s, nodes_circuit("a", ["a0.1"]))
        bad = NewEvaluation(**{**vars(_evaluation("a", "k")), "task": "x" * 201})
        with pytest.raises(InvalidCircuit):
            queries.save_evaluation(s, bad)


def test_groups(engine: Engine) -> None:
    with session_scope(engine) as s:
        for name in ("g-002", "g-001", "other"):
            queries.save_circuit(s, nodes_circuit(name, ["a0.1"]))
        queries.set_group(s, "g-002", "g")
        queries.set_group(s, "g-001", "g")
        with pytest.raises(InvalidCircuit):
            queries.set_group(s, "other", "a/b")
    with session_scope(engine, read_only=True) as s:
        assert queries.list_group(s, "g") == ["g-002", "g-001"]  # in the order they were made
        assert queries.find_group(s, "g-001") == "g" and queries.find_group(s, "other") is None
        assert queries.list_groups(s) == [("g", 2)] and queries.list_group(s, "none") == []
