"""Test helpers shared by the test folders: a tiny random GPT-2 folder with a word-level tokenizer, and synthetic
prompts shaped like a TaskDataset. Made here, never downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

VOCAB = ["<pad>", "<bos>", "<unk>"] + [str(i) for i in range(40)]


def make_model_folder(path: Path, n_layers: int = 2, n_heads: int = 4, d_model: int = 32, seed: int = 0) -> Path:
    """Save a random GPT2LMHeadModel with non-trivial LayerNorm and biases, plus a WordLevel tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=n_layers, n_head=n_heads, n_embd=d_model, vocab_size=len(VOCAB), n_positions=32,
                        bos_token_id=1, eos_token_id=1, pad_token_id=0)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name:
                p.add_(torch.randn_like(p) * 0.3)
            elif "bias" in name:
                p.add_(torch.randn_like(p) * 0.1)
            else:
                p.mul_(5.0)  # sharper attention than GPT-2's init, so patching has visible effects
    model.save_pretrained(path)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<bos>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(path)
    return path


@dataclass
class SyntheticDataset:
    """Duck-types the parts of TaskDataset the engine and methods read."""

    clean: torch.Tensor
    corrupted: torch.Tensor
    answers: torch.Tensor
    answers_mask: torch.Tensor
    wrong: torch.Tensor
    wrong_mask: torch.Tensor
    metric: str = "logit-diff"


def synthetic_dataset(n: int = 12, pos: int = 6, vocab: int = len(VOCAB), seed: int = 0) -> SyntheticDataset:
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(3, vocab, (n, pos), generator=g)
    clean[:, 0] = 1
    corrupted = clean.clone()
    corrupted[:, 1:-1] = torch.randint(3, vocab, (n, pos - 2), generator=g)
    answers = torch.randint(3, vocab, (n, 1), generator=g)
    wrong = torch.randint(3, vocab, (n, 1), generator=g)
    ones = torch.ones(n, 1, dtype=torch.bool)
    return SyntheticDataset(clean, corrupted, answers, ones, wrong, ones.clone())


def acdc_by_the_paper(setup, tau: float, loss=None) -> tuple[set, set, dict]:
    """Conmy et al.'s algorithm one edge at a time, in the reference implementation's order: receivers from the
    logits down; per layer the MLP input, the heads' v, k, q input-to-head edges (heads from the last), then their
    v, k, q inputs; parents latest first; an edge goes when the loss rises by less than tau; a receiver whose
    output reaches nothing (or whose input-to-head edge went) is skipped and loses its incoming edges.

    ``setup`` is a ``PatchSetup``; ``loss(mask [S, D]) -> float`` defaults to ``setup.losses``. Returns the kept
    edges, the input destinations whose input-to-head edge went, and every test's loss rise (keyed ``(s, d)`` for
    an edge, ``d`` for an input-to-head edge)."""
    from discovery.graph import QKV, NodeKind

    graph, e = setup.graph, setup.engine
    if loss is None:
        def loss(mask: torch.Tensor) -> float:
            return float(setup.losses(mask)[0])
    mask = setup.full_mask()[0]
    is_edge = torch.zeros_like(mask, dtype=torch.bool)
    for edge in graph.edges:
        is_edge[graph.source_index[edge.src], graph.dest_index[(edge.dst, edge.input)]] = True
    current = loss(mask)
    cut: set[int] = set()
    rises: dict = {}

    def try_removing(entries: list[tuple[int, int]], key: object) -> bool:
        nonlocal current
        trial = mask.clone()
        for s, d in entries:
            trial[s, d] = 0
        new = loss(trial)
        rises[key] = new - current
        if new - current < tau:
            mask.copy_(trial)
            current = new
            return True
        return False

    def reaches_something(d: int) -> bool:
        node, _ = graph.destinations[d]
        if node.kind is NodeKind.LOGITS:
            return True
        s = graph.source_index[node]
        return d not in cut and bool((mask[s].gt(0) & is_edge[s]).any())

    def visit(d: int) -> None:
        if not reaches_something(d):
            mask[:, d] = 0
            return
        node, _ = graph.destinations[d]
        for s in reversed(range(graph.n_upstream(node))):
            try_removing([(s, d)], (s, d))

    visit(e.logits_dest)
    for layer in reversed(range(e.L)):
        visit(e.mlp_dest(layer))
        inputs = {x: [e.head_dests(layer).start + 3 * h + QKV.index(x) for h in reversed(range(e.H))] for x in QKV}
        for x in ("v", "k", "q"):
            for d in inputs[x]:
                node, _ = graph.destinations[d]
                if reaches_something(d) and try_removing([(s, d) for s in range(graph.n_upstream(node))], d):
                    cut.add(d)
        for x in ("v", "k", "q"):
            for d in inputs[x]:
                visit(d)
    kept = {edge for edge in graph.edges
            if mask[graph.source_index[edge.src], graph.dest_index[(edge.dst, edge.input)]] > 0}
    return kept, {graph.destinations[d] for d in cut}, rises
