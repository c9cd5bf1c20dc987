"""Metrics against hand-computed confusion matrices."""

import numpy as np
import pytest

from jaxser import metrics


def test_confusion_rows_are_true_class():
  c = metrics.confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
  np.testing.assert_array_equal(c, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])


def test_hand_computed_example():
  # true: 0 0 0 0 1 1 2 2 2 2 ; pred: 0 0 0 1 1 2 2 2 0 2
  c = metrics.confusion([0, 0, 0, 0, 1, 1, 2, 2, 2, 2],
                        [0, 0, 0, 1, 1, 2, 2, 2, 0, 2], 3)
  np.testing.assert_array_equal(c, [[3, 1, 0], [0, 1, 1], [1, 0, 3]])
  # Recalls 3/4, 1/2, 3/4.
  assert metrics.uar(c) == pytest.approx((0.75 + 0.5 + 0.75) / 3)
  assert metrics.war(c) == pytest.approx(7 / 10)
  # Precisions 3/4, 1/2, 3/4 -> F1 = 3/4, 1/2, 3/4.
  assert metrics.macro_f1(c) == pytest.approx((0.75 + 0.5 + 0.75) / 3)


def test_f1_differs_from_recall_when_precision_differs():
  c = np.array([[2, 0], [2, 0]])  # Everything predicted as class 0.
  assert metrics.uar(c) == pytest.approx(0.5)
  assert metrics.war(c) == pytest.approx(0.5)
  # F1 class 0: P=1/2, R=1 -> 2/3; class 1: 0.
  assert metrics.macro_f1(c) == pytest.approx(1 / 3)


def test_absent_class_is_left_out_of_uar():
  c = np.array([[3, 1, 0], [0, 0, 0], [0, 0, 4]])
  r = metrics.per_class_recall(c)
  assert np.isnan(r[1])
  assert metrics.uar(c) == pytest.approx((0.75 + 1.0) / 2)
  # Class 1 is predicted once, so it counts in F1 (with F1 = 0).
  assert metrics.macro_f1(c) == pytest.approx(
      (2 * 3 / (4 + 3) + 0 + 1.0) / 3)


def test_summary_block():
  s = metrics.summary([0, 1, 1], [0, 1, 0], ('a', 'b'))
  assert s['classes'] == ['a', 'b']
  assert s['num_eval'] == 3
  assert s['confusion'] == [[1, 0], [1, 1]]
  assert s['per_class_recall'] == {'a': 1.0, 'b': 0.5}
  assert s['uar'] == pytest.approx(0.75)
