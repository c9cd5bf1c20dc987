"""Predicts the emotion of audio files with a trained model.

  python -m jaxser.predict --workdir=DIR PATH... [--out=FILE.csv|FILE.json]
      [--normalize=run|self|none] [--batch_size=N]
  python -m jaxser.predict --model=MODEL_DIR PATH...

PATH: audio files (any container libsndfile reads: WAV, FLAC, OGG, MP3,
AIFF, ...; the content decides, not the name) and folders (their audio files,
recursively). The model is a training run (DIR: its config.json,
DIR/inference/ and the latest checkpoint) or a bundle written by
`jaxser.export`; the training corpora are not needed. Files are featurised as
the run's feature cache does it (`data.features`, `data.frames`).

One line per file on stdout, in the order given:
  PATH: CLASS  p(c1)=... p(c2)=...
or, for a file that cannot be used (missing, empty, not audio, silent,
truncated...), `PATH: error: REASON`; the others are still predicted.
--out saves the same as CSV (path, predicted, confidence, p_<class>...,
error) or JSON ({model, step, classes, normalization, predictions: [{path,
predicted, confidence, probabilities} or {path, error}]}), by extension.

Normalisation (the run's `data.normalize`), printed on stderr:
  run   the statistics of the run's target corpus, saved with the run
        (default); under speaker_zscore the unseen speakers get the
        corpus-level ones.
  self  those of the given files themselves (speaker_zscore: a file's parent
        folder is its speaker).
  none  none (features as extracted).
Exit status 0 when at least one file is predicted, 2 on an error naming the
flag or folder, or when no file could be used.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

# Before TensorFlow is imported: it loads openSMILE's native library first.
from jaxser.data import features  # noqa: F401  pylint: disable=unused-import
from jaxser import inference
from jaxser import io as io_lib
from jaxser import runtime


def _fmt(p: float) -> str:
  return f'{p:.6g}'


def predict(paths, workdir: str | None = None, model_dir: str | None = None,
            normalize: str = 'run', batch_size: int | None = None,
            progress: bool = True) -> dict:
  """Predictions of the files of `paths` (see the module docstring).

  Returns:
    {'model', 'step', 'classes', 'normalization' (the line saying which),
    'rows': [{'path', 'predicted', 'confidence', 'probabilities'} or {'path',
    'error'}] in the order of the files}.

  Raises:
    ValueError: neither or both of workdir / model_dir, no such run or
      bundle, a bad --normalize, no PATH; the message says which.
  """
  from jaxser import train  # pylint: disable=g-import-not-at-top
  if (workdir is None) == (model_dir is None):
    raise ValueError('give one of --workdir (a training run) and --model (an '
                     'exported bundle)')
  if not paths:
    raise ValueError('no PATH given: name audio files or folders')
  if normalize not in inference.NORMALIZE_CHOICES:
    raise ValueError(f'--normalize: {normalize!r} is not one of '
                     f'{", ".join(inference.NORMALIZE_CHOICES)}')
  files = inference.list_audio(paths)
  if not files:
    raise ValueError(f'no audio file in {", ".join(paths)}')
  mesh = train.make_mesh()
  model = (inference.open_run(workdir, mesh) if workdir is not None
           else inference.open_bundle(model_dir, mesh))
  if normalize == 'run':
    inference.ensure_stats(model)
  feats, lengths, kept, bad = inference.featurise(
      files, model.feature, progress=progress)
  speakers = [os.path.basename(os.path.dirname(os.path.abspath(files[i])))
              for i in kept]
  how = ''
  probs = None
  if len(kept):
    feats, how = inference.normalise(model, feats, lengths, speakers,
                                     normalize)
    probs = inference.probabilities(model, feats, lengths, mesh, batch_size)
  classes = model.classes
  rows = [{'path': f, 'error': bad.get(i, 'not featurised')}
          for i, f in enumerate(files)]
  for j, i in enumerate(kept):
    p = probs[j]
    k = int(p.argmax())
    rows[i] = {'path': files[i], 'predicted': classes[k],
               'confidence': float(p[k]),
               'probabilities': {c: float(x) for c, x in zip(classes, p)}}
  return {'model': os.path.abspath(model.source), 'step': model.step,
          'classes': list(classes), 'normalization': how, 'rows': rows}


def line(row: dict) -> str:
  if 'error' in row:
    return f'{row["path"]}: error: {row["error"]}'
  probs = ' '.join(f'p({c})={_fmt(p)}' for c, p in
                   row['probabilities'].items())
  return f'{row["path"]}: {row["predicted"]}  {probs}'


def save(result: dict, out: str) -> None:
  """`result` to `out` as CSV or JSON, by its extension."""
  ext = os.path.splitext(out)[1].lower()
  if ext not in ('.csv', '.json'):
    raise ValueError(f'--out: {out} must end in .csv or .json')
  folder = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(folder):
    raise ValueError(f'--out: no such directory {folder}')
  if ext == '.json':
    io_lib.write_json(out, {k: result[k] for k in (
        'model', 'step', 'classes', 'normalization')} | {
            'predictions': result['rows']})
    return
  classes = result['classes']
  io_lib.write_csv(
      out, ['path', 'predicted', 'confidence'] +
      [f'p_{c}' for c in classes] + ['error'],
      ([r['path'], '', ''] + [''] * len(classes) + [r['error']]
       if 'error' in r else
       [r['path'], r['predicted'], _fmt(r['confidence'])] +
       [_fmt(r['probabilities'][c]) for c in classes] + ['']
       for r in result['rows']))


def _define_flags():
  flags.DEFINE_string('workdir', None, 'A training run (jaxser.main).')
  flags.DEFINE_string('model', None, 'An exported bundle (jaxser.export).')
  flags.DEFINE_string('out', None, 'Also save the predictions: FILE.csv or '
                      'FILE.json.')
  flags.DEFINE_enum('normalize', 'run', list(inference.NORMALIZE_CHOICES),
                    'Statistics that normalise the files\' features (for a '
                    'run with data.normalize): run (its target corpus), self '
                    '(the given files), none.')
  flags.DEFINE_integer('batch_size', None, 'Files per forward pass (default: '
                       'the run\'s train.eval_batch_size).')


def main(argv):
  f = flags.FLAGS
  runtime.setup_process()
  try:
    if f.out is not None:  # A bad --out fails before any work.
      ext = os.path.splitext(f.out)[1].lower()
      if ext not in ('.csv', '.json'):
        raise ValueError(f'--out: {f.out} must end in .csv or .json')
    result = predict(argv[1:], f.workdir, f.model, f.normalize,
                     f.batch_size)
    if f.out is not None:
      save(result, f.out)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  if result['normalization']:
    print(result['normalization'], file=sys.stderr)
  for row in result['rows']:
    print(line(row))
  ok = sum('error' not in r for r in result['rows'])
  n = len(result['rows'])
  print(f'{ok} of {n} files predicted ({n - ok} unusable) by '
        f'{result["model"]} step {result["step"]}' +
        (f'; {f.out}' if f.out else ''), file=sys.stderr)
  if not ok:
    sys.exit(2)


if __name__ == '__main__':
  _define_flags()
  app.run(main)
