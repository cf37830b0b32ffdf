"""Sweep specs: a research grid written as TOML, expanded into checked run configurations before anything runs.

A spec names the grid once instead of typing a hundred ``circuits discover`` lines::

    name = "toy"                          # the sweep's name (default: the file's name without .toml)

    [defaults]                            # inherited by every grid and job that does not set the key
    models = ["toy"]
    n_prompts = 128

    [[grid]]                              # lists expand as a grid: every combination is one job
    tasks = ["digits", "numwords", "months"]
    seeds = [0, 1]
    [grid.methods.node-pruning]           # a method with its settings; a list is one more axis
    threshold = [0.7, 0.8, 0.9, 0.97]
    orders = 10
    [grid.methods.eap-ig]                 # an empty table: the method's defaults

    [[job]]                               # one run, spelled out
    task = "ioi"
    method = "path-patching"
    seed_nodes = "a9.9,a10.0,a9.6"

Grid axes (a value or a list): ``models``, ``tasks``, ``corruptions``, ``metrics``, ``ablations``, ``seeds``,
``n_prompts``; single values: ``device``, ``dtype``, ``filter`` (the task's correctness filter, default true),
``positions``. Unset, a metric, ablation or corruption is the method's or task's default, exactly as ``circuits
discover`` resolves it. A method option whose value is itself a list (``thresholds``, ``seed_nodes``) takes a list
as one value; a list of lists is an axis. A ``[[job]]`` takes the singular keys (``model``, ``task``, ``method``,
``corruption``, ``metric``, ``ablation``, ``seed``, ``n_prompts``, ``device``, ``dtype``, ``filter``,
``positions``), an optional circuit ``name``, and its method's options beside them. ``file:`` tasks are read
relative to the spec's folder.

Every job goes through ``discovery.config.make_config``, so a spec is checked exactly as ``discover``'s flags
are, and all of it before anything runs: a bad entry is refused in one line naming the job and the field. Jobs
with equal configurations (a grid overlapping a job) are one job.

Torch-free: ``circuits sweep run --dry-run`` expands and checks a grid for a model whose weights are elsewhere.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from discovery.config import RunConfig, make_config
from discovery.errors import DiscoveryError
from discovery.methods import get_method
from discovery.settings import FLOATS, NODES

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (a dependency there)
    import tomli as tomllib

MAX_JOBS = 100_000  # a spec that expands past this is a typo (an axis of a thousand values), not a plan
AXES = {"models": "model", "tasks": "task", "corruptions": "corruption", "metrics": "metric",
        "ablations": "ablation", "seeds": "seed", "n_prompts": "n_prompts"}
SINGLES = ("device", "dtype", "filter", "positions")
JOB_KEYS = (*AXES.values(), "method", *SINGLES, "name")
_TEXT = {"model", "task", "corruption", "metric", "ablation", "device", "dtype", "method", "name"}
_WHOLE = {"seed", "n_prompts"}
_LIST_KINDS = (FLOATS, NODES)


class SpecError(DiscoveryError):
    """A sweep spec that cannot run: unreadable, malformed, or with a job ``make_config`` refuses."""


@dataclass(frozen=True)
class SweepJob:
    """One configuration of a sweep. ``origin`` says where in the spec it came from (``grid 1``, ``job 3``);
    ``name`` is the circuit name a ``[[job]]`` asked for (None: the sweep names it)."""

    index: int
    origin: str
    config: RunConfig
    name: Optional[str] = None

    @property
    def label(self) -> str:
        return describe(self.config)


@dataclass(frozen=True)
class SweepSpec:
    """A spec, expanded: its name, its jobs in spec order, and the parsed TOML (kept with the sweep's row)."""

    name: str
    jobs: tuple[SweepJob, ...]
    source: Mapping[str, Any] = field(default_factory=dict)
    merged: int = 0  # jobs equal to an earlier one, dropped


def load_spec(path: str | Path, name: Optional[str] = None) -> SweepSpec:
    """Read, expand and check the spec at ``path`` (see the module docstring); ``name`` overrides its name."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(f"cannot read the sweep spec {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path} is not a UTF-8 text file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path} is not valid TOML: {err}") from None
    return expand(data, default_name=path.stem, base=path.parent, where=str(path), name=name)


def expand(data: Mapping[str, Any], *, default_name: str = "sweep", base: Optional[Path] = None,
           where: str = "spec", name: Optional[str] = None) -> SweepSpec:
    """The jobs of a parsed spec, each checked by ``make_config``; every refusal names the job and the field."""
    _only(data, ("name", "description", "defaults", "grid", "job"), where)
    defaults = _table(data.get("defaults", {}), f"{where}: [defaults]")
    _only(defaults, (*AXES, *SINGLES), f"{where}: [defaults]")
    raw: list[tuple[str, dict[str, Any]]] = []
    for g, grid in enumerate(_tables(data.get("grid", []), f"{where}: [[grid]]"), start=1):
        raw.extend((f"grid {g}", entry) for entry in _grid_entries(grid, defaults, f"{where}: grid {g}"))
        if len(raw) > MAX_JOBS:
            raise SpecError(f"{where}: the grids expand to more than {MAX_JOBS} jobs")
    for j, table in enumerate(_tables(data.get("job", []), f"{where}: [[job]]"), start=1):
        raw.append((f"job {j}", _job_entry(table, defaults, f"{where}: [[job]] {j}")))
    if not raw:
        raise SpecError(f"{where}: no jobs: add a [[grid]] with tasks and methods, or a [[job]]")
    problems: list[str] = []
    jobs: list[SweepJob] = []
    seen: set[str] = set()
    names: dict[str, int] = {}
    for index, (origin, entry) in enumerate(raw, start=1):
        try:
            job = SweepJob(index, origin, _config(entry, base), entry.get("name"))
        except DiscoveryError as err:
            problems.append(f"job {index} ({origin}: {_entry_label(entry)}): {err}")
            continue
        if job.name is not None and names.setdefault(job.name, job.index) != job.index:
            problems.append(f"job {index} ({origin}): name {job.name!r} is job {names[job.name]}'s already")
        if job.config.key not in seen:
            seen.add(job.config.key)
            jobs.append(job)
    if problems:
        rest = len(problems) - 1
        more = f" (and {rest} more bad job{'s' if rest > 1 else ''})" if rest else ""
        raise SpecError(f"{where}: {problems[0]}{more}")
    title = name if name is not None else data.get("name", default_name)
    if not isinstance(title, str) or not title.strip():
        raise SpecError(f"{where}: name: expected the sweep's name as text, got {title!r}")
    renumbered = tuple(SweepJob(i, j.origin, j.config, j.name) for i, j in enumerate(jobs, start=1))
    return SweepSpec(title, renumbered, dict(data), merged=len(raw) - len(jobs))


def describe(config: RunConfig) -> str:
    """A job in a few words: model, task, method, then what differs from the defaults ``discover`` would use."""
    parts = [config.model, config.task, config.method]
    spec = get_method(config.method)
    defaults = spec.resolve({})
    parts += [f"{k}={_show(v)}" for k, v in config.settings.items()
              if v is not None and (v != defaults.get(k) or k in ("threshold", "top_k", "target"))]
    plain = make_config(config.model, config.task, config.method, n_prompts=None, device=config.device,
                        dtype=config.dtype)
    for key in ("metric", "ablation", "corruption", "n_prompts", "seed", "positions", "correctness_filter"):
        value = getattr(config, key)
        if value != getattr(plain, key):
            parts.append(f"{key}={_show(value)}")
    return " ".join(parts)


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """A ``RunConfig`` back from ``RunConfig.as_dict`` (as a sweep job's row keeps it)."""
    fields = {k: v for k, v in data.items() if k in RunConfig.__dataclass_fields__}
    if fields.get("positions") is not None:
        fields["positions"] = tuple(fields["positions"])
    return RunConfig(**fields)


# ---------------------------------------------------------------------------------------------------------
# Expansion


def _grid_entries(grid: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> Iterator[dict[str, Any]]:
    _only(grid, (*AXES, *SINGLES, "methods"), where)
    merged = {**defaults, **{k: v for k, v in grid.items() if k != "methods"}}
    if "tasks" not in merged:
        raise SpecError(f"{where}: tasks: a grid needs tasks (or [defaults] tasks)")
    methods = _table(grid.get("methods", {}), f"{where}: methods")
    if not methods:
        raise SpecError(f"{where}: methods: a grid needs at least one [grid.methods.NAME] table")
    axes = {single: _axis(merged.get(plural, [None]), f"{where}: {plural}") for plural, single in AXES.items()}
    if axes["model"] == [None]:
        raise SpecError(f"{where}: models: a grid needs models (or [defaults] models)")
    singles = {k: merged[k] for k in SINGLES if k in merged}
    for method, options in methods.items():
        settings = _method_axes(method, _table(options, f"{where}: methods.{method}"), f"{where}: methods.{method}")
        for combo in itertools.product(*axes.values()):
            common = {k: v for k, v in zip(axes, combo) if v is not None}
            for values in itertools.product(*settings.values()):
                yield {**common, **singles, "method": method, "settings": dict(zip(settings, values))}


def _method_axes(method: str, options: Mapping[str, Any], where: str) -> dict[str, list[Any]]:
    """Each option's values: a list is an axis, except for options whose value is a list (see the docstring)."""
    try:
        spec = get_method(method)
    except DiscoveryError as err:
        raise SpecError(f"{where}: {err}") from None
    out: dict[str, list[Any]] = {}
    for key, value in options.items():
        name = key.replace("-", "_")
        option = spec.options.get(name)
        takes_list = option is not None and option.kind in _LIST_KINDS
        if isinstance(value, list) and (not takes_list or all(isinstance(v, list) for v in value)):
            out[name] = _axis(value, f"{where}: {key}")
        else:
            out[name] = [value]
    return out


def _job_entry(job: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    if "method" not in job:
        raise SpecError(f"{where}: method: a job needs its method")
    entry: dict[str, Any] = {}
    for plural, single in AXES.items():
        if single in job:
            entry[single] = job[single]
        elif plural in job:
            raise SpecError(f"{where}: {plural}: a job is one run; write {single} = ... (lists belong in a [[grid]])")
        elif plural in defaults:
            values = _axis(defaults[plural], f"{where}: [defaults] {plural}")
            if len(values) > 1:
                raise SpecError(f"{where}: {single}: [defaults] lists {len(values)} {plural}; say which one")
            entry[single] = values[0]
    for key in SINGLES:
        if key in job or key in defaults:
            entry[key] = job.get(key, defaults.get(key))
    entry["method"], entry["name"] = job["method"], job.get("name")
    entry["settings"] = {k.replace("-", "_"): v for k, v in job.items() if k not in JOB_KEYS}
    if "task" not in entry or "model" not in entry:
        missing = "task" if "task" not in entry else "model"
        raise SpecError(f"{where}: {missing}: a job needs its {missing} (or one in [defaults])")
    return entry


def _config(entry: Mapping[str, Any], base: Optional[Path]) -> RunConfig:
    for key in _TEXT & entry.keys():
        if entry[key] is not None and not isinstance(entry[key], str):
            raise SpecError(f"{key}: expected text, got {entry[key]!r}")
    for key in _WHOLE & entry.keys():
        if isinstance(entry[key], bool) or not isinstance(entry[key], int):
            raise SpecError(f"{key}: expected a whole number, got {entry[key]!r}")
    if "filter" in entry and not isinstance(entry["filter"], bool):
        raise SpecError(f"filter: expected true or false, got {entry['filter']!r}")
    task = entry["task"]
    if base is not None and task.startswith("file:") and not Path(task[5:]).is_absolute():
        task = "file:" + str((base / task[5:]).resolve())
    return make_config(
        entry["model"], task, entry["method"], metric=entry.get("metric"), ablation=entry.get("ablation"),
        corruption=entry.get("corruption"), n_prompts=entry.get("n_prompts"), seed=entry.get("seed", 0),
        positions=entry.get("positions"), device=entry.get("device", "cpu"), dtype=entry.get("dtype", "float32"),
        correctness_filter=entry.get("filter", True), settings=entry.get("settings", {}),
    )


# ---------------------------------------------------------------------------------------------------------
# Small checks


def _only(table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a table, got {value!r}")
    return value


def _tables(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise SpecError(f"{where}: expected an array of tables ([[...]]), got {type(value).__name__}")
    return value


def _axis(value: Any, where: str) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SpecError(f"{where}: an empty list makes no jobs; leave the key out for the default")
    if len(values) > 1000:
        raise SpecError(f"{where}: at most 1000 values, got {len(values)}")
    return list(values)


def _entry_label(entry: Mapping[str, Any]) -> str:
    settings = " ".join(f"{k}={_show(v)}" for k, v in dict(entry.get("settings", {})).items())
    head = "/".join(str(entry.get(k, "?")) for k in ("model", "task", "method"))
    return f"{head} {settings}".strip()


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_show(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)
