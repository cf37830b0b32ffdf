"""The one run pipeline: a checked configuration in, a circuit found and (optionally) recorded out.

``circuits discover``, ``circuits demo``, notebooks and sweep workers all call ``run``. The order is fixed so that
a refused run costs nothing: the configuration is checked when it is made (``discovery.config.make_config``); here
the circuit name is checked by the recorder, the model is loaded, the dataset drawn and filtered, and what depends
on them (positions inside the prompts, top-k within the graph) is checked, all before the recorder writes a run
row. From then on the run ends recorded as succeeded, failed (with its one-line error) or interrupted (Ctrl-C, or
SIGTERM as schedulers send on pre-emption), never left ``running``.

Recording is a protocol, so discovery does not import the catalog: ``catalog.Catalog`` implements it, a sweep
driver may implement it otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol

from discovery.config import RunConfig
from discovery.errors import SettingsError, Terminated
from discovery.graph import ComponentGraph, ModelShape
from discovery.methods.base import Progress, no_progress
from discovery.results import DatasetSpec, DiscoveryResult, ModelSpec


class Recorder(Protocol):
    """Where runs and their circuits are kept (``catalog.Catalog``)."""

    def check_name(self, name: Optional[str]) -> None:
        """Refuse a circuit name that is malformed or taken, before any work."""

    def start(self, config: RunConfig, model: ModelSpec, dataset: DatasetSpec) -> int:
        """Record the run as running; return its id."""

    def finish(self, run_id: int, result: DiscoveryResult, name: Optional[str]) -> Any:
        """Keep the result as a circuit (named ``name``, or a default) and mark the run succeeded, atomically."""

    def fail(self, run_id: int, status: str, error: str) -> None:
        """Mark the run ``failed`` or ``interrupted`` with a one-line reason; must not raise."""


@dataclass(frozen=True)
class Outcome:
    result: DiscoveryResult
    saved: Any = None  # what the recorder's ``finish`` returned (the stored circuit), or None unrecorded
    run_id: Optional[int] = None


def run(config: RunConfig, *, recorder: Optional[Recorder] = None, name: Optional[str] = None,
        model: Any = None, progress: Progress = no_progress) -> Outcome:
    """Run ``config`` (see the module docstring). ``model`` may be a loaded model to reuse (a sweep worker holds
    one); it must be the config's model on its device and dtype."""
    from discovery.models import load_model
    from discovery.tasks.filtering import prepare_dataset

    if recorder is not None:
        recorder.check_name(name)
    if model is None:
        model = load_model(config.model, device=config.device, dtype=config.dtype)
    else:
        check_model(model, config)
    dataset = prepare_dataset(config.task, model, n=config.n_prompts, seed=config.seed,
                              corruption=config.corruption, correctness_filter=config.correctness_filter is not None)
    check_against(config, model.spec, dataset.seq_len)
    return discover_recorded(config, model, dataset, recorder=recorder, name=name, progress=progress)


def discover_recorded(config: RunConfig, model: Any, dataset: Any, *, recorder: Optional[Recorder],
                      name: Optional[str], progress: Progress) -> Outcome:
    """Run the method on a checked model and dataset; with a recorder, the run is recorded ``running`` first and
    ends ``succeeded`` with its circuit, ``interrupted`` or ``failed``, whatever stops it."""
    from discovery.run import discover

    if recorder is None:
        return Outcome(discover(model, dataset, config, progress=progress))
    run_id = recorder.start(config, model.spec, dataset.spec)
    try:
        result = discover(model, dataset, config, progress=progress)
        saved = recorder.finish(run_id, result, name)
    except KeyboardInterrupt as err:
        recorder.fail(run_id, "interrupted", f"interrupted ({'SIGTERM' if isinstance(err, Terminated) else 'Ctrl-C'})")
        raise
    except BaseException as err:
        recorder.fail(run_id, "failed", one_line(err))
        raise
    return Outcome(result, saved, run_id)


def load_experiment(common: Mapping[str, Any], model: Any = None) -> tuple[Any, Any]:
    """The loaded model and its dataset for what ``discovery.config.resolve_common`` checked (an evaluation or an
    analysis, which run no method); positions are checked against the prompts."""
    from discovery.models import load_model
    from discovery.tasks.filtering import prepare_dataset

    model = model or load_model(common["model"], device=common["device"], dtype=common["dtype"])
    dataset = prepare_dataset(common["task"], model, n=common["n_prompts"], seed=common["seed"],
                              corruption=common["corruption"], correctness_filter=common["correctness_filter"] is not None)
    check_positions_fit(common.get("positions"), dataset.seq_len)
    return model, dataset


def check_model(model: Any, config: RunConfig) -> None:
    """A model handed in must be the one the config names, where it names it."""
    wanted = (config.model, config.device, config.dtype)
    have = (model.spec.name, str(model.device), str(model.dtype).replace("torch.", ""))
    if wanted != have:
        raise SettingsError(f"the loaded model is {have[0]} on {have[1]} in {have[2]}; this run asks for "
                            f"{wanted[0]} on {wanted[1]} in {wanted[2]}")


def check_against(config: RunConfig, model: ModelSpec, seq_len: int) -> None:
    """What could only be checked once the model and prompts are known: positions inside the prompts, a top-k
    no larger than the model's graph."""
    check_positions_fit(config.positions, seq_len)
    top_k = config.settings.get("top_k")
    if top_k is not None:
        n_edges = ComponentGraph(ModelShape(model.n_layers, model.n_heads)).n_edges()
        if top_k > n_edges:
            raise SettingsError(f"--top-k: {model.name}'s graph has {n_edges} edges, fewer than {top_k}")


def check_positions_fit(positions: Optional[Sequence[int]], seq_len: int) -> None:
    for p in positions or ():
        if not -seq_len <= p < seq_len:
            raise SettingsError(f"--positions: position {p} is outside prompts of {seq_len} tokens")


def one_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
