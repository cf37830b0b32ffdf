"""A run's configuration: everything that determines its result, resolved once, checked, frozen and hashed.

``make_config`` is the one place defaults are applied (the method's metric and ablation, the task's corruption and
dataset size, every method option's default) and the one place settings are checked, all before any model is
loaded or any run row is written; every refusal is one ``SettingsError``/``TaskError`` line naming the flag. The
frozen ``RunConfig`` is what a run records, what ``circuits runs`` shows, and (with the model's weights hash, the
dataset's content hash and the code version, known once they are loaded) what a sweep deduplicates jobs by.

Torch-free: a sweep driver resolves and hashes a whole grid without importing torch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

from discovery.errors import SettingsError, TaskError
from discovery.methods import get_method
from discovery.names import ABLATIONS, METRIC_SPECS, METRICS
from discovery.settings import INT, Option, comma_list

DTYPE_NAMES = ("float32", "bfloat16")
NAME_LEN = 200  # the longest model or task name both catalog backends keep (catalog.tables.NAME_LEN)
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16"}
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_POSITION = Option("positions", INT, "token positions", low=-4096, high=4095)


@dataclass(frozen=True)
class RunConfig:
    """What one discovery run is. ``settings`` holds every option of ``method`` (None where unset and default-less);
    ``correctness_filter`` names the filter the task's prompts go through (None: none)."""

    model: str
    task: str
    method: str
    metric: str
    ablation: str
    corruption: str
    n_prompts: int
    settings: Mapping[str, Any]
    seed: int = 0
    positions: Optional[tuple[int, ...]] = None
    device: str = "cpu"
    dtype: str = "float32"
    correctness_filter: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: what a run row records as its configuration."""
        out = asdict(self)
        out["settings"] = dict(self.settings)
        out["positions"] = list(self.positions) if self.positions is not None else None
        return out

    @property
    def key(self) -> str:
        """sha256 of the canonical JSON of everything that determines the result (the device does not)."""
        payload = {k: v for k, v in self.as_dict().items() if k != "device"}
        return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()

    @property
    def threshold(self) -> Optional[float]:
        value = self.settings.get("threshold")
        return None if value is None else float(value)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str)


def make_config(
    model: str,
    task: str,
    method: str,
    *,
    metric: Optional[str] = None,
    ablation: Optional[str] = None,
    corruption: Optional[str] = None,
    n_prompts: Optional[int] = None,
    seed: int = 0,
    positions: Optional[Sequence[int] | str] = None,
    device: str = "cpu",
    dtype: str = "float32",
    correctness_filter: bool = True,
    settings: Optional[Mapping[str, Any]] = None,
) -> RunConfig:
    """Resolve and check a run (see the module docstring). ``settings`` are the method's options by name, as Python
    values or as the text a command line gives; options the method does not take are refused, naming their flag."""
    spec = get_method(method)
    common = resolve_common(model, task, metric=metric or spec.default_metric, ablation=ablation or
                            spec.default_ablation, corruption=corruption, n_prompts=n_prompts, seed=seed,
                            positions=positions, device=device, dtype=dtype, correctness_filter=correctness_filter)
    if spec.needs_smooth_metric and not METRIC_SPECS[common["metric"]].differentiable:
        raise SettingsError(f"--metric: {method} needs a metric that changes smoothly; {common['metric']} does not: "
                            "use logit-diff, prob-diff or kl")
    return RunConfig(method=spec.key, settings=spec.resolve(dict(settings or {})), **common)


def resolve_common(
    model: str,
    task: str,
    *,
    metric: Optional[str] = None,
    ablation: Optional[str] = None,
    corruption: Optional[str] = None,
    n_prompts: Optional[int] = None,
    seed: int = 0,
    positions: Optional[Sequence[int] | str] = None,
    device: str = "cpu",
    dtype: str = "float32",
    correctness_filter: bool = True,
) -> dict[str, Any]:
    """What any experiment on a model and task is (a discovery run, an evaluation, an analysis), checked: the
    model name, the task and its corruption, the metric (default: the task's), the ablation (default: patch),
    the dataset size (default: the task's own), seed, positions, device and dtype."""
    from discovery.tasks import get_task

    task_obj = get_task(task)
    if len(task_obj.name) > NAME_LEN:
        raise SettingsError(f"--task: a task's name (file:PATH included) may have at most {NAME_LEN} characters")
    metric = metric or task_obj.metric
    if metric not in METRICS:
        raise SettingsError(f"--metric: unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    ablation = ablation or "patch"
    if ablation not in ABLATIONS:
        raise SettingsError(f"--ablation: unknown ablation {ablation!r}: choose one of {', '.join(ABLATIONS)}")
    return {
        "model": check_model_name(model),
        "task": task_obj.name,
        "metric": metric,
        "ablation": ablation,
        "corruption": task_obj.check_corruption(corruption),
        "n_prompts": check_n_prompts(task_obj, n_prompts),
        "seed": check_seed(seed),
        "positions": check_positions(positions),
        "device": check_device(device),
        "dtype": check_dtype(dtype),
        "correctness_filter": task_obj.correctness_filter if correctness_filter else None,
    }


def check_n_prompts(task: Any, n: Optional[int]) -> int:
    """The dataset size: the task's own by default; at least 1 and at most what the task can give."""
    if n is None:
        return int(task.default_n)
    if isinstance(n, bool) or not isinstance(n, int):
        raise SettingsError(f"--n-prompts: expected a whole number, got {n!r}")
    if not 1 <= n <= task.max_n:
        raise TaskError(f"--n-prompts: task {task.name!r} gives 1 to {task.max_n} prompts, not {n}")
    return n


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise SettingsError(f"--seed: expected a whole number from 0 to 2**63 - 1, got {seed!r}")
    return seed


def check_positions(positions: Optional[Sequence[int] | str]) -> Optional[tuple[int, ...]]:
    if positions is None:
        return None
    try:
        values = [_POSITION.parse(p) for p in comma_list(positions)]
    except SettingsError as err:
        raise SettingsError(f"--positions: {str(err).removeprefix('--positions: ')}") from None
    return tuple(dict.fromkeys(values))


def check_device(device: str) -> str:
    if not isinstance(device, str) or not _DEVICE.match(device.strip()):
        raise SettingsError(f"--device: expected cpu, cuda, cuda:N or mps, got {device!r}")
    return device.strip()


def check_dtype(dtype: str) -> str:
    dtype = _DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPE_NAMES:
        raise SettingsError(f"--dtype: expected {' or '.join(DTYPE_NAMES)}, got {dtype!r}")
    return dtype


def check_model_name(model: str) -> str:
    if not isinstance(model, str) or not model.strip() or model != model.strip():
        raise SettingsError(f"--model: expected toy, a hub id or a model folder, got {model!r}")
    if len(model) > NAME_LEN:
        raise SettingsError(f"--model: a model's name (or folder) may have at most {NAME_LEN} characters, "
                            f"got {len(model)}")
    return model


def job_key(config: RunConfig, weights_hash: Optional[str], dataset_hash: Optional[str], code_version: str) -> str:
    """What a run is, whoever runs it and wherever: sha256 over the configuration's key (everything but the
    device), the model's weights hash, the dataset's content hash and the code version. Two runs with one job key
    give the same circuit; a sweep skips a job whose key already succeeded."""
    payload = {"config": config.key, "weights": weights_hash, "dataset": dataset_hash, "code": code_version}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
