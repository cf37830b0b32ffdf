"""Resolve a ``--model`` name to its tokenizer, without the network.

The name is resolved by the model loader (``discovery.models.check_available``): ``toy`` is the shipped
model folder, an existing path a local model folder, anything else a hub id that must already be in the
local Hugging Face cache. Only the tokenizer is loaded, so ``circuits tasks show`` stays quick.
"""

from __future__ import annotations

from typing import Any

from discovery.errors import ModelNotAvailable


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of ``toy``, of a local model folder, or of a model already in the local HF cache."""
    from transformers import AutoTokenizer

    from discovery.models import check_available

    folder = check_available(name_or_path)  # raises ModelNotAvailable with the loader's message
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelNotAvailable(
            f"cannot load a tokenizer for {name_or_path!r} from {folder}: {str(err).splitlines()[0]}"
        ) from None
