r"""Decision-level fusion of finished runs (the multitask paper's eq. 9).

  python -m jaxser.fuse --workdirs=AUDIO_DIR,TEXT_DIR --workdir=OUT

adds the runs' logits per target utterance,

  y_hat = argmax_c ( (W_a h_a + b_a) + (W_t h_t + b_t) )_c ,

no training involved, and writes OUT/results.json (the fused metrics, each
run's own metrics on the same utterances, and which runs were fused) and
OUT/predictions.csv (the summed logits). Each run's logits are read from its
`predictions.csv` (written by every `jaxser.main` run): the runs must share
the task's classes and evaluate the same target utterances (matched by corpus
and utterance id, in any order); anything else is a one-line error naming the
workdir. Labels come from the runs' prediction files, which must agree.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Sequence

from absl import app
from absl import flags
import numpy as np

from jaxser import io as io_lib
from jaxser import metrics as metrics_lib
from jaxser import predictions as predictions_lib



def _define_flags():
  """Defined only when it runs as a program, so that `fuse` imports beside
  the other commands (jaxser.main and jaxser.grid define --workdir too)."""
  flags.DEFINE_list('workdirs', None,
                    'Finished runs to fuse (two or more), comma-separated.')
  flags.DEFINE_string('workdir', None, 'Output folder.')


def fuse(workdirs: Sequence[str], out: str) -> dict:
  """Fuses the runs of `workdirs` into `out`; returns results.json's dict."""
  if len(workdirs) < 2:
    raise ValueError(f'--workdirs: give two or more runs, got '
                     f'{len(workdirs)}')
  if len(set(os.path.abspath(w) for w in workdirs)) < len(workdirs):
    raise ValueError('--workdirs: the same run is named twice')
  runs = []
  for w in workdirs:
    keys, labels, logits, classes = predictions_lib.read(
        os.path.join(w, predictions_lib.FILE))
    info = {}
    results = os.path.join(w, 'results.json')
    if os.path.isfile(results):
      with open(results) as f:
        info = json.load(f)
    runs.append(dict(workdir=w, keys=keys, labels=labels, logits=logits,
                     classes=classes, info=info))
  first = runs[0]
  order = {k: i for i, k in enumerate(first['keys'])}
  total = np.zeros_like(first['logits'])
  aligned = []
  for r in runs:
    if r['classes'] != first['classes']:
      raise ValueError(
          f'--workdirs: {r["workdir"]} has classes {list(r["classes"])}, '
          f'{first["workdir"]} has {list(first["classes"])}')
    missing = set(first['keys']) - set(r['keys'])
    extra = set(r['keys']) - set(first['keys'])
    if missing or extra:
      some = sorted(missing or extra)[0]
      raise ValueError(
          f'--workdirs: {r["workdir"]} evaluated other utterances than '
          f'{first["workdir"]} ({len(missing)} missing, {len(extra)} extra, '
          f'e.g. {some[0]}/{some[1]}); fuse runs of the same target split')
    rows = np.array([order[k] for k in r['keys']])
    logits = np.empty_like(r['logits'])
    logits[rows] = r['logits']
    labels = np.empty_like(r['labels'])
    labels[rows] = r['labels']
    if not np.array_equal(labels, first['labels']):
      raise ValueError(f'--workdirs: {r["workdir"]} and {first["workdir"]} '
                       'disagree on the labels of the same utterances')
    aligned.append(logits)
    total += logits
  labels = first['labels']
  known = labels >= 0
  if not known.any():
    raise ValueError('--workdirs: the runs hold no labelled utterance')
  classes = first['classes']

  def score(z):
    return metrics_lib.summary(labels[known], z[known].argmax(-1), classes)

  result = dict(score(total), method='fusion', fused=list(workdirs),
                runs={r['workdir']: {k: v for k, v in score(z).items()
                                     if k in ('uar', 'war', 'macro_f1')}
                      for r, z in zip(runs, aligned)})
  for key in ('source', 'target', 'task', 'protocol'):
    values = {r['info'].get(key) for r in runs}
    if len(values) == 1:
      result[key] = values.pop()
  result['run_methods'] = [r['info'].get('method', '') for r in runs]
  os.makedirs(out, exist_ok=True)
  predictions_lib.write(os.path.join(out, predictions_lib.FILE),
                        first['keys'], labels, total, classes)
  io_lib.write_json(os.path.join(out, 'results.json'), result)
  return result


def main(argv):
  del argv
  workdirs, workdir = flags.FLAGS.workdirs, flags.FLAGS.workdir
  if not workdirs or not workdir:
    print('usage: python -m jaxser.fuse --workdirs=RUN_A,RUN_B '
          '--workdir=OUT', file=sys.stderr)
    return 2
  try:
    result = fuse(workdirs, workdir)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  for w, m in result['runs'].items():
    print(f'{w}: UAR {m["uar"]:.4f} WAR {m["war"]:.4f} '
          f'macro-F1 {m["macro_f1"]:.4f}')
  print(f'fused ({len(result["runs"])} runs): UAR {result["uar"]:.4f} '
        f'WAR {result["war"]:.4f} macro-F1 {result["macro_f1"]:.4f} on '
        f'{result["num_eval"]} utterances; '
        f'{os.path.join(workdir, "results.json")}')
  return 0


if __name__ == '__main__':
  _define_flags()
  app.run(main)
