"""The corpus layer: utterances, corpora and the registry of corpus loaders.

A corpus is a list of `Utterance`s plus a way to read each one's audio as 16 kHz
mono float32. Real corpora are listed by a loader (one per corpus, registered by
name with `register`); synthetic corpora render their audio on the fly. Every
corpus goes through the same feature and cache path (`jaxser.data.cache`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, Mapping

import numpy as np

SAMPLE_RATE = 16_000

# Canonical category names. Loaders map each corpus's own codes onto these;
# `jaxser.data.labels` maps them onto the classes of each task.
EMOTIONS = (
    'neutral', 'happy', 'sad', 'angry', 'fear', 'disgust', 'surprise',
    'boredom', 'calm', 'excited', 'frustrated', 'pleasant_surprise', 'other',
)


class CorpusError(ValueError):
  """A corpus cannot be found or yields no usable utterance."""


@dataclasses.dataclass(frozen=True)
class Utterance:
  """One utterance of a corpus.

  Attributes:
    utt_id: identifier unique within the corpus (usually the relative path).
    corpus: corpus name.
    speaker: speaker id, unique within the corpus ('' when unknown).
    gender: 'm', 'f' or '' when unknown.
    language: ISO 639-1 code ('' when unknown).
    emotion: canonical category from `EMOTIONS`, or None when unlabelled.
    dims: dimensional ratings by name ('arousal', 'valence', 'dominance') on
      the corpus's own scale (see `Corpus.dim_scale`), empty when none.
    path: audio file, or None for synthetic utterances.
    partition: the corpus's own partition ('train', 'test', ...) or ''.
    text: the transcript ('' when unknown); read only by text feature sets
      (`tokens`). An empty text is left out of `to_json`, so a corpus
      without transcripts keeps the fingerprint it had before the field.
  """
  utt_id: str
  corpus: str
  speaker: str = ''
  gender: str = ''
  language: str = ''
  emotion: str | None = None
  dims: Mapping[str, float] = dataclasses.field(default_factory=dict)
  path: str | None = None
  partition: str = ''
  text: str = ''

  def to_json(self) -> dict:
    d = dataclasses.asdict(self)
    d['dims'] = dict(self.dims)
    if not d['text']:
      del d['text']
    return d

  @classmethod
  def from_json(cls, d: dict) -> 'Utterance':
    return cls(**d)


@dataclasses.dataclass
class Corpus:
  """A listed corpus.

  Attributes:
    name: corpus name as used in `config.data.source` / `config.data.target`.
    utterances: the recognised utterances, in a deterministic order.
    unrecognised: files below the root the loader could not interpret, with
      the reason, as (path, reason) pairs.
    repaired: files whose names break the corpus's scheme in a small way
      but were identified unambiguously and taken (they are among
      `utterances`), with the reason, as (path, reason) pairs
      (`jaxser.data.corpora.common`).
    root: folder the corpus was read from (None for synthetic corpora).
    dim_scale: name of the scale of `Utterance.dims` ('iemocap', 'vam',
      'msp_improv', 'msp_podcast') used by the 3-class dimensional tasks; None if no ratings.
    render: for synthetic corpora, a function utterance -> 16 kHz waveform.
    version: bumped by a loader or generator whose output changes, so caches
      built by an older version are rebuilt.
  """
  name: str
  utterances: list[Utterance]
  unrecognised: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  root: str | None = None
  dim_scale: str | None = None
  render: Callable[[Utterance], np.ndarray] | None = None
  version: str = '1'
  repaired: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  def read_audio(self, utt: Utterance) -> np.ndarray:
    """Returns the utterance's audio as 16 kHz mono float32."""
    if self.render is not None:
      return self.render(utt)
    from jaxser.data import audio  # pylint: disable=g-import-not-at-top
    return audio.load(utt.path)

  @property
  def has_text(self) -> bool:
    """Whether any utterance has a transcript."""
    return any(u.text.strip() for u in self.utterances)

  def untranscribed(self) -> int:
    """The number of utterances without a transcript (blank text counts)."""
    return sum(1 for u in self.utterances if not u.text.strip())

  def fingerprint(self, text: bool = True) -> str:
    """A hash of what the cache depends on: the listing and the files' stat.

    With `text=False` the transcripts are left out, so that the caches of
    audio features do not change when a corpus gains or fixes transcripts
    (every corpus without them hashes the same either way).
    """
    h = hashlib.sha1()
    h.update(f'{self.name}|{self.version}|{self.dim_scale}'.encode())
    for u in self.utterances:
      d = u.to_json()
      if not text:
        d.pop('text', None)
      h.update(json.dumps(d, sort_keys=True).encode())
      if u.path is not None:
        try:
          st = os.stat(u.path)
          h.update(f'{st.st_size}|{int(st.st_mtime)}'.encode())
        except OSError:
          h.update(b'missing')
    return h.hexdigest()[:16]


def speaker_key(utt: Utterance) -> str:
  """The run-wide id of `utt`'s speaker, '<corpus>/<speaker>' (speaker ids
  are unique only within a corpus), or '' when the speaker is unknown."""
  return f'{utt.corpus}/{utt.speaker}' if utt.speaker else ''


def speaker_vocabulary(corpora) -> tuple[str, ...]:
  """The sorted `speaker_key`s of every utterance of `corpora` (unknown
  speakers left out): what a batch's 'speaker' key indexes (DIFL's DANN_1
  speaker head)."""
  return tuple(sorted({speaker_key(u) for c in corpora
                       for u in c.utterances} - {''}))


# name -> loader(root) -> Corpus. Loaders of real corpora take the folder the
# corpus lies in; synthetic ones ignore it.
_LOADERS: dict[str, Callable[[str | None], Corpus]] = {}
_SYNTHETIC: set[str] = set()


def register(name: str, synthetic: bool = False):
  """Decorator registering a corpus loader under `name`."""
  def wrap(fn):
    _LOADERS[name] = fn
    if synthetic:
      _SYNTHETIC.add(name)
    return fn
  return wrap


def _ensure_registered():
  # Importing the modules runs their `register` decorators.
  from jaxser.data import corpora  # pylint: disable=g-import-not-at-top,unused-import
  from jaxser.data import synthetic  # pylint: disable=g-import-not-at-top,unused-import


def available() -> list[str]:
  _ensure_registered()
  return sorted(_LOADERS)


def is_synthetic(name: str) -> bool:
  _ensure_registered()
  return name in _SYNTHETIC


def corpus_root(name: str, data_cfg) -> str | None:
  """Where corpus `name` lies: `data.paths.<name>`, else `data.root/<name>`."""
  if is_synthetic(name):
    return None
  paths = data_cfg.get('paths') or {}
  if name in paths and paths[name]:
    return os.path.expanduser(str(paths[name]))
  root = data_cfg.get('root') or os.environ.get('JAXSER_DATA', '')
  if not root:
    raise CorpusError(
        f'config.data.root: no folder given for corpus {name!r}; set '
        f'--config.data.root (or JAXSER_DATA) to the folder holding {name}/, '
        f'or --config.data.paths.{name}=PATH')
  return os.path.join(os.path.expanduser(str(root)), name)


def load(name: str, root: str | None = None) -> Corpus:
  """Lists corpus `name` found at `root` (ignored for synthetic corpora)."""
  _ensure_registered()
  if name not in _LOADERS:
    raise CorpusError(
        f'unknown corpus {name!r}; known: {", ".join(available())}')
  if name not in _SYNTHETIC:
    if root is None or not os.path.isdir(root):
      raise CorpusError(f'corpus {name!r}: folder {root!r} does not exist')
  corpus = _LOADERS[name](root)
  if not corpus.utterances:
    example = (f', e.g. {corpus.unrecognised[0][0]}: '
               f'{corpus.unrecognised[0][1]}' if corpus.unrecognised else '')
    raise CorpusError(
        f'corpus {name!r}: no recognisable audio file below {root!r} '
        f'({len(corpus.unrecognised)} unrecognised files{example})')
  return corpus
