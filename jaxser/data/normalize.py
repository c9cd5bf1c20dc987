"""Feature normalisation over a whole corpus, applied when its cache is read.

The cache stores raw features; a normalisation is computed from one corpus's
usable utterances and applied to that corpus alone, so that each corpus
(source or target) is mapped to a common range (CAEmoCyGAN; Schuller et al.'s
per-corpus and per-speaker normalisation):

  none            features unchanged.
  corpus_minmax   each feature dimension mapped linearly onto [-1, 1] by the
                  corpus's minimum and maximum (CAEmoCyGAN).
  corpus_zscore   each dimension standardised by the corpus's mean and
                  standard deviation.
  speaker_zscore  each dimension standardised by the mean and standard
                  deviation of the utterance's speaker. A speaker with fewer
                  than MIN_GROUP_UTTERANCES utterances (whose statistics would
                  be those of a single utterance: every utterance-level
                  feature would become 0) or one absent from the statistics
                  is standardised with the corpus's statistics instead.

Every method is a per-dimension affine map (x - shift) * scale, so the
statistics are two tables of shape (K, D): row 0 holds the corpus's map and
rows 1.. the map of each speaker in `stats['groups']`; `row_index` says which
row an utterance uses. A "dimension" is an index of the last feature axis:
(N, D) utterance-level functionals, (N, T, D) frames, or (N, S, F, B) DIFL
segments (statistics per frequency bin). For arrays of 3 or more dimensions
axis 1 is padded, and `lengths` (N,) gives its valid rows: padding is left out
of the statistics and stays zero. The `length` the cache stores for
utterance-level sets (1) is ignored since they have no padded axis.
"""

from __future__ import annotations

import numpy as np

METHODS = ('none', 'corpus_minmax', 'corpus_zscore', 'speaker_zscore')

MIN_GROUP_UTTERANCES = 2

_CHUNK = 256  # Utterances per pass, to bound float64 temporaries.


def _valid_rows(features: np.ndarray, lengths, start: int, stop: int):
  """Utterances [start, stop) as (M, D) float64 feature vectors sans padding."""
  x = features[start:stop]
  if x.ndim >= 3 and lengths is not None:
    x = x[np.arange(x.shape[1]) < np.asarray(lengths)[start:stop, None]]
  return x.reshape(-1, x.shape[-1]).astype(np.float64)


def _affine(features: np.ndarray, lengths, minmax: bool):
  """(shift, scale) of one group's features, each (D,)."""
  n, d = len(features), features.shape[-1]
  chunks = range(0, n, _CHUNK)
  if minmax:
    lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
    for i in chunks:
      rows = _valid_rows(features, lengths, i, i + _CHUNK)
      if len(rows):
        lo, hi = np.minimum(lo, rows.min(0)), np.maximum(hi, rows.max(0))
    return (lo + hi) / 2, _reciprocal(hi - lo, 2.0)
  # Two passes (mean, then squared deviations): one-pass sums of squares
  # lose the variance of features with large means, e.g. openSMILE's.
  total, count = np.zeros(d), 0
  for i in chunks:
    rows = _valid_rows(features, lengths, i, i + _CHUNK)
    total += rows.sum(0)
    count += len(rows)
  mean = total / count
  sq = np.zeros(d)
  for i in chunks:
    sq += ((_valid_rows(features, lengths, i, i + _CHUNK) - mean) ** 2).sum(0)
  return mean, _reciprocal(np.sqrt(sq / count), 1.0)


def _reciprocal(width: np.ndarray, numerator: float) -> np.ndarray:
  """numerator / width, and 0 for constant dimensions: they map to 0."""
  safe = np.where(width > 0, width, 1.0)
  return np.where(width > 0, numerator / safe, 0.0)


def compute_stats(features: np.ndarray, lengths=None, groups=None,
                  method: str = 'corpus_zscore') -> dict[str, np.ndarray]:
  """Normalisation statistics of one corpus.

  Args:
    features: (N, ...) raw features of the corpus's usable utterances.
    lengths: (N,) valid rows along axis 1 (frame-level features); None: no
      padding.
    groups: (N,) speaker ids; needed by `speaker_zscore` only.
    method: one of METHODS.

  Returns:
    {'shift': (K, D), 'scale': (K, D), 'groups': (K - 1,) speaker ids}, as
    described in the module docstring.
  """
  if method not in METHODS:
    raise ValueError(f'normalisation: unknown method {method!r}; known: '
                     f'{", ".join(METHODS)}')
  features = np.asarray(features)
  d = features.shape[-1]
  if method == 'none':
    return {'shift': np.zeros((1, d)), 'scale': np.ones((1, d)),
            'groups': np.zeros(0)}
  if method == 'speaker_zscore' and groups is None:
    raise ValueError('normalisation speaker_zscore needs the speakers')
  minmax = method == 'corpus_minmax'
  maps, ids = [_affine(features, lengths, minmax)], []
  if method == 'speaker_zscore':
    groups = np.asarray(groups)
    lengths = None if lengths is None else np.asarray(lengths)
    ids, counts = np.unique(groups, return_counts=True)
    ids = ids[counts >= MIN_GROUP_UTTERANCES]
    for g in ids:
      sel = groups == g
      maps.append(_affine(features[sel],
                          None if lengths is None else lengths[sel], False))
  shift, scale = (np.stack(m) for m in zip(*maps))
  return {'shift': shift, 'scale': scale, 'groups': np.asarray(ids)}


def row_index(stats: dict[str, np.ndarray], groups=None) -> np.ndarray:
  """(N,) row of `stats` each utterance uses: its speaker's, else 0."""
  known = stats['groups']
  if groups is None or not len(known):
    return np.zeros(0 if groups is None else len(groups), np.int32)
  groups = np.asarray(groups)
  pos = np.clip(np.searchsorted(known, groups), 0, len(known) - 1)
  return np.where(known[pos] == groups, pos + 1, 0).astype(np.int32)


def apply(features: np.ndarray, lengths, stats: dict[str, np.ndarray],
          groups=None) -> np.ndarray:
  """Normalised float32 copy of `features` (N, ...); padding stays zero.

  `lengths` and `groups` are as in `compute_stats`; `groups` matters only
  for statistics computed per speaker.
  """
  features = np.asarray(features, np.float32)
  n = len(features)
  rows = row_index(stats, groups) if groups is not None else np.zeros(n, int)
  # One (shift, scale) vector per utterance, broadcast over its other axes.
  bcast = (n,) + (1,) * (features.ndim - 2) + (-1,)
  shift = stats['shift'][rows].astype(np.float32).reshape(bcast)
  scale = stats['scale'][rows].astype(np.float32).reshape(bcast)
  out = (features - shift) * scale
  if features.ndim >= 3 and lengths is not None:
    valid = np.arange(features.shape[1]) < np.asarray(lengths)[:, None]
    out *= valid.reshape(valid.shape + (1,) * (features.ndim - 2))
  return out
