"""Classification metrics from a confusion matrix (rows = true class)."""

from __future__ import annotations

import numpy as np


def confusion(y_true, y_pred, num_classes: int) -> np.ndarray:
  """c[i, j] = number of examples of true class i predicted as j."""
  c = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(c, (np.asarray(y_true), np.asarray(y_pred)), 1)
  return c


def per_class_recall(c: np.ndarray) -> np.ndarray:
  """Recall of each class; NaN for a class absent from the true labels."""
  support = c.sum(axis=1)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(support > 0, np.diag(c) / support, np.nan)


def uar(c: np.ndarray) -> float:
  """Unweighted average recall: mean recall over classes present."""
  return float(np.nanmean(per_class_recall(c)))


def war(c: np.ndarray) -> float:
  """Weighted average recall, i.e. accuracy."""
  return float(np.trace(c) / max(c.sum(), 1))


def macro_f1(c: np.ndarray) -> float:
  """Mean over classes present in truth or prediction of 2PR / (P + R)."""
  tp = np.diag(c).astype(np.float64)
  predicted, support = c.sum(axis=0), c.sum(axis=1)
  present = (predicted + support) > 0
  f1 = np.where(present, 2 * tp / np.maximum(predicted + support, 1), 0.0)
  return float(f1[present].mean()) if present.any() else 0.0


def positive_class_f1(c: np.ndarray) -> float | None:
  """F1 of class 1 of a binary task (arousal: high, valence: positive), i.e.
  scikit-learn's default `f1_score(y, p)` (average='binary', pos_label=1);
  None unless there are exactly 2 classes.

    F1 = 2 TP / (2 TP + FP + FN),  TP = c[1, 1], FP = c[0, 1], FN = c[1, 0]
    (0 when class 1 is neither present nor predicted).

  This is the "F1" of Emo-DNA's Tables 2-6: macro-F1 cannot be it (its
  valence source-only EmoDB row has F1 13.4 at WAR 51.9, and binary macro-F1
  is at least WAR / 2), and of the candidates (F1 of class 1, of class 0,
  macro, weighted, micro, the harmonic mean of WAR and UAR) only this one
  fits every cell of Tables 2-3 at the target corpora's class balance.
  """
  if c.shape != (2, 2):
    return None
  tp, fp, fn = float(c[1, 1]), float(c[0, 1]), float(c[1, 0])
  return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0


def collapsed(c) -> bool:
  """Whether a model predicted one class for every example (a collapsed run):
  every prediction of the confusion matrix `c` lies in one column, with more
  than one class present in truth. False for an empty matrix."""
  c = np.asarray(c)
  if c.sum() == 0:
    return False
  return bool((c.sum(axis=0) > 0).sum() == 1 and (c.sum(axis=1) > 0).sum() > 1)


def summary(y_true, y_pred, classes) -> dict:
  """The metric block of results.json."""
  c = confusion(y_true, y_pred, len(classes))
  recall = per_class_recall(c)
  return dict(
      uar=uar(c), war=war(c), macro_f1=macro_f1(c),
      positive_class_f1=positive_class_f1(c),
      per_class_recall={k: (None if np.isnan(r) else float(r))
                        for k, r in zip(classes, recall)},
      confusion=c.tolist(), classes=list(classes), num_eval=int(c.sum()),
      collapsed=collapsed(c))
