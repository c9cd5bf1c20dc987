"""Tests of the synthetic corpora."""

import collections
import concurrent.futures
import dataclasses
import multiprocessing
import pickle

import librosa
import numpy as np
import pytest
from scipy import signal

from jaxser.data import corpus as corpus_lib
from jaxser.data import synthetic

SR = corpus_lib.SAMPLE_RATE


@pytest.fixture(scope='module')
def corpora():
  return {name: synthetic.build(synthetic.SPECS[name])
          for name in synthetic.DEFAULT_CORPORA}


def _utt(corpus, speaker, emotion, index):
  utt_id = f'{speaker}/{emotion}/{index:04d}'
  return next(u for u in corpus.utterances if u.utt_id == utt_id)


def _cues(wav):
  """Median F0 (Hz), RMS (dB), alpha ratio (dB) and duration (s)."""
  f0 = librosa.yin(wav, fmin=60, fmax=500, sr=SR, frame_length=1024,
                   hop_length=256)
  rms = librosa.feature.rms(y=wav, frame_length=1024, hop_length=256)[0]
  voiced = rms[:f0.size] > 0.3 * rms.max()  # Loud frames: vowels.
  f, p = signal.welch(wav.astype(np.float64), SR, nperseg=512)
  alpha = p[(f >= 1000) & (f < 5000)].sum() / p[(f >= 50) & (f < 1000)].sum()
  return np.array([np.median(f0[voiced]),
                   10 * np.log10(np.mean(wav.astype(np.float64) ** 2)),
                   10 * np.log10(alpha), wav.size / SR])


def _mean_cues(corpus, speaker, n=5):
  """Cues averaged over the first n utterances of each emotion."""
  return {e: np.mean([_cues(corpus.read_audio(_utt(corpus, speaker, e, i)))
                      for i in range(n)], axis=0)
          for e in synthetic.EMOTIONS}


def test_registered():
  assert synthetic.DEFAULT_SOURCE in synthetic.DEFAULT_CORPORA
  assert synthetic.DEFAULT_TARGET in synthetic.DEFAULT_CORPORA
  assert synthetic.DEFAULT_SOURCE != synthetic.DEFAULT_TARGET
  assert len(synthetic.DEFAULT_CORPORA) >= 4
  for name in synthetic.DEFAULT_CORPORA:
    assert name.startswith('synth_')
    assert corpus_lib.is_synthetic(name)
    corpus = corpus_lib.load(name, root='/nonexistent')
    assert corpus.name == name
    assert corpus.root is None
    assert corpus.version == synthetic.VERSION
    assert corpus.render is not None


def test_listing_balanced(corpora):
  languages = set()
  for name, corpus in corpora.items():
    spec = synthetic.SPECS[name]
    utts = corpus.utterances
    assert len({u.utt_id for u in utts}) == len(utts)
    assert all(u.corpus == name and u.path is None for u in utts)
    assert {u.language for u in utts} == {spec.language.code}
    languages.add(spec.language.code)
    counts = collections.Counter((u.speaker, u.emotion) for u in utts)
    speakers = {u.speaker for u in utts}
    assert set(counts.values()) == {spec.per_class}
    assert len(counts) == len(speakers) * len(synthetic.EMOTIONS)
    assert len(speakers) >= 3
    gender = {u.speaker: u.gender for u in utts}
    assert len({(u.speaker, u.gender) for u in utts}) == len(speakers)
    assert set(gender.values()) == {'f', 'm'}
  assert len(languages) == len(corpora)


def test_render_is_deterministic(corpora):
  corpus = corpora[synthetic.DEFAULT_SOURCE]
  utts = corpus.utterances[::97]
  first = [corpus.read_audio(u) for u in utts]
  again = [corpus.read_audio(u) for u in reversed(utts)][::-1]
  unpickled = pickle.loads(pickle.dumps(corpus.render))
  for a, b, u in zip(first, again, utts):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, unpickled(u))
  assert not np.array_equal(first[0][:SR], first[1][:SR])
  # A spawned worker (fresh interpreter, own hash seed) renders the same.
  ctx = multiprocessing.get_context('spawn')
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
    np.testing.assert_array_equal(ex.submit(corpus.render, utts[1]).result(),
                                  first[1])


def test_waveforms(corpora):
  for corpus in corpora.values():
    for utt in corpus.utterances[::len(corpus.utterances) // 6]:
      wav = corpus.read_audio(utt)
      assert wav.dtype == np.float32 and wav.ndim == 1
      assert np.all(np.isfinite(wav))
      assert np.max(np.abs(wav)) <= 1.0
      assert 1.0 <= wav.size / SR <= synthetic.MAX_SECONDS + 0.01
      assert np.sqrt(np.mean(wav ** 2)) > 1e-3


@pytest.mark.parametrize('speaker', ['spk00', 'spk01'])  # One f, one m.
def test_emotion_cues(corpora, speaker):
  cues = _mean_cues(corpora[synthetic.ACTED_A.name], speaker)
  semitones = lambda a, b: 12 * np.log2(cues[a][0] / cues[b][0])
  # F0 level: angry and happy above neutral, sad below.
  assert semitones('angry', 'neutral') > 1.0
  assert semitones('happy', 'neutral') > 1.0
  assert semitones('neutral', 'sad') > 1.0
  # Vocal effort: angry loudest, sad softest.
  assert cues['angry'][1] > cues['neutral'][1] + 3
  assert cues['neutral'][1] > cues['sad'][1] + 3
  # Spectral tilt: more energy above 1 kHz when angry than when sad.
  assert cues['angry'][2] > cues['sad'][2] + 3
  # Speaking rate: the same sentences take longer when sad.
  assert cues['sad'][3] > cues['neutral'][3] > cues['angry'][3]


def test_expressiveness_scales_emotion(corpora):
  flat = synthetic.build(
      dataclasses.replace(synthetic.ACTED_A, expressiveness=0.0))
  cues = _mean_cues(flat, 'spk01')
  assert abs(12 * np.log2(cues['angry'][0] / cues['sad'][0])) < 1.5
  assert abs(cues['angry'][1] - cues['sad'][1]) < 3
  acted = _mean_cues(corpora[synthetic.ACTED_A.name], 'spk01')
  assert acted['angry'][1] - acted['sad'][1] > 10


def test_channels_differ(corpora):
  def band_fraction(name, lo, hi):
    corpus = corpora[name]
    out = []
    for utt in corpus.utterances[::len(corpus.utterances) // 8]:
      wav = corpus.read_audio(utt).astype(np.float64)
      p = np.abs(np.fft.rfft(wav - wav.mean())) ** 2
      f = np.fft.rfftfreq(wav.size, 1 / SR)
      out.append(p[(f >= lo) & (f < hi)].sum() / p.sum())
    return np.median(out)

  # The telephone corpus is band-limited to 300-3400 Hz.
  phone = synthetic.PHONE.name
  assert band_fraction(phone, 4000, SR / 2) < 1e-4
  assert band_fraction(phone, 0, 200) < 1e-3
  assert band_fraction(synthetic.ACTED_A.name, 4000, SR / 2) > 1e-3
  # The natural corpus has rumble and mains hum below 100 Hz.
  assert (band_fraction(synthetic.NATURAL.name, 0, 100)
          > 10 * band_fraction(synthetic.ACTED_A.name, 0, 100))
