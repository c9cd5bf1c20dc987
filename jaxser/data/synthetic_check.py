"""Proxy check that the synthetic corpora are learnable and differ.

Featurises the corpora with the `mfcc40` feature set, summarises each utterance
by the mean and standard deviation of its frames, and trains a multinomial
logistic regression on features z-scored with the training statistics. Prints
one JSON line of unweighted average recalls (UAR, emotion4):

  within: per corpus, leave-one-speaker-out cross-validation;
  cross: '<source>-><target>', trained on all of the source, tested on all of
    the target;
  render_s: per corpus, CPU seconds spent rendering audio.

  python -m jaxser.data.synthetic_check [--source=S] [--targets=T1,T2]
"""

from __future__ import annotations

import concurrent.futures
import json
import time

from absl import app
from absl import flags
import numpy as np
from scipy import optimize

from jaxser.data import features as features_lib
from jaxser.data import labels as labels_lib
from jaxser.data import synthetic

_SOURCE = flags.DEFINE_string('source', synthetic.DEFAULT_SOURCE,
                              'Training corpus.')
_TARGETS = flags.DEFINE_list('targets', list(synthetic.DEFAULT_CORPORA),
                             'Test corpora (the source is left out).')
_WORKERS = flags.DEFINE_integer('workers', 2, 'Worker processes.')
_CHUNK = 50


def _featurise(name: str, start: int, stop: int):
  """Functionals of utterances [start, stop) of `name`, and the render time."""
  corpus = synthetic.build(synthetic.SPECS[name])
  feature = features_lib.FeatureConfig.create('mfcc40')
  rows, render_s = [], 0.0
  for utt in corpus.utterances[start:stop]:
    t = time.process_time()  # CPU time: robust to other load on the machine.
    wav = corpus.read_audio(utt)
    render_s += time.process_time() - t
    x, _ = feature.compute(wav)
    rows.append(np.concatenate([x.mean(axis=0), x.std(axis=0)]))
  return np.stack(rows), render_s


def _fit(x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-2):
  """Multinomial logistic regression; returns a predict function."""
  mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-8
  z = np.c_[(x - mu) / sd, np.ones(len(x))]
  onehot = np.eye(classes)[y]

  def loss(w):
    w = w.reshape(z.shape[1], classes)
    logits = z @ w
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    reg = w.copy()
    reg[-1] = 0.0  # No penalty on the biases.
    value = -np.mean(np.sum(onehot * logp, axis=1)) + l2 / 2 * np.sum(reg ** 2)
    grad = z.T @ (np.exp(logp) - onehot) / len(z) + l2 * reg
    return value, grad.ravel()

  w = optimize.minimize(loss, np.zeros(z.shape[1] * classes), jac=True,
                        method='L-BFGS-B').x.reshape(z.shape[1], classes)
  return lambda x: np.argmax(np.c_[(x - mu) / sd, np.ones(len(x))] @ w, axis=1)


def _uar(y: np.ndarray, pred: np.ndarray, classes: int) -> float:
  return float(np.mean([np.mean(pred[y == c] == c) for c in range(classes)]))


def main(argv):
  del argv
  classes = len(labels_lib.TASK_CLASSES['emotion4'])
  names = [_SOURCE.value] + [t for t in _TARGETS.value if t != _SOURCE.value]
  data, render_s = {}, {}
  with concurrent.futures.ProcessPoolExecutor(_WORKERS.value) as ex:
    for name in names:
      utts = synthetic.build(synthetic.SPECS[name]).utterances
      parts = list(ex.map(_featurise, [name] * len(utts),
                          range(0, len(utts), _CHUNK),
                          range(_CHUNK, len(utts) + _CHUNK, _CHUNK)))
      y = np.array([labels_lib.label('emotion4', u) for u in utts])
      speakers = np.array([u.speaker for u in utts])
      data[name] = np.concatenate([p[0] for p in parts]), y, speakers
      render_s[name] = round(sum(p[1] for p in parts), 2)
  within = {}
  for name, (x, y, speakers) in data.items():
    pred = np.empty_like(y)
    for s in np.unique(speakers):
      test = speakers == s
      pred[test] = _fit(x[~test], y[~test], classes)(x[test])
    within[name] = round(_uar(y, pred, classes), 3)
  x, y, _ = data[_SOURCE.value]
  predict = _fit(x, y, classes)
  cross = {f'{_SOURCE.value}->{t}': round(_uar(data[t][1], predict(data[t][0]),
                                               classes), 3)
           for t in names[1:]}
  print(json.dumps(dict(within=within, cross=cross, render_s=render_s)))


if __name__ == '__main__':
  app.run(main)
