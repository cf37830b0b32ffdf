"""Covers: bootstrap resampling of a task's prompts (discovery.tasks.filtering.resample) and the plan of a stability
study's runs (discovery.evaluation.resampling.plan_resamples)."""

from __future__ import annotations

import pytest
import torch

from discovery.config import make_config
from discovery.errors import SettingsError, TaskError
from discovery.evaluation.resampling import plan_resamples
from discovery.tasks.dataset import build_dataset
from discovery.tasks.filtering import resample


@pytest.fixture(scope="module")
def dataset():
    from discovery.toy.vocab import build_tokenizer

    return build_dataset("digits", build_tokenizer(32), n=24, seed=0)


def test_a_resample_draws_with_replacement_deterministically(dataset) -> None:
    one, again, other = resample(dataset, 1), resample(dataset, 1), resample(dataset, 2)
    assert torch.equal(one.clean, again.clean) and one.spec == again.spec
    assert not torch.equal(one.clean, other.clean) and one.spec.content_hash != other.spec.content_hash
    assert one.n == dataset.n and one.spec.resample == 1 and dataset.spec.resample is None
    rows = [tuple(r) for r in one.clean.tolist()]
    assert len(set(rows)) < len(rows)  # 24 draws from 24 prompts: some repeat (P(no repeat) = 24!/24^24)
    index = {tuple(r): i for i, r in enumerate(dataset.clean.tolist())}
    for row, answers, corrupted in zip(rows, one.answers, one.corrupted):  # each prompt keeps its own pair
        i = index[row]
        assert torch.equal(answers, dataset.answers[i]) and torch.equal(corrupted, dataset.corrupted[i])
    with pytest.raises(TaskError):
        resample(dataset, -1)


def test_the_plan_varies_prompts_seeds_or_both() -> None:
    config = make_config("toy", "digits", "eap", n_prompts=8, seed=5, settings={"top_k": 10})
    prompts = plan_resamples(config, 3)
    assert [(r.index, r.bootstrap, r.config.seed) for r in prompts] == [(1, 1, 5), (2, 2, 5), (3, 3, 5)]
    seeds = plan_resamples(config, 3, ["seeds"])
    assert [(r.bootstrap, r.config.seed) for r in seeds] == [(None, 5), (None, 6), (None, 7)]
    assert len({r.config.key for r in seeds}) == 3
    both = plan_resamples(config, 2, ["prompts", "seeds"])
    assert [(r.bootstrap, r.config.seed) for r in both] == [(1, 5), (2, 6)]
    with pytest.raises(SettingsError):
        plan_resamples(config, 1)
    with pytest.raises(SettingsError):
        plan_resamples(config, 3, ["corruptions"])
