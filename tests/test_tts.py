"""GST-Tacotron 2 pieces (jaxser.tts): attention against NumPy, losses,
schedule, stop handling, Griffin-Lim, text, corpus and reference sets. The
whole model's train/synthesis path is tests/test_tts_e2e.py (slow)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser.tts import audio as audio_lib
from jaxser.tts import losses as L
from jaxser.tts import tacotron
from jaxser.tts import text as text_lib


def _softmax(x, axis=-1):
  e = np.exp(x - x.max(axis, keepdims=True))
  return e / e.sum(axis, keepdims=True)


def _conv_same(x, kernel):
  """(B, N, Cin) * (K, Cin, Cout) cross-correlation, zero 'SAME' padding."""
  k = kernel.shape[0]
  pad = np.pad(x, ((0, 0), (k // 2, k - 1 - k // 2), (0, 0)))
  n = x.shape[1]
  return np.stack([np.einsum('bkc,kco->bo', pad[:, j:j + k], kernel)
                   for j in range(n)], 1)


def test_location_sensitive_attention_matches_numpy():
  att = tacotron.LocationSensitiveAttention(dim=6, filters=3, kernel=5)
  rng = np.random.default_rng(0)
  b, n, dq, dm = 2, 7, 5, 4
  query = rng.normal(size=(b, dq)).astype(np.float32)
  memory = rng.normal(size=(b, n, dm)).astype(np.float32)
  processed = rng.normal(size=(b, n, 6)).astype(np.float32)
  prev = _softmax(rng.normal(size=(b, n))).astype(np.float32)
  cum = (prev + _softmax(rng.normal(size=(b, n)))).astype(np.float32)
  mask = np.arange(n)[None] < np.array([[7], [5]])
  args = (query, processed, memory, mask, prev, cum)
  v = att.init(jax.random.PRNGKey(0), *args, 1.0)
  p = jax.tree.map(np.asarray, v['params'])
  f = _conv_same(np.stack([prev, cum], -1), p['location_conv']['kernel'])
  loc = f @ p['location_layer']['kernel']
  e = np.tanh((query @ p['query_layer']['kernel'])[:, None] + processed
              + loc) @ p['v']['kernel'][:, 0] + p['v']['bias'][0]
  for temperature in (1.0, 2.0):
    a = _softmax(np.where(mask, e / temperature, -1e9)) * mask
    context, got = att.apply(v, *args, temperature)
    np.testing.assert_allclose(got, a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(context, np.einsum('bn,bnd->bd', a, memory),
                               rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(got)[1, 5:] == 0)  # Padding gets no weight.
  # A higher temperature flattens the alignment.
  a1 = att.apply(v, *args, 1.0)[1]
  a2 = att.apply(v, *args, 2.0)[1]
  assert np.asarray(a2).max() < np.asarray(a1).max()


def test_gst_attention_matches_numpy():
  cfg = tacotron.ModelConfig(num_tokens=6, token_dim=8, token_heads=2)
  gst = tacotron.StyleTokens(cfg)
  ref = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
  v = gst.init(jax.random.PRNGKey(0), ref)
  p = jax.tree.map(np.asarray, v['params'])
  g = np.tanh(p['tokens'])                                    # (T, 4)
  q = (ref @ p['query']['kernel']).reshape(3, 2, 4)
  k = (g @ p['key']['kernel']).reshape(6, 2, 4)
  val = (g @ p['value']['kernel']).reshape(6, 2, 4)
  w = _softmax(np.einsum('bhd,thd->bht', q, k) / 2.0)         # sqrt(4)
  style = np.einsum('bht,thd->bhd', w, val).reshape(3, 8)
  got_w, got_style = gst.apply(v, ref)
  np.testing.assert_allclose(got_w, w, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_style, style, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(got_w).sum(-1), 1.0, rtol=1e-6)
  # Given weights give the same embedding (synthesis from averaged weights).
  np.testing.assert_allclose(gst.apply(v, w, method='embed'), style,
                             rtol=1e-5, atol=1e-6)


def test_token_halves_for_arousal_and_valence():
  w = np.arange(2 * 3 * 6, dtype=np.float32).reshape(2, 3, 6)
  a, v = tacotron.split_halves(jnp.asarray(w))
  np.testing.assert_array_equal(a, w[:, :, :3].reshape(2, 9))
  np.testing.assert_array_equal(v, w[:, :, 3:].reshape(2, 9))
  both = tacotron.combine_halves(jnp.asarray(w[0]), jnp.asarray(w[1]))
  np.testing.assert_array_equal(both[:, :3], w[0][:, :3])
  np.testing.assert_array_equal(both[:, 3:], w[1][:, 3:])


def test_noam_schedule():
  s = L.noam_schedule(2e-3, 4000, -0.5)
  counts = np.array([0, 999, 3999, 7999, 15999, 149999])
  got = np.array([float(s(c)) for c in counts])
  steps = counts + 1.0
  want = 2e-3 * 4000 ** 0.5 * np.minimum(steps * 4000 ** -1.5, steps ** -0.5)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert got[2] == pytest.approx(2e-3, rel=1e-5)       # Peak at warm-up.
  assert got[1] == pytest.approx(2e-3 / 4, rel=1e-4)   # Linear rise.
  assert got[4] == pytest.approx(2e-3 / 2, rel=1e-4)   # (s / w)^-0.5.
  assert np.all(np.diff(got[2:]) < 0)


def test_masked_l1_ignores_padding():
  rng = np.random.default_rng(2)
  p, y = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
  lengths = np.array([5, 2])
  want = (np.abs(p[0] - y[0]).sum() + np.abs(p[1, :2] - y[1, :2]).sum()) / (
      3 * 7)
  assert float(L.masked_l1(p, y, lengths)) == pytest.approx(want, rel=1e-5)
  p2 = p.copy()
  p2[1, 2:] += 100.0  # Padding changes nothing.
  assert float(L.masked_l1(p2, y, lengths)) == pytest.approx(want, rel=1e-5)


def test_stop_targets_and_loss():
  y = np.asarray(L.stop_targets(jnp.array([6, 5, 1]), 4, 2))
  np.testing.assert_array_equal(y, [[0, 0, 1, 1], [0, 0, 1, 1],
                                    [1, 1, 1, 1]])
  z = np.random.default_rng(3).normal(size=(3, 4))
  p = 1 / (1 + np.exp(-z))
  want = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
  assert float(L.stop_loss(jnp.asarray(z), jnp.array([6, 5, 1]), 2)) == (
      pytest.approx(want, rel=1e-5))


def test_stop_length_and_maximum_decoder_length():
  logit = lambda p: np.log(p / (1 - p))
  z = logit(np.array([[0.1, 0.2, 0.9, 0.1, 0.95],
                      [0.1, 0.1, 0.1, 0.1, 0.1],
                      [0.6, 0.1, 0.1, 0.1, 0.1]]))
  # Up to and including the first step over the threshold, r frames each;
  # no stop: the maximum decoder length.
  np.testing.assert_array_equal(tacotron.stop_length(z, 0.5, 3), [9, 15, 3])
  np.testing.assert_array_equal(tacotron.stop_length(z, 0.92, 1), [5, 5, 5])


def test_emotion_loss_against_soft_labels():
  rng = np.random.default_rng(4)
  z = rng.normal(size=(4, 4))
  q = _softmax(rng.normal(size=(4, 4)))
  m = np.array([1.0, 1.0, 0.0, 1.0])
  logp = np.log(_softmax(z))
  want = -(q * logp).sum(1)[m > 0].mean()
  assert float(L.emotion_loss(z, q, m)) == pytest.approx(want, rel=1e-5)
  # Minimised where the prediction equals the soft label.
  assert float(L.emotion_loss(np.log(q), q, m)) < float(
      L.emotion_loss(z, q, m))
  assert float(L.emotion_loss(z, q, np.zeros(4))) == 0.0


def test_spectrograms_and_griffin_lim_round_trip():
  p = audio_lib.AudioParams(n_fft=512, win_ms=32.0, hop_ms=8.0, n_mels=40,
                            griffin_lim_iters=60)
  t = np.arange(16000) / 16000
  # Quiet enough that no bin passes the 0 dB ceiling of the normalisation.
  wave = (0.03 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(
      2 * np.pi * 3 * t)) + 0.02 * np.sin(2 * np.pi * 660 * t)).astype(
          np.float32)
  mel, lin = audio_lib.spectrograms(wave, p)
  assert mel.shape == (p.num_frames(16000), 40)
  assert lin.shape == (p.num_frames(16000), 257)
  assert 0.0 <= lin.min() and 0.5 < lin.max() < 1.0
  np.testing.assert_allclose(
      audio_lib.normalize(audio_lib.denormalize(lin, p), p), lin, atol=1e-5)
  out = audio_lib.griffin_lim(lin, p)
  assert abs(len(out) - len(wave)) <= p.hop
  mag = audio_lib.denormalize(lin, p) ** p.power  # GL's target.
  got = audio_lib.stft_magnitude(out, p)[:len(mag)]
  scale = np.sum(got * mag) / np.sum(got * got)
  convergence = np.linalg.norm(scale * got - mag) / np.linalg.norm(mag)
  assert convergence < 0.3, convergence  # Random phase-free: ~1.
  # The same frequencies, not just the same energy.
  bins = np.fft.rfftfreq(512, 1 / 16000)
  assert abs(bins[got.mean(0).argmax()] - 220) < 40


def test_text_encoding_and_errors():
  ids = text_lib.encode('  Hello,   World! ')
  assert ids[-1] == text_lib.EOS and text_lib.decode(ids) == 'hello, world!'
  with pytest.raises(ValueError, match=r"--text: character\(s\) '3é'"):
    text_lib.encode('Room 3 café', '--text')
  with pytest.raises(ValueError, match='empty'):
    text_lib.encode('   ')


def test_ljspeech_corpus(tmp_path):
  import soundfile as sf
  from jaxser.data import corpus as corpus_lib
  from jaxser.data.corpora import ljspeech
  (tmp_path / 'wavs').mkdir()
  for k in ('LJ001-0001', 'LJ001-0002', 'extra'):
    sf.write(tmp_path / 'wavs' / f'{k}.wav', np.zeros(1600), 16000)
  (tmp_path / 'metadata.csv').write_text(
      'LJ001-0001|Printing, in 1 sense|Printing, in one sense\n'
      'LJ001-0002|in being comparatively modern.|\n'
      'LJ001-0003|missing audio|missing audio\n')
  c = ljspeech.load(str(tmp_path))
  assert [u.text for u in c.utterances] == [
      'Printing, in one sense', 'in being comparatively modern.']
  assert sorted(r for _, r in c.unrecognised) == [
      'listed in metadata.csv but missing', 'not listed in metadata.csv']
  with pytest.raises(corpus_lib.CorpusError, match='no metadata.csv'):
    ljspeech.load(str(tmp_path / 'wavs'))


def _label_dir(path, paths, probs, classes, k=2):
  """A jaxser.label output folder: soft_labels.csv and top_<k>_<class>."""
  from jaxser import io as io_lib
  os.makedirs(path, exist_ok=True)
  pred = probs.argmax(1)
  io_lib.write_csv(os.path.join(path, 'soft_labels.csv'),
                   ['utt_id', 'path', 'predicted', 'confidence'] +
                   [f'p_{c}' for c in classes],
                   ([p, p, classes[j], q[j]] + list(q)
                    for p, q, j in zip(paths, probs, pred)))
  for j, c in enumerate(classes):
    rows = np.flatnonzero(pred == j)
    rows = rows[np.argsort(-probs[rows, j], kind='stable')][:k]
    io_lib.write_csv(os.path.join(path, f'top_{k}_{c}.csv'),
                     ['rank', 'utt_id', 'path', 'posterior'],
                     ([r + 1, paths[i], paths[i], probs[i, j]]
                      for r, i in enumerate(rows)))


def test_reference_sets_and_token_weight_averaging(tmp_path):
  from jaxser import synthesize
  paths = [str(tmp_path / f'u{i}.wav') for i in range(6)]
  probs = np.array([[.7, .1, .1, .1], [.1, .8, .05, .05], [.9, .05, .03, .02],
                    [.6, .2, .1, .1], [.1, .1, .7, .1], [.2, .5, .2, .1]])
  classes = ('neutral', 'happy', 'sad', 'angry')
  _label_dir(str(tmp_path / 'labels'), paths, probs, classes, k=2)
  real = [os.path.realpath(p) for p in paths]
  top = synthesize.reference_rows(str(tmp_path / 'labels'), 'neutral', real,
                                  top_k=2)
  np.testing.assert_array_equal(top, [2, 0])   # The 2 surest, in order.
  full = synthesize.reference_rows(str(tmp_path / 'labels'), 'neutral', real,
                                   full=True)
  np.testing.assert_array_equal(sorted(full), [0, 2, 3])
  w = np.random.default_rng(5).dirichlet(np.ones(5), size=(6, 3))
  np.testing.assert_allclose(synthesize.average_weights(w, top),
                             (w[2] + w[0]) / 2, rtol=1e-6)
  with pytest.raises(ValueError, match='top_50_neutral.csv'):
    synthesize.reference_rows(str(tmp_path / 'labels'), 'neutral', real, 50)
  with pytest.raises(ValueError, match='no utterance'):
    synthesize.reference_rows(str(tmp_path / 'labels'), 'neutral',
                              ['/elsewhere.wav'], top_k=2)


def test_corpus_without_text_is_an_error(tmp_path):
  import soundfile as sf
  from jaxser import config as config_lib
  from jaxser.tts import data as tts_data
  (tmp_path / 'audio').mkdir()
  sf.write(tmp_path / 'audio' / 'a.wav', np.zeros(1600), 16000)
  cfg = config_lib.load(os.path.join(os.path.dirname(__file__), '..',
                                     'configs', 'gst_tacotron.py'))
  cfg.data.target = 'folder'
  cfg.data.paths.folder = str(tmp_path / 'audio')
  with pytest.raises(ValueError, match="corpus 'folder' has no transcripts"):
    tts_data.load(cfg)


def test_tts_data_filters_and_soft_labels(tmp_path):
  """Filters (length, characters, vocabulary), padding and the soft labels
  joined by path."""
  import soundfile as sf
  from jaxser import config as config_lib
  from jaxser.tts import data as tts_data
  lj = tmp_path / 'lj'
  (lj / 'wavs').mkdir(parents=True)
  texts = {'a': 'short one.', 'b': 'a bit longer, this one.',
           'c': 'too long ' * 3, 'd': 'digits 42', 'e': 'long audio.'}
  secs = {'a': 0.5, 'b': 0.8, 'c': 0.5, 'd': 0.5, 'e': 3.0}
  t = np.arange(16000 * 3) / 16000
  for k, s in secs.items():
    sf.write(lj / 'wavs' / f'{k}.wav',
             0.1 * np.sin(2 * np.pi * 200 * t[:int(16000 * s)]), 16000)
  (lj / 'metadata.csv').write_text(
      ''.join(f'{k}|{v}|{v}\n' for k, v in texts.items()))
  paths = [str(lj / 'wavs' / f'{k}.wav') for k in texts]
  probs = np.eye(4)[[1, 2, 0, 0, 3]] * 0.6 + 0.1
  _label_dir(str(tmp_path / 'labels'), paths[1:], probs[1:],
             ('neutral', 'happy', 'sad', 'angry'))
  cfg = config_lib.load(os.path.join(os.path.dirname(__file__), '..',
                                     'configs', 'gst_tacotron.py'))
  cfg.data.paths.ljspeech = str(lj)
  cfg.data.cache_dir = str(tmp_path / 'cache')
  cfg.tts.labels = str(tmp_path / 'labels')
  cfg.tts.max_chars = 25
  cfg.tts.max_seconds = 2.0
  cfg.tts.model.outputs_per_step = 3
  d = tts_data.load(cfg)
  assert [os.path.basename(p) for p in d.paths] == ['a.wav', 'b.wav']
  assert d.skipped == {'longer than 25 characters': 1,
                       'characters outside the vocabulary': 1,
                       'longer than 2.0 s': 1}
  a = d.arrays
  hop = 200
  np.testing.assert_array_equal(a['frames'], [1 + 8000 // hop,
                                              1 + 12800 // hop])
  assert a['mel'].shape == (2, 66, 80) and a['linear'].shape[-1] == 513
  assert np.all(a['mel'][0, 41:] == 0) and a['mel'][0, :41].max() > 0.5
  assert text_lib.decode(a['text'][1]) == texts['b']
  np.testing.assert_array_equal(a['text_length'], [11, 24])  # + EOS
  # 'a' is not in the label run: zero mask; 'b' carries its soft label.
  np.testing.assert_array_equal(a['emotion_mask'], [0, 1])
  np.testing.assert_allclose(a['emotion'][1], [0.1, 0.1, 0.7, 0.1],
                             rtol=1e-5)
  again = tts_data.load(cfg)  # From the spectrogram cache.
  np.testing.assert_array_equal(again.arrays['mel'], a['mel'])
  parts = tts_data.split(d, 0.5, 0)
  assert len(parts['train']['frames']) == len(parts['val']['frames']) == 1


def test_synthesize_cli_one_line_errors(tmp_path):
  import subprocess
  import sys
  def run(*args):
    p = subprocess.run([sys.executable, '-m', 'jaxser.synthesize', *args],
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stderr.strip().splitlines()
  rc, err = run(f'--workdir={tmp_path}', '--text=Caf\u00e9 au lait',
                '--emotion=happy', f'--out={tmp_path}/x.wav')
  assert rc == 2 and len(err) == 1 and 'not in the vocabulary' in err[0]
  # Not a run (in-process: the same ValueError main prints).
  import types
  from jaxser import synthesize
  flags = types.SimpleNamespace(
      workdir=str(tmp_path), text='hello', text_file=None, tsne='',
      out=str(tmp_path / 'x.wav'))
  with pytest.raises(ValueError, match='config.json'):
    synthesize.run(flags)
