"""Covers: the model loader's offline resolution (toy, folders, hub ids) and its one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discovery.errors import ModelNotAvailable
from discovery.models import check_available, known_models, load_model, resolve_source


def test_toy_resolves_to_the_shipped_folder() -> None:
    folder, local = resolve_source("toy")
    assert local and (Path(folder) / "config.json").is_file() and (Path(folder) / "tokenizer.json").is_file()


def test_hub_alias_resolves_to_the_full_id() -> None:
    assert resolve_source("gpt2") == ("openai-community/gpt2", False)


def test_a_hub_model_missing_from_the_cache_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-home" / "hub"))
    with pytest.raises(ModelNotAvailable) as err:
        check_available("gpt2")
    message = str(err.value)
    assert "\n" not in message and "not in the local Hugging Face cache" in message and "--model" in message


def test_a_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="no config.json"):
        check_available(str(tmp_path))


def test_a_missing_path_is_refused() -> None:
    with pytest.raises(ModelNotAvailable, match="no model folder"):
        check_available("./no/such/model")


def test_other_architectures_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelNotAvailable, match="GPT-2-architecture"):
        check_available(str(tmp_path))


def test_a_folder_loads_with_what_identifies_it(tiny_folder: Path) -> None:
    model = load_model(str(tiny_folder))
    spec = model.spec
    assert (spec.n_layers, spec.n_heads, spec.d_model) == (2, 4, 32)
    assert len(spec.weights_hash or "") == 64
    assert spec.flags["use_split_qkv_input"] and spec.flags["fold_ln"]
    assert {"torch", "transformer-lens", "transformers"} <= set(spec.versions)
    assert load_model(str(tiny_folder)).spec.weights_hash == spec.weights_hash


def test_bad_device_and_dtype_are_refused(tiny_folder: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="dtype"):
        load_model(str(tiny_folder), dtype="float8")
    with pytest.raises(ModelNotAvailable, match="device"):
        load_model(str(tiny_folder), device="tpu")


def test_known_models_lists_toy_as_available() -> None:
    rows = {r["name"]: r for r in known_models()}
    assert rows["toy"]["available"] is True
    assert set(rows) >= {"toy", "gpt2", "gpt2-medium"}
