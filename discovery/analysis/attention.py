"""Where each head attends from the answer position, and whether it follows positions or token types.

Categories. For the last position ``q`` of a prompt (where the answer is predicted), a head's attention row
is split into five exclusive shares that sum to 1:

    first      the first token (position 0: BOS where the dataset prepends one)
    self       the query position itself (the last token)
    previous   the previous token, q-1
    same_type  the other positions holding one of the prompt's members (the task's slot fillers: the
               earlier numbers of ``1 2 3 4``, the names and objects of IOI), i.e. members at q-2, q-3, ...
    other      everything else (template words, fillers)

On regular prompts of a sequence task the previous token IS a member, so "previous token" and "same type"
cannot be told apart there. Irregular prompts separate them (Lan et al.'s test of their n-2 heads). Each prompt is also
run with filler tokens inserted (the first of FILLERS that is one token and occurs in no prompt, unless one is
named), and the head's attention on the irregular prompt is aligned
with its attention on the regular one in two ways:

    gap g      g fillers before the last token: the earlier tokens keep their absolute positions but move g
               further from the query. ``token`` alignment keeps each earlier token; ``relative`` alignment
               keeps each offset q-k (so a previous-token head now reads a filler).
    prefix k   k fillers after the first token: every later token moves k positions on, keeping its offset.
               ``token`` alignment keeps each token; ``absolute`` alignment keeps each position index.

A follow score is the attention mass, on positions other than the first token and the query, that the
alignment preserves: ``sum_k min(a[k], a'[map(k)]) / sum_k a[k]``, pooled over prompts (1: the head does
exactly the same thing under that alignment; attention moved elsewhere lowers it). The head's kind:

    type               token follow (gaps) >= relative follow + MARGIN: it finds the tokens wherever they are
    positional         relative follow >= token follow + MARGIN: it reads a fixed offset (previous token, n-2)
    absolute-position  absolute follow (prefixes) >= token follow + MARGIN: it reads fixed position indices
    mixed              none of these by MARGIN
    undetermined       less than MIN_MOVED of its attention (regular prompts) goes anywhere but the first
                       token and itself, so there is nothing to align

Random-token scores, on seeded random token sequences repeated twice (``r1..rm r1..rm``; the standard
TransformerLens / Olsson et al. 2022 tests): ``previous_token`` (mean attention to p-1 over all positions),
``induction`` (second half: attention to the token after the earlier copy of the current token) and
``duplicate_token`` (second half: attention to the earlier copy itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

import torch
from torch import Tensor

from discovery.analysis.stream import as_engine, attention_pattern, run_stream
from discovery.engine import PatchingEngine
from discovery.errors import SettingsError
from discovery.graph import Node, NodeKind

CATEGORIES = ("first", "self", "previous", "same_type", "other")
FILLERS = (",", ".", " the", " and", " of")  # tried in order when no filler is named
MARGIN = 0.2  # how much better one alignment must preserve the attention to name the head's kind
MIN_MOVED = 0.25  # least attention away from the first token and the query for the alignment test to mean anything


@dataclass(frozen=True)
class AttentionSettings:
    """What the attention analysis runs on. ``filler`` is the text of the inserted token (one token), or None
    for the first of FILLERS that suits the prompts."""

    filler: Optional[str] = None
    gaps: tuple[int, ...] = (1, 2, 3)
    prefixes: tuple[int, ...] = (1, 2, 3)
    repeat_len: int = 8
    n_repeats: int = 16
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass(frozen=True)
class PromptTokens:
    """Prompts of one length with where their members are. Shapes: B prompts, P positions."""

    tokens: Tensor  # [B, P] long
    members: Tensor  # [B, P] bool: the position holds one of the prompt's members


@dataclass
class AttentionResult:
    """Per head (canonical key): JSON-able figures; plus mean patterns for plotting (not stored)."""

    heads: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    patterns: dict[str, list[list[float]]] = field(default_factory=dict)  # key -> [P, P] mean over prompts
    labels: list[str] = field(default_factory=list)  # the first prompt's tokens, for axis labels


def prompt_tokens(dataset: Any, tokenizer: Any) -> PromptTokens:
    """The clean prompts of a TaskDataset with the positions of each prompt's members marked.

    A member is one of the prompt's ``members`` texts as one token (the dataset builder guarantees it);
    for sequence tasks these include the corrupted prompt's members, which never sit in the clean prompt
    except as members of the same kind. File prompts without members mark nothing (same_type stays 0).
    """
    tokens = dataset.clean
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    for i, prompt in enumerate(dataset.prompts):
        ids = {tokenizer(m, add_special_tokens=False)["input_ids"][0] for m in prompt.members}
        if ids:
            mask[i] = torch.isin(tokens[i], torch.tensor(sorted(ids), dtype=tokens.dtype))
    return PromptTokens(tokens=tokens, members=mask)


def choose_filler(tokenizer: Any, tokens: Tensor, named: Optional[str] = None) -> tuple[str, int]:
    """(text, id) of the filler: ``named`` if given, else the first of FILLERS that is one known token; it
    must not occur in the prompts (after their first token), or inserted tokens could not be told apart."""
    for text in [named] if named else FILLERS:
        try:
            filler = single_token(tokenizer, text, "the filler")
        except SettingsError:
            if named:
                raise
            continue
        if not bool((tokens[:, 1:] == filler).any()):
            return text, filler
        if named:
            raise SettingsError(f"the filler {named!r} occurs in the prompts themselves; name another (--filler) "
                                "so inserted tokens can be told from the prompt's own")
    raise SettingsError(f"none of the fillers {', '.join(map(repr, FILLERS))} is a single token absent from the "
                        "prompts; name one with --filler")


def single_token(tokenizer: Any, text: str, what: str) -> int:
    """The id of ``text`` when it is one known token, else a SettingsError naming it."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    if len(ids) != 1 or ids[0] == unk:
        raise SettingsError(f"{what} {text!r} is not one known token for this tokenizer (it is {ids})")
    return int(ids[0])


# ---------------------------------------------------------------------------------------------------------
# The pieces (pure tensor functions, tested on hand-set patterns)


def category_masks(members: Tensor) -> Tensor:
    """Exclusive category masks ``[B, 5, P]`` (CATEGORIES order) for queries at the last position."""
    B, P = members.shape
    pos = torch.arange(P, device=members.device).expand(B, P)
    first = pos == 0
    self_ = pos == P - 1
    previous = (pos == P - 2) & ~first
    same = members & ~(first | self_ | previous)
    other = ~(first | self_ | previous | same)
    return torch.stack([first, self_, previous, same, other], dim=1)


def category_shares(rows: Tensor, members: Tensor) -> Tensor:
    """Mean share of each category ``[H, 5]`` from last-position attention rows ``[B, H, P]``."""
    masks = category_masks(members).to(rows.dtype)  # [B, 5, P]
    return torch.einsum("bhp,bcp->hc", rows, masks) / rows.shape[0]


def insert_fillers(prompts: PromptTokens, at: int, count: int, filler: int) -> tuple[PromptTokens, Tensor]:
    """Prompts with ``count`` filler tokens inserted before position ``at``, and where each old position went."""
    B, P = prompts.tokens.shape
    fill = torch.full((B, count), filler, dtype=prompts.tokens.dtype, device=prompts.tokens.device)
    tokens = torch.cat([prompts.tokens[:, :at], fill, prompts.tokens[:, at:]], dim=1)
    no = torch.zeros(B, count, dtype=torch.bool, device=prompts.members.device)
    members = torch.cat([prompts.members[:, :at], no, prompts.members[:, at:]], dim=1)
    moved = torch.arange(P) + count * (torch.arange(P) >= at)
    return PromptTokens(tokens, members), moved


def follow(rows: Tensor, new_rows: Tensor, mapping: Tensor) -> Tensor:
    """Share ``[H]`` of the attention on positions 1..q-1 (``rows`` ``[B, H, P]``) that ``new_rows``
    ``[B, H, P']`` keeps at ``mapping[k]`` (the position old key k maps to; -1: nowhere)."""
    P = rows.shape[-1]
    keys = torch.arange(1, P - 1)
    if len(keys) == 0:
        return torch.zeros(rows.shape[1])
    old = rows[:, :, keys]
    target = mapping[keys]
    valid = (target >= 0) & (target < new_rows.shape[-1])
    new = torch.zeros_like(old)
    new[:, :, valid] = new_rows[:, :, target[valid]]
    kept = torch.minimum(old, new).sum((0, 2))
    return kept / old.sum((0, 2)).clamp(min=1e-12)


def kind_of(moved: float, token_gap: float, relative_gap: float, token_prefix: float, absolute_prefix: float) -> str:
    """The head's kind from its follow scores (see the module docstring for the rule)."""
    if moved < MIN_MOVED:
        return "undetermined"
    if absolute_prefix >= token_prefix + MARGIN:
        return "absolute-position"
    if token_gap >= relative_gap + MARGIN:
        return "type"
    if relative_gap >= token_gap + MARGIN:
        return "positional"
    return "mixed"


# ---------------------------------------------------------------------------------------------------------
# The analysis


def patterns_on(engine: PatchingEngine, tokens: Tensor, layers: Sequence[int]) -> dict[int, Tensor]:
    """Per layer, the full patterns ``[B, H, P, P]`` on ``tokens``."""
    stream = run_stream(engine, tokens)
    return {layer: attention_pattern(engine, stream.resid[layer], layer) for layer in layers}


def analyze_attention(
    model: Any,
    prompts: PromptTokens,
    heads: Sequence[Node],
    filler: int,
    settings: AttentionSettings = AttentionSettings(),
    *,
    random_ids: Optional[Tensor] = None,
    labels: Sequence[str] = (),
) -> AttentionResult:
    """Attention figures of ``heads`` on ``prompts`` (see the module docstring).

    filler: the id of the inserted token. random_ids: the token ids the random-token scores draw from
    (default: every id but the first prompt's first token).
    """
    engine = as_engine(model)
    device = engine.w.device
    prompts = PromptTokens(prompts.tokens.to(device), prompts.members.to(device))
    heads = [h for h in heads if h.kind is NodeKind.HEAD]
    layers = sorted({h.layer for h in heads})
    P = prompts.tokens.shape[1]
    n_ctx = engine.w.W_pos.shape[0]
    longest = P + max([*settings.gaps, *settings.prefixes, 0])
    if longest > n_ctx:
        raise SettingsError(f"irregular prompts of {longest} tokens exceed the model's context of {n_ctx}; "
                            "use shorter prompts or fewer fillers")
    regular = patterns_on(engine, prompts.tokens, layers)
    gap_runs = [_variant(engine, prompts, layers, P - 1, g, filler, regular, "gap") for g in settings.gaps]
    prefix_runs = [_variant(engine, prompts, layers, 1, k, filler, regular, "prefix") for k in settings.prefixes]
    randoms = random_token_scores(engine, layers, settings, prompts.tokens[0, 0], random_ids)
    out: dict[str, dict[str, Any]] = {}
    patterns: dict[str, list[list[float]]] = {}
    for node in heads:
        layer, h = node.layer, node.head
        assert h is not None  # heads only, filtered above
        runs = {"regular": regular[layer][:, h], "gap": gap_runs, "prefix": prefix_runs}
        out[node.key] = _head_figures(runs, layer, h, prompts.members, randoms)
        patterns[node.key] = regular[layer][:, h].mean(0).tolist()
    return AttentionResult(heads=out, settings=settings.to_json(), patterns=patterns, labels=list(labels))


def _head_figures(runs: dict[str, Any], layer: int, h: int, members: Tensor,
                  randoms: dict[str, dict[int, Tensor]]) -> dict[str, Any]:
    """One head's stored figures from its regular patterns ``[B, P, P]`` and the irregular runs' scores."""
    rows = runs["regular"][:, None, -1]  # [B, 1, P]: the last position's attention
    shares = category_shares(rows, members)[0]
    irregular = [r["shares"][layer][h] for r in runs["gap"] + runs["prefix"]]
    mean_irregular = torch.stack(irregular).mean(0) if irregular else shares
    moved = float(rows[:, 0, 1:-1].sum(-1).mean())
    scores = {name: _mean([float(r[name][layer][h]) for r in runs[kind]])
              for name, kind in (("token_gap", "gap"), ("relative_gap", "gap"), ("token_prefix", "prefix"),
                                 ("absolute_prefix", "prefix"))}
    offsets = rows[:, 0].mean(0).flip(0)  # offsets[d] = mean attention to q-d
    return {
        "query": "last",
        "shares": _named(shares),
        "shares_irregular": _named(mean_irregular),
        "dominant": CATEGORIES[int(shares.argmax())],
        "offsets": [round(float(x), 4) for x in offsets],
        "top_offset": int(offsets.argmax()),
        "moved": round(moved, 4),
        "follow": {k: round(v, 4) for k, v in scores.items()},
        "kind": kind_of(moved, scores["token_gap"], scores["relative_gap"], scores["token_prefix"],
                        scores["absolute_prefix"]),
        "random_tokens": {k: round(float(v[layer][h]), 4) for k, v in randoms.items()},
        "n_prompts": int(members.shape[0]),
        "prompt_len": int(members.shape[1]),
    }


def _variant(engine: PatchingEngine, prompts: PromptTokens, layers: Sequence[int], at: int, count: int, filler: int,
             regular: dict[int, Tensor], kind: str) -> dict[str, dict[int, Tensor]]:
    """Shares and follow scores ``[H]`` per layer on prompts with ``count`` fillers inserted at ``at``."""
    new, moved = insert_fillers(prompts, at, count, filler)
    patterns = patterns_on(engine, new.tokens, layers)
    P = prompts.tokens.shape[1]
    same_offset = torch.arange(P) + (new.tokens.shape[1] - P)  # old key k -> the key at the same offset q-k
    same_index = torch.arange(P)  # old key k -> position k
    position_key = "relative_gap" if kind == "gap" else "absolute_prefix"
    res: dict[str, dict[int, Tensor]] = {"shares": {}, "token_" + kind: {}, position_key: {}}
    for layer in layers:
        old_rows, new_rows = regular[layer][:, :, -1], patterns[layer][:, :, -1]
        res["shares"][layer] = category_shares(new_rows, new.members)
        res["token_" + kind][layer] = follow(old_rows, new_rows, moved)
        res[position_key][layer] = follow(old_rows, new_rows, same_offset if kind == "gap" else same_index)
    return res


def random_token_scores(engine: PatchingEngine, layers: Sequence[int], settings: AttentionSettings, first: Tensor,
                        random_ids: Optional[Tensor] = None) -> dict[str, dict[int, Tensor]]:
    """Previous-token, induction and duplicate-token scores ``[H]`` per layer on repeated random tokens."""
    n_ctx, V = engine.w.W_pos.shape[0], engine.w.W_E.shape[0]
    m = min(settings.repeat_len, (n_ctx - 1) // 2)
    pool = random_ids if random_ids is not None else torch.tensor([i for i in range(V) if i != int(first)])
    if m < 2 or len(pool) < m:
        raise SettingsError(f"cannot draw {m} distinct random tokens from {len(pool)} within {n_ctx} positions")
    g = torch.Generator().manual_seed(settings.seed)
    rows = [pool[torch.randperm(len(pool), generator=g)[:m]] for _ in range(settings.n_repeats)]
    body = torch.stack(rows)
    tokens = torch.cat([torch.full((len(rows), 1), int(first)), body, body], dim=1).to(engine.w.device)
    patterns = patterns_on(engine, tokens, layers)
    q = torch.arange(m + 1, 2 * m + 1)  # the second copy
    prev_q = torch.arange(2, 2 * m + 1)
    out: dict[str, dict[int, Tensor]] = {"previous_token": {}, "induction": {}, "duplicate_token": {}}
    for layer, pat in patterns.items():
        out["previous_token"][layer] = pat[:, :, prev_q, prev_q - 1].mean((0, 2))
        out["induction"][layer] = pat[:, :, q, q - m + 1].mean((0, 2))
        out["duplicate_token"][layer] = pat[:, :, q, q - m].mean((0, 2))
    return out


def _named(shares: Tensor) -> dict[str, float]:
    return {c: round(float(x), 4) for c, x in zip(CATEGORIES, shares)}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def attention(model: Any, dataset: Any, heads: Sequence[Node], settings: AttentionSettings = AttentionSettings(),
              tokenizer: Any = None) -> AttentionResult:
    """``analyze_attention`` on a TaskDataset's clean prompts, with the model's tokenizer resolving the filler,
    the members' positions, the axis labels and the random-token pool (every id but special tokens)."""
    tokenizer = tokenizer if tokenizer is not None else model.tokenizer
    prompts = prompt_tokens(dataset, tokenizer)
    text, filler = choose_filler(tokenizer, prompts.tokens, settings.filler)
    settings = replace(settings, filler=text)
    V = as_engine(model).w.W_E.shape[0]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    pool = torch.tensor([i for i in range(min(V, len(tokenizer))) if i not in special])
    labels = tokenizer.convert_ids_to_tokens(prompts.tokens[0].tolist())
    return analyze_attention(model, prompts, heads, filler, settings, random_ids=pool, labels=labels)
