"""A run's per-utterance predictions: DIR/predictions.csv.

One row per evaluated utterance: corpus, utt_id, label (class name, '' when
unknown), predicted (class name) and logit_<class> for every class, the
logits as the model output them. Every `jaxser.main` run writes it for its
target evaluation set; `jaxser.fuse` adds the logits of several runs.
"""

from __future__ import annotations

import csv
import io
from typing import Sequence

import numpy as np

from jaxser import io as io_lib

FILE = 'predictions.csv'
_HEAD = ['corpus', 'utt_id', 'label', 'predicted']


def write(path: str, keys: Sequence, labels, logits,
          classes: Sequence[str]) -> None:
  """`keys`: (corpus, utt_id) pairs or objects with .corpus and .utt_id;
  labels: class indices (-1 unknown); logits: (N, C)."""
  def key(k):
    return (k.corpus, k.utt_id) if hasattr(k, 'utt_id') else tuple(k)
  io_lib.write_csv(path, _HEAD + [f'logit_{c}' for c in classes], (
      list(key(k)) + [classes[int(y)] if y >= 0 else '',
                      classes[int(np.argmax(z))]]
      + [repr(float(v)) for v in z]
      for k, y, z in zip(keys, labels, logits)))


def read(path: str):
  """(keys [(corpus, utt_id)], labels (N,) int (-1 unknown), logits (N, C)
  float64, classes) of a predictions file; errors name the file."""
  if not io_lib.exists(path):
    raise ValueError(f'{path}: no such file; a jaxser.main run writes it '
                     'when it finishes')
  rows = list(csv.reader(io.StringIO(io_lib.read_text(path), newline='')))
  if not rows or rows[0][:4] != _HEAD:
    raise ValueError(f'{path}: not a jaxser predictions file')
  header, rows = rows[0], rows[1:]
  classes = tuple(h[len('logit_'):] for h in header[4:])
  try:
    labels = np.array([classes.index(r[2]) if r[2] else -1 for r in rows],
                      np.int32)
    logits = np.array([[float(v) for v in r[4:]] for r in rows],
                      np.float64).reshape(len(rows), len(classes))
  except ValueError as e:
    raise ValueError(f'{path}: a malformed row ({e})') from None
  return [(r[0], r[1]) for r in rows], labels, logits, classes
