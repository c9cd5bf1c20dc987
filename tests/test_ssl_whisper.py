"""Whisper's encoder and log-mel front end in Flax against Hugging Face: the
tiny checkpoint and extractor outputs in tests/golden/whisper_tiny/ (made by
tests/make_whisper_goldens.py with torch and transformers, neither needed
here), pooling over valid frames, `jaxser.embed`, and the checkpoint
errors."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import safetensors.numpy

from jaxser import embed as embed_lib
from jaxser.models import whisper

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden',
                      'whisper_tiny')
TOL = 1e-4
# The tiny checkpoint: max_source_positions 50, a 1 s window of 100 frames.
TINY_SAMPLES = 16000


@pytest.fixture(scope='module')
def golden():
  return dict(np.load(os.path.join(GOLDEN, 'golden.npz')))


@pytest.fixture(scope='module')
def tiny():
  return (whisper.from_config({'checkpoint': GOLDEN}),
          whisper.load_params(GOLDEN))


def _waveforms(g):
  return g['waveforms'].astype(np.float32), g['lengths']


def _copy(dst, skip=()):
  os.makedirs(dst, exist_ok=True)
  for name in os.listdir(GOLDEN):
    if name not in skip:
      shutil.copy(os.path.join(GOLDEN, name), dst)
  return str(dst)


def _edit_json(directory, name, **changes):
  path = os.path.join(directory, name)
  with open(path) as f:
    config = json.load(f)
  config.update(changes)
  with open(path, 'w') as f:
    json.dump(config, f)


def _one_line_error(excinfo):
  message = str(excinfo.value)
  assert '\n' not in message, message
  return message


def long_waveform() -> np.ndarray:
  """31 s of a chirp plus a tone (the formula of make_whisper_goldens.py)."""
  t = np.arange(31 * 16000, dtype=np.float64) / 16000
  x = 0.3 * np.sin(2 * np.pi * (120.0 * t + 40.0 * t ** 2))
  x += 0.1 * np.sin(2 * np.pi * 1234.5 * t) * (1 + np.cos(2 * np.pi * 0.3 * t))
  return x.astype(np.float32)


# --- log-mel front end --------------------------------------------------------


def test_mel_filters_are_the_extractors(golden):
  for n in (80, 128):
    np.testing.assert_array_equal(whisper.mel_filters(n),
                                  golden[f'mel_filters_{n}'])


def test_log_mel_matches_the_extractor(golden):
  x, lengths = _waveforms(golden)
  # Padding past each clip's length is zeroed first: garbage changes nothing.
  noisy = x.copy()
  noisy[0, lengths[0]:] = 0.5
  tiny = jax.jit(whisper.LogMel(80, n_samples=TINY_SAMPLES).__call__)
  features, mel_lengths = tiny(jnp.asarray(noisy), jnp.asarray(lengths))
  assert features.shape == (2, 80, 100)
  # The extractor's torch path (float32 STFT), and its NumPy path (float64).
  np.testing.assert_allclose(features, golden['input_features'], atol=TOL)
  np.testing.assert_allclose(features[:1], golden['input_features_np'],
                             atol=1e-5)
  np.testing.assert_array_equal(mel_lengths,
                                golden['attention_mask'].sum(axis=1))

  # Whisper's 30 s window: 80 bins (base) and 128 (large-v3).
  for n, rows, name in ((80, 2, 'features_30s'), (128, 1, 'features_128')):
    features, mel_lengths = jax.jit(whisper.LogMel(n).__call__)(
        jnp.asarray(x[:rows]), jnp.asarray(lengths[:rows]))
    assert features.shape == (rows, n, 3000)
    head = golden[f'{name}_head']
    np.testing.assert_allclose(features[..., :head.shape[-1]], head,
                               atol=TOL)
    np.testing.assert_allclose(
        features[..., head.shape[-1]:],
        np.broadcast_to(golden[f'{name}_last'][..., None],
                        (rows, n, 3000 - head.shape[-1])), atol=TOL)
    np.testing.assert_array_equal(mel_lengths, -(-lengths[:rows] // 160))

  # 31 s is truncated to the window (its end reflects the signal).
  features, mel_lengths = jax.jit(whisper.LogMel(80).__call__)(
      jnp.asarray(long_waveform()[None]))
  np.testing.assert_allclose(features[0, :, :40], golden['long_head'],
                             atol=TOL)
  np.testing.assert_allclose(features[0, :, -40:], golden['long_tail'],
                             atol=TOL)
  assert mel_lengths.tolist() == [3000]


# --- encoder parity -----------------------------------------------------------


def test_encoder_hidden_states_match_hf(tiny, golden):
  model, params = tiny
  out = jax.jit(model.apply)({'params': params},
                            jnp.asarray(golden['input_features']))
  assert out.hidden_states.shape == golden['hidden_states'].shape == (
      3, 2, 50, 32)
  np.testing.assert_allclose(out.hidden_states, golden['hidden_states'],
                             atol=TOL)
  # HF's last hidden state is after the final layer norm.
  np.testing.assert_array_equal(out.last_hidden_state, out.hidden_states[-1])
  assert float(out.mask.min()) == 1.0


def test_network_from_waveforms_against_hf(tiny, golden):
  """Waveforms in (the device's log-mel), checkpoint in 'encoder': the
  utterance embedding is the mean over the valid encoder frames of the
  (initially uniform) layer average of HF's hidden states."""
  x, lengths = _waveforms(golden)
  net = whisper.network_from_config({'checkpoint': GOLDEN})
  args = (jnp.asarray(x), jnp.asarray(lengths))
  shapes = jax.eval_shape(net.init, jax.random.key(0), *args)['params']
  params = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype),
                                  shapes)
  params = whisper.load_network_params(params, GOLDEN)
  out = jax.jit(net.apply)({'params': params}, *args)
  valid = -(-golden['attention_mask'].sum(axis=1) // 2)  # ceil(frames / 2)
  np.testing.assert_array_equal(out['frame_lengths'], valid)
  assert valid.tolist() == [21, 50]
  frames = golden['hidden_states'].mean(axis=0)
  mask = np.arange(50)[None, :] < valid[:, None]
  ref = (frames * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
  np.testing.assert_allclose(out['frames'], frames, atol=1e-3)
  np.testing.assert_allclose(out['embedding'], ref, atol=1e-3)
  # Precomputed features (as the extractor gives them) take the same path.
  feats = jax.jit(net.apply)(
      {'params': params}, jnp.asarray(golden['input_features']),
      jnp.asarray(golden['attention_mask'].sum(axis=1)))
  np.testing.assert_allclose(feats['embedding'], ref, atol=TOL)
  # A network of other sizes does not take the checkpoint.
  other = whisper.network_from_config({'layers': 2, 'hidden': 64, 'heads': 4,
                                       'max_source_positions': 50})
  shapes = jax.eval_shape(other.init, jax.random.key(0), *args)['params']
  with pytest.raises(ValueError, match='do not fit the module') as e:
    whisper.load_network_params(shapes, GOLDEN)
  _one_line_error(e)


# --- pooling, window, tiny random models --------------------------------------


def _random_params(module, args, scale=0.1):
  """Random float32 parameters drawn by NumPy (XLA compiles `init`'s random
  number generation slowly on CPU); positions the sinusoids."""
  shapes = jax.eval_shape(module.init, jax.random.key(0), *args)['params']
  rng = np.random.default_rng(0)

  def draw(path, s):
    if jax.tree_util.keystr(path).endswith("['embed_positions']"):
      return jnp.asarray(whisper.sinusoids(*s.shape))
    return jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def test_pooling_uses_valid_frames_only():
  """A 1 s and a 3 s clip in one batch give the embeddings each gives
  alone: each is padded to the 30 s window and pooled over its own frames."""
  net = whisper.network_from_config(
      {'layers': 1, 'hidden': 16, 'heads': 2, 'num_mel_bins': 16})
  rng = np.random.default_rng(3)
  one, three = (0.2 * rng.standard_normal(n).astype(np.float32)
                for n in (16000, 48000))
  batch = np.stack([np.pad(one, (0, 32000), constant_values=0.7), three])
  params = _random_params(net, (jnp.asarray(batch), jnp.array([16000, 48000])))
  params['pool']['layer_sum']['layer_weights'] = jnp.array([0.3, -0.2])
  run = jax.jit(net.apply)
  both = run({'params': params}, jnp.asarray(batch), jnp.array([16000, 48000]))
  assert both['frames'].shape == (2, 1500, 16)
  np.testing.assert_array_equal(both['frame_lengths'], [50, 150])
  for i, clip in enumerate((one, three)):
    alone = run({'params': params}, jnp.asarray(clip[None]),
                jnp.array([clip.size]))
    np.testing.assert_allclose(alone['embedding'][0], both['embedding'][i],
                               atol=1e-5)
  assert not np.allclose(both['embedding'][0], both['embedding'][1],
                         atol=1e-3)


def test_frozen_network_trains_only_the_layer_weights():
  net = whisper.network_from_config(
      {'layers': 1, 'hidden': 16, 'heads': 2, 'num_mel_bins': 8,
       'max_source_positions': 10}).clone(freeze=True)
  args = (jnp.asarray(np.random.default_rng(0).standard_normal(
      (2, 8, 20), np.float32)), jnp.array([20, 7]))
  params = _random_params(net, args)
  grads = jax.jit(jax.grad(lambda p: (net.apply(
      {'params': p}, *args)['embedding'] ** 2).sum()))(params)
  assert all(float(jnp.abs(g).max()) == 0.0
             for g in jax.tree_util.tree_leaves(grads['encoder']))
  assert float(jnp.abs(grads['pool']['layer_sum']['layer_weights']).max()) > 0


def test_shorter_inputs_without_pad_to_30s(tiny, golden):
  model, params = tiny
  short = model.clone(pad_to_30s=False)
  x, lengths = _waveforms(golden)

  @jax.jit
  def run(x, lengths):
    features, mel_lengths = short.log_mel()(x, lengths)
    return features, mel_lengths, short.apply({'params': params}, features,
                                              mel_lengths)

  # The noise alone (6450 samples): 40 mel frames, 20 encoder frames.
  features, mel_lengths, out = run(jnp.asarray(x[:1, :6450]),
                                   jnp.asarray(lengths[:1]))
  assert features.shape == (1, 80, 40) and mel_lengths.tolist() == [40]
  assert out.hidden_states.shape == (3, 1, 20, 32)
  assert np.isfinite(np.asarray(out.hidden_states)).all()
  # A batch longer than the window is cut to it, and then equals Whisper.
  features, _, out = run(jnp.asarray(x), jnp.asarray(lengths))
  assert features.shape == (2, 80, 100)
  np.testing.assert_allclose(out.hidden_states, golden['hidden_states'],
                             atol=TOL)
  shapes = lambda m, shape: jax.eval_shape(
      lambda f: m.apply({'params': params}, f), jnp.zeros(shape))
  with pytest.raises(ValueError, match='exactly 2 x max_source_positions = '
                     '100') as e:
    shapes(model, (1, 80, 40))
  _one_line_error(e)
  with pytest.raises(ValueError, match='1 to 2 x max_source_positions'):
    shapes(short, (1, 80, 120))


def test_tiny_random_model_trains_with_remat_and_bf16():
  cfg = ml_collections.ConfigDict(
      {'layers': 1, 'hidden': 32, 'heads': 4, 'num_mel_bins': 16,
       'max_source_positions': 25, 'dropout': 0.1})
  model = whisper.from_config(cfg)
  assert (model.layers, model.hidden, model.heads, model.mlp_dim,
          model.num_frames) == (1, 32, 4, 128, 50)
  args = (jnp.asarray(np.random.default_rng(0).standard_normal(
      (2, 16, 50), np.float32)), jnp.array([50, 17]))
  params = _random_params(model, args)
  cfg.dtype = 'bfloat16'
  model16 = whisper.from_config(cfg)
  shapes16 = jax.eval_shape(model16.init, jax.random.key(0), *args)['params']
  assert {a.dtype for a in jax.tree_util.tree_leaves(shapes16)} == {
      jnp.dtype(jnp.float32)}

  def grads(m, p):
    def loss(p):
      out = m.apply({'params': p}, *args, train=True,
                    rngs={'dropout': jax.random.key(3)})
      return (out.hidden_states.astype(jnp.float32) ** 2).mean()
    return jax.grad(loss)(p)

  @jax.jit
  def run(p):
    return (model.apply({'params': p}, *args), grads(model, p),
            grads(model.clone(remat=True), p),
            model16.apply({'params': p}, *args))

  out, g, g_remat, out16 = run(params)
  assert out.hidden_states.shape == (2, 2, 25, 32)
  np.testing.assert_array_equal(out.mask.sum(axis=1), [25, 9])
  assert all(np.isfinite(a).all() for a in jax.tree_util.tree_leaves(g))
  # The position table is frozen, as in HF.
  assert float(jnp.abs(g['embed_positions']).max()) == 0.0
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g, g_remat)
  assert out16.hidden_states.dtype == jnp.bfloat16
  err = np.abs(np.asarray(out16.last_hidden_state, np.float32)
               - np.asarray(out.last_hidden_state)).max()
  assert err < 0.15, err


def test_sinusoids_and_init():
  table = whisper.sinusoids(6, 8)
  np.testing.assert_array_equal(table[0], [0, 0, 0, 0, 1, 1, 1, 1])
  # Timescales 1 .. 10000 over the 4 channel pairs.
  np.testing.assert_allclose(table[5, :4],
                             np.sin(5 / 10000.0 ** (np.arange(4) / 3)),
                             rtol=1e-5)
  model = whisper.Whisper(hidden=8, layers=1, heads=2, mlp_dim=16,
                          num_mel_bins=4, max_source_positions=6)
  shapes = jax.eval_shape(lambda key: whisper.init_params(model, key),
                          jax.random.key(0))
  assert shapes['embed_positions'].shape == (6, 8)
  assert 'bias' not in shapes['layer_0']['self_attn']['k_proj']


# --- configs ------------------------------------------------------------------


def test_from_config_size_against_checkpoint():
  cfg = ml_collections.ConfigDict({'checkpoint': GOLDEN, 'hidden': 64,
                                   'layers': None})
  with pytest.raises(ValueError, match=r'config\.model\.whisper\.hidden=64 '
                     r'.*d_model=32') as e:
    whisper.from_config(cfg, 'config.model.whisper.')
  _one_line_error(e)
  cfg.hidden = 32  # Agreeing sizes are fine.
  model = whisper.from_config(cfg, 'config.model.whisper.')
  assert (model.mlp_dim, model.max_source_positions, model.heads) == (64, 50,
                                                                      4)
  with pytest.raises(ValueError, match=r'config\.model\.whisper\.'
                     r'max_source_positions=1500'):
    whisper.from_config({'checkpoint': GOLDEN, 'max_source_positions': 1500},
                        'config.model.whisper.')
  ast_dir = os.path.join(os.path.dirname(GOLDEN), 'ast_tiny')
  with pytest.raises(ValueError, match="model_type='audio-spectrogram-"
                     "transformer', expected 'whisper'"):
    whisper.from_config({'checkpoint': ast_dir})
  with pytest.raises(ValueError, match=r'config\.model\.dtype'):
    whisper.from_config({'layers': 1, 'dtype': 'bf16'})
  # Without a checkpoint: whisper-base.
  base = whisper.from_config({})
  assert (base.layers, base.hidden, base.heads, base.mlp_dim,
          base.num_mel_bins, base.num_frames, base.num_samples) == (
              6, 512, 8, 2048, 80, 3000, 480000)


@pytest.mark.parametrize('changes,match', [
    ({'feature_size': 128}, r'preprocessor_config\.json: feature_size=128 '
     r'disagrees with .*config\.json: num_mel_bins=80'),
    ({'chunk_length': 30}, r'preprocessor_config\.json: chunk_length=30 s '
     r'gives 3000 frames.*= 100'),
    ({'sampling_rate': 8000}, r'sampling_rate=8000'),
    ({'dither': 0.1}, r'dither=0\.1 is not supported'),
])
def test_preprocessor_config_errors(tmp_path, changes, match):
  d = _copy(tmp_path / 'ckpt')
  _edit_json(d, 'preprocessor_config.json', **changes)
  with pytest.raises(ValueError, match=match) as e:
    whisper.from_config({'checkpoint': d})
  _one_line_error(e)


def test_preprocessor_config_sets_the_front_end(tmp_path):
  d = _copy(tmp_path / 'ckpt')
  _edit_json(d, 'preprocessor_config.json', n_fft=320, hop_length=80,
             chunk_length=0.5)
  model = whisper.from_config({'checkpoint': d})
  assert (model.n_fft, model.hop_length, model.num_samples) == (320, 80, 8000)
  # Without one, the checkpoint's config.json gives the mel bins.
  os.remove(os.path.join(d, 'preprocessor_config.json'))
  model = whisper.from_config({'checkpoint': d})
  assert (model.n_fft, model.hop_length, model.num_mel_bins) == (400, 160, 80)


# --- checkpoints --------------------------------------------------------------


def test_directory_without_weights(tmp_path):
  d = _copy(tmp_path / 'ckpt', skip=('model.safetensors',))
  with pytest.raises(ValueError, match='no weights file.*model.safetensors'
                     ) as e:
    whisper.load_params(d)
  assert d in _one_line_error(e)
  d = _copy(tmp_path / 'noconfig', skip=('config.json',))
  with pytest.raises(ValueError, match='no config.json') as e:
    whisper.from_config({'checkpoint': d})
  _one_line_error(e)


def test_shapes_that_disagree_with_the_config(tmp_path):
  d = _copy(tmp_path / 'ckpt')
  _edit_json(d, 'config.json', encoder_ffn_dim=48)
  with pytest.raises(ValueError) as e:
    whisper.load_params(d)
  message = _one_line_error(e)
  assert 'model.safetensors' in message and 'config.json' in message
  assert 'encoder_ffn_dim=48' in message
  assert 'encoder.layers.0.fc1.weight is (64, 32)' in message
  # A model of other sizes than the checkpoint's.
  with pytest.raises(ValueError, match='Whisper.hidden=64 disagrees'):
    whisper.load_params(GOLDEN, whisper.Whisper(hidden=64, layers=2, heads=4,
                                                mlp_dim=64,
                                                max_source_positions=50))


def test_missing_and_unexpected_weights_are_all_named(tmp_path):
  d = _copy(tmp_path / 'ckpt')
  path = os.path.join(d, 'model.safetensors')
  state = safetensors.numpy.load_file(path)
  assert any(k.startswith('model.decoder.') for k in state)  # Ignored.
  dropped = ['encoder.layers.0.self_attn.k_proj.weight',
             'encoder.layers.1.final_layer_norm.bias',
             'encoder.embed_positions.weight']
  for name in dropped:
    del state['model.' + name]
  state['model.encoder.layers.0.self_attn.k_proj.bias'] = np.zeros(
      32, np.float32)
  state['model.encoder.layers.2.fc1.bias'] = np.zeros(64, np.float32)
  safetensors.numpy.save_file(state, path)
  with pytest.raises(ValueError) as e:
    whisper.load_params(d)
  message = _one_line_error(e)
  assert '3 missing weights' in message and '2 unexpected weights' in message
  for name in dropped + ['model.encoder.layers.0.self_attn.k_proj.bias',
                         'model.encoder.layers.2.fc1.bias']:
    assert name in message


def test_whisper_model_and_classifier_layouts(tmp_path):
  """WhisperModel (`encoder.*`, no prefix) and WhisperForAudioClassification
  (its heads) load as the Hub's WhisperForConditionalGeneration layout."""
  state = safetensors.numpy.load_file(os.path.join(GOLDEN,
                                                   'model.safetensors'))
  bare = {k[len('model.'):]: v for k, v in state.items()}
  classifier = {k: v for k, v in bare.items() if k.startswith('encoder.')}
  classifier.update({'projector.weight': np.zeros((8, 32), np.float32),
                     'classifier.weight': np.zeros((4, 8), np.float32),
                     'layer_weights': np.zeros(3, np.float32)})
  reference = whisper.load_params(GOLDEN)
  for name, weights in (('bare', bare), ('classifier', classifier)):
    d = _copy(tmp_path / name, skip=('model.safetensors',))
    safetensors.numpy.save_file(weights, os.path.join(d, 'model.safetensors'))
    jax.tree_util.tree_map(np.testing.assert_array_equal,
                           whisper.load_params(d), reference)


# --- jaxser.embed -------------------------------------------------------------


def test_embed_cli_writes_hf_hidden_states(tmp_path, golden):
  np.save(tmp_path / 'x.npy', golden['input_features'])
  out = str(tmp_path / 'whisper.npz')
  shapes = embed_lib.embed_files(GOLDEN, str(tmp_path / 'x.npy'), out,
                                 batch_size=1)
  assert shapes['hidden_states'] == (3, 2, 50, 32)
  y = np.load(out)
  np.testing.assert_allclose(y['hidden_states'], golden['hidden_states'],
                             atol=TOL)
  np.testing.assert_allclose(y['last_hidden_state'],
                             golden['hidden_states'][-1], atol=TOL)


@pytest.mark.parametrize('inputs,extra,match', [
    (np.zeros((2, 80, 40), np.float32), {}, r'40 frames; Whisper takes '
     r'exactly 2 x max_source_positions = 100'),
    (np.zeros((2, 128, 100), np.float32), {}, '128 mel bins'),
    (np.zeros((2, 100), np.float32), {}, r'expected \(batch, 80, 100\)'),
    (np.full((1, 80, 100), np.nan, np.float32), {}, 'NaN'),
    (np.zeros((1, 80, 100), np.float32), {'attention_mask': np.ones((1, 100))},
     'no attention mask'),
    (np.zeros((1, 80, 100), np.float32),
     {'token_type_ids': np.zeros((1, 100), int)}, 'only BERT'),
])
def test_embed_bad_inputs_are_one_line_errors(tmp_path, inputs, extra, match):
  paths = {}
  for name, array in [('inputs', inputs)] + sorted(extra.items()):
    paths[name] = str(tmp_path / f'{name}.npy')
    np.save(paths[name], array)
  with pytest.raises(ValueError, match=match) as e:
    embed_lib.embed_files(GOLDEN, paths['inputs'], str(tmp_path / 'y.npz'),
                          paths.get('attention_mask'),
                          paths.get('token_type_ids'))
  assert '--' in _one_line_error(e)
  assert not os.path.exists(tmp_path / 'y.npz')
