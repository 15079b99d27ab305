"""Equations (4) and (5) on hand-computed cases, and the epoch draws they drive."""

import numpy as np
import pandas as pd
import pytest

from models.vlm.resampling import difficulty, group_probabilities, resampled_epoch_order, uniform_epoch_order
from models.vlm.scoring import answer_positions


def test_difficulty_eq4_by_hand():
    # d = α·1[wrong] + β·PPL
    d = difficulty(correct=[True, False, False], perplexity=[1.0, 1.5, 4.0], alpha=1.0, beta=0.2)
    np.testing.assert_allclose(d, [0.2, 1.3, 1.8])
    np.testing.assert_allclose(difficulty([False], [2.0], alpha=2.0, beta=0.5), [3.0])


def test_group_probabilities_eq5_by_hand():
    d = [0.2, 1.3, 1.8, 0.2, 0.3]
    groups = ["a", "b", "b", "c", "c"]
    # sums: a 0.2, b 3.1, c 0.5 → total 3.8
    p = group_probabilities(d, groups, gamma=1.0)
    assert list(p.index) == ["a", "b", "c"]
    np.testing.assert_allclose(p.to_numpy(), [0.2 / 3.8, 3.1 / 3.8, 0.5 / 3.8])
    # γ = 2: squares 0.04, 9.61, 0.25 → total 9.9
    squared = group_probabilities(d, groups, gamma=2.0).to_numpy()
    np.testing.assert_allclose(squared, [0.04 / 9.9, 9.61 / 9.9, 0.25 / 9.9])
    # γ = 0.5 flattens
    roots = np.sqrt([0.2, 3.1, 0.5])
    np.testing.assert_allclose(group_probabilities(d, groups, gamma=0.5).to_numpy(), roots / roots.sum())


def test_probabilities_sum_to_one_and_move_toward_errors():
    rng = np.random.default_rng(0)
    groups = np.repeat(["easy", "hard", "mid"], 20)
    correct = np.concatenate([np.ones(20), np.zeros(20), rng.random(20) < 0.5]).astype(bool)
    perplexity = 1.0 + rng.random(60)
    p = group_probabilities(difficulty(correct, perplexity), groups)
    assert p.sum() == pytest.approx(1.0)
    assert p["hard"] > p["mid"] > p["easy"] > 0  # easy groups keep some coverage
    assert p["hard"] > 1 / 3 > p["easy"]


def test_degenerate_and_invalid_inputs():
    p = group_probabilities([0.0, 0.0], ["a", "b"])
    np.testing.assert_allclose(p.to_numpy(), [0.5, 0.5])
    with pytest.raises(ValueError, match="gamma"):
        group_probabilities([1.0], ["a"], gamma=0)
    with pytest.raises(ValueError, match="non-negative"):
        group_probabilities([-1.0], ["a"])


def test_subsample_scores_are_scaled_to_group_sizes():
    # scored: a has mean 1.0 over 1 sample but 10 members; b mean 2.0, 1 member; c unscored → overall mean 1.5
    p = group_probabilities([1.0, 2.0], ["a", "b"], group_sizes={"a": 10, "b": 1, "c": 2})
    np.testing.assert_allclose(p.to_numpy(), np.array([10.0, 2.0, 3.0]) / 15.0)


def test_uniform_epochs_visit_every_sample_and_are_seeded():
    order = uniform_epoch_order(8, epoch=1, seed=0)
    assert sorted(order) == list(range(8))
    assert np.array_equal(order, uniform_epoch_order(8, epoch=1, seed=0))
    assert not np.array_equal(order, uniform_epoch_order(8, epoch=2, seed=0))
    long = uniform_epoch_order(8, epoch=1, seed=0, samples_per_epoch=20)
    assert len(long) == 20 and np.bincount(long).min() >= 2


def test_resampled_epoch_follows_group_probabilities():
    groups = ["a"] * 10 + ["b"] * 2 + ["c"] * 4
    p = pd.Series([0.1, 0.6, 0.3], index=["a", "b", "c"])
    order = resampled_epoch_order(groups, p, epoch=2, seed=0, samples_per_epoch=20000)
    drawn = pd.Series(np.asarray(groups)[order]).value_counts(normalize=True)
    np.testing.assert_allclose(drawn[["a", "b", "c"]].to_numpy(), [0.1, 0.6, 0.3], atol=0.015)
    # uniform within a group
    b_members = order[np.asarray(groups)[order] == "b"]
    assert abs(np.mean(b_members == 10) - 0.5) < 0.03
    assert np.array_equal(order, resampled_epoch_order(groups, p, epoch=2, seed=0, samples_per_epoch=20000))
    assert len(resampled_epoch_order(groups, p, epoch=2, seed=0)) == len(groups)
    with pytest.raises(ValueError, match="no probability"):
        resampled_epoch_order([*groups, "d"], p, epoch=2, seed=0)


@pytest.mark.parametrize(
    ("tokens", "ends_with_stop", "expected"),
    [
        (["<think>", "x", "</think>", "<answer>", "4", "2", "</answer>", "<|im_end|>"], True,
         [0, 0, 0, 0, 1, 1, 0, 0]),
        (["<think>x</think><", "answer>4", "2</", "answer>"], False, [0, 1, 1, 0]),  # tags split/merged
        (["<answer>", "yes"], False, [0, 1]),  # unclosed: to the end
        (["no", " tags", "<|im_end|>"], True, [1, 1, 0]),  # no answer block: all generated tokens
        (["<answer>", "</answer>"], False, [1, 1]),  # empty answer: all generated tokens
        (["<|im_end|>"], True, [1]),  # nothing but the end token
    ],
)
def test_answer_positions(tokens, ends_with_stop, expected):
    assert answer_positions(tokens, ends_with_stop).int().tolist() == expected
