"""Resolve a ``--model`` name to its tokenizer, without the network.

``toy`` is the shipped model folder; any other existing folder is loaded as a Hugging Face folder; any other
name is looked up in the local Hugging Face cache only. The model loader (``discovery/models.py``) may later
replace this with its own resolution; until then this is the one place that maps names to tokenizers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from discovery.errors import ModelNotAvailable

TOY = "toy"


def resolve_model_path(name_or_path: str) -> str:
    """The folder (or hub id) a model name stands for: ``toy`` -> the shipped toy model's folder."""
    if name_or_path == TOY:
        from discovery.toy import model_dir

        return str(model_dir())
    return name_or_path


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of ``toy``, of a local model folder, or of a model already in the local HF cache."""
    from transformers import AutoTokenizer

    source = resolve_model_path(name_or_path)
    is_folder = Path(source).is_dir()
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as err:
        where = "folder" if is_folder else "name (not a folder, and not in the local Hugging Face cache)"
        raise ModelNotAvailable(
            f"cannot load a tokenizer for {name_or_path!r} from this {where}: {str(err).splitlines()[0]}"
        ) from None
