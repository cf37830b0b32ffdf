"""TransformerLens hook names, built in this one file and mapped to canonical nodes.

Nothing else writes ``blocks.{l}...`` strings: when TransformerLens renames a hook (3.0 renamed
``hook_resid_pre`` to ``hook_in``), this is the one place that changes. Pure and torch-free.
"""

from __future__ import annotations

import re
from typing import Optional

from discovery.graph import EMBED, InvalidKey, Node, head, logits, mlp


def embed_hook() -> str:
    return "hook_embed"


def pos_embed_hook() -> str:
    return "hook_pos_embed"



def resid_post(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def attn_result(layer: int) -> str:
    """Per-head outputs ``[batch, pos, head, d_model]`` (needs ``set_use_attn_result(True)``)."""
    return f"blocks.{layer}.attn.hook_result"



def attn_pattern(layer: int) -> str:
    """Attention probabilities ``[batch, head, query_pos, key_pos]``."""
    return f"blocks.{layer}.attn.hook_pattern"


def head_input(layer: int, which: str) -> str:
    """Per-head q/k/v inputs ``[batch, pos, head, d_model]`` (needs ``set_use_split_qkv_input(True)``)."""
    if which not in ("q", "k", "v"):
        raise InvalidKey(f"a head input is q, k or v, not {which!r}")
    return f"blocks.{layer}.hook_{which}_input"


def mlp_in(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_in"


def mlp_out(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"






# ACDC writes edges as hook names with an index: ``blocks.9.attn.hook_result[:, :, 1]``.
_HOOK_RE = re.compile(r"^blocks\.(\d+)\.(attn\.hook_result|hook_mlp_out|hook_mlp_in|hook_resid_post|hook_resid_pre|"
                      r"hook_([qkv])_input|attn\.hook_([qkv]))$")
_INDEX_RE = re.compile(r"^(?P<name>[^\[]+)(?:\[(?P<index>[^\]]*)\])?$")


def parse_hook(text: str, n_layers: Optional[int] = None) -> tuple[Node, Optional[str]]:
    """Map a TransformerLens hook name (optionally ACDC-indexed) to (node, q/k/v input or None).

    ``blocks.L.hook_resid_post`` of the last layer means logits; ``blocks.0.hook_resid_pre`` and
    ``hook_embed``/``hook_pos_embed`` mean embed.
    """
    m = _INDEX_RE.match(text.replace(" ", ""))
    if not m:
        raise InvalidKey(f"not a hook name: {text!r}")
    name, index = m.group("name"), m.group("index") or ""
    head_index = _last_int(index)
    if name in (embed_hook(), pos_embed_hook()):
        return EMBED, None
    hm = _HOOK_RE.match(name)
    if not hm:
        raise InvalidKey(f"not a hook name this tool maps to a node: {text!r}")
    layer, kind = int(hm.group(1)), hm.group(2)
    if kind == "hook_resid_pre":
        if layer != 0:
            raise InvalidKey(f"only blocks.0.hook_resid_pre stands for embed: {text!r}")
        return EMBED, None
    if kind == "hook_resid_post":
        if n_layers is not None and layer != n_layers - 1:
            raise InvalidKey(f"only the last layer's hook_resid_post stands for logits: {text!r}")
        return logits(layer + 1), None
    if kind in ("hook_mlp_out", "hook_mlp_in"):
        return mlp(layer), None
    if head_index is None:
        raise InvalidKey(f"a head hook needs a head index, e.g. {name}[:, :, 1]: {text!r}")
    which = hm.group(3) or hm.group(4)
    return head(layer, head_index), which


def _last_int(index: str) -> Optional[int]:
    parts = [p for p in index.split(",") if p.strip() not in ("", ":", "None")]
    if not parts:
        return None
    try:
        return int(parts[-1])
    except ValueError:
        return None
