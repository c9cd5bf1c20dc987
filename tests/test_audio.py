"""Robust audio input: every kind of damaged file, containers, resampling."""

import os

import numpy as np
import pytest
import soundfile as sf

from jaxser.data import audio
from jaxser.data import cache as cache_lib
from jaxser.data import corpus as corpus_lib
from jaxser.data.features import FeatureConfig


def noise(seconds, rate=16000, channels=1, seed=0):
  rng = np.random.default_rng(seed)
  x = 0.1 * rng.standard_normal((int(seconds * rate), channels))
  return x.astype(np.float32).squeeze()


def write(path, wav, rate=16000, **kwargs):
  sf.write(str(path), wav, rate, **kwargs)
  return str(path)


def cut(path, fraction):
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:int(len(data) * fraction)])
  return path


def reason(path):
  with pytest.raises(audio.AudioError) as e:
    audio.check(audio.load(path))
  return str(e.value)


def test_good_wav(tmp_path):
  x = noise(0.5)
  wav = audio.load(write(tmp_path / 'a.wav', x, subtype='FLOAT'))
  audio.check(wav)
  assert wav.dtype == np.float32 and wav.shape == (8000,)
  np.testing.assert_allclose(wav, x)


def test_stereo_44k_is_resampled_to_16k_mono(tmp_path):
  left, right = noise(0.5, 44100, seed=1), noise(0.5, 44100, seed=2)
  path = write(tmp_path / 's.wav', np.stack([left, right], 1), 44100,
               subtype='FLOAT')
  wav = audio.load(path)
  assert wav.shape == (8000,) and wav.dtype == np.float32
  np.testing.assert_allclose(wav, audio.resample((left + right) / 2, 44100),
                             atol=1e-6)


@pytest.mark.parametrize('rate', [8000, 22050, 48000])
def test_any_rate(tmp_path, rate):
  wav = audio.load(write(tmp_path / 'r.wav', noise(0.3, rate), rate))
  assert wav.shape == (4800,)


@pytest.mark.parametrize('fmt', ['AIFF', 'FLAC', 'OGG'])
def test_container_named_wav_is_read_by_content(tmp_path, fmt):
  wav = audio.load(write(tmp_path / 'lies.wav', noise(0.3), format=fmt))
  audio.check(wav)
  assert wav.shape == (4800,)


def test_empty_file(tmp_path):
  (tmp_path / 'e.wav').write_bytes(b'')
  assert reason(str(tmp_path / 'e.wav')) == 'empty file (0 bytes)'


def test_missing_file(tmp_path):
  assert reason(str(tmp_path / 'nope.wav')).startswith('missing')


def test_header_only(tmp_path):
  path = write(tmp_path / 'h.wav', np.zeros(0, np.float32))
  assert reason(path) == 'no audio samples'


def test_garbage(tmp_path):
  (tmp_path / 'g.wav').write_bytes(os.urandom(4000))
  assert reason(str(tmp_path / 'g.wav')).startswith('unreadable')


def test_cut_inside_header(tmp_path):
  path = cut(write(tmp_path / 'c.wav', noise(0.5)), 0.002)
  assert reason(path).startswith('unreadable')


def test_truncated_wav_is_skipped(tmp_path):
  path = cut(write(tmp_path / 't.wav', noise(1.0)), 0.5)
  assert reason(path).startswith('truncated: 0.50 s of the 1.00 s')


def test_slightly_truncated_wav_keeps_what_is_there(tmp_path):
  path = cut(write(tmp_path / 't.wav', noise(1.0)), 0.95)
  wav = audio.load(path)
  audio.check(wav)
  assert 14000 < wav.size < 16000


def test_truncated_flac_is_skipped(tmp_path):
  path = cut(write(tmp_path / 't.flac', noise(4.0), format='FLAC'), 0.5)
  assert reason(path).startswith('truncated')


def test_all_silent(tmp_path):
  path = write(tmp_path / 'z.wav', np.zeros(16000, np.float32))
  assert reason(path) == 'all silent'


def test_nan_samples(tmp_path):
  x = noise(0.5)
  x[100:200] = np.nan
  path = write(tmp_path / 'n.wav', x, subtype='FLOAT')
  assert reason(path) == 'non-finite samples'


def test_too_short(tmp_path):
  assert reason(write(tmp_path / 's.wav', noise(0.05))).startswith('too short')


def test_long_file_is_capped(tmp_path):
  path = write(tmp_path / 'l.flac', noise(12.0, 8000), 8000, format='FLAC')
  assert audio.load(path, max_seconds=2.5).shape == (40000,)
  assert audio.load(path, max_seconds=None).shape == (192000,)


def _corpus(root):
  return corpus_lib.load('folder', str(root))


def test_cache_skips_bad_files_with_reasons(tmp_path):
  root = tmp_path / 'data'
  root.mkdir()
  for i in range(3):
    write(root / f'good{i}.wav', noise(0.3, seed=i))
  write(root / 'silent.wav', np.zeros(8000, np.float32))
  (root / 'empty.wav').write_bytes(b'')
  write(root / 'short.wav', noise(0.02))
  cached = cache_lib.build(_corpus(root), FeatureConfig.create('mfcc40', 20),
                           str(tmp_path / 'cache'))
  names = [cached.corpus.utterances[i].utt_id for i in cached.usable]
  assert names == ['good0.wav', 'good1.wav', 'good2.wav']
  skipped = dict(cached.skipped)
  assert skipped['silent.wav'] == 'all silent'
  assert skipped['empty.wav'] == 'empty file (0 bytes)'
  assert skipped['short.wav'].startswith('too short')
  assert cached.feature_shape == (20, 40)


def test_cache_of_only_bad_files_names_the_folder(tmp_path):
  root = tmp_path / 'all_bad'
  root.mkdir()
  write(root / 'silent.wav', np.zeros(8000, np.float32))
  (root / 'garbage.wav').write_bytes(b'not audio at all')
  with pytest.raises(ValueError, match=f'{root}.*none of its 2 files'):
    cache_lib.build(_corpus(root), FeatureConfig.create('mfcc40', 20),
                    str(tmp_path / 'cache'))
