"""Builds (or verifies) the feature caches of one corpus and summarises it.

  python -m jaxser.prepare --corpus=casia --root=../shared/corpora/casia \
      [--features=mfcc40,is10] [--summary=PATH] [--cache_dir=DIR] \
      [--workers=N] [--frames=300]

Each feature set is cached through `jaxser.data.cache.build` under the
feature config a training run uses by default (the parameters of
`jaxser.config.base_config()`, the number of frames from --frames), so that
the run finds the cache built. Without --root the corpus is looked for where
a run looks: $JAXSER_DATA/<corpus>; without --cache_dir the cache goes where
a run puts it: $JAXSER_CACHE or ~/.cache/jaxser.

Prints a summary (files found, usable, skipped with reasons, repaired files
(names that break the corpus's scheme in a small way but identify the
utterance, taken, with the reason; jaxser.data.corpora.common), unrecognised
files, speakers, genders, per-class counts of every task, total duration of
the usable audio, the per-utterance shape of each feature set) and saves it
as JSON in the corpus's cache folder, <cache_dir>/<corpus>/summary.json, and
with --summary=PATH also to PATH. Errors (unknown corpus or feature set,
missing folder, no usable file) print one line and exit with status 2.
"""

from __future__ import annotations

import collections
import os
import sys
import time

from absl import app
from absl import flags

from jaxser import io as io_lib

_CORPUS = flags.DEFINE_string('corpus', None, 'Corpus name.')
_ROOT = flags.DEFINE_string(
    'root', None, 'Folder of the corpus (default: $JAXSER_DATA/<corpus>).')
_FEATURES = flags.DEFINE_list(
    'features', ['mfcc40'], 'Feature sets to build, comma-separated.')
_SUMMARY = flags.DEFINE_string(
    'summary', None, 'Also write the JSON summary to this file.')
_CACHE_DIR = flags.DEFINE_string(
    'cache_dir', None, 'Feature cache (default: $JAXSER_CACHE or '
    '~/.cache/jaxser).')
_WORKERS = flags.DEFINE_integer(
    'workers', -1, 'Feature-extraction processes (-1: one per core, 0: none).')
_FRAMES = flags.DEFINE_integer(
    'frames', None, 'Frames per utterance of frame-level feature sets '
    '(default: the training config\'s).')
flags.mark_flag_as_required('corpus')

SUMMARY_NAME = 'summary.json'
# How many skipped / unrecognised files the printed summary names.
_SHOWN = 20


def summarize(corpus, cached: dict, seconds: float) -> dict:
  """The summary of `corpus` cached under each feature set of `cached`.

  Args:
    corpus: the listed corpus (jaxser.data.corpus.Corpus).
    cached: feature set name -> its jaxser.data.cache.CachedCorpus.
    seconds: how long building (or verifying) the caches took.

  Returns:
    A JSON-able dict. A file is usable if every feature set could use it;
    `skipped` gives the first reason any feature set gave.
  """
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  from jaxser.data import labels  # pylint: disable=g-import-not-at-top
  usable = sorted(set.intersection(
      *(set(c.usable.tolist()) for c in cached.values())))
  by_id = {u.utt_id: u for u in corpus.utterances}
  reasons = {}
  for c in cached.values():
    for utt_id, reason in c.skipped:
      reasons.setdefault(utt_id, reason)
  utts = [corpus.utterances[i] for i in usable]
  per_class, not_covered = {}, {}
  for task in labels.tasks():
    counts = collections.Counter(
        labels.label(task, u, corpus.dim_scale) for u in utts)
    per_class[task] = {name: counts[k]
                       for k, name in enumerate(labels.TASK_CLASSES[task])}
    not_covered[task] = counts[None]
  files = [u.path for u in utts if u.path is not None]
  # Header reads only: the audio itself was read once, by the extraction.
  duration = sum(sf.info(p).duration for p in files) if files else None
  return dict(
      corpus=corpus.name,
      root=corpus.root,
      files=len(corpus.utterances),
      usable=len(usable),
      skipped=[dict(path=by_id[i].path or i, reason=r)
               for i, r in sorted(reasons.items())],
      repaired=[dict(path=os.path.join(corpus.root, p), reason=r)
                for p, r in corpus.repaired],
      unrecognised=[dict(path=os.path.join(corpus.root, p), reason=r)
                    for p, r in corpus.unrecognised],
      speakers=dict(sorted(collections.Counter(u.speaker for u in utts)
                           .items())),
      genders=dict(sorted(collections.Counter(u.gender for u in utts)
                          .items())),
      per_class=per_class,
      not_covered=not_covered,
      duration_s=None if duration is None else round(duration, 3),
      features={name: list(c.feature_shape) for name, c in cached.items()},
      seconds=round(seconds, 1),
  )


def _listed(entries: list[dict]) -> list[str]:
  lines = [f'  {e["path"]}: {e["reason"]}' for e in entries[:_SHOWN]]
  if len(entries) > _SHOWN:
    lines.append(f'  ... {len(entries) - _SHOWN} more in the JSON summary')
  return lines


def format_summary(s: dict) -> str:
  """The summary as printed."""
  def counts(d):
    return ', '.join(f'{k or "?"} {v}' for k, v in d.items())
  duration = ('n/a (synthetic)' if s['duration_s'] is None else
              f'{s["duration_s"]:.1f} s ({s["duration_s"] / 3600:.2f} h)')
  lines = [
      f'{s["corpus"]} at {s["root"]}: {s["files"]} files, {s["usable"]} '
      f'usable, {len(s["skipped"])} skipped, {len(s["unrecognised"])} '
      f'unrecognised, {len(s.get("repaired", []))} repaired '
      f'({s["seconds"]:.1f} s)',
      f'speakers ({len(s["speakers"])}): {counts(s["speakers"])}',
      f'genders: {counts(s["genders"])}',
      f'duration of usable audio: {duration}',
  ]
  for task, per in s['per_class'].items():
    lines.append(f'{task}: {counts(per)} (not covered: '
                 f'{s["not_covered"][task]})')
  lines.append('features: ' + ', '.join(
      f'{name} {tuple(shape)}' for name, shape in s['features'].items()))
  if s['skipped']:
    lines += ['skipped:'] + _listed(s['skipped'])
  if s.get('repaired'):
    lines += ['repaired (taken):'] + _listed(s['repaired'])
  if s['unrecognised']:
    lines += ['unrecognised:'] + _listed(s['unrecognised'])
  return '\n'.join(lines)


def _write_json(obj: dict, path: str) -> None:
  """Writes atomically, so no reader ever sees half a summary."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  io_lib.write_json(path, obj, indent=2)


def prepare(name: str, root: str | None, features: list[str],
            cache_dir: str | None, workers: int,
            frames: int | None) -> tuple[dict, str]:
  """Builds or verifies the caches; returns the summary and where it is saved.

  Raises:
    ValueError: (CorpusError among them) the corpus, a feature set or the
      folder is wrong, or no file is usable; the message says which.
  """
  # pylint: disable=g-import-not-at-top
  from jaxser import config as config_lib
  from jaxser.data import cache as cache_lib
  from jaxser.data import corpus as corpus_lib
  from jaxser.data import pipeline
  from jaxser.data.features import FeatureConfig
  # pylint: enable=g-import-not-at-top
  data_cfg = config_lib.base_config().data
  if cache_dir:
    data_cfg.cache_dir = cache_dir
  if frames is not None:
    data_cfg.frames = frames
  if root is None:
    if not (os.environ.get('JAXSER_DATA') or corpus_lib.is_synthetic(name)):
      raise corpus_lib.CorpusError(
          f'corpus {name!r}: no folder given; pass --root=PATH or set '
          f'JAXSER_DATA to the folder holding {name}/')
    root = corpus_lib.corpus_root(name, data_cfg)
  corpus = corpus_lib.load(name, root)
  configs = {}
  for feature in features:
    data_cfg.features = feature
    configs[feature] = FeatureConfig.from_data_config(data_cfg)
  if workers < 0:
    workers = os.cpu_count() or 1
  start = time.time()
  cached = {feature: cache_lib.build(corpus, config,
                                     pipeline.cache_dir(data_cfg), workers)
            for feature, config in configs.items()}
  summary = summarize(corpus, cached, time.time() - start)
  path = os.path.join(pipeline.cache_dir(data_cfg), corpus.name,
                      SUMMARY_NAME)
  _write_json(summary, path)
  return summary, path


def main(argv):
  del argv
  try:
    summary, path = prepare(_CORPUS.value, _ROOT.value, _FEATURES.value,
                            _CACHE_DIR.value, _WORKERS.value, _FRAMES.value)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  if _SUMMARY.value:
    _write_json(summary, _SUMMARY.value)
  print(format_summary(summary))
  print(f'summary: {path}' + (f' and {_SUMMARY.value}' if _SUMMARY.value
                               else ''))


if __name__ == '__main__':
  app.run(main)
