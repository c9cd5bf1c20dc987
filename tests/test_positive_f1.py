"""The F1 of Emo-DNA's tables (`metrics.positive_class_f1`) on hand-computed
confusion matrices (rows = true class)."""

import numpy as np
import pytest

from jaxser import metrics


def test_hand_computed_binary_case():
  # true: 0 0 0 0 1 1 1 1 1 1 ; pred: 0 0 0 1 0 0 1 1 1 1
  c = metrics.confusion([0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
                        [0, 0, 0, 1, 0, 0, 1, 1, 1, 1], 2)
  np.testing.assert_array_equal(c, [[3, 1], [2, 4]])
  # Class 1: P = 4/5, R = 4/6 -> 2PR/(P+R) = 8/11; class 0: P 3/5, R 3/4.
  assert metrics.positive_class_f1(c) == pytest.approx(8 / 11)
  assert metrics.macro_f1(c) == pytest.approx((8 / 11 + 2 / 3) / 2)


def test_all_predicted_negative_is_zero_unlike_macro_f1():
  # The paper's valence source-only rows: WAR ~ 0.5 with F1 near 0.
  c = np.array([[52, 0], [48, 0]])
  assert metrics.war(c) == pytest.approx(0.52)
  assert metrics.positive_class_f1(c) == 0.0
  assert metrics.macro_f1(c) == pytest.approx(2 * 52 / (52 + 100) / 2)


def test_all_predicted_positive():
  c = np.array([[0, 30], [0, 70]])  # F1 = 2 * 0.7 / 1.7.
  assert metrics.positive_class_f1(c) == pytest.approx(140 / 170)


def test_class_1_absent_and_never_predicted_is_zero():
  assert metrics.positive_class_f1(np.array([[5, 0], [0, 0]])) == 0.0


def test_not_binary_is_none():
  assert metrics.positive_class_f1(np.eye(3, dtype=np.int64)) is None
  s = metrics.summary([0, 1, 2], [0, 1, 1], ('a', 'b', 'c'))
  assert s['positive_class_f1'] is None


def test_summary_reports_it_beside_macro_f1():
  s = metrics.summary([0, 0, 0, 0, 1, 1, 1, 1, 1, 1],
                      [0, 0, 0, 1, 0, 0, 1, 1, 1, 1], ('low', 'high'))
  assert s['positive_class_f1'] == pytest.approx(8 / 11)
  assert s['macro_f1'] != pytest.approx(s['positive_class_f1'])


def test_matches_scikit_learn_default_f1():
  sk = pytest.importorskip('sklearn.metrics')
  rng = np.random.default_rng(0)
  for _ in range(20):
    y, p = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    c = metrics.confusion(y, p, 2)
    assert metrics.positive_class_f1(c) == pytest.approx(sk.f1_score(y, p))
