"""wav2vec 2.0, HuBERT and WavLM in Flax against Hugging Face: hidden states
of the tiny checkpoints in tests/golden/ (made by tests/make_ssl_goldens.py
with torch and transformers, neither needed here), padding and masking, the
input normalisation against Wav2Vec2FeatureExtractor, WavLM's relative
position bias against NumPy, the network, `jaxser.embed`, and the
checkpoint errors."""

import json
import math
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import safetensors.numpy

from jaxser import embed as embed_lib
from jaxser.models import wav2vec2
from jaxser.models import wavlm

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
NAMES = ('wav2vec2_tiny_group', 'wav2vec2_tiny_layer_stable', 'hubert_tiny',
         'wavlm_tiny', 'wavlm_tiny_layer_stable')
W2V_DIR = os.path.join(GOLDEN, 'wav2vec2_tiny_group')
TOL = 1e-4


def _dir(name):
  return os.path.join(GOLDEN, name)


def _golden(name):
  return dict(np.load(os.path.join(_dir(name), 'golden.npz')))


def _audio(g):
  """(waveforms (3, samples) float32, lengths (3,)) of a golden."""
  return g['pcm'].astype(np.float32) / 32768, g['lengths']


def _config(name):
  with open(os.path.join(_dir(name), 'config.json')) as f:
    return json.load(f)


def _copy(src, dst, skip=()):
  os.makedirs(dst, exist_ok=True)
  for name in os.listdir(src):
    if name not in skip:
      shutil.copy(os.path.join(src, name), dst)
  return str(dst)


def _one_line_error(excinfo):
  message = str(excinfo.value)
  assert '\n' not in message, message
  return message


def _family(name):
  return wav2vec2.family(_config(name)['model_type'])


# --- parity with Hugging Face ------------------------------------------------


@pytest.mark.parametrize('name', NAMES)
def test_hidden_states_match_hf_and_padding_is_masked(name):
  """HF's outputs on unpadded waveforms; on a padded batch each utterance's
  valid frames equal HF on that utterance alone, unpadded (and HF on the
  padded batch with attention_mask where its conv stack has no cross-time
  statistics, the 'layer' models)."""
  fam = _family(name)
  model = fam.from_hf_config(_config(name), output_hidden_states=True)
  params = fam.load_params(_dir(name))
  g = _golden(name)
  x, lengths = _audio(g)

  @jax.jit  # One program for both calls.
  def run(p, x, lengths):
    a = model.apply({'params': p}, x[:2])
    b = model.apply({'params': p}, x, lengths)
    return a, b

  out, padded = run(params, jnp.asarray(x), jnp.asarray(lengths))
  assert out.hidden_states.shape == g['hidden_states'].shape == (3, 2, 24, 32)
  np.testing.assert_allclose(out.hidden_states, g['hidden_states'], atol=TOL)
  np.testing.assert_allclose(out.last_hidden_state, g['last_hidden_state'],
                             atol=TOL)
  assert float(out.mask.min()) == 1.0

  frames = [24, 15, 7]  # HF's _get_feat_extract_output_lengths.
  np.testing.assert_array_equal(model.num_frames(lengths), frames)
  np.testing.assert_array_equal(padded.mask.sum(1), frames)
  hidden = np.asarray(padded.hidden_states)
  for i, n in enumerate(frames):
    np.testing.assert_allclose(hidden[:, i:i + 1, :n],
                               g[f'single_hidden_states_{i}'], atol=TOL)
    if model.feat_extract_norm == 'layer':
      np.testing.assert_allclose(hidden[:, i, :n],
                                 g['padded_hidden_states'][:, i, :n],
                                 atol=TOL)
      np.testing.assert_allclose(padded.last_hidden_state[i, :n],
                                 g['padded_last_hidden_state'][i, :n],
                                 atol=TOL)
  if model.feat_extract_norm == 'group':
    # HF's GroupNorm takes its statistics over the padding too: its padded
    # batch differs from the utterances alone, which jaxser's does not.
    assert np.abs(g['padded_hidden_states'][:, 2, :7]
                  - g['single_hidden_states_2'][:, 0]).max() > 1e-2


def test_stable_variant_hidden_states_order():
  """Pre-norm: the last hidden state is the last block's output before the
  final LayerNorm (transformers 5's order); last_hidden_state has it."""
  g = _golden('wav2vec2_tiny_layer_stable')
  h = g['hidden_states'][-1].astype(np.float64)
  assert np.abs(h - g['last_hidden_state']).max() > 0.1
  params = wav2vec2.load_params(_dir('wav2vec2_tiny_layer_stable'))
  ln = params['encoder_final_layer_norm']
  mean = h.mean(-1, keepdims=True)
  var = ((h - mean) ** 2).mean(-1, keepdims=True)
  ref = (h - mean) / np.sqrt(var + 1e-5) * ln['scale'] + ln['bias']
  np.testing.assert_allclose(ref, g['last_hidden_state'], atol=TOL)


def test_padding_content_and_length_do_not_matter():
  """Whatever the padding holds, and however long the batch is padded, an
  utterance's valid frames and pooled embedding stay those of the
  utterance run alone (jaxser against jaxser, group-norm WavLM)."""
  name = 'wavlm_tiny'
  net = wavlm.network_from_config({'checkpoint': _dir(name),
                                   'normalize': True})
  x, lengths = _audio(_golden(name))
  noisy = x.copy()
  noisy[1, lengths[1]:] = 5.0
  noisy[2, lengths[2]:] = np.linspace(-3, 3, x.shape[1] - lengths[2])
  alone = x[2:, :lengths[2]]
  shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.asarray(x),
                          jnp.asarray(lengths))['params']
  params = wavlm.load_network_params(
      jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes),
      _dir(name))
  params['pool']['layer_sum']['layer_weights'] = np.array([0.3, -1.0, 0.5],
                                                          np.float32)

  @jax.jit
  def run(p, noisy, lengths, alone):
    return (net.apply({'params': p}, noisy, lengths),
            net.apply({'params': p}, alone, jnp.array([alone.shape[1]])))

  out, single = run(params, jnp.asarray(noisy), jnp.asarray(lengths),
                    jnp.asarray(alone))
  np.testing.assert_array_equal(out['frame_lengths'], [24, 15, 7])
  np.testing.assert_array_equal(single['frame_lengths'], [7])
  np.testing.assert_allclose(out['embedding'][2], single['embedding'][0],
                             atol=TOL)
  np.testing.assert_allclose(out['frames'][2, :7], single['frames'][0],
                             atol=TOL)


# --- input normalisation ------------------------------------------------------


def test_normalisation_matches_the_feature_extractor():
  g = _golden('wav2vec2_tiny_group')
  x, lengths = _audio(g)
  raw = np.zeros_like(x)
  for i, n in enumerate(lengths):
    raw[i, :n] = g['raw_offset'][i] + g['raw_gain'][i] * x[i, :n]
  np.testing.assert_array_equal(g['extractor_attention_mask'].sum(1), lengths)
  ours = jax.jit(wav2vec2.normalize_waveform)(jnp.asarray(raw),
                                              jnp.asarray(lengths))
  np.testing.assert_allclose(ours, g['extractor_input_values'], atol=1e-5)
  assert float(jnp.abs(ours[2, lengths[2]:]).max()) == 0.0
  # Without lengths: the whole row, as the extractor without padding.
  whole = wav2vec2.normalize_waveform(jnp.asarray(raw[:1]))
  np.testing.assert_allclose(whole, g['extractor_input_values'][:1],
                             atol=1e-5)
  # In float64 with NumPy, HF's formula.
  r = raw[1, :lengths[1]].astype(np.float64)
  np.testing.assert_allclose(ours[1, :lengths[1]],
                             (r - r.mean()) / np.sqrt(r.var() + 1e-7),
                             atol=1e-5)


def test_normalize_option_defaults_and_use(tmp_path):
  # preprocessor_config.json says (false for the group golden, true for the
  # layer one); without it, the 'layer' models normalise; the option wins.
  assert not wav2vec2.from_config({'checkpoint': W2V_DIR}).normalize
  stable = _dir('wav2vec2_tiny_layer_stable')
  assert wav2vec2.from_config({'checkpoint': stable}).normalize
  d = _copy(W2V_DIR, tmp_path / 'nopre', skip=('preprocessor_config.json',))
  assert not wav2vec2.from_config({'checkpoint': d}).normalize
  assert wav2vec2.from_config({'checkpoint': d, 'normalize': True}).normalize
  d2 = _copy(stable, tmp_path / 'nopre2', skip=('preprocessor_config.json',))
  assert wav2vec2.from_config({'checkpoint': d2}).normalize
  assert wav2vec2.from_config({'hidden': 32, 'heads': 4,
                               'num_conv_pos_embedding_groups': 4,
                               'feat_extract_norm': 'layer'}).normalize
  assert not wav2vec2.from_hf_config(_config('wav2vec2_tiny_layer_stable')
                                     ).normalize
  with open(os.path.join(d, 'preprocessor_config.json'), 'w') as f:
    f.write('{"do_normalize": ')
  with pytest.raises(ValueError, match='preprocessor_config.json: not '
                     'readable JSON') as e:
    wav2vec2.from_config({'checkpoint': d})
  _one_line_error(e)

  # normalize=True is the extractor's output fed to the model.
  g = _golden('wav2vec2_tiny_group')
  x, lengths = _audio(g)
  raw = 0.2 + 3.0 * x
  model = wav2vec2.from_hf_config(_config('wav2vec2_tiny_group'))
  params = wav2vec2.load_params(W2V_DIR)

  @jax.jit
  def run(p, raw, lengths):
    return (model.clone(normalize=True).apply({'params': p}, raw, lengths),
            model.apply({'params': p},
                        wav2vec2.normalize_waveform(raw, lengths), lengths))

  a, b = run(params, jnp.asarray(raw), jnp.asarray(lengths))
  np.testing.assert_allclose(a.last_hidden_state, b.last_hidden_state,
                             atol=1e-5)


# --- WavLM's relative position bias against NumPy -----------------------------


def _np_bucket(r, num_buckets, max_distance):
  """HF's _relative_positions_bucket for one offset, written out."""
  n = num_buckets // 2
  bucket = n if r > 0 else 0
  r = abs(r)
  exact = n // 2
  if r < exact:
    return bucket + r
  large = np.float32(math.log(np.float32(r) / exact)) / np.float32(
      math.log(max_distance / exact)) * np.float32(n - exact)
  return bucket + min(int(exact + large), n - 1)


@pytest.mark.parametrize('num_buckets,max_distance,length', [
    (320, 800, 1100), (16, 12, 24), (20, 16, 30)])
def test_wavlm_buckets_against_numpy(num_buckets, max_distance, length):
  ours = np.asarray(wavlm.relative_position_buckets(length, length,
                                                    num_buckets,
                                                    max_distance))
  offsets = np.arange(-(length - 1), length)
  ref = {r: _np_bucket(int(r), num_buckets, max_distance) for r in offsets}
  want = np.array([[ref[j - i] for j in range(length)]
                   for i in range(length)])
  np.testing.assert_array_equal(ours, want)
  assert ours.min() >= 0 and ours.max() < num_buckets


def test_wavlm_gated_attention_against_numpy():
  """WavLM's first attention (checkpoint weights of wavlm_tiny) on a random
  input, against the paper's / HF's formula in float64."""
  name = 'wavlm_tiny'
  params = wavlm.load_params(_dir(name))['layer_0']['attention']
  heads, hidden, nb, md = 4, 32, 16, 12
  att = wavlm.WavLMAttention(hidden, heads, nb, md, True, 0.0, jnp.float32,
                             True)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 24, hidden)).astype(np.float32)
  mask = np.ones((2, 24), np.float32)
  mask[1, 17:] = 0
  out, bias = att.apply({'params': params}, jnp.asarray(x),
                        jnp.asarray(mask), None)

  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
  t = np.arange(24)
  buckets = np.array([[_np_bucket(int(j - i), nb, md) for j in t] for i in t])
  ref_bias = p['rel_attn_embed'][buckets].transpose(2, 0, 1)  # (h, q, k)
  np.testing.assert_allclose(bias, ref_bias, atol=1e-6)
  d = hidden // heads
  x64 = x.astype(np.float64)
  xh = x64.reshape(2, 24, heads, d).transpose(0, 2, 1, 3)  # (b, h, t, d)
  proj = xh @ p['gru_rel_pos_linear_kernel'] + p['gru_rel_pos_linear_bias']
  proj = proj.reshape(2, heads, 24, 2, 4).sum(-1)
  sig = 1 / (1 + np.exp(-proj))
  a, b = sig[..., :1], sig[..., 1:]
  g = a * (b * p['gru_rel_pos_const'] - 1) + 2  # (b, h, q, 1)
  lin = lambda n, v: v @ p[n]['kernel'] + p[n]['bias']
  q = lin('query', x64).reshape(2, 24, heads, d).transpose(0, 2, 1, 3)
  k = lin('key', x64).reshape(2, 24, heads, d).transpose(0, 2, 1, 3)
  v = lin('value', x64).reshape(2, 24, heads, d).transpose(0, 2, 1, 3)
  scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + g * ref_bias[None]
  scores = np.where(mask[:, None, None, :] > 0, scores, -np.inf)
  w = np.exp(scores - scores.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  y = (w @ v).transpose(0, 2, 1, 3).reshape(2, 24, hidden)
  np.testing.assert_allclose(out, lin('output', y), atol=1e-4)
  # The gate matters: without it the output changes.
  assert np.abs(g - 1).max() > 0.1


# --- the network --------------------------------------------------------------


@pytest.mark.parametrize('name', ['wav2vec2_tiny_layer_stable', 'hubert_tiny'])
def test_network_embedding_from_checkpoint_against_hf(name):
  """The registry-facing network on the padded batch: checkpoint in
  'encoder', embedding = mean over the valid frames of the (initially
  uniform) layer average of HF's hidden states of each utterance alone."""
  fam = _family(name)
  g = _golden(name)
  x, lengths = _audio(g)
  net = fam.network_from_config({'checkpoint': _dir(name),
                                 'normalize': False})
  assert type(net).__name__ == {'wav2vec2': 'Wav2Vec2Network',
                                'hubert': 'HubertNetwork'}[fam.model_type]
  args = (jnp.asarray(x), jnp.asarray(lengths))
  shapes = jax.eval_shape(net.init, jax.random.key(0), *args)['params']
  params = fam.load_network_params(
      jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes),
      _dir(name))
  out = jax.jit(net.apply)({'params': params}, *args)
  np.testing.assert_array_equal(out['frame_lengths'], [24, 15, 7])
  for i in range(3):
    frames = g[f'single_hidden_states_{i}'][:, 0].mean(0)
    np.testing.assert_allclose(out['embedding'][i], frames.mean(0), atol=TOL)
    np.testing.assert_allclose(out['frames'][i, :len(frames)], frames,
                               atol=TOL)
  # A network of other sizes does not take the checkpoint.
  other = fam.network_from_config({'layers': 2, 'hidden': 64, 'heads': 4,
                                   'conv_dim': (8,), 'conv_kernel': (10,),
                                   'conv_stride': (5,)})
  shapes = jax.eval_shape(other.init, jax.random.key(0), *args)['params']
  with pytest.raises(ValueError, match='do not fit the module') as e:
    fam.load_network_params(shapes, _dir(name))
  _one_line_error(e)


# --- tiny random models, dtype and remat --------------------------------------


def test_tiny_random_wavlm_trains_with_remat_and_bf16():
  cfg = ml_collections.ConfigDict({
      'layers': 2, 'hidden': 32, 'heads': 4, 'conv_dim': (8, 16),
      'conv_kernel': (10, 3), 'conv_stride': (5, 2), 'conv_bias': True,
      'feat_extract_norm': 'layer', 'do_stable_layer_norm': True,
      'num_conv_pos_embeddings': 4, 'num_conv_pos_embedding_groups': 2,
      'num_buckets': 8, 'max_bucket_distance': 10, 'dropout': 0.1})
  model = wavlm.from_config(cfg)
  assert (model.layers, model.hidden, model.mlp_dim, model.normalize) == (
      2, 32, 128, True)
  x = np.random.default_rng(0).standard_normal((2, 400), np.float32)
  args = (jnp.asarray(x), jnp.array([400, 250]))
  shapes = jax.eval_shape(model.init, jax.random.key(0), *args)['params']
  rng = np.random.default_rng(0)
  params = jax.tree_util.tree_map(
      lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype),
      shapes)
  cfg.dtype = 'bfloat16'
  model16 = wavlm.from_config(cfg)
  shapes16 = jax.eval_shape(model16.init, jax.random.key(0), *args)['params']
  assert {a.dtype for a in jax.tree_util.tree_leaves(shapes16)} == {
      jnp.dtype(jnp.float32)}

  def grads(m, p):
    def loss(p):
      out = m.apply({'params': p}, *args, train=True,
                    rngs={'dropout': jax.random.key(3)})
      return ((out.hidden_states.astype(jnp.float32) ** 2).mean()
              + (out.last_hidden_state.astype(jnp.float32) ** 2).mean())
    return jax.grad(loss)(p)

  @jax.jit
  def run(p):
    return (model.apply({'params': p}, *args), grads(model, p),
            grads(model.clone(remat=True), p),
            model16.apply({'params': p}, *args))

  out, g, g_remat, out16 = run(params)
  assert out.hidden_states.shape == (3, 2, 39, 32)
  assert all(np.isfinite(a).all() for a in jax.tree_util.tree_leaves(g))
  # Weight norm: g and v both learn.
  assert np.abs(g['pos_conv_embed']['weight_g']).max() > 0
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g, g_remat)
  assert out16.hidden_states.dtype == jnp.bfloat16
  err = np.abs(np.asarray(out16.last_hidden_state, np.float32)
               - np.asarray(out.last_hidden_state)).max()
  assert err < 0.15, err


# --- configs ------------------------------------------------------------------


def test_from_config_sizes_against_checkpoint():
  prefix = 'config.model.wav2vec2.'
  cfg = ml_collections.ConfigDict({'checkpoint': W2V_DIR, 'hidden': 64,
                                   'layers': None})
  with pytest.raises(ValueError, match=r'config\.model\.wav2vec2\.hidden=64 '
                     r'.*hidden_size=32') as e:
    wav2vec2.from_config(cfg, prefix)
  _one_line_error(e)
  # A JSON list and a config tuple of the same values agree.
  cfg.hidden = 32
  cfg.conv_kernel = (10, 3, 3, 3, 3, 2, 2)
  model = wav2vec2.from_config(cfg, prefix)
  assert model.conv_kernel == (10, 3, 3, 3, 3, 2, 2)
  assert model.num_conv_pos_embeddings == 8 and model.output_hidden_states
  cfg.conv_kernel = (10, 3, 3, 3, 3, 3, 2)
  with pytest.raises(ValueError, match=r'config\.model\.wav2vec2\.'
                     r'conv_kernel=\(10, 3, 3, 3, 3, 3, 2\)'):
    wav2vec2.from_config(cfg, prefix)
  with pytest.raises(ValueError, match=r'config\.model\.hubert\.'
                     'feat_proj_layer_norm'):
    wav2vec2.HUBERT.from_config({'checkpoint': _dir('hubert_tiny'),
                                 'feat_proj_layer_norm': True},
                                'config.model.hubert.')
  with pytest.raises(ValueError, match=r'num_buckets=320 .* num_buckets=16'):
    wavlm.from_config({'checkpoint': _dir('wavlm_tiny'), 'num_buckets': 320})
  with pytest.raises(ValueError, match="model_type='hubert', expected "
                     "'wav2vec2'"):
    wav2vec2.from_config({'checkpoint': _dir('hubert_tiny')})
  with pytest.raises(ValueError, match=r'config\.model\.dtype'):
    wav2vec2.from_config({'dtype': 'bf16'})


@pytest.mark.parametrize('cfg,match', [
    ({'conv_kernel': (10, 3)}, r'conv_dim, config\.model\.conv_kernel, .*'
     'lengths 7, 2, 7 differ'),
    ({'conv_stride': (5, 0, 2, 2, 2, 2, 2)}, r'config\.model\.conv_stride=.*'
     'positive integers'),
    ({'feat_extract_norm': 'batch'}, r"feat_extract_norm='batch'"),
    ({'hidden': 30, 'heads': 4}, r'hidden=30 is not a multiple of '
     r'config\.model\.heads=4'),
    ({'hidden': 40, 'heads': 4}, 'num_conv_pos_embedding_groups=16'),
    ({'layers': True}, r'config\.model\.layers=True: expected int'),
])
def test_bad_sizes_are_one_line_errors(cfg, match):
  with pytest.raises(ValueError, match=match) as e:
    wav2vec2.from_config(cfg)
  _one_line_error(e)


@pytest.mark.parametrize('key,value,match', [
    ('add_adapter', True, 'add_adapter=true'),
    ('adapter_attn_dim', 16, 'adapter_attn_dim=16'),
    ('conv_pos_batch_norm', True, 'conv_pos_batch_norm=true'),
    ('feat_extract_activation', 'swish', "feat_extract_activation='swish'"),
    ('conv_dim', [8, 12], r'config.json: conv_dim, .*: conv_kernel'),
])
def test_unsupported_checkpoint_configs(tmp_path, key, value, match):
  d = _copy(_dir('hubert_tiny'), tmp_path / 'ckpt')
  config = _config('hubert_tiny')
  config[key] = value
  with open(os.path.join(d, 'config.json'), 'w') as f:
    json.dump(config, f)
  with pytest.raises(ValueError, match=match) as e:
    wav2vec2.HUBERT.load_params(d)
  assert 'config.json' in _one_line_error(e)


# --- jaxser.embed -------------------------------------------------------------


def test_embed_cli_writes_hf_hidden_states(tmp_path):
  name = 'wavlm_tiny_layer_stable'
  g = _golden(name)
  x, lengths = _audio(g)
  mask = (np.arange(x.shape[1])[None, :] < lengths[:, None]).astype(np.int64)
  np.save(tmp_path / 'x.npy', x)
  np.save(tmp_path / 'mask.npy', mask)
  out = str(tmp_path / 'y.npz')
  # Batches of 2 over 3 inputs: the padded last batch is cut back.
  shapes = embed_lib.embed_files(_dir(name), str(tmp_path / 'x.npy'), out,
                                 str(tmp_path / 'mask.npy'), batch_size=2)
  assert shapes['hidden_states'] == (3, 3, 24, 32)
  y = np.load(out)
  # HF with attention_mask ('layer' model: equal on every valid frame).
  for i, n in enumerate([24, 15, 7]):
    np.testing.assert_allclose(y['hidden_states'][:, i, :n],
                               g['padded_hidden_states'][:, i, :n], atol=TOL)
    np.testing.assert_allclose(y['last_hidden_state'][i, :n],
                               g['padded_last_hidden_state'][i, :n], atol=TOL)


@pytest.mark.parametrize('inputs,mask,match', [
    (np.zeros((2, 8000, 1), np.float32), None, r'expected \(batch, samples\)'),
    (np.zeros((2, 300), np.float32), None, 'fewer than one frame'),
    (np.full((1, 800), np.nan, np.float32), None, 'NaN'),
    (np.zeros((1, 800), np.complex64), None, 'real numbers'),
    (np.zeros((2, 800), np.float32), np.ones((2, 700)), r'expected \(2, 800\)'),
    (np.zeros((2, 800), np.float32), np.full((2, 800), 2), '0 or 1'),
])
def test_embed_bad_inputs_are_one_line_errors(tmp_path, inputs, mask, match):
  np.save(tmp_path / 'x.npy', inputs)
  m = None
  if mask is not None:
    m = str(tmp_path / 'm.npy')
    np.save(m, mask)
  with pytest.raises(ValueError, match=match) as e:
    embed_lib.embed_files(W2V_DIR, str(tmp_path / 'x.npy'),
                          str(tmp_path / 'y.npz'), m)
  assert '--' in _one_line_error(e)
  assert not os.path.exists(tmp_path / 'y.npz')


# --- checkpoint errors and formats --------------------------------------------


def test_directory_without_weights(tmp_path):
  d = _copy(W2V_DIR, tmp_path / 'ckpt', skip=('model.safetensors',))
  with pytest.raises(ValueError, match='no weights file.*model.safetensors'
                     ) as e:
    wav2vec2.load_params(d)
  _one_line_error(e)


def test_shapes_that_disagree_with_the_config(tmp_path):
  d = _copy(W2V_DIR, tmp_path / 'ckpt')
  config = _config('wav2vec2_tiny_group')
  config['conv_dim'][2] = 10
  config['intermediate_size'] = 40
  with open(os.path.join(d, 'config.json'), 'w') as f:
    json.dump(config, f)
  with pytest.raises(ValueError) as e:
    wav2vec2.load_params(d)
  message = _one_line_error(e)
  assert 'model.safetensors' in message and 'config.json' in message
  assert 'conv_dim[2]=10' in message and 'intermediate_size=40' in message
  assert ('feature_extractor.conv_layers.2.conv.weight is (8, 12, 3)'
          in message)


def test_missing_and_unexpected_weights_are_all_named(tmp_path):
  d = _copy(_dir('wavlm_tiny'), tmp_path / 'ckpt')
  path = os.path.join(d, 'model.safetensors')
  state = safetensors.numpy.load_file(path)
  dropped = ['encoder.layers.0.attention.rel_attn_embed.weight',
             'encoder.layers.1.attention.gru_rel_pos_const',
             'feature_extractor.conv_layers.0.layer_norm.bias',
             'encoder.pos_conv_embed.conv.parametrizations.weight.original0']
  for name in dropped:
    del state[name]
  state['encoder.layers.1.attention.rel_attn_embed.weight'] = np.zeros(
      (16, 4), np.float32)
  state['feature_extractor.conv_layers.3.layer_norm.weight'] = np.zeros(
      12, np.float32)
  safetensors.numpy.save_file(state, path)
  with pytest.raises(ValueError) as e:
    wavlm.load_params(d)
  message = _one_line_error(e)
  assert '4 missing weights' in message and '2 unexpected weights' in message
  for name in dropped[:3] + [
      'encoder.pos_conv_embed.conv.weight_g',
      'encoder.layers.1.attention.rel_attn_embed.weight',
      'feature_extractor.conv_layers.3.layer_norm.weight']:
    assert name in message


def test_task_checkpoints_and_weight_norm_names(tmp_path):
  """Wav2Vec2ForPreTraining / ForCTC-like checkpoints (prefix, quantiser,
  heads, masked_spec_embed), the classic weight_g / weight_v names, and a
  positional conv saved without weight norm all load to the same
  parameters (the last one to the same kernel)."""
  reference = wav2vec2.load_params(W2V_DIR)
  state = safetensors.numpy.load_file(os.path.join(W2V_DIR,
                                                   'model.safetensors'))
  assert 'masked_spec_embed' in state
  old = 'encoder.pos_conv_embed.conv.parametrizations.weight.original'
  classic = {k.replace(old + '0', 'encoder.pos_conv_embed.conv.weight_g')
             .replace(old + '1', 'encoder.pos_conv_embed.conv.weight_v'): v
             for k, v in state.items()}
  prefixed = {'wav2vec2.' + k: v for k, v in classic.items()}
  prefixed.update({
      'quantizer.codevectors': np.zeros((1, 640, 128), np.float32),
      'quantizer.weight_proj.weight': np.zeros((640, 16), np.float32),
      'project_hid.weight': np.zeros((256, 32), np.float32),
      'project_q.bias': np.zeros(256, np.float32),
      'lm_head.weight': np.zeros((30, 32), np.float32)})
  g = state[old + '0'].astype(np.float64)
  v = state[old + '1'].astype(np.float64)
  plain = {k: a for k, a in state.items() if not k.startswith(old)}
  w = g * v / np.sqrt((v ** 2).sum(axis=(0, 1), keepdims=True))
  plain['encoder.pos_conv_embed.conv.weight'] = w.astype(np.float32)
  for name, weights in [('classic', classic), ('prefixed', prefixed),
                        ('plain', plain)]:
    d = _copy(W2V_DIR, tmp_path / name, skip=('model.safetensors',))
    safetensors.numpy.save_file(weights, os.path.join(d, 'model.safetensors'))
    params = wav2vec2.load_params(d)
    if name == 'plain':
      kernel = lambda p: (p['weight_v'] * (p['weight_g'] / np.sqrt(
          (p['weight_v'] ** 2).sum(axis=(1, 2))))[:, None, None])
      np.testing.assert_allclose(kernel(params['pos_conv_embed']),
                                 kernel(reference['pos_conv_embed']),
                                 atol=1e-6)
      params['pos_conv_embed'] = reference['pos_conv_embed']
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, reference)


def test_load_params_model_of_other_sizes():
  model = wav2vec2.from_config({'hidden': 32, 'heads': 4, 'layers': 2,
                                'num_conv_pos_embedding_groups': 4})
  with pytest.raises(ValueError, match=r'Wav2Vec2\.mlp_dim=128 disagrees '
                     r'with .*config\.json: intermediate_size=48') as e:
    wav2vec2.load_params(W2V_DIR, model)
  _one_line_error(e)


def test_frozen_network_and_feature_encoder():
  """freeze: only the layer weights of the pooling get a gradient;
  freeze_feature_encoder: everything but the conv stack does."""
  cfg = {'layers': 1, 'hidden': 8, 'heads': 2, 'conv_dim': (4,),
         'conv_kernel': (10,), 'conv_stride': (5,),
         'num_conv_pos_embeddings': 3, 'num_conv_pos_embedding_groups': 2,
         'feat_extract_norm': 'layer', 'do_stable_layer_norm': True}
  net = wav2vec2.network_from_config(cfg)
  fe_net = wav2vec2.network_from_config(dict(cfg,
                                             freeze_feature_encoder=True))
  args = (jnp.asarray(np.random.default_rng(1).standard_normal(
      (2, 60), np.float32)), jnp.array([60, 40]))
  shapes = jax.eval_shape(net.init, jax.random.key(0), *args)['params']
  rng = np.random.default_rng(0)
  params = jax.tree_util.tree_map(
      lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype),
      shapes)

  @jax.jit
  def grads(p):
    def loss(p, net):
      return (net.apply({'params': p}, *args)['embedding'] ** 2).sum()
    return (jax.grad(loss)(p, net.clone(freeze=True)),
            jax.grad(loss)(p, fe_net))

  frozen, fe_frozen = grads(params)
  biggest = lambda t: max(np.abs(a).max() for a in jax.tree_util.tree_leaves(t))
  assert biggest(frozen['encoder']) == 0
  assert biggest(frozen['pool']) > 0
  for name, sub in fe_frozen['encoder'].items():
    if name != 'encoder_final_layer_norm':  # Not in the layer sum.
      assert (biggest(sub) == 0) == (name == 'feature_extractor'), name
