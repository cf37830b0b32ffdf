"""Loading models: a hub id or a local folder, through TransformerLens 4's ``TransformerBridge``, the same path for all.

The shipped toy model is an ordinary local Hugging Face folder, so ``--model toy`` exercises exactly the code
that loads GPT-2 small. No network is assumed: a hub id must already be in the local Hugging Face cache, and
we say so in one line instead of hanging on a download.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from discovery.errors import ModelNotAvailable
from discovery.results import ModelSpec

# Short names a researcher types, and the hub ids they stand for (TransformerLens 3+ deprecates short aliases,
# so the full id is what gets recorded).
HUB_ALIASES: dict[str, str] = {
    "gpt2": "openai-community/gpt2",
    "gpt2-small": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
SUPPORTED_MODEL_TYPES = ("gpt2",)
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}

# What the bridge is asked for; recorded with every run because these decide which hooks (nodes) exist.
BRIDGE_FLAGS: dict[str, Any] = {
    "compatibility_mode": True,
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "fold_value_biases": True,
    "use_attn_result": True,
    "use_split_qkv_input": True,
    "use_hook_mlp_in": True,
    "prepend_bos": True,
}


@dataclass
class LoadedModel:
    """A bridge ready for per-head hooks, its tokenizer, and what identifies it."""

    bridge: Any
    tokenizer: Any
    spec: ModelSpec
    device: torch.device
    dtype: torch.dtype
    engine_weights: Any = None  # GPT2Weights, read from the bridge once by ``discovery.patching.weights_for``


def resolve_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ModelNotAvailable(f"unknown dtype {name!r}: use float32 or bfloat16") from None


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelNotAvailable(f"device {name!r} asked for, but torch sees no CUDA device here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ModelNotAvailable(f"unknown device {name!r}: use cpu or cuda") from None


def resolve_source(name: str) -> tuple[str, bool]:
    """(what to load, is_local_folder). ``toy`` is the shipped folder; an existing path is a folder; else a hub id."""
    if name == "toy":
        from discovery.toy import model_dir

        return str(model_dir()), True
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotAvailable(f"{name} is not a Hugging Face model folder (no config.json in it)")
        return str(path.resolve()), True
    if name.startswith((".", "/", "~")):
        raise ModelNotAvailable(f"no model folder at {name}")
    return HUB_ALIASES.get(name, name), False


def cached_snapshot(hub_id: str) -> Optional[Path]:
    """The local cache's folder for a hub id, or None: looked up on disk only, never over the network."""
    from huggingface_hub import try_to_load_from_cache

    # The hub moved gpt2 to openai-community/gpt2; an older cache may hold it under the short name.
    candidates = [hub_id] + [alias for alias, full in HUB_ALIASES.items() if full == hub_id]
    for repo in candidates:
        hit = try_to_load_from_cache(repo, "config.json")
        if isinstance(hit, str):
            return Path(hit).parent
    return None


def _not_cached_message(name: str, hub_id: str) -> str:
    return (
        f"model {name!r} ({hub_id}) is not in the local Hugging Face cache and this tool never downloads: "
        f"fetch it once where there is a network (huggingface-cli download {hub_id}) and copy the cache here, "
        f"or pass a local model folder (--model /path/to/folder)"
    )


def check_available(name: str) -> str:
    """Raise ModelNotAvailable unless ``name`` can be loaded offline; return the folder or snapshot to load."""
    source, local = resolve_source(name)
    if local:
        _check_architecture(Path(source), name)
        return source
    snapshot = cached_snapshot(source)
    if snapshot is None:
        raise ModelNotAvailable(_not_cached_message(name, source))
    _check_architecture(snapshot, name)
    return str(snapshot)


def _check_architecture(folder: Path, name: str) -> None:
    import json

    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise ModelNotAvailable(f"cannot read {folder / 'config.json'}: {err}") from None
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelNotAvailable(
            f"{name} is a {model_type!r} model; discovery supports GPT-2-architecture models ({', '.join(SUPPORTED_MODEL_TYPES)})"
        )


@contextmanager
def offline() -> Iterator[None]:
    """Forbid network access while loading, so a missing file fails at once instead of hanging."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_model(name: str, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """Load ``name`` (``toy``, a hub id in the local cache, or a folder) as a bridge with per-head hooks."""
    torch_device, torch_dtype = resolve_device(device), resolve_dtype(dtype)
    folder = check_available(name)
    source, _ = resolve_source(name)
    bridge = _boot(folder, name, torch_device, torch_dtype)
    spec = model_spec(name, source, folder, bridge)
    return LoadedModel(bridge=bridge, tokenizer=bridge.tokenizer, spec=spec, device=torch_device, dtype=torch_dtype)


def quiet_transformers() -> None:
    """transformers draws a progress bar for every weight file and warns about configs; a researcher's terminal
    (and stdout kept clean for --json) needs none of it."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    for logger in ("transformers", "transformer_lens"):
        logging.getLogger(logger).setLevel(logging.ERROR)


def _boot(folder: str, name: str, device: torch.device, dtype: torch.dtype) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    quiet_transformers()
    with offline(), weights_errors(name, folder):
        bridge = TransformerBridge.boot_transformers(folder, device=str(device), dtype=dtype)
    bridge.enable_compatibility_mode()
    bridge.set_use_attn_result(True)
    bridge.set_use_split_qkv_input(True)
    bridge.set_use_hook_mlp_in(True)
    bridge.eval()
    for p in bridge.parameters():
        p.requires_grad_(False)
    return bridge


@contextmanager
def weights_errors(name: str, folder: str) -> Iterator[None]:
    """A model folder whose weights do not load ends in one line. Weights are read as safetensors, or as pickles
    with torch's weights-only loader, which refuses to run a pickle's code: say so rather than show its trace."""
    try:
        yield
    except ModelNotAvailable:
        raise
    except Exception as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        pickled = any(Path(folder).glob("*.bin")) and not any(Path(folder).glob("*.safetensors"))
        hint = " (only safetensors, or pickles holding nothing but weights, load here)" if pickled else ""
        raise ModelNotAvailable(f"cannot load {name} from {folder}: {detail[:200]}{hint}") from None


def weights_hash(folder: str) -> str:
    """sha256 over the weight files' bytes (sorted by name): the same weights always give the same hash."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin"))
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    out: dict[str, str] = {"torch": str(torch.__version__)}
    for dist in ("transformer-lens", "transformers", "circuit-catalog"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def model_spec(name: str, source: str, folder: str, bridge: Any) -> ModelSpec:
    cfg = bridge.cfg
    return ModelSpec(
        name=name,
        source=source,
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        d_model=int(cfg.d_model),
        d_head=int(cfg.d_head),
        d_mlp=int(cfg.d_mlp),
        n_ctx=int(cfg.n_ctx),
        d_vocab=int(cfg.d_vocab),
        architecture="GPT2LMHeadModel",
        weights_hash=weights_hash(folder),
        versions=library_versions(),
        flags=dict(BRIDGE_FLAGS),
    )


def known_models() -> list[dict[str, Any]]:
    """What ``circuits models list`` shows: the shipped toy model and the GPT-2 family, with local availability."""
    rows: list[dict[str, Any]] = []
    for name in ["toy", *HUB_ALIASES]:
        try:
            where = check_available(name)
            available, note = True, where
        except ModelNotAvailable as err:
            available, note = False, str(err)
        source = "shipped toy model" if name == "toy" else HUB_ALIASES[name]
        rows.append({"name": name, "source": source, "available": available, "where": note})
    return rows
