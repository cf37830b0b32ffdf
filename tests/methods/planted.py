"""A GPT-2 whose circuit is planted by hand: the ground truth that discovery methods must recover.

Task: the prompt ``<bos> k{i} f{j} =`` asks for ``a{i}`` (the answer paired with the key at position 1); the
corrupted prompt has another key ``k{i'}``, whose answer ``a{i'}`` is the wrong answer. The model is an ordinary
``GPT2LMHeadModel`` (2 layers, 4 heads, d_model 48), saved with a WordLevel tokenizer and loaded through
``discovery.models.load_model`` like any other model. Its weights are set so that the answer flows through

    embed -> a0.0.v      head 0.0 attends from every position to position 1 (positional query and key)
                         and copies the key token's identity into subspace S1;
    a0.0 -> a1.0.v       head 1.0 attends to its own position and maps S1 (key i) to subspace S2 (answer i);
    a1.0 -> logits       the unembedding reads S2 only: logit(a{i}) = D for the key present, 0 otherwise.

Every other head and both MLPs have zero output weights and biases (their query/key/value and MLP input
weights are random, so they compute something, but write nothing).

LayerNorm is kept harmless by construction: every residual direction used is orthonormal and mean-zero
(columns of a random orthogonal matrix whose first column is the all-ones direction, so the bridge's
weight centring changes nothing), each subspace holds exactly one unit of content whatever the token, and a
constant "bias" direction sits in every embedding. So a residual's norm never depends on which key is
present, and patching any edge outside the planted three changes no logit (up to attention weights of
about e^-40). Under mean ablation norms do shrink a little; the bias direction keeps that effect small.

Planted nodes: ``embed, a0.0, a1.0, logits``. Planted edges: the three above. For node-level methods, the
planted heads are ``a0.0`` and ``a1.0`` (MLPs and the other heads write nothing).

Use::

    from tests.methods.planted import planted_circuit   # with the repository root on sys.path
    p = planted_circuit(tmp_path)                       # p.folder, p.model, p.dataset, p.nodes, p.edges
    setup = discovery.patching.prepare(p.model, p.dataset)
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from discovery.graph import EMBED, Edge, Node, head, logits
from discovery.results import DatasetSpec

VOCAB = ["<pad>", "<bos>", "<unk>", "k0", "k1", "k2", "k3", "a0", "a1", "a2", "a3", "f0", "f1", "f2", "="]
KEYS = [VOCAB.index(f"k{i}") for i in range(4)]
ANSWERS = [VOCAB.index(f"a{i}") for i in range(4)]
FILLERS = [VOCAB.index(f"f{i}") for i in range(3)]
BOS, QUERY = VOCAB.index("<bos>"), VOCAB.index("=")
N_LAYERS, N_HEADS, D_MODEL, D_MLP, N_POS = 2, 4, 48, 32, 8
KEY_POSITION = 1
LOGIT_DIFF = 5.0  # the clean model's logit difference, by construction

# Abstract residual coordinates: token identity, position, the copied key (S1), the answer (S2), a constant.
_T = 0
_P = _T + len(VOCAB)
_S1 = _P + N_POS
_S2 = _S1 + len(KEYS)
_BIAS = _S2 + len(ANSWERS)
_N_COORDS = _BIAS + 1
_BIAS_SIZE = 5.0  # norm of the constant direction: damps LayerNorm's response to anything else
_SHARPNESS = 40.0  # attention score of the attended position over the others


@dataclass
class PlantedDataset:
    """Duck-types what ``discovery.patching.prepare`` reads from a TaskDataset."""

    clean: torch.Tensor  # [B, 4]
    corrupted: torch.Tensor  # [B, 4]
    answers: torch.Tensor  # [B, 1]
    answers_mask: torch.Tensor
    wrong: torch.Tensor  # [B, 1]
    wrong_mask: torch.Tensor
    metric: str = "logit-diff"
    task: str = "planted"
    corruption: str = "other-key"

    @property
    def spec(self) -> DatasetSpec:
        """What ``discovery.run.discover`` records about the prompts (content hash over the token ids)."""
        payload = json.dumps([t.tolist() for t in (self.clean, self.corrupted, self.answers, self.wrong)])
        return DatasetSpec(task=self.task, corruption=self.corruption, size=len(self.clean), seed=0,
                           content_hash=hashlib.sha256(payload.encode()).hexdigest(),
                           seq_len=int(self.clean.shape[1]))


@dataclass(frozen=True)
class Planted:
    """The planted model and its ground truth."""

    folder: Path
    model: Any  # discovery.models.LoadedModel
    dataset: PlantedDataset
    nodes: frozenset[Node]  # embed, a0.0, a1.0, logits
    edges: frozenset[Edge]  # embed->a0.0.v, a0.0->a1.0.v, a1.0->logits

    @property
    def heads(self) -> frozenset[Node]:
        """The planted heads: what a node-level method (heads and MLPs) should keep."""
        return frozenset(n for n in self.nodes if n.kind.value == "head")


def planted_nodes() -> frozenset[Node]:
    return frozenset({EMBED, head(0, 0), head(1, 0), logits(N_LAYERS)})


def planted_edges() -> frozenset[Edge]:
    return frozenset({
        Edge(EMBED, head(0, 0), "v"),
        Edge(head(0, 0), head(1, 0), "v"),
        Edge(head(1, 0), logits(N_LAYERS)),
    })


def planted_dataset(metric: str = "logit-diff") -> PlantedDataset:
    """12 prompts: each key with three different corrupting keys, fillers varied."""
    clean, corrupted, answers, wrong = [], [], [], []
    for i in range(len(KEYS)):
        for shift in (1, 2, 3):
            j = (i + shift) % len(KEYS)
            filler = FILLERS[(i + shift) % len(FILLERS)]
            clean.append([BOS, KEYS[i], filler, QUERY])
            corrupted.append([BOS, KEYS[j], filler, QUERY])
            answers.append([ANSWERS[i]])
            wrong.append([ANSWERS[j]])
    ones = torch.ones(len(clean), 1, dtype=torch.bool)
    return PlantedDataset(torch.tensor(clean), torch.tensor(corrupted), torch.tensor(answers), ones,
                          torch.tensor(wrong), ones.clone(), metric=metric)


def planted_circuit(folder: Optional[Path] = None, metric: str = "logit-diff") -> Planted:
    """Build (in ``folder``, or a new temporary folder), load and return the planted model with its truth."""
    from discovery.models import load_model

    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="planted-gpt2-"))
    make_planted_folder(folder)
    return Planted(folder=folder, model=load_model(str(folder)), dataset=planted_dataset(metric),
                   nodes=planted_nodes(), edges=planted_edges())


def make_planted_folder(path: Path, seed: int = 0) -> Path:
    """Save the hand-set GPT2LMHeadModel and its WordLevel tokenizer to ``path``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=N_LAYERS, n_head=N_HEADS, n_embd=D_MODEL, n_inner=D_MLP, vocab_size=len(VOCAB),
                        n_positions=N_POS, bos_token_id=BOS, eos_token_id=BOS, pad_token_id=0,
                        tie_word_embeddings=False, activation_function="gelu_new")
    model = GPT2LMHeadModel(config)
    state = _planted_weights(torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(state[name])
    model.save_pretrained(path)
    _save_tokenizer(path)
    return path


def _save_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<bos>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(path)


def _basis(g: torch.Generator) -> torch.Tensor:
    """``[d, n]``: orthonormal, mean-zero residual directions for the abstract coordinates."""
    a = torch.randn(D_MODEL, D_MODEL, generator=g, dtype=torch.float64)
    a[:, 0] = 1.0
    q, _ = torch.linalg.qr(a)
    return q[:, 1 : 1 + _N_COORDS]  # column 0 spans the all-ones direction


def _planted_weights(g: torch.Generator) -> dict[str, torch.Tensor]:
    """HF parameter name -> value. Conv1D weights are ``[in, out]``; ``lm_head`` is ``[vocab, d]``."""
    E = _basis(g)
    d, dh = D_MODEL, D_MODEL // N_HEADS
    w: dict[str, torch.Tensor] = {}
    # Embeddings: one unit of token identity, one of position, the constant direction.
    tok = torch.zeros(len(VOCAB), _N_COORDS, dtype=torch.float64)
    tok[torch.arange(len(VOCAB)), _T + torch.arange(len(VOCAB))] = 1.0
    tok[:, _BIAS] = _BIAS_SIZE
    pos = torch.zeros(N_POS, _N_COORDS, dtype=torch.float64)
    pos[torch.arange(N_POS), _P + torch.arange(N_POS)] = 1.0
    w["transformer.wte.weight"] = tok @ E.T
    w["transformer.wpe.weight"] = pos @ E.T
    # Residual norms (constant per layer whatever the tokens): embed; + S1 copy; + S2 answer.
    n0 = math.sqrt(2.0 + _BIAS_SIZE**2)
    n1 = math.sqrt(n0**2 + 1.0)
    n2 = math.sqrt(n1**2 + 1.0)
    ln = math.sqrt(d)  # LayerNorm maps a mean-zero x to sqrt(d) * x / |x|

    def read(coord: int, norm: float) -> torch.Tensor:
        """The residual direction that reads abstract coordinate ``coord`` as 1 after LayerNorm."""
        return E[:, coord] * norm / ln

    for layer in range(N_LAYERS):
        p = f"transformer.h.{layer}."
        w[p + "ln_1.weight"], w[p + "ln_1.bias"] = torch.ones(d), torch.zeros(d)
        w[p + "ln_2.weight"], w[p + "ln_2.bias"] = torch.ones(d), torch.zeros(d)
        qkv = torch.randn(d, 3 * d, generator=g, dtype=torch.float64) * 0.3  # unused heads: arbitrary
        qkv_b = torch.randn(3 * d, generator=g, dtype=torch.float64) * 0.1
        Wq, Wk, Wv = qkv[:, :dh], qkv[:, d : d + dh], qkv[:, 2 * d : 2 * d + dh]  # head 0's slices (views)
        for t in (Wq, Wk, Wv):
            t.zero_()
        qkv_b[:dh] = qkv_b[d : d + dh] = qkv_b[2 * d : 2 * d + dh] = 0.0
        out = torch.zeros(d, d, dtype=torch.float64)  # c_proj: rows are heads' z dims; heads 1.. write nothing
        amp = math.sqrt(_SHARPNESS * math.sqrt(dh))  # q.k / sqrt(dh) = SHARPNESS on the attended position
        if layer == 0:
            norm = n0
            for p_ in range(N_POS):  # every query asks for position KEY_POSITION
                Wq[:, 0] += amp * read(_P + p_, norm)
            Wk[:, 0] = amp * read(_P + KEY_POSITION, norm)
            for i, k in enumerate(KEYS):  # value: which key; output: S1
                Wv[:, i] = read(_T + k, norm)
                out[i] = E[:, _S1 + i]
        else:
            norm = n1
            for p_ in range(N_POS):  # each position attends to itself
                Wq[:, p_] = amp * read(_P + p_, norm)
                Wk[:, p_] = amp * read(_P + p_, norm)
            for i in range(len(KEYS)):  # value: the copied key; output: its answer in S2
                Wv[:, i] = read(_S1 + i, norm)
                out[i] = E[:, _S2 + i]
        w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"] = qkv, qkv_b
        w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"] = out, torch.zeros(d)
        w[p + "mlp.c_fc.weight"] = torch.randn(d, D_MLP, generator=g, dtype=torch.float64)
        w[p + "mlp.c_fc.bias"] = torch.randn(D_MLP, generator=g, dtype=torch.float64) * 0.1
        w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"] = torch.zeros(D_MLP, d), torch.zeros(d)
    w["transformer.ln_f.weight"], w["transformer.ln_f.bias"] = torch.ones(d), torch.zeros(d)
    unembed = torch.zeros(len(VOCAB), d, dtype=torch.float64)
    for i, a in enumerate(ANSWERS):
        unembed[a] = LOGIT_DIFF * read(_S2 + i, n2)
    w["lm_head.weight"] = unembed
    return {k: v.float() for k, v in w.items()}
