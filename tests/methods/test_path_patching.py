"""Covers: path effects against a brute-force implementation of Wang et al.'s three steps (through the MLPs, the
default, and direct), iterative path patching in nodes and edges modes, and settings errors."""

from __future__ import annotations

import pytest
import torch

from discovery.errors import SettingsError
from discovery.graph import EMBED, Edge, NodeKind, head, logits, mlp
from discovery.methods.path_patching import path_effects, path_patching
from discovery.patching import PatchSetup, prepare


@pytest.fixture
def setup(random_model, random_dataset) -> PatchSetup:
    return prepare(random_model, random_dataset)


def _direct(setup: PatchSetup, edge: Edge) -> float:
    """One forward from layer 0 with only this edge patched."""
    keep = setup.full_mask()[0]
    keep[setup.graph.source_index[edge.src], setup.graph.dest_index[(edge.dst, edge.input)]] = 0
    return float(setup.values(keep.unsqueeze(0))[0]) - setup.model_value


def _brute_force(setup: PatchSetup, edge: Edge, via_mlps: bool) -> float:
    """Wang et al. (2022, appendix B), written out over the engine's pieces: (1) the clean and corrupted runs are
    cached (``setup.clean``, ``setup.patch``); (2) run with the sender patched and every other head frozen at its
    clean output, the MLPs recomputed (``via_mlps``) or frozen too (direct), and record the receiver's input;
    (3) rerun the clean model with only that input replaced, everything else recomputed, and measure."""
    e, graph = setup.engine, setup.graph
    clean, patch = setup.clean, setup.patch.expand_as(setup.clean)
    index = graph.source_index
    outs = clean.clone()
    outs[index[edge.src]] = patch[index[edge.src]]
    for layer in range(e.L):
        m = index[mlp(layer)]
        if via_mlps and m != index[edge.src]:
            outs[m] = e.mlp(outs[:m].sum(0) + e.dest_bias[e.mlp_dest(layer)], layer)
    d = graph.dest_index[(edge.dst, edge.input)]
    received = outs[: graph.n_upstream(edge.dst)].sum(0) + e.dest_bias[d]  # [B, P, d]
    # (3): a plain forward from the embedding, the receiver's input replaced by what it received in (2)
    sources = [clean[0]]
    for layer in range(e.L):
        resid = torch.stack(sources).sum(0) + e.dest_bias[e.head_dests(layer).start]
        x = resid.unsqueeze(2).unsqueeze(3).expand(-1, -1, e.H, 3, -1).clone()  # [B, P, H, 3, d]
        if edge.dst.kind is NodeKind.HEAD and edge.dst.layer == layer:
            x[:, :, edge.dst.head, "qkv".index(edge.input)] = received
        sources += list(e.attention(x, layer).unbind(2))
        mlp_in = torch.stack(sources).sum(0) + e.dest_bias[e.mlp_dest(layer)]
        if edge.dst == mlp(layer):
            mlp_in = received
        sources.append(e.mlp(mlp_in, layer))
    final = torch.stack(sources).sum(0) + e.dest_bias[e.logits_dest]
    if edge.dst.kind is NodeKind.LOGITS:
        final = received
    logits_ = e.unembed(final[:, -1]).unsqueeze(0)
    return float(setup.metric.value(logits_)[0]) - setup.model_value


@pytest.mark.parametrize("paths", ["via-mlps", "direct"])
def test_path_effects_match_the_papers_three_steps_done_by_hand(setup: PatchSetup, paths: str) -> None:
    L = setup.engine.L
    edges = [Edge(EMBED, logits(L)), Edge(head(0, 1), head(1, 2), "q"), Edge(head(0, 3), mlp(0)),
             Edge(mlp(0), head(1, 0), "k"), Edge(head(1, 3), logits(L)), Edge(head(0, 0), logits(L)),
             Edge(EMBED, head(1, 1), "v"), Edge(mlp(0), mlp(1)), Edge(head(0, 2), mlp(1))]
    effects = path_effects(setup, {e.src for e in edges}, {(e.dst, e.input) if e.input else e.dst for e in edges},
                           paths=paths)
    with torch.no_grad():
        for edge in edges:
            assert effects[edge] == pytest.approx(_brute_force(setup, edge, paths == "via-mlps"), abs=1e-5), edge
    differ = [e for e in edges if abs(_brute_force(setup, e, True) - _brute_force(setup, e, False)) > 1e-4]
    assert len(differ) >= 3  # through the MLPs is not the direct edge here (embed->logits, head 0.0->logits, ...)


def test_path_effect_of_one_edge_is_a_single_edge_mask_evaluation(setup: PatchSetup) -> None:
    L = setup.engine.L
    receivers = [logits(L), head(1, 2), mlp(0), (head(1, 0), "k")]
    effects = path_effects(setup, setup.graph.sources, receivers, paths="direct")
    expected_keys = {e for e in setup.graph.edges
                     if (e.dst, e.input) in {(logits(L), None), (mlp(0), None), (head(1, 0), "k")}
                     or e.dst == head(1, 2)}
    assert set(effects) == expected_keys
    for edge in [Edge(EMBED, logits(L)), Edge(head(0, 1), head(1, 2), "q"), Edge(head(0, 3), mlp(0)),
                 Edge(mlp(0), head(1, 0), "k"), Edge(head(1, 3), logits(L))]:
        assert effects[edge] == pytest.approx(_direct(setup, edge), abs=1e-5)
    assert max(abs(v) for v in effects.values()) > 1e-3


def test_path_effects_skip_pairs_that_are_not_edges(setup: PatchSetup) -> None:
    effects = path_effects(setup, [head(1, 0), mlp(1)], [head(0, 0), head(1, 1), mlp(1), EMBED])
    assert set(effects) == {Edge(head(1, 0), mlp(1))}  # heads of a layer feed its MLP, nothing else here
    effects = path_effects(setup, [head(1, 0), mlp(1)], [head(0, 0), head(1, 1), EMBED])
    assert effects == {}


def test_nodes_mode_grows_from_the_logits(setup: PatchSetup) -> None:
    threshold = 0.02
    out = path_patching(setup, threshold=threshold)
    scale = abs(setup.model_value)
    kept_nodes = set(out.kept_nodes)
    assert logits(setup.engine.L) in kept_nodes
    assert all(e.kept == (abs(e.score) / scale >= threshold) for e in out.edges)
    for e in out.edges:  # every scored edge ends in a circuit node: receivers are circuit nodes only
        assert e.edge.dst in kept_nodes
    for n in out.nodes:  # a node joined exactly when one of its edges passed
        if n.attributes.get("round", 0) > 0:
            assert any(e.kept and e.edge.src == n.node for e in out.edges)
    assert all(e.edge.src in kept_nodes for e in out.edges if e.kept)
    assert len(out.edges) < setup.graph.n_edges() or len(kept_nodes) == len(setup.graph.nodes)
    assert not out.extras["stopped_early"]


def test_max_rounds_stops_after_the_first_receivers(setup: PatchSetup) -> None:
    out = path_patching(setup, threshold=0.0, max_rounds=1)
    assert {e.edge.dst for e in out.edges} == {logits(setup.engine.L)}
    assert out.extras["rounds"] == 1 and out.extras["stopped_early"]
    assert len(out.kept_nodes) == len(setup.graph.sources) + 1  # threshold 0: every sender passes


def test_edges_mode_scores_only_edges_between_seed_nodes(setup: PatchSetup) -> None:
    seed = [EMBED, head(0, 1), head(1, 2), logits(setup.engine.L)]
    out = path_patching(setup, threshold=0.01, seed_nodes=seed, mode="edges", paths="direct")
    assert set(out.kept_nodes) == set(seed)
    expected = {e for e in setup.graph.edges if e.src in seed and e.dst in seed}
    assert {e.edge for e in out.edges} == expected
    for e in out.edges:
        assert e.score == pytest.approx(_direct(setup, e.edge), abs=1e-5)
        assert e.kept == (abs(e.score) / abs(setup.model_value) >= 0.01)


def test_seed_logits_parsed_without_depth_are_placed(setup: PatchSetup) -> None:
    from discovery.graph import parse_node

    out = path_patching(setup, threshold=0.05, seed_nodes=[parse_node("logits")], max_rounds=1)
    assert {e.edge.dst for e in out.edges} == {logits(setup.engine.L)}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"threshold": None}, "needs a threshold"),
        ({"threshold": -0.1}, "needs a threshold"),
        ({"threshold": 0.1, "mode": "heads"}, "mode must be one of"),
        ({"threshold": 0.1, "seed_nodes": []}, "seed_nodes is empty"),
        ({"threshold": 0.1, "seed_nodes": [head(7, 0)]}, "not in a model"),
        ({"threshold": 0.1, "mode": "edges"}, "at least two seed nodes"),
        ({"threshold": 0.1, "max_rounds": 0}, "max_rounds must be"),
    ],
)
def test_bad_settings_raise(setup: PatchSetup, kwargs: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        path_patching(setup, **kwargs)


def test_logits_cannot_send(setup: PatchSetup) -> None:
    with pytest.raises(SettingsError, match="logits send nothing"):
        path_effects(setup, [logits(setup.engine.L)], [logits(setup.engine.L)])


def test_bad_receiver_input_raises(setup: PatchSetup) -> None:
    with pytest.raises(SettingsError, match="only heads have q/k/v inputs"):
        path_effects(setup, [EMBED], [(mlp(0), "q")])


def test_accuracy_is_refused(random_model, random_dataset) -> None:
    setup = prepare(random_model, random_dataset, metric="accuracy")
    with pytest.raises(SettingsError, match="accuracy"):
        path_patching(setup, threshold=0.1)
