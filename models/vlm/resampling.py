"""Difficulty-aware resampling of the paper (§III-C, equations 4 and 5), as pure functions.

* Eq. 4: ``d_i = α·1[ŷ_i ≠ y_i] + β·PPL_i`` with ``PPL_i`` the perplexity of the answer tokens of
  the greedy output (see ``scoring.answer_positions``).
* Eq. 5: ``P(t) = (Σ_{i∈Q_t} d_i)^γ / Σ_l (Σ_{i∈Q_l} d_i)^γ`` over base-subquery groups ``t``.
* An epoch's draws: a group by ``P``, then a sample uniformly inside it, with replacement, as many
  draws as the epoch has samples. The first epoch (no scores yet) and every epoch of the ablation
  without resampling are plain shuffles: each sample once (repeated passes if an epoch is longer
  than the data set).

Every draw comes from a generator seeded with ``(seed, epoch)``, so an epoch's order depends only
on the seed, the epoch number and the probabilities, which is what makes resumed runs identical.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

#: ``difficulty_scores``: one row per scored sample and epoch (Eq. 4's inputs and ``d_i``).
DIFFICULTY_COLUMNS = ("epoch", "sample_id", "subquery_id", "correct", "perplexity", "difficulty", "generated")
DIFFICULTY_SCHEMA = pa.schema([
    ("epoch", pa.int64()), ("sample_id", pa.string()), ("subquery_id", pa.string()), ("correct", pa.bool_()),
    ("perplexity", pa.float64()), ("difficulty", pa.float64()), ("generated", pa.string()),
])  # fmt: skip
#: ``resampling_probabilities``: Eq. 5 per group (``subquery_id``, the default ``group_key``) after each epoch.
PROBABILITY_COLUMNS = ("epoch", "subquery_id", "probability")
PROBABILITY_SCHEMA = pa.schema([("epoch", pa.int64()), ("subquery_id", pa.string()), ("probability", pa.float64())])


def difficulty(correct: Sequence[bool], perplexity: Sequence[float], alpha: float = 1.0,
               beta: float = 0.2) -> np.ndarray:
    """Eq. 4 for every sample: ``α·(1 − correct) + β·perplexity``."""
    wrong = 1.0 - np.asarray(correct, dtype=np.float64)
    return alpha * wrong + beta * np.asarray(perplexity, dtype=np.float64)


def group_probabilities(difficulties: Sequence[float], groups: Sequence[Hashable], gamma: float = 1.0,
                        group_sizes: Mapping[Hashable, int] | None = None) -> pd.Series:
    """Eq. 5: sampling probability per group (index sorted), summing to 1.

    ``group_sizes`` is for scores of a subsample: each group's sum is then estimated as its mean
    difficulty times its full size (a group with no scored sample takes the overall mean). If every
    sum is zero (possible only with β = 0 and no errors) the groups are equally likely.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    frame = pd.DataFrame({"group": list(groups), "d": np.asarray(difficulties, dtype=np.float64)})
    if (frame["d"] < 0).any():
        raise ValueError("difficulties must be non-negative")
    if group_sizes is None:
        sums = frame.groupby("group", sort=True)["d"].sum()
    else:
        means = frame.groupby("group")["d"].mean()
        overall = float(frame["d"].mean()) if len(frame) else 0.0
        sums = pd.Series({g: means.get(g, overall) * n for g, n in group_sizes.items()}).sort_index()
    powered = sums.astype(np.float64) ** gamma
    total = powered.sum()
    if total <= 0:
        return pd.Series(1.0 / len(powered), index=powered.index, name="probability")
    return (powered / total).rename("probability")


def _generator(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


def uniform_epoch_order(n_samples: int, epoch: int, seed: int,
                        samples_per_epoch: int | None = None) -> np.ndarray:
    """Shuffled passes over all samples, cut to ``samples_per_epoch`` (default: one pass)."""
    total = n_samples if samples_per_epoch is None else samples_per_epoch
    rng = _generator(seed, epoch)
    passes = [rng.permutation(n_samples) for _ in range(-(-total // n_samples))]
    return np.concatenate(passes)[:total]


def resampled_epoch_order(groups: Sequence[Hashable], probabilities: pd.Series, epoch: int, seed: int,
                          samples_per_epoch: int | None = None) -> np.ndarray:
    """Draw a group by its probability, then a sample uniformly within it, ``samples_per_epoch`` times."""
    labels = np.asarray(list(groups), dtype=object)
    total = len(labels) if samples_per_epoch is None else samples_per_epoch
    members = {g: np.flatnonzero(labels == g) for g in probabilities.index}
    missing = set(labels) - set(members)
    if missing:
        raise ValueError(f"no probability for groups {sorted(map(str, missing))}")
    rng = _generator(seed, epoch)
    p = probabilities.to_numpy(dtype=np.float64)
    drawn_groups = rng.choice(len(p), size=total, p=p / p.sum())
    order = np.empty(total, dtype=np.int64)
    for k, group in enumerate(probabilities.index):
        slots = np.flatnonzero(drawn_groups == k)
        if len(slots):
            order[slots] = rng.choice(members[group], size=len(slots))
    return order
