"""E3 ranking metrics on hand-computed examples."""
import math

import numpy as np
import pytest

from vtatune.errors import ConfigurationError
from vtatune.study import (
    ndcg_at_k,
    pairwise_accuracy,
    precision_at_k,
    top_share_k,
    valid_at_k,
    validity_auc,
)


# ------------------------------------------------------------------ pairwise accuracy
def test_pairwise_accuracy_hand_example():
    true = [4.0, 3.0, 2.0, 1.0]
    # predicted order 4 > 2 > 3 > 1: of the 6 pairs only (3, 2) is swapped
    pred = [0.9, 0.2, 0.5, 0.1]
    assert pairwise_accuracy(true, pred) == pytest.approx(5 / 6)


def test_pairwise_accuracy_ties():
    # true ties are not pairs; a predicted tie counts 1/2
    true = [3.0, 3.0, 1.0]       # pairs with different truth: (0,2), (1,2)
    pred = [1.0, 0.0, 0.0]       # (0,2) right, (1,2) tied
    assert pairwise_accuracy(true, pred) == pytest.approx((1 + 0.5) / 2)
    assert math.isnan(pairwise_accuracy([1.0, 1.0], [0.0, 1.0]))


def test_pairwise_accuracy_perfect_and_reversed():
    t = np.arange(50.0)
    assert pairwise_accuracy(t, t * 2 + 1) == 1.0
    assert pairwise_accuracy(t, -t) == 0.0


def test_pairwise_accuracy_sampled_estimate_is_close_to_exact():
    rng = np.random.default_rng(3)
    t = rng.random(400)
    p = t + rng.normal(0, 0.3, 400)
    exact = pairwise_accuracy(t, p)
    # 400 items = 79,800 pairs: above max_pairs, so the estimate samples 20,000 of them
    est = pairwise_accuracy(t, p, max_pairs=20_000, rng=np.random.default_rng(0))
    assert est != exact
    assert abs(est - exact) < 0.02


# ------------------------------------------------------------------ precision@k
def test_precision_at_k_hand_example():
    true = [10, 9, 8, 7, 6, 5]
    pred = [6, 1, 5, 4, 3, 2]    # predicted top-3: items 0, 2, 3; true top-3: 0, 1, 2
    assert precision_at_k(true, pred, 3) == pytest.approx(2 / 3)
    assert precision_at_k(true, pred, 1) == 1.0
    assert precision_at_k(true, pred, 6) == 1.0
    assert precision_at_k(true, pred, 100) == 1.0   # k capped at the number of items


def test_precision_at_k_ties_are_expected_values():
    true = [5, 4, 3, 2]
    # k=1: three items tie for the top prediction, one of them (item 0) is the true best
    pred = [1, 1, 1, 0]
    assert precision_at_k(true, pred, 1) == pytest.approx(1 / 3)
    # k=2: true top-2 = {0, 1}; item 0 and 1 each chosen with prob 2/3
    assert precision_at_k(true, pred, 2) == pytest.approx((2 / 3 + 2 / 3) / 2)


# ------------------------------------------------------------------ NDCG@k
def test_ndcg_at_k_hand_example():
    true = [3.0, 2.0, 1.0, 0.0]
    pred = [0.1, 0.9, 0.5, 0.3]  # predicted order: items 1, 2, 3, 0
    rel = np.array(true) / 3.0
    d = 1 / np.log2(np.arange(2, 6))
    dcg2 = rel[1] * d[0] + rel[2] * d[1]
    idcg2 = rel[0] * d[0] + rel[1] * d[1]
    assert ndcg_at_k(true, pred, 2) == pytest.approx(dcg2 / idcg2)
    # numbers written out: (2/3 + (1/3)/log2 3) / (1 + (2/3)/log2 3)
    assert ndcg_at_k(true, pred, 2) == pytest.approx(
        (2 / 3 + 1 / 3 / math.log2(3)) / (1 + 2 / 3 / math.log2(3)))
    assert ndcg_at_k(true, true, 4) == pytest.approx(1.0)


def test_ndcg_at_k_agrees_with_sklearn_including_ties():
    from sklearn.metrics import ndcg_score
    rng = np.random.default_rng(7)
    for trial in range(20):
        t = rng.random(60) * 5
        p = np.round(rng.random(60) * (3 if trial % 2 else 100))  # many ties when odd
        for k in (1, 5, 17, 60):
            assert ndcg_at_k(t, p, k) == pytest.approx(ndcg_score([t], [p], k=k), abs=1e-12)


def test_ndcg_tied_predictions_share_discounts():
    # both items tie: each gets the mean discount of positions 1 and 2
    true, pred = [1.0, 0.0], [0.0, 0.0]
    expected = 0.5 * (1 + 1 / math.log2(3)) / 1.0
    assert ndcg_at_k(true, pred, 2) == pytest.approx(expected)
    # with k=1 only position 1 counts: the best item is there with probability 1/2
    assert ndcg_at_k(true, pred, 1) == pytest.approx(0.5)


# ------------------------------------------------------------------ whole-space validity scores
def test_validity_auc_hand_example():
    valid = [1, 0, 1, 0]
    score = [0.9, 0.1, 0.5, 0.5]
    # (valid, invalid) pairs: (0,1) 1, (0,3) 1, (2,1) 1, (2,3) tie 1/2
    assert validity_auc(valid, score) == pytest.approx(3.5 / 4)
    assert validity_auc([1, 1, 0], [0.0, 1.0, 2.0]) == 0.0
    assert math.isnan(validity_auc([1, 1], [0.3, 0.2]))


def test_validity_auc_equals_brute_force_with_many_ties():
    rng = np.random.default_rng(5)
    v = rng.random(300) < 0.2
    s = np.round(rng.random(300) * 10)
    brute = np.mean([1.0 if a > b else 0.5 if a == b else 0.0
                     for a in s[v] for b in s[~v]])
    assert validity_auc(v, s) == pytest.approx(brute)


def test_valid_at_k_hand_example():
    valid = [0, 1, 1, 0, 1]
    score = [5, 4, 3, 3, 1]     # top-3: item 0, item 1, then one of the tied items 2 and 3
    assert valid_at_k(valid, score, 3) == pytest.approx((0 + 1 + 0.5) / 3)
    assert valid_at_k(valid, score, 1) == 0.0
    assert valid_at_k(valid, score, 99) == pytest.approx(3 / 5)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("k", [0, -3, 1.5, True])
def test_bad_k_is_refused_naming_k(k):
    with pytest.raises(ConfigurationError) as e:
        precision_at_k([1, 2], [1, 2], k)
    assert e.value.field == "k"


def test_mismatched_lengths_and_negative_relevance_are_refused():
    with pytest.raises(ConfigurationError) as e:
        pairwise_accuracy([1, 2, 3], [1, 2])
    assert e.value.field == "pred"
    with pytest.raises(ConfigurationError) as e:
        ndcg_at_k([-1.0, 2.0], [1, 2], 1)
    assert e.value.field == "true"


def test_top_share_k():
    assert top_share_k(185) == 2      # ceil(1.85)
    assert top_share_k(100) == 1
    assert top_share_k(3) == 1
    assert top_share_k(1000, 0.05) == 50
