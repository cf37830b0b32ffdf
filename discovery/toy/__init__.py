"""The toy model: a small GPT-2 trained by this project on the built-in tasks, shipped in ``model/``.

It loads like any Hugging Face folder (``GPT2LMHeadModel.from_pretrained``, ``AutoTokenizer``) and with
TransformerLens's ``TransformerBridge.boot_transformers(str(model_dir()))``, the loader used for GPT-2.
``discovery.toy.train`` retrains it; ``discovery.toy.evaluate`` measures it. Nothing is loaded at import.
"""

from __future__ import annotations

from pathlib import Path

MODEL_FOLDER = "model"


def model_dir() -> Path:
    """The shipped toy model's folder (config.json, model.safetensors, tokenizer files, training.json)."""
    return Path(__file__).resolve().parent / MODEL_FOLDER
