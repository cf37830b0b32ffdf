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
