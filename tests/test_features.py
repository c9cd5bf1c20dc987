"""Feature sets: shapes, values, the Kaldi fbank, configs and segments."""

import math

import numpy as np
import pytest

from jaxser.data import features as features_lib

SR = 16000
FRAMES = 300


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
  """A 220 Hz tone in noise, the shape of voiced speech in a quiet room."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * SR)) / SR
  wav = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
  return wav.astype(np.float32)


WAV = _signal(1.2)

# Shape and valid length of every set on 1.2 s (19200 samples) with 300 frames.
EXPECTED = {
    'mfcc40': ((FRAMES, 40), 121),  # librosa centres: 1 + 19200 // 160.
    'logmel80': ((FRAMES, 80), 121),
    'logmel128': ((FRAMES, 128), 121),
    'fbank128': ((FRAMES, 128), 118),  # Kaldi snip_edges: 1 + 18800 // 160.
    # 1 + 18800 // 124 = 152 frames; 1 + (152 - 32) // 16 = 8 segments.
    'spec_segments': ((23, 32, 129), 8),
    'emobase': ((988,), 1),
    'is10': ((1582,), 1),
    'egemaps': ((88,), 1),
    'waveform': ((48000,), 19200),  # Its own length (`samples`), not FRAMES.
}


def test_every_set_is_tested():
  # The one text set, `tokens`, is tested in test_text.py; `ssl` (a
  # checkpoint's hidden states) in test_ssl_features.py.
  assert sorted([*EXPECTED, 'tokens', 'ssl']) == features_lib.available()
  assert all(features_lib.get(name).reads == 'audio' for name in EXPECTED)
  assert features_lib.get('tokens').reads == 'text'


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_shape_length_and_finite(name):
  x, n = features_lib.FeatureConfig.create(name, FRAMES).compute(WAV)
  shape, length = EXPECTED[name]
  assert x.shape == shape
  assert x.dtype == np.float32
  assert n == length
  assert np.all(np.isfinite(x))
  if len(shape) > 1:
    assert np.all(x[n:] == 0)  # Padding.
    assert np.any(x[n - 1] != 0)


def kaldi_fbank_reference(wav, num_bins=128, low_freq=20.0, coeff=0.97):
  """Kaldi's compute-fbank-feats for AST's options, statement by statement.

  Transcribes feature-window.cc (ExtractWindow, ProcessWindow, Preemphasize,
  FeatureWindowFunction) and mel-computations.cc (MelBanks, Compute) in
  scalar loops, deliberately unlike the vectorised code under test.
  """
  frame_length, frame_shift, padded = 400, 160, 512
  mel_scale = lambda f: 1127.0 * math.log(1.0 + f / 700.0)
  # MelBanks::MelBanks, high_freq = 0 meaning the Nyquist frequency.
  fft_bin_width = SR / padded
  mel_low, mel_high = mel_scale(low_freq), mel_scale(SR / 2)
  delta = (mel_high - mel_low) / (num_bins + 1)
  banks = []
  for b in range(num_bins):
    left = mel_low + b * delta
    centre = mel_low + (b + 1) * delta
    right = mel_low + (b + 2) * delta
    weights = {}
    for i in range(padded // 2):
      mel = mel_scale(fft_bin_width * i)
      if left < mel < right:
        if mel <= centre:
          weights[i] = (mel - left) / (centre - left)
        else:
          weights[i] = (right - mel) / (right - centre)
    banks.append(weights)
  a = 2 * math.pi / (frame_length - 1)
  window = [0.5 - 0.5 * math.cos(a * i) for i in range(frame_length)]
  eps = float(np.finfo(np.float32).eps)
  num_frames = 1 + (len(wav) - frame_length) // frame_shift
  out = np.zeros((num_frames, num_bins))
  for f in range(num_frames):
    w = [float(v) for v in wav[f * frame_shift:f * frame_shift + frame_length]]
    mean = sum(w) / frame_length
    w = [v - mean for v in w]
    for i in range(frame_length - 1, 0, -1):
      w[i] -= coeff * w[i - 1]
    w[0] -= coeff * w[0]
    w = [v * h for v, h in zip(w, window)] + [0.0] * (padded - frame_length)
    spectrum = np.fft.fft(w)
    power = [abs(spectrum[k]) ** 2 for k in range(padded // 2 + 1)]
    for b, weights in enumerate(banks):
      energy = sum(power[i] * wt for i, wt in weights.items())
      out[f, b] = math.log(max(energy, eps))
  return out


def test_fbank128_matches_kaldi_reference():
  ref = kaldi_fbank_reference(WAV)
  # norm_std = 0.5 makes (x - mean) / (2 std) the identity.
  raw, n = features_lib.FeatureConfig.create(
      'fbank128', None, norm_mean=0.0, norm_std=0.5).compute(WAV)
  assert raw.shape == ref.shape == (n, 128)
  np.testing.assert_allclose(raw, ref, atol=1e-4, rtol=0)
  # With AST's AudioSet statistics (the defaults).
  x, _ = features_lib.FeatureConfig.create('fbank128', None).compute(WAV)
  np.testing.assert_allclose(x, (ref + 4.2677393) / (2 * 4.5689974),
                             atol=1e-4, rtol=0)


def test_key_follows_every_parameter():
  base = features_lib.FeatureConfig.create('logmel80', FRAMES)
  assert base.key() == features_lib.FeatureConfig.create(
      'logmel80', FRAMES).key()
  assert base.key().startswith('logmel80_')
  for param, value in (('n_mels', 64), ('hop_ms', 12.5), ('window', 'hann'),
                       ('log_offset', 1e-5)):
    assert features_lib.FeatureConfig.create(
        'logmel80', FRAMES, **{param: value}).key() != base.key(), param
  assert features_lib.FeatureConfig.create('logmel80', 400).key() != base.key()
  assert (features_lib.FeatureConfig.create('is10').key()
          != features_lib.FeatureConfig.create('emobase').key())


def test_unknown_parameter_names_the_set():
  with pytest.raises(ValueError, match='spec_segments'):
    features_lib.FeatureConfig.create('spec_segments', n_fft=512)


def test_fix_length_pads_and_centre_crops():
  x = np.arange(10, dtype=np.float32).reshape(5, 2) + 1
  padded, n = features_lib.fix_length(x, 8)
  assert n == 5 and padded.shape == (8, 2)
  np.testing.assert_array_equal(padded[:5], x)
  assert not padded[5:].any()
  cropped, n = features_lib.fix_length(x, 3)
  assert n == 3
  np.testing.assert_array_equal(cropped, x[1:4])
  same, n = features_lib.fix_length(x, None)
  assert n == 5 and same is x


def test_utterance_level_sets_ignore_frames():
  assert features_lib.FeatureConfig.create('egemaps', FRAMES).frames is None


@pytest.mark.parametrize('seconds,segments', [
    (0.15, 1),   # Shorter than one segment: padded to one.
    (1.2, 8),
    (3.0, 23),   # The default count covers 3 s exactly.
    (6.0, 23),   # 1 + (771 - 32) // 16 = 47, centre-cropped to 23.
])
def test_spec_segments_count(seconds, segments):
  cfg = features_lib.FeatureConfig.create('spec_segments', FRAMES)
  assert cfg.frames == 23  # n_segments, not the data config's frames.
  x, n = cfg.compute(_signal(seconds))
  assert x.shape == (23, 32, 129) and n == segments
  assert not x[n:].any()


def test_spec_segments_count_is_a_parameter():
  cfg = features_lib.FeatureConfig.create('spec_segments', n_segments=5)
  x, n = cfg.compute(WAV)
  assert x.shape == (5, 32, 129) and n == 5


def test_spec_segments_framing():
  x, n = features_lib.FeatureConfig.create('spec_segments').compute(WAV)
  # Segments overlap by half: 16 frames shared with the next segment.
  np.testing.assert_array_equal(x[0, 16:], x[1, :16])
  # Bin k is the full 400-sample Hamming-windowed frame's spectrum at
  # k * 62.5 Hz (frame 2 of segment 1 starts at sample (16 + 2) * 124).
  start = 18 * 124
  frame = WAV[start:start + 400].astype(np.float64)
  frame *= 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(400) / 400)
  for k in (0, 14, 128):
    dft = np.sum(frame * np.exp(-2j * np.pi * k * np.arange(400) / 256))
    np.testing.assert_allclose(x[1, 2, k], np.log(abs(dft) ** 2 + 1e-6),
                               rtol=1e-5)
  del n


def test_segment_mask():
  mask = features_lib.segment_mask(np.array([0, 2, 4]), 4)
  np.testing.assert_array_equal(mask, [[0, 0, 0, 0], [1, 1, 0, 0],
                                       [1, 1, 1, 1]])
  assert mask.dtype == bool
