"""Covers: sweep specs expanded into checked run configurations, refused in one line naming the job and field; the
shipped specs; what an out-of-memory retry halves. No model, no Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from discovery.config import make_config
from discovery.sweeps.runner import halve_batch
from discovery.sweeps.spec import SpecError, config_from_dict, describe, expand, load_spec

ROOT = Path(__file__).resolve().parents[2]


def spec(**tables: Any) -> dict[str, Any]:
    return {"defaults": {"models": ["toy"], "n_prompts": 8}, **tables}


def test_lists_expand_as_a_grid_and_jobs_add_single_runs() -> None:
    grid = {"tasks": ["digits", "months"], "seeds": [0, 1],
            "methods": {"acdc": {"threshold": [0.01, 0.02, 0.05]}, "eap-ig": {"target": 0.5}}}
    job = {"task": "ioi", "method": "path-patching", "seed_nodes": "a3.1,a2.0", "name": "ioi-pp"}
    out = expand(spec(grid=[grid], job=[job]))
    assert len(out.jobs) == 2 * 2 * 3 + 2 * 2 + 1
    assert [j.index for j in out.jobs] == list(range(1, len(out.jobs) + 1))
    acdc = [j.config for j in out.jobs if j.config.method == "acdc"]
    assert {(c.task, c.seed, c.settings["threshold"]) for c in acdc} == {
        (t, s, x) for t in ("digits", "months") for s in (0, 1) for x in (0.01, 0.02, 0.05)}
    assert all(c.metric == "kl" and c.n_prompts == 8 and c.model == "toy" for c in acdc)  # the method's default
    last = out.jobs[-1]
    assert (last.origin, last.name, last.config.settings["seed_nodes"]) == ("job 1", "ioi-pp", ["a3.1", "a2.0"])
    # each job is what `circuits discover` with the same flags would run
    assert last.config == make_config("toy", "ioi", "path-patching", n_prompts=8, settings={"seed_nodes": "a3.1,a2.0"})


def test_a_list_valued_option_takes_a_list_as_one_value_and_a_list_of_lists_as_an_axis() -> None:
    one = expand(spec(grid=[{"tasks": "digits", "methods": {"node-pruning": {"thresholds": [0.7, 0.9]}}}]))
    assert [j.config.settings["thresholds"] for j in one.jobs] == [[0.7, 0.9]]
    axis = expand(spec(grid=[{"tasks": "digits", "methods": {"node-pruning": {"thresholds": [[0.7], [0.9]]}}}]))
    assert [j.config.settings["thresholds"] for j in axis.jobs] == [[0.7], [0.9]]


def test_equal_jobs_are_one_job_and_the_spec_names_the_sweep() -> None:
    grid = {"tasks": ["digits"], "methods": {"acdc": {"threshold": 0.01}}}
    out = expand(spec(name="mine", grid=[grid, grid], job=[{"task": "digits", "method": "acdc"}]))
    assert (out.name, len(out.jobs), out.merged) == ("mine", 1, 2)
    assert expand(spec(grid=[grid]), default_name="file").name == "file"
    assert expand(spec(grid=[grid]), name="flag").name == "flag"


@pytest.mark.parametrize("data, words", [
    ({"grid": [{"tasks": ["digits", "ioi"], "corruptions": ["random"], "methods": {"eap": {}}}]},
     ["job 2 (grid 1: toy/ioi/eap)", "corruption 'random'"]),
    ({"grid": [{"tasks": ["digits"], "methods": {"eap": {"treshold": 0.1}}}]}, ["job 1", "--treshold"]),
    ({"grid": [{"tasks": ["digits"], "methods": {"acdc": {"threshold": [0.1, -1, -2]}}}]},
     ["job 2 (grid 1: toy/digits/acdc threshold=-1)", "--threshold", "and 1 more bad job"]),
    ({"grid": [{"tasks": ["digits"], "methods": {"nope": {}}}]}, ["grid 1: methods.nope", "unknown method"]),
    ({"grid": [{"tasks": ["digits"], "methods": {}}]}, ["grid 1: methods", "at least one"]),
    ({"grid": [{"methods": {"eap": {}}}]}, ["grid 1: tasks"]),
    ({"grid": [{"tasks": [], "methods": {"eap": {}}}]}, ["grid 1: tasks", "empty list"]),
    ({"grid": [{"tasks": ["digits"], "seeds": ["x"], "methods": {"eap": {}}}]}, ["job 1", "seed", "whole number"]),
    ({"grid": [{"task": "digits", "methods": {"eap": {}}}]}, ["grid 1", "unknown key 'task'"]),
    ({"job": [{"tasks": ["digits"], "method": "eap"}]}, ["[[job]] 1: tasks", "one run"]),
    ({"job": [{"task": "digits"}]}, ["[[job]] 1: method"]),
    ({"job": [{"task": "digits", "method": "eap", "name": "x"}, {"task": "months", "method": "eap", "name": "x"}]},
     ["job 2", "name 'x'"]),
    ({"jobs": []}, ["unknown key 'jobs'"]),
    ({}, ["no jobs"]),
])
def test_a_bad_entry_is_refused_in_one_line_naming_the_job_and_the_field(data: dict[str, Any],
                                                                         words: list[str]) -> None:
    with pytest.raises(SpecError) as err:
        expand(spec(**data))
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_unreadable_specs_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")


def test_file_tasks_are_read_relative_to_the_spec(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_text('{"clean": "1 2 3", "corrupted": "4 5 6", "answer": "4", "wrong": "3"}\n')
    (tmp_path / "s.toml").write_text('[[job]]\nmodel = "toy"\ntask = "file:p.jsonl"\nmethod = "eap"\n')
    [job] = load_spec(tmp_path / "s.toml").jobs
    assert job.config.task == f"file:{tmp_path / 'p.jsonl'}"


@pytest.mark.parametrize("name, n_jobs, orders", [("seqcont", 70, 10), ("toy", 60, 3)])
def test_shipped_specs_expand_and_check(name: str, n_jobs: int, orders: int) -> None:
    out = load_spec(ROOT / "sweeps" / f"{name}.toml")
    assert out.name == name and out.merged == 0 and len(out.jobs) == n_jobs
    tasks = {j.config.task for j in out.jobs}
    methods = {j.config.method for j in out.jobs}
    assert tasks == {"digits", "numwords", "months", "greater-than", "ioi"}
    assert methods == {"node-pruning", "acdc", "eap-ig", "path-patching"}
    pruning = {j.config.settings["threshold"] for j in out.jobs if j.config.method == "node-pruning"}
    assert pruning == {0.7, 0.8, 0.9, 0.97}
    assert {j.config.settings["orders"] for j in out.jobs if j.config.method == "node-pruning"} == {0, orders}
    models = {j.config.model for j in out.jobs}
    assert models == ({"gpt2"} if name == "seqcont" else {"toy"})


def test_a_jobs_config_round_trips_through_its_row_and_reads_in_a_few_words() -> None:
    config = make_config("toy", "digits", "acdc", n_prompts=8, seed=3, positions="-1",
                         settings={"threshold": 0.02})
    assert config_from_dict(config.as_dict()) == config
    assert describe(config) == "toy digits acdc threshold=0.02 n_prompts=8 seed=3 positions=-1"


def test_out_of_memory_halves_the_batch_option() -> None:
    acdc = make_config("toy", "digits", "acdc", n_prompts=8)
    assert halve_batch(acdc).settings["max_batch"] == 32  # type: ignore[union-attr]
    eap = make_config("toy", "digits", "eap", n_prompts=8)  # batch unset: the prompts count as the batch
    assert halve_batch(eap).settings["batch_size"] == 4  # type: ignore[union-attr]
    assert halve_batch(make_config("toy", "digits", "eap", n_prompts=8, settings={"batch_size": 1})) is None
    assert halve_batch(make_config("toy", "digits", "path-patching", n_prompts=8)) is None
