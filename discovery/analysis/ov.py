"""What a head writes about the token it attends to: copy, successor and greater-than scores of its OV circuit.

For a head (l, h) and an ordered token set T (digits, number words, months, days), the OV-logit matrix is

    M[i, j] = normalise( normalise(e_i) W_V[l, h] W_O[l, h] ) . W_U[:, t_j]        (i, j over T)

where ``e_i`` is the token's embedding ``W_E[t_i]`` (``embedding="raw"``) or its *effective* embedding
``W_E[t_i] + MLP_0(W_E[t_i])`` (``embedding="mlp0"``: the first MLP applied to the bare token, attention 0 and
position skipped; heads of layer 0 always use the raw embedding, since MLP 0 comes after them), and
``normalise`` is LayerNorm's centring and scaling with its weights (folded into W_V and W_U by GPT-2's
default processing; applied here where they are not). Biases are left out: they are the same for every
input token. Row i is what the head's output does to the logits of the set when it attends to t_i.

Scores (each a fraction of the rows that have a target, None when no row has one; chance is 1/|T| for top-1
and 5/|T| for top-5):

    copy_top1 / copy_top5            t_i itself is the row's top (top-5) output among T
    successor_top1 / successor_top5  t_{i+1} is (rows whose token has a successor in T; the "next" score)
    greater_top1 / greater_top5      the top output is any later member (top-5: the share of the row's
                                     top 5 that are later members; rows with a later member)
    suppress_top1                    t_i itself is the row's LOWEST output (the head pushes it down)

Sign: ``copy_sign`` is the mean over rows of ``M[i, i] - mean_j M[i, j]`` (positive: the head boosts the
token it attends to; negative: it suppresses it, an inhibition/negative-copy head); ``successor_sign`` the
same for ``M[i, i+1]``. Lan et al. (2023) report successor top-5 accuracy (GPT-2 small 9.1: 87.4 % on
digits); Gould et al. (2023, arXiv 2312.09230) define successor heads by this OV mapping.

Token sets keep only the members that are one known token when written as in running text (``" 4"``, a
leading space); each result lists the tokens it used, and a successor pair counts only when both members
are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from discovery.analysis.stream import as_engine, unembed_affine
from discovery.engine import PatchingEngine
from discovery.errors import SettingsError
from discovery.graph import Node, NodeKind
from discovery.tasks.sequences import DIGITS, MONTHS, NUMWORDS
from discovery.weights import layer_norm

DAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TOKEN_SETS: dict[str, tuple[str, ...]] = {"digits": DIGITS, "numwords": NUMWORDS, "months": MONTHS, "days": DAYS}
EMBEDDINGS = ("raw", "mlp0")
MIN_TOKENS = 3  # a set with fewer single tokens than this is skipped (its scores would mean nothing)


@dataclass(frozen=True)
class OVSettings:
    token_sets: tuple[str, ...] = ("digits", "numwords", "months", "days")
    embedding: str = "raw"
    top_k: int = 5

    def __post_init__(self) -> None:
        if self.embedding not in EMBEDDINGS:
            raise SettingsError(f"unknown embedding {self.embedding!r}: choose one of {', '.join(EMBEDDINGS)}")
        unknown = [s for s in self.token_sets if s not in TOKEN_SETS]
        if unknown:
            raise SettingsError(f"unknown token set(s) {', '.join(unknown)}: choose from {', '.join(TOKEN_SETS)}")
        if self.top_k < 1:
            raise SettingsError("top_k must be at least 1")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "token_sets": list(self.token_sets)}


@dataclass(frozen=True)
class TokenSet:
    """An ordered set of single tokens: ``ids[i]`` is ``words[i]``; ``successor[i]`` the index of the next
    member in the original order, or -1 (its successor is not a single token, or it is the last)."""

    name: str
    words: tuple[str, ...]
    ids: tuple[int, ...]
    successor: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "tokens": list(self.words), "n": len(self.ids)}


def token_set(name: str, tokenizer: Any, words: Sequence[str] = ()) -> TokenSet:
    """The members of ``TOKEN_SETS[name]`` (or ``words``) that are one known token after a space."""
    words = tuple(words) or TOKEN_SETS[name]
    unk = getattr(tokenizer, "unk_token_id", None)
    kept: list[tuple[int, str, int]] = []  # (position in the full order, word, id)
    for i, word in enumerate(words):
        ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and ids[0] != unk:
            kept.append((i, word, int(ids[0])))
    index = {pos: k for k, (pos, _, _) in enumerate(kept)}
    successor = tuple(index.get(pos + 1, -1) for pos, _, _ in kept)
    return TokenSet(name, tuple(w for _, w, _ in kept), tuple(t for _, _, t in kept), successor)


def ordinal_set(name: str, ids: Sequence[int], words: Sequence[str] = ()) -> TokenSet:
    """A token set from ids already in order (each one's successor is the next): for tests and custom sets."""
    n = len(ids)
    return TokenSet(name, tuple(words) or tuple(str(i) for i in ids), tuple(int(i) for i in ids),
                    tuple(i + 1 if i + 1 < n else -1 for i in range(n)))


# ---------------------------------------------------------------------------------------------------------
# The matrix and its scores


def input_vectors(engine: PatchingEngine, ids: Sequence[int], layer: int, embedding: str) -> Tensor:
    """``[n, d]`` what head inputs of ``layer`` read for each token: raw or MLP-0-effective embeddings."""
    e = engine.w.W_E[torch.tensor(list(ids), device=engine.w.device)].float()
    if embedding == "mlp0" and layer > 0:
        with torch.no_grad():
            e = e + engine.mlp(e.to(engine.w.dtype).unsqueeze(0), 0)[0].float()
    return e


def ov_matrix(engine: PatchingEngine, layer: int, head: int, ids: Sequence[int], embedding: str = "raw") -> Tensor:
    """The OV-logit matrix ``M`` ``[n, n]`` of head (layer, head) over token ids (see the module docstring)."""
    w = engine.w
    with torch.no_grad():
        x = input_vectors(engine, ids, layer, embedding)
        ln_w = None if w.ln1_w is None else w.ln1_w[layer].float()
        ln_b = None if w.ln1_b is None else torch.zeros_like(w.ln1_b[layer]).float()  # biases left out
        xn = layer_norm(x, ln_w, ln_b, w.eps)
        out = xn @ w.W_V[layer, head].float() @ w.W_O[layer, head].float()
        W_U, _ = unembed_affine(engine)
        return layer_norm(out, None, None, w.eps) @ W_U[:, torch.tensor(list(ids), device=w.device)]


def ov_scores(M: Tensor, successor: Sequence[int], top_k: int = 5) -> dict[str, Any]:
    """Copy, successor, greater-than and suppression scores of an OV-logit matrix ``[n, n]`` (rows: input
    tokens in order; ``successor[i]`` the index of row i's successor or -1)."""
    n = M.shape[0]
    k = min(top_k, n)
    top = M.topk(k, dim=1).indices  # [n, k]
    idx = torch.arange(n, device=M.device)
    succ = torch.tensor(list(successor), device=M.device)
    has_succ = succ >= 0
    later = idx.unsqueeze(0) > idx.unsqueeze(1)  # [i, j]: j comes after i
    has_later = later.any(1)
    centred = M - M.mean(1, keepdim=True)

    def frac(hit: Tensor, rows: Tensor) -> Optional[float]:
        return float(hit[rows].float().mean()) if bool(rows.any()) else None

    everyone = torch.ones(n, dtype=torch.bool, device=M.device)
    s = succ.clamp(min=0)
    return {
        "n": n,
        "copy_top1": frac(top[:, 0] == idx, everyone),
        f"copy_top{top_k}": frac((top == idx[:, None]).any(1), everyone),
        "successor_top1": frac(top[:, 0] == s, has_succ),
        f"successor_top{top_k}": frac((top == s[:, None]).any(1), has_succ),
        "greater_top1": frac(later.gather(1, top[:, :1])[:, 0], has_later),
        f"greater_top{top_k}": float(later.gather(1, top).float().mean(1)[has_later].mean())
        if bool(has_later.any()) else None,
        "suppress_top1": frac(M.argmin(1) == idx, everyone),
        "copy_sign": float(centred.diagonal().mean()),
        "successor_sign": float(centred[idx[has_succ], s[has_succ]].mean()) if bool(has_succ.any()) else None,
        "chance_top1": 1.0 / n,
        f"chance_top{top_k}": k / n,
    }


@dataclass
class OVResult:
    heads: dict[str, dict[str, Any]]  # key -> {set name -> scores, "mean": {...}}
    settings: dict[str, Any]
    token_sets: dict[str, dict[str, Any]]  # set name -> the tokens used


def analyze_ov(model: Any, heads: Sequence[Node], sets: Sequence[TokenSet], settings: OVSettings = OVSettings()
               ) -> OVResult:
    """OV scores of each head on each token set, and their mean over the sets (the figure roles read)."""
    engine = as_engine(model)
    used = [s for s in sets if len(s.ids) >= MIN_TOKENS]
    if not used:
        raise SettingsError("no token set has at least 3 single tokens for this tokenizer: nothing to score")
    out: dict[str, dict[str, Any]] = {}
    for node in heads:
        if node.kind is not NodeKind.HEAD:
            continue
        assert node.head is not None  # a head always has one
        per_set = {}
        for s in used:
            M = ov_matrix(engine, node.layer, node.head, s.ids, settings.embedding)
            per_set[s.name] = _rounded(ov_scores(M, s.successor, settings.top_k))
        out[node.key] = {**per_set, "mean": _mean_scores(per_set.values()),
                         "embedding": "raw" if node.layer == 0 else settings.embedding}
    return OVResult(heads=out, settings=settings.to_json(), token_sets={s.name: s.to_json() for s in used})


def ov(model: Any, heads: Sequence[Node], settings: OVSettings = OVSettings(), tokenizer: Any = None) -> OVResult:
    """``analyze_ov`` on the settings' named token sets, as this model's tokenizer spells them."""
    tokenizer = tokenizer if tokenizer is not None else model.tokenizer
    return analyze_ov(model, heads, [token_set(name, tokenizer) for name in settings.token_sets], settings)


def _rounded(scores: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}


def _mean_scores(per_set: Any) -> dict[str, Optional[float]]:
    """The mean of each score over the sets where it is defined (None where none has it)."""
    rows = list(per_set)
    keys = [k for k in rows[0] if k != "n"]
    out: dict[str, Optional[float]] = {}
    for k in keys:
        vals = [r[k] for r in rows if r.get(k) is not None]
        out[k] = round(sum(vals) / len(vals), 4) if vals else None
    return out
