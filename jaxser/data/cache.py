"""The feature cache: one local TFDS dataset per corpus and feature config.

Building runs in two stages so that an interruption never loses finished work
and never leaves anything half-written where a reader would find it:

1. Extraction: utterances are read and featurised in chunks by worker
   processes; each finished chunk is written atomically (temporary file, then
   rename) into a staging folder. A rerun skips the chunks already there.
2. Writing: a TFDS `GeneratorBasedBuilder` turns the staged chunks into a
   TFRecord dataset (TFDS writes to a temporary folder and renames it at the
   end), then the staging folder is removed.

The dataset is keyed by the feature config and the corpus fingerprint, so a
changed feature parameter or corpus listing builds a new dataset. Each example
holds the features, their true length and the utterance's index into the
corpus listing; labels are looked up at read time so that changing the task
never rebuilds the cache. Nothing is ever downloaded.

Text feature sets (`tokens`) are computed from the transcripts in the main
process, without reading or decoding any audio. Their cache is keyed by the
corpus fingerprint with its transcripts; audio sets' by the fingerprint
without them, so gaining transcripts never rebuilds an audio cache.
Utterances without a transcript are skipped (reason 'no transcript', as
unreadable audio files are); a corpus with none at all is an error. Features
are stored as the set's dtype (float32; int32 token ids).

Batched sets (`ssl`: a pretrained encoder's hidden states) run their model
in the main process, on the default device: a thread pool (`workers`
threads, at least one) reads the next chunk's audio while the current one
is extracted in padded batches (`FeatureConfig.batch_extractor`), with the
utterances and seconds of audio per second on the progress bar. Chunks are
staged and resumed as for the other sets.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import io as io_std
import json
import logging
import multiprocessing
import os
import shutil
import time

from absl import logging as absl_logging
import numpy as np
import tqdm

from jaxser import io as io_lib
from jaxser.data import audio as audio_lib
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import CorpusError
from jaxser.data.features import FeatureConfig

CHUNK = 64
BATCHED_CHUNK = 128  # Utterances per staged chunk of a batched set.
NO_TEXT = 'no transcript'  # Skip reason of an utterance without text.


@dataclasses.dataclass
class CachedCorpus:
  """A corpus whose features are cached.

  Attributes:
    corpus: the listing.
    feature: the feature config.
    builder: the TFDS builder; `builder.as_dataset(split='train')` yields dicts
      with 'features', 'length' and 'index' (into `corpus.utterances`).
    skipped: (utt_id, reason) of utterances that could not be used.
    usable: indices into `corpus.utterances` of the cached utterances.
    feature_shape: per-utterance shape of 'features'.
    meta_path: the cache's metadata file; files derived from the cache
      (e.g. normalisation statistics) are saved beside it.
    feature_dtype: dtype of 'features' (float32; int32 for token ids).
  """
  corpus: Corpus
  feature: FeatureConfig
  builder: object
  skipped: list[tuple[str, str]]
  usable: np.ndarray
  feature_shape: tuple[int, ...]
  meta_path: str
  feature_dtype: np.dtype = np.dtype(np.float32)


def _extract_chunk(corpus: Corpus, feature: FeatureConfig, start: int,
                   stop: int) -> dict:
  """Featurises utterances [start, stop); bad files are skipped with a reason.

  Text sets read the transcript alone; an utterance without one is skipped.
  """
  feats, lengths, indices, skipped = [], [], [], []
  for i in range(start, stop):
    utt = corpus.utterances[i]
    if feature.reads_text:
      if not utt.text.strip():
        skipped.append((utt.utt_id, NO_TEXT))
        continue
      x, n = feature.compute_text(utt.text)
      feats.append(x)
      lengths.append(n)
      indices.append(i)
      continue
    try:
      wav = corpus.read_audio(utt)
      audio_lib.check(wav)
      x, n = feature.compute(wav)
      if not np.all(np.isfinite(x)):
        raise audio_lib.AudioError('non-finite features')
    except audio_lib.AudioError as e:
      skipped.append((utt.utt_id, str(e)))
      continue
    feats.append(x)
    lengths.append(n)
    indices.append(i)
  return dict(features=feats, lengths=lengths, indices=indices,
              skipped=skipped)


def _write_chunk(path: str, result: dict, shape: tuple[int, ...],
                 dtype=np.float32) -> None:
  feats = (np.stack(result['features']) if result['features']
           else np.zeros((0,) + shape, dtype))
  io_lib.write_npz(path, features=feats,
                   lengths=np.asarray(result['lengths'], np.int32),
                   indices=np.asarray(result['indices'], np.int32),
                   skipped=json.dumps(result['skipped']))


def _probe_shape(corpus: Corpus, feature: FeatureConfig,
                 extract=None) -> tuple[int, ...]:
  """Feature shape, from one second of silence-free noise (a word for text
  sets); batched sets through their open `extract`."""
  if feature.reads_text:
    return tuple(feature.compute_text('probe')[0].shape)
  rng = np.random.default_rng(0)
  wav = (0.1 * rng.standard_normal(16000)).astype(np.float32)
  x, _ = extract([wav])[0] if extract is not None else feature.compute(wav)
  del corpus
  return tuple(x.shape)


@contextlib.contextmanager
def _environment(**variables):
  """Sets environment variables (inherited by child processes) for a while."""
  old = {k: os.environ.get(k) for k in variables}
  os.environ.update(variables)
  try:
    yield
  finally:
    for k, v in old.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


def _extract_all(corpus: Corpus, feature: FeatureConfig, staging: str,
                 workers: int, shape: tuple[int, ...]) -> None:
  os.makedirs(staging, exist_ok=True)
  n = len(corpus.utterances)
  todo = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)
          if not os.path.exists(os.path.join(staging, f'{s:08d}.npz'))]
  if not todo:
    return
  bar = tqdm.tqdm(total=n, initial=n - sum(b - a for a, b in todo),
                  desc=f'features {corpus.name}/{feature.name}', unit='utt',
                  dynamic_ncols=True)
  if workers <= 1 or feature.reads_text:
    # Tokenising is fast: worker processes would cost more than they save.
    for a, b in todo:
      _write_chunk(os.path.join(staging, f'{a:08d}.npz'),
                   _extract_chunk(corpus, feature, a, b), shape,
                   feature.dtype)
      bar.update(b - a)
  else:
    # Spawned (not forked) workers: the parent may already hold JAX / TF
    # threads, which do not survive a fork.
    ctx = multiprocessing.get_context('spawn')
    # One BLAS thread per worker: the workers already use every core, and
    # oversubscribed BLAS threads made extraction 5-20x slower.
    with _environment(OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1',
                      MKL_NUM_THREADS='1'), \
        concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as ex:
      futures = {ex.submit(_extract_chunk, corpus, feature, a, b): (a, b)
                 for a, b in todo}
      for fut in concurrent.futures.as_completed(futures):
        a, b = futures[fut]
        _write_chunk(os.path.join(staging, f'{a:08d}.npz'), fut.result(),
                     shape, feature.dtype)
        bar.update(b - a)
  bar.close()


def _read_one(corpus: Corpus, i: int):
  """(index, waveform or None, reason it cannot be used)."""
  utt = corpus.utterances[i]
  try:
    wav = corpus.read_audio(utt)
    audio_lib.check(wav)
  except audio_lib.AudioError as e:
    return i, None, str(e)
  return i, wav, ''


def _extract_batched(corpus: Corpus, feature: FeatureConfig, staging: str,
                     workers: int, shape: tuple[int, ...], extract) -> None:
  """A batched set's chunks: audio read by threads (the next chunk while
  this one is extracted), features by `extract` in the main process."""
  os.makedirs(staging, exist_ok=True)
  n = len(corpus.utterances)
  todo = [(s, min(s + BATCHED_CHUNK, n)) for s in range(0, n, BATCHED_CHUNK)
          if not os.path.exists(os.path.join(staging, f'{s:08d}.npz'))]
  if not todo:
    return
  bar = tqdm.tqdm(total=n, initial=n - sum(b - a for a, b in todo),
                  desc=f'features {corpus.name}/{feature.name}', unit='utt',
                  dynamic_ncols=True)
  start, seconds = time.perf_counter(), 0.0

  def progress(utterances: int, samples: int) -> None:
    nonlocal seconds
    seconds += samples / audio_lib.SAMPLE_RATE
    bar.update(utterances)
    bar.set_postfix_str(
        f'{seconds / max(time.perf_counter() - start, 1e-9):.1f} s audio/s',
        refresh=False)

  with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
    submit = lambda a, b: [pool.submit(_read_one, corpus, i)
                           for i in range(a, b)]
    pending = submit(*todo[0])
    for k, (a, b) in enumerate(todo):
      reads = [f.result() for f in pending]
      if k + 1 < len(todo):
        pending = submit(*todo[k + 1])
      result = dict(features=[], lengths=[], indices=[], skipped=[])
      good = [(i, wav) for i, wav, _ in reads if wav is not None]
      for i, wav, reason in reads:
        if wav is None:
          result['skipped'].append((corpus.utterances[i].utt_id, reason))
      bar.update(len(reads) - len(good))
      feats = extract([wav for _, wav in good], progress) if good else []
      for (i, _), (x, length) in zip(good, feats):
        if not np.all(np.isfinite(x)):
          result['skipped'].append((corpus.utterances[i].utt_id,
                                    'non-finite features'))
          continue
        result['features'].append(x)
        result['lengths'].append(length)
        result['indices'].append(i)
      _write_chunk(os.path.join(staging, f'{a:08d}.npz'), result, shape,
                   feature.dtype)
  bar.close()


def _read_staging(staging: str):
  for name in sorted(os.listdir(staging)):
    if name.endswith('.npz'):
      with np.load(os.path.join(staging, name)) as z:
        yield (z['features'], z['lengths'], z['indices'],
               json.loads(str(z['skipped'])))


@functools.cache
def _builder_class():
  """The TFDS builder class (built lazily: importing TFDS is slow)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class JaxserFeatures(tfds.core.GeneratorBasedBuilder):
    """Cached features of one corpus under one feature config."""
    VERSION = tfds.core.Version('1.0.0')

    def __init__(self, *, shape=None, staging=None, dtype='float32',
                 **kwargs):
      self._shape = shape
      self._staging = staging
      self._dtype = tf.as_dtype(dtype)
      super().__init__(**kwargs)

    def _info(self):
      return self.dataset_info_from_configs(
          features=tfds.features.FeaturesDict({
              'features': tfds.features.Tensor(
                  shape=self._shape, dtype=self._dtype),
              'length': tfds.features.Scalar(dtype=tf.int32),
              'index': tfds.features.Scalar(dtype=tf.int32),
          }))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples()}

    def _generate_examples(self):
      for feats, lengths, indices, _ in _read_staging(self._staging):
        for x, n, i in zip(feats, lengths, indices):
          yield int(i), {'features': x, 'length': int(n), 'index': int(i)}

  return JaxserFeatures


def build(corpus: Corpus, feature: FeatureConfig, cache_dir: str,
          workers: int = 0) -> CachedCorpus:
  """Builds the cache of `corpus` under `feature` if needed, and opens it.

  Raises:
    CorpusError: a text set on a corpus without any transcript.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if feature.reads_text:
    check_text(corpus, feature)
  key = (f'{feature.key()}_'
         f'{corpus.fingerprint(text=feature.reads_text)[:8]}')
  data_dir = os.path.join(os.path.expanduser(cache_dir), corpus.name)
  meta_path = os.path.join(data_dir, f'{key}.json')
  staging = os.path.join(data_dir, f'{key}.staging')
  builder_cls = _builder_class()
  config = tfds.core.BuilderConfig(name=key)

  if not os.path.exists(meta_path):
    if feature.batched:
      with feature.batch_extractor() as extract:
        shape = _probe_shape(corpus, feature, extract)
        _extract_batched(corpus, feature, staging, workers, shape, extract)
    else:
      shape = _probe_shape(corpus, feature)
      _extract_all(corpus, feature, staging, workers, shape)
    skipped, usable = [], []
    for _, _, indices, skip in _read_staging(staging):
      usable.extend(int(i) for i in indices)
      skipped.extend(skip)
    if not usable:
      raise ValueError(
          f'corpus {corpus.name!r} at {corpus.root!r}: none of its '
          f'{len(corpus.utterances)} files is usable; first reasons: '
          f'{skipped[:3]}')
    builder = builder_cls(data_dir=data_dir, config=config, shape=shape,
                          staging=staging, dtype=feature.dtype.name)
    # TFDS prints "Downloading and preparing dataset ..." (nothing is
    # downloaded): shown only at --verbosity (jaxser.runtime).
    shown = absl_logging.get_verbosity() >= absl_logging.INFO
    with (contextlib.nullcontext() if shown
          else contextlib.redirect_stdout(io_std.StringIO())):
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(
              try_download_gcs=False))
    meta = dict(corpus=corpus.name, feature=feature.name,
                params=dict(feature.params), frames=feature.frames,
                shape=list(shape), dtype=feature.dtype.name,
                usable=sorted(usable),
                skipped=[list(s) for s in skipped],
                utterances=[u.to_json() for u in corpus.utterances])
    # The meta file marks the cache as complete.
    io_lib.write_json(meta_path, meta, indent=None)
    shutil.rmtree(staging, ignore_errors=True)
    logging.info('cached %s (%d usable, %d skipped) in %s', corpus.name,
                 len(usable), len(skipped), data_dir)

  with open(meta_path) as f:
    meta = json.load(f)
  shape = tuple(meta['shape'])
  dtype = meta.get('dtype', 'float32')  # Caches before int32 ids: float32.
  builder = builder_cls(data_dir=data_dir, config=config, shape=shape,
                        dtype=dtype)
  return CachedCorpus(
      corpus=corpus, feature=feature, builder=builder,
      skipped=[tuple(s) for s in meta['skipped']],
      usable=np.asarray(meta['usable'], np.int64), feature_shape=shape,
      meta_path=meta_path, feature_dtype=np.dtype(dtype))


def check_text(corpus: Corpus, feature: FeatureConfig) -> None:
  """A one-line CorpusError when a text set meets a corpus with no
  transcript at all (some missing ones are skipped instead)."""
  missing, n = corpus.untranscribed(), len(corpus.utterances)
  if missing == n:
    raise CorpusError(
        f'config.data.features={feature.name!r} needs transcripts, corpus '
        f'{corpus.name!r} has none ({missing} of {n} utterances without '
        'text)')
