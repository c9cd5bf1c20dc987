"""Corpus and speaker normalisation against direct numpy computations."""

import numpy as np
import pytest

from jaxser.data import normalize

RNG = np.random.default_rng(0)


def _frames(n=6, t=7, d=3):
  """Frame-level features with varying lengths and huge values as padding."""
  x = RNG.normal(5.0, 3.0, (n, t, d)).astype(np.float32)
  lengths = RNG.integers(1, t + 1, n)
  for i, k in enumerate(lengths):
    x[i, k:] = 1e4  # Must neither reach the statistics nor the output.
  return x, lengths


def _valid(x, lengths):
  return np.concatenate([x[i, :k] for i, k in enumerate(lengths)])


def test_methods():
  assert normalize.METHODS == ('none', 'corpus_minmax', 'corpus_zscore',
                               'speaker_zscore')


def test_none_keeps_values_and_zeroes_padding():
  x, lengths = _frames()
  y = normalize.apply(x, lengths, normalize.compute_stats(x, lengths,
                                                          method='none'))
  for i, k in enumerate(lengths):
    np.testing.assert_array_equal(y[i, :k], x[i, :k])
    assert not y[i, k:].any()


def test_corpus_minmax_utterance_level():
  x = RNG.normal(0, 10, (20, 5))
  y = normalize.apply(x, None, normalize.compute_stats(
      x, method='corpus_minmax'))
  lo, hi = x.min(0), x.max(0)
  np.testing.assert_allclose(y, 2 * (x - lo) / (hi - lo) - 1, atol=1e-5)
  np.testing.assert_allclose(y.min(0), -1, atol=1e-6)
  np.testing.assert_allclose(y.max(0), 1, atol=1e-6)


def test_utterance_level_ignores_cached_length():
  x = RNG.normal(0, 1, (10, 4))
  ones = np.ones(10, np.int32)  # What the cache stores for functionals.
  for method in ('corpus_minmax', 'corpus_zscore'):
    np.testing.assert_array_equal(
        normalize.apply(x, ones, normalize.compute_stats(x, ones, None,
                                                         method)),
        normalize.apply(x, None, normalize.compute_stats(x, method=method)))


def test_corpus_zscore_ignores_padding():
  x, lengths = _frames()
  y = normalize.apply(x, lengths, normalize.compute_stats(
      x, lengths, method='corpus_zscore'))
  v = _valid(x, lengths).astype(np.float64)
  expected = (x - v.mean(0)) / v.std(0)
  for i, k in enumerate(lengths):
    np.testing.assert_allclose(y[i, :k], expected[i, :k], atol=1e-5)
    assert not y[i, k:].any()
  yv = _valid(y, lengths)
  np.testing.assert_allclose(yv.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(yv.std(0), 1, atol=1e-5)


def test_corpus_minmax_segments_per_bin():
  # (N, S, F, B) DIFL segments: statistics per bin over valid segments.
  x = RNG.normal(0, 1, (4, 5, 3, 2)).astype(np.float32)
  lengths = np.array([5, 2, 1, 3])
  for i, k in enumerate(lengths):
    x[i, k:] = -1e4
  y = normalize.apply(x, lengths, normalize.compute_stats(
      x, lengths, method='corpus_minmax'))
  v = _valid(x, lengths).reshape(-1, 2)
  lo, hi = v.min(0), v.max(0)
  for i, k in enumerate(lengths):
    np.testing.assert_allclose(y[i, :k], 2 * (x[i, :k] - lo) / (hi - lo) - 1,
                               atol=1e-5)
    assert not y[i, k:].any()


def test_speaker_zscore_separates_speakers():
  x, lengths = _frames(n=7)
  speakers = np.array(['b', 'a', 'b', 'a', 'a', 'c', 'b'])
  x[speakers == 'b'] += 100  # A shift of one speaker leaves the others alone.
  stats = normalize.compute_stats(x, lengths, speakers, 'speaker_zscore')
  np.testing.assert_array_equal(stats['groups'], ['a', 'b'])
  y = normalize.apply(x, lengths, stats, speakers)
  v_all = _valid(x, lengths).astype(np.float64)
  for s in 'abc':
    sel = speakers == s
    # 'c' has a single utterance: the corpus statistics apply.
    v = _valid(x[sel], lengths[sel]).astype(np.float64) if s != 'c' else v_all
    expected = (x[sel] - v.mean(0)) / v.std(0)
    for yi, ei, k in zip(y[sel], expected, lengths[sel]):
      np.testing.assert_allclose(yi[:k], ei[:k], atol=1e-4)
      assert not yi[k:].any()
    if s != 'c':
      ys = _valid(y[sel], lengths[sel])
      np.testing.assert_allclose(ys.mean(0), 0, atol=1e-4)
      np.testing.assert_allclose(ys.std(0), 1, atol=1e-4)


def test_row_index_unknown_speaker_uses_corpus_row():
  x = RNG.normal(0, 1, (4, 2))
  stats = normalize.compute_stats(x, None, [3, 3, 7, 7], 'speaker_zscore')
  np.testing.assert_array_equal(
      normalize.row_index(stats, np.array([7, 3, 5])), [2, 1, 0])
  assert stats['shift'].shape == stats['scale'].shape == (3, 2)


def test_constant_dimension_maps_to_zero():
  x = np.stack([RNG.normal(0, 1, 8), np.full(8, 4.0)], axis=1)
  for method in ('corpus_minmax', 'corpus_zscore'):
    y = normalize.apply(x, None, normalize.compute_stats(x, method=method))
    assert np.all(np.isfinite(y)) and not y[:, 1].any()


def test_errors():
  x = np.zeros((3, 2))
  with pytest.raises(ValueError, match='unknown method'):
    normalize.compute_stats(x, method='global')
  with pytest.raises(ValueError, match='speakers'):
    normalize.compute_stats(x, method='speaker_zscore')
