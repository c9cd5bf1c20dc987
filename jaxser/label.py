"""Labels an unlabelled corpus with a trained model: soft labels, and per
class the K utterances it is surest of (MMD-SER, Cai et al. 2021, 3.2.3: the
reference audio sets an emotional TTS system is built from).

  python -m jaxser.label --workdir=DIR --corpus=folder --root=/path/to/tts \
      [--top_k=50] [--out=DIR/labels/<corpus>] [--batch_size=N] \
      [--frames=N] [--cache_dir=DIR] [--workers=N]

DIR is a training run (`python -m jaxser.main`): its config.json and the
latest checkpoint under DIR/checkpoints are restored (`jaxser.inference`).
The corpus is read, featurised and cached exactly as the run did it (same
feature config, same cache, the run's `data.normalize` with statistics
computed on this corpus, as training does for each corpus); --frames changes
only the padded / cropped length (e.g. longer TTS utterances; networks that
pool over time accept any). --root may also be one audio file (a corpus of
it alone). Without --root the corpus is looked for where the run looks (its
data.paths / data.root, then $JAXSER_DATA/<corpus>). Any corpus name works;
an unlabelled folder of audio is the `folder` corpus.

Writes into --out (default DIR/labels/<corpus>/), each file atomically:
  soft_labels.csv      one row per usable utterance, in the corpus's listing
                       order: utt_id, path, predicted (class), confidence
                       (its posterior), then p_<class> for every class.
  top_<K>_<class>.csv  per class, the utterances predicted as that class
                       with the highest posterior of it, at most K, in
                       descending order: rank, utt_id, path, posterior. One
                       file per class, so each is one reference set.
  summary.json         the run, checkpoint step, corpus and counts.
Unusable audio files are skipped (counted in the summary, reasons in the
corpus's cache metadata). Errors (no finished run in DIR, unknown corpus,
missing folder) print one line naming it and exit with status 2.
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

SOFT_LABELS = 'soft_labels.csv'
SUMMARY = 'summary.json'


def top_k_name(k: int, class_name: str) -> str:
  return f'top_{k}_{class_name}.csv'


def load_run(workdir: str):
  """(config, checkpoint manager) of a training run; errors name the path."""
  return inference.load_run(workdir)


def _fmt(p: float) -> str:
  return f'{p:.8g}'


def label(workdir: str, corpus: str, root: str | None = None,
          top_k: int = 50, out: str | None = None,
          batch_size: int | None = None, frames: int | None = None,
          cache_dir: str | None = None, workers: int = -1) -> dict:
  """Labels `corpus` with the run in `workdir`; returns the summary.

  Raises:
    ValueError: (CorpusError among them) no finished run in `workdir`, an
      unknown corpus, a missing folder, no usable file, a bad argument; the
      message says which.
  """
  # pylint: disable=g-import-not-at-top
  import jax
  import numpy as np
  import tensorflow_datasets as tfds
  import tqdm
  from jaxser import methods as methods_lib
  from jaxser import train
  from jaxser.data import corpus as corpus_lib
  from jaxser.data import labels as labels_lib
  from jaxser.data import pipeline
  # pylint: enable=g-import-not-at-top
  if top_k < 1:
    raise ValueError(f'--top_k: must be at least 1, got {top_k}')
  config, ckpt = load_run(workdir)
  if corpus not in corpus_lib.available():
    raise corpus_lib.CorpusError(
        f'--corpus: unknown corpus {corpus!r}; known: '
        f'{", ".join(corpus_lib.available())}')
  data_cfg = config.data
  if root is not None:
    data_cfg.paths[corpus] = root
  if frames is not None:
    data_cfg.frames = frames
  if cache_dir is not None:
    data_cfg.cache_dir = cache_dir
  data_cfg.workers = workers
  classes = labels_lib.TASK_CLASSES[data_cfg.task]
  # The network is built as in training (method -> network registry); a
  # data setting it does not take (e.g. --frames) fails before featurising.
  methods_lib.get(config.method).check_config(config)

  if root is not None and os.path.isfile(root):
    # One file: a corpus of it alone, featurised and cached as any corpus.
    from jaxser.data import cache as cache_lib  # pylint: disable=g-import-not-at-top
    from jaxser.data.features import FeatureConfig  # pylint: disable=g-import-not-at-top
    workers = (data_cfg.workers if data_cfg.workers >= 0
               else os.cpu_count() or 1)
    cached = cache_lib.build(
        inference.file_corpus(corpus, [root]),
        FeatureConfig.from_data_config(data_cfg),
        pipeline.cache_dir(data_cfg), workers=workers)
  else:
    cached = pipeline.open_corpus(corpus, data_cfg)
  usable = cached.usable
  split = pipeline.Split([pipeline.Part(
      cached, usable, np.full(len(usable), -1, np.int32), 0,
      pipeline.normalization(cached, data_cfg))])

  # The run's network, restored onto this machine's devices.
  mesh = train.make_mesh()
  method, variables, step = inference.restore_checkpoint(
      ckpt, config, len(classes), cached.feature_shape,
      getattr(cached, 'feature_dtype', np.float32), mesh)
  if step < config.train.steps:
    print(f'note: {workdir} stopped at step {step} of {config.train.steps}; '
          'labelling with that checkpoint', file=sys.stderr)

  batch_size = batch_size or config.train.eval_batch_size
  batch_size = -(-batch_size // jax.device_count()) * jax.device_count()
  ds = split.dataset(with_index=True).batch(batch_size)
  index = []

  def chunks():
    for batch in tqdm.tqdm(tfds.as_numpy(ds),
                           total=-(-len(usable) // batch_size),
                           desc=f'label {corpus}', unit='batch',
                           dynamic_ncols=True):
      index.append(batch['index'])
      yield batch['features'], batch['length']

  logits = train.predict_logits(method, variables, chunks(), batch_size,
                                mesh).astype(np.float64)
  order = np.argsort(np.concatenate(index))  # Back to the listing order.
  index = np.concatenate(index)[order]
  logits = logits[order]
  probs = np.exp(logits - logits.max(axis=1, keepdims=True))
  probs /= probs.sum(axis=1, keepdims=True)
  pred = probs.argmax(axis=1)

  out = out or os.path.join(workdir, 'labels', corpus)
  os.makedirs(out, exist_ok=True)
  utts = [cached.corpus.utterances[i] for i in index]
  io_lib.write_csv(
      os.path.join(out, SOFT_LABELS),
      ['utt_id', 'path', 'predicted', 'confidence'] +
      [f'p_{c}' for c in classes],
      ([u.utt_id, u.path or '', classes[k], _fmt(p[k])] +
       [_fmt(x) for x in p] for u, p, k in zip(utts, probs, pred)))
  files = [SOFT_LABELS]
  for k, name in enumerate(classes):
    rows = np.flatnonzero(pred == k)
    best = rows[np.argsort(-probs[rows, k], kind='stable')][:top_k]
    files.append(top_k_name(top_k, name))
    io_lib.write_csv(os.path.join(out, files[-1]),
               ['rank', 'utt_id', 'path', 'posterior'],
               ([r + 1, utts[i].utt_id, utts[i].path or '',
                 _fmt(probs[i, k])] for r, i in enumerate(best)))
  summary = dict(
      workdir=os.path.abspath(workdir), method=config.method, step=int(step),
      task=data_cfg.task, classes=list(classes), corpus=corpus,
      root=cached.corpus.root or os.path.abspath(root), features=data_cfg.features,
      frames=data_cfg.frames, normalize=data_cfg.get('normalize', 'none'),
      utterances=len(utts), skipped=len(cached.skipped),
      predicted={c: int((pred == k).sum()) for k, c in enumerate(classes)},
      top_k=top_k, out=os.path.abspath(out), files=files)
  io_lib.write_json(os.path.join(out, SUMMARY), summary)
  return summary


def _define_flags():
  """The command's flags; defined only when it runs as a program, so that
  `label` imports beside other commands (jaxser.grid has a --workdir too)."""
  flags.DEFINE_string('workdir', None, 'A finished training run.')
  flags.DEFINE_string('corpus', None, 'Corpus to label (e.g. folder).')
  flags.DEFINE_string(
      'root', None, 'Folder of the corpus (default: where the run looks: '
      'data.paths.<corpus>, data.root/<corpus>, $JAXSER_DATA/<corpus>).')
  flags.DEFINE_integer('top_k', 50, 'Utterances per class in the top-K '
                       'reference sets (the paper: 50).')
  flags.DEFINE_string('out', None, 'Output folder (default: '
                      'WORKDIR/labels/<corpus>).')
  flags.DEFINE_integer(
      'batch_size', None, 'Utterances per forward pass (default: the run\'s '
      'train.eval_batch_size).')
  flags.DEFINE_integer(
      'frames', None, 'Frames per utterance (default: the run\'s data.frames).')
  flags.DEFINE_string('cache_dir', None,
                      'Feature cache (default: the run\'s).')
  flags.DEFINE_integer('workers', -1, 'Feature-extraction processes (-1: '
                       'one per core, 0: none).')
  flags.mark_flags_as_required(['workdir', 'corpus'])


def main(argv):
  del argv
  f = flags.FLAGS
  runtime.setup_process()
  try:
    s = label(f.workdir, f.corpus, f.root, f.top_k, f.out, f.batch_size,
              f.frames, f.cache_dir, f.workers)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  counts = ', '.join(f'{c} {n}' for c, n in s['predicted'].items())
  print(f'{s["corpus"]}: {s["utterances"]} utterances labelled '
        f'({s["skipped"]} skipped) by {s["method"]} step {s["step"]}; '
        f'predicted: {counts}; {s["out"]}/{SOFT_LABELS} and '
        f'{top_k_name(s["top_k"], "<class>")} per class')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
