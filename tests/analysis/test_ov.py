"""Covers: OV copy/successor/greater-than/suppression scores and signs, on matrices and hand-built heads with known OV maps."""

from __future__ import annotations

import pytest
import torch

from discovery.analysis.ov import OVSettings, analyze_ov, ordinal_set, ov_matrix, ov_scores, token_set
from discovery.analysis.stream import as_engine
from discovery.errors import SettingsError
from discovery.graph import head
from tests.analysis.builders import N_TOK


def test_identity_matrix_copies_and_shift_matrix_is_a_successor() -> None:
    n = 6
    succ = [i + 1 if i + 1 < n else -1 for i in range(n)]
    copy = ov_scores(torch.eye(n), succ)
    assert copy["copy_top1"] == 1.0 and copy["successor_top1"] == 0.0 and copy["copy_sign"] > 0
    shift = ov_scores(torch.diag(torch.ones(n - 1), 1), succ)  # M[i, i+1] = 1
    assert shift["successor_top1"] == 1.0 and shift["successor_top5"] == 1.0
    assert shift["copy_top1"] == 0.0 and shift["greater_top1"] == 1.0 and shift["successor_sign"] > 0


def test_negative_identity_suppresses() -> None:
    scores = ov_scores(-torch.eye(5), [1, 2, 3, 4, -1])
    assert scores["suppress_top1"] == 1.0 and scores["copy_sign"] < 0 and scores["copy_top1"] == 0.0


def test_greater_than_counts_any_later_member_and_top5_is_a_share() -> None:
    n = 10
    M = torch.arange(n, dtype=torch.float).expand(n, n).clone()  # every row's top output is the last member
    scores = ov_scores(M, [i + 1 if i + 1 < n else -1 for i in range(n)])
    assert scores["greater_top1"] == 1.0  # rows 0..8 all have a later member on top
    assert scores["successor_top1"] == pytest.approx(1 / 9)  # only row 8's successor is the last member
    # top-5 is members 5..9: row i's share of later ones is min(5, 9 - i) / 5 ... averaged over rows 0..8
    expected = sum(min(5, n - 1 - i) / 5 for i in range(n - 1)) / (n - 1)
    assert scores["greater_top5"] == pytest.approx(expected)
    assert scores["chance_top1"] == pytest.approx(0.1) and scores["chance_top5"] == pytest.approx(0.5)


def test_hand_built_heads_score_as_built(ov_weights) -> None:
    engine = as_engine(ov_weights)
    ids = list(range(N_TOK))
    M = ov_matrix(engine, 1, 0, ids)
    assert torch.equal(M.argmax(1)[:-1], torch.arange(1, N_TOK))
    sets = [ordinal_set("ordinal", ids)]
    result = analyze_ov(ov_weights, [head(1, 0), head(1, 1), head(1, 2)], sets, OVSettings(token_sets=()))
    succ, copy, supp = (result.heads[k]["ordinal"] for k in ("a1.0", "a1.1", "a1.2"))
    assert succ["successor_top1"] == 1.0 and succ["successor_top5"] == 1.0 and succ["successor_sign"] > 0
    assert copy["copy_top1"] == 1.0 and copy["copy_sign"] > 0 and copy["successor_top1"] == 0.0
    assert supp["suppress_top1"] == 1.0 and supp["copy_sign"] < 0 and supp["copy_top1"] == 0.0
    assert result.heads["a1.0"]["mean"]["successor_top1"] == 1.0
    assert result.token_sets["ordinal"]["n"] == N_TOK


def test_mlp0_embedding_with_a_silent_mlp_changes_nothing(ov_weights) -> None:
    engine = as_engine(ov_weights)
    raw = ov_matrix(engine, 1, 0, range(N_TOK), "raw")
    assert torch.allclose(ov_matrix(engine, 1, 0, range(N_TOK), "mlp0"), raw)


def test_token_set_keeps_single_tokens_and_successors_only_between_kept_members() -> None:
    from tests.tasks.conftest import word_tokenizer

    tok = word_tokenizer(["January", "February", "April", "May"])  # March missing: not a token
    s = token_set("months", tok)
    assert s.words == ("January", "February", "April", "May")
    assert s.successor == (1, -1, 3, -1)  # February's successor (March) is not in the set; May's (June) neither
    assert len(set(s.ids)) == 4


def test_bad_settings_are_refused() -> None:
    with pytest.raises(SettingsError):
        OVSettings(token_sets=("planets",))
    with pytest.raises(SettingsError):
        OVSettings(embedding="mlp7")
