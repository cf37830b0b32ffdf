"""Covers: the shipped toy model: its folder and tokenizer, loading through TransformerLens's bridge, held-out
accuracy per task, and that it reads its context (all attention heads mean-ablated -> chance)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from discovery.tasks import build_dataset
from discovery.toy import model_dir
from discovery.toy.evaluate import context_checks, length_checks, load, task_accuracies
from discovery.toy.vocab import vocabulary

CORE_TASKS = ("digits", "numwords", "months", "digits-list", "numwords-list", "months-list", "greater-than", "ioi")


@pytest.fixture(scope="module")
def toy() -> tuple[Any, Any]:
    return load(model_dir())


@pytest.fixture(scope="module")
def accuracies(toy) -> dict:
    model, tokenizer = toy
    with torch.inference_mode():
        return task_accuracies(model, tokenizer, n=200)


def test_folder_is_small_and_complete() -> None:
    folder = model_dir()
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "training.json"} <= names
    assert sum(p.stat().st_size for p in folder.iterdir()) < 8 * 2**20
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel"]
    assert (config["n_layer"], config["n_head"], config["n_embd"]) == (4, 4, 128)


def test_tokenizer_loads_both_ways_and_matches_code() -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    auto = AutoTokenizer.from_pretrained(str(model_dir()))
    raw = PreTrainedTokenizerFast(tokenizer_file=str(model_dir() / "tokenizer.json"))
    vocab = vocabulary()
    assert sorted(auto.get_vocab(), key=auto.get_vocab().get) == vocab
    assert raw.get_vocab() == auto.get_vocab()
    assert auto.bos_token == "<bos>" and auto.pad_token == "<pad>" and auto.unk_token == "<unk>"
    ids = auto("The war lasted from the year 1732 to the year 17", add_special_tokens=False)["input_ids"]
    assert auto.convert_ids_to_tokens(ids)[6:8] == ["17", "32"]
    assert raw("store, John 05")["input_ids"] == auto("store, John 05", add_special_tokens=False)["input_ids"]


def test_loads_with_transformer_bridge(toy) -> None:
    from transformer_lens.model_bridge import TransformerBridge

    model, tokenizer = toy
    bridge = TransformerBridge.boot_transformers(str(model_dir()), device="cpu")
    data = build_dataset("ioi", tokenizer, n=4, seed=1)
    tokens = bridge.to_tokens([p.clean for p in data.prompts])
    assert torch.equal(tokens, data.clean)  # the bridge prepends <bos> as build_dataset does
    with torch.no_grad():
        assert torch.allclose(bridge(tokens), model(input_ids=tokens).logits, atol=1e-4)


@pytest.mark.parametrize("task", CORE_TASKS)
def test_core_task_accuracy(accuracies: dict, task: str) -> None:
    assert accuracies[task]["accuracy"] >= 0.99, accuracies[task]


@pytest.mark.parametrize("task", ["decreasing", "less-than"])
def test_extra_task_accuracy(accuracies: dict, task: str) -> None:
    assert accuracies[task]["accuracy"] >= 0.95, accuracies[task]


def test_lists_of_every_length_with_and_without_bos(toy) -> None:
    # The earlier toy model had learned the prompt's length: right on 4-member lists, 0-3 % on `1 2 3` without
    # BOS. Lists of 2 to 6 members, either way, must all be done now.
    model, tokenizer = toy
    with torch.inference_mode():
        rows = length_checks(model, tokenizer, n=100)
    assert [(r["members"], r["bos"]) for r in rows] == [(m, b) for m in range(2, 7) for b in (True, False)]
    assert all(r["accuracy"] >= 0.95 for r in rows), rows


def test_reads_its_context(toy) -> None:
    model, tokenizer = toy
    with torch.inference_mode():
        steps, ioi = context_checks(model, tokenizer, n=150)
    assert steps.normal >= 0.95 and steps.ablated <= steps.normal / 2, steps
    assert ioi.normal >= 0.99 and 0.3 <= ioi.ablated <= 0.7, ioi
    assert ioi.n == 150 and steps.n == 450


def test_training_writes_a_loadable_folder(tmp_path: Path) -> None:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    from discovery.toy.train import ToyConfig, train

    cfg = ToyConfig(n_layer=1, n_head=2, d_model=16, d_mlp=32, steps=3, batch_size=8, train_size=300, warmup=1)
    stats = train(tmp_path / "m", cfg)
    again = train(tmp_path / "n", cfg)
    assert stats["final_loss"] == again["final_loss"]  # seeded and deterministic
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "m"))
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(str(model_dir())).get_vocab()
    bridge = TransformerBridge.boot_transformers(str(tmp_path / "m"), device="cpu")
    assert bridge.cfg.n_layers == 1 and bridge.to_tokens("3 4 5")[0, 0].item() == tokenizer.bos_token_id
    record = json.loads((tmp_path / "m" / "training.json").read_text())
    assert record["recipe"]["steps"] == 3
