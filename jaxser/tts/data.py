"""A TTS corpus as padded in-memory array sets, with the SER soft labels.

The corpus is `config.data.target` (an LJSpeech-style `ljspeech` folder, the
`folder` corpus with a text column in its labels.csv, or any corpus whose
utterances carry transcripts), found where every jaxser corpus is
(`config.data.paths.<name>`, `config.data.root`). Utterances are kept when
they have a transcript, their text has only vocabulary characters
(`jaxser.tts.text`), at most `config.tts.max_chars` characters and their
audio at most `config.tts.max_seconds` seconds (the paper's filters: 100
characters, 14 s); the others are counted by reason.

Spectrograms (`jaxser.tts.audio`) are cached per corpus listing and audio
parameters under `<data cache>/tts/` (one npz, atomic), so a rerun (a
resumed training, `jaxser.synthesize`) does not recompute them.

Soft labels come from `jaxser.label` output folders (soft_labels.csv),
joined by the utterance's audio path: `config.tts.labels` (4 emotion classes)
for our-4cls / base-4cls, `config.tts.arousal_labels` and
`config.tts.valence_labels` for our-2d. Utterances a label file does not
list keep zero labels and a zero mask (the emotion loss skips them).

Array sets (rows in the corpus's listing order; `index` is the row in the
usable list): text (n, N) int32 ids + EOS, padded with 0; text_length;
mel (n, F, n_mels) and linear (n, F, n_linear) float16, F the longest
utterance rounded up to outputs_per_step, zero padded; frames; and per label
kind (emotion | arousal | valence) the soft labels and a mask.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import tqdm

from jaxser import io as io_lib
from jaxser.data import corpus as corpus_lib
from jaxser.data.corpus import SAMPLE_RATE
from jaxser.tts import audio as audio_lib
from jaxser.tts import text as text_lib

EMOTION_CLASSES = ('neutral', 'happy', 'sad', 'angry')
AROUSAL_CLASSES = ('low', 'high')
VALENCE_CLASSES = ('negative', 'positive')
SOFT_LABELS = 'soft_labels.csv'
CACHE_VERSION = '1'


def label_kinds(variant: str) -> dict[str, tuple[str, str]]:
  """label kind -> (its config.tts field, its classes) of a variant."""
  if variant == 'our-2d':
    return {'arousal': ('arousal_labels', AROUSAL_CLASSES),
            'valence': ('valence_labels', VALENCE_CLASSES)}
  return {'emotion': ('labels', EMOTION_CLASSES)}


@dataclasses.dataclass
class TTSData:
  arrays: dict[str, np.ndarray]
  utt_ids: list[str]
  paths: list[str]  # realpath of each row's audio ('' for synthetic).
  skipped: dict[str, int]
  corpus: str


def _realpath(p: str) -> str:
  return os.path.realpath(p) if p else ''


def load_corpus(config) -> corpus_lib.Corpus:
  name = config.data.target
  corpus = corpus_lib.load(name, corpus_lib.corpus_root(name, config.data))
  if not corpus.has_text:
    raise ValueError(
        f'config.data.target: corpus {name!r} has no transcripts; a TTS '
        'corpus needs text (an LJSpeech metadata.csv: the ljspeech corpus, '
        'or a text column in the folder corpus\'s labels.csv)')
  return corpus


def _cache_path(config, corpus, p: audio_lib.AudioParams) -> str:
  from jaxser.data import pipeline  # pylint: disable=g-import-not-at-top
  key = hashlib.sha1(json.dumps(
      [CACHE_VERSION, corpus.fingerprint(), dataclasses.asdict(p)],
      sort_keys=True).encode()).hexdigest()[:16]
  d = os.path.join(pipeline.cache_dir(config.data), 'tts')
  os.makedirs(d, exist_ok=True)
  return os.path.join(d, f'{corpus.name}-{key}.npz')


def _spectrograms(corpus, p: audio_lib.AudioParams, path: str):
  """Per utterance of the listing: samples (-1: unreadable), mel, linear,
  concatenated over utterances; cached in `path`."""
  if os.path.exists(path):
    with np.load(path) as z:
      return {k: z[k] for k in z.files}
  from jaxser.data import audio  # pylint: disable=g-import-not-at-top
  samples, mels, lins = [], [], []
  for u in tqdm.tqdm(corpus.utterances, desc=f'spectrograms {corpus.name}',
                     unit='utt', dynamic_ncols=True):
    try:
      wave = corpus.read_audio(u)
    except audio.AudioError:
      samples.append(-1)
      continue
    mel, lin = audio_lib.spectrograms(wave, p)
    samples.append(len(wave))
    mels.append(mel.astype(np.float16))
    lins.append(lin.astype(np.float16))
  out = dict(
      samples=np.array(samples, np.int64),
      frames=np.array([len(m) for m in mels], np.int64),
      mel=np.concatenate(mels) if mels else np.zeros((0, p.n_mels),
                                                      np.float16),
      linear=np.concatenate(lins) if lins else np.zeros((0, p.n_linear),
                                                        np.float16))
  io_lib.write_npz(path, **out)
  return out


def read_soft_labels(label_dir: str, classes, field: str) -> dict:
  """realpath -> (C,) soft labels of a `jaxser.label` output folder, its
  p_<class> columns in `classes` order; errors name `field`."""
  path = os.path.join(label_dir, SOFT_LABELS)
  if not os.path.isfile(path):
    raise ValueError(f'config.tts.{field}: no {SOFT_LABELS} in {label_dir!r} '
                     '(a python -m jaxser.label output folder)')
  from jaxser.data.corpora import common  # pylint: disable=g-import-not-at-top
  rows = common.read_table(path)
  cols = [f'p_{c}' for c in classes]
  have = list(rows[0]) if rows else []
  if not rows or any(c not in have for c in cols):
    raise ValueError(
        f'config.tts.{field}: {path} has columns {have}; this variant needs '
        f'{cols} (a label run of the task with classes {list(classes)})')
  out = {}
  for r in rows:
    q = np.array([float(r[c]) for c in cols], np.float32)
    out[_realpath(r['path'])] = q / max(float(q.sum()), 1e-8)
  return out


def load(config, with_labels: bool = True) -> TTSData:
  """Every usable utterance of the TTS corpus as one array set."""
  tts = config.tts
  p = audio_lib.AudioParams.from_config(tts.audio)
  r = int(tts.model.outputs_per_step)
  corpus = load_corpus(config)
  spec = _spectrograms(corpus, p, _cache_path(config, corpus, p))
  skipped: dict[str, int] = {}
  keep, ids, offsets = [], [], []
  offset, readable = 0, 0
  for i, u in enumerate(corpus.utterances):
    n = int(spec['samples'][i])
    reason = None
    if n < 0:
      reason = 'unreadable audio'
    else:
      f = int(spec['frames'][readable])
      readable += 1
      start, offset = offset, offset + f
    if reason is None and not u.text.strip():
      reason = 'no transcript'
    elif reason is None and text_lib.unknown_characters(u.text):
      reason = 'characters outside the vocabulary'
    elif reason is None and len(text_lib.normalize(u.text)) > tts.max_chars:
      reason = f'longer than {tts.max_chars} characters'
    elif reason is None and n > tts.max_seconds * SAMPLE_RATE:
      reason = f'longer than {tts.max_seconds} s'
    if reason:
      skipped[reason] = skipped.get(reason, 0) + 1
      continue
    keep.append(u)
    ids.append(text_lib.encode(u.text, u.utt_id))
    offsets.append((start, f))
  if not keep:
    raise ValueError(
        f'config.data.target: corpus {corpus.name!r} has no usable TTS '
        f'utterance (skipped: {skipped})')
  n = len(keep)
  frames = np.array([f for _, f in offsets], np.int32)
  f_max = -(-int(frames.max()) // r) * r
  n_max = max(len(t) for t in ids)
  arrays = dict(
      text=np.zeros((n, n_max), np.int32),
      text_length=np.array([len(t) for t in ids], np.int32),
      mel=np.zeros((n, f_max, p.n_mels), np.float16),
      linear=np.zeros((n, f_max, p.n_linear), np.float16),
      frames=frames, index=np.arange(n, dtype=np.int32))
  for k, (t, (start, f)) in enumerate(zip(ids, offsets)):
    arrays['text'][k, :len(t)] = t
    arrays['mel'][k, :f] = spec['mel'][start:start + f]
    arrays['linear'][k, :f] = spec['linear'][start:start + f]
  paths = [_realpath(u.path or '') for u in keep]
  if with_labels:
    for kind, (field, classes) in label_kinds(tts.variant).items():
      if tts.variant == 'base-4cls' and not tts.get(field):
        continue  # The baseline does not learn from labels.
      soft = read_soft_labels(tts[field], classes, field)
      q = np.zeros((n, len(classes)), np.float32)
      m = np.zeros((n,), np.float32)
      for k, path in enumerate(paths):
        if path in soft:
          q[k], m[k] = soft[path], 1.0
      if not m.any():
        raise ValueError(
            f'config.tts.{field}: {tts[field]!r} labels none of the '
            f'{n} utterances of corpus {corpus.name!r} (joined by audio path; '
            'label the same corpus folder with python -m jaxser.label)')
      arrays[kind], arrays[f'{kind}_mask'] = q, m
  return TTSData(arrays, [u.utt_id for u in keep], paths, skipped,
                 corpus.name)


def take(arrays: dict, rows) -> dict:
  return {k: v[rows] for k, v in arrays.items()}


def split(data: TTSData, fraction: float, seed: int) -> dict:
  """{'train', 'val'}: a random `fraction` of the utterances held out (at
  least one where there are two or more; none for fraction 0)."""
  n = len(data.utt_ids)
  perm = np.random.default_rng([seed, 14]).permutation(n)
  k = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))
  out = {'train': take(data.arrays, np.sort(perm[k:]))}
  if k:
    out['val'] = take(data.arrays, np.sort(perm[:k]))
  return out


def load_arrays(config) -> dict:
  """The run's array sets: 'train' and (with config.tts.val_fraction) 'val'."""
  return split(load(config), config.tts.val_fraction, config.data.split_seed)
