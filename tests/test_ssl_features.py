"""The `ssl` feature set (a pretrained encoder's hidden states, cached) and
the `ssl_head` network, on the tiny golden checkpoints (Whisper: 2 x 32, a
1 s window)."""

import functools
import json
import os
import shutil

import jax
import numpy as np
import optax
import pytest

from conftest import tiny_config
from jaxser import config as config_lib
from jaxser import grid
from jaxser import methods as methods_lib
from jaxser import train
from jaxser.data import cache as cache_lib
from jaxser.data import corpus as corpus_lib
from jaxser.data import pipeline
from jaxser.data import ssl_features
from jaxser.data.features import FeatureConfig
from jaxser.models import hf_checkpoint as hf
from jaxser.models import registry
from jaxser.models import whisper

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')
WHISPER_DIR = os.path.join(GOLDEN, 'whisper_tiny')
HIDDEN, STATES = 32, 3  # The tiny Whisper: 2 layers of 32 (+ embeddings).


def _one_line(excinfo) -> str:
  message = str(excinfo.value)
  assert '\n' not in message, message
  return message


# Utterances of 0.3 to 1.5 s: several buckets, padding inside batches, and
# (for Whisper's 1 s window) clips longer than the window.
VARIED_SECONDS = (0.3, 1.5, 0.62, 0.9, 1.1, 0.45, 0.77, 1.3, 0.35, 0.5, 1.0)


def _render_varied(utt):
  i = int(utt.utt_id.split('/')[-1])
  rng = np.random.default_rng(i)
  n = int(VARIED_SECONDS[i] * 16000)
  t = np.arange(n) / 16000
  wav = 0.3 * np.sin(2 * np.pi * (120 + 40 * i) * t)
  return (wav + 0.05 * rng.standard_normal(n)).astype(np.float32)


@corpus_lib.register('ssl_varied', synthetic=True)
def _varied(root):
  del root
  utts = [corpus_lib.Utterance(utt_id=f's{i % 2}/{i}', corpus='ssl_varied',
                               speaker=f's{i % 2}',
                               emotion=('happy', 'sad')[i % 2])
          for i in range(len(VARIED_SECONDS))]
  return corpus_lib.Corpus('ssl_varied', utts, render=_render_varied)


def _rows(cached):
  """{index: (features, length)} of a cache."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  ds = cached.builder.as_dataset(split='train', shuffle_files=False)
  return {int(r['index']): (r['features'], int(r['length']))
          for r in tfds.as_numpy(ds)}


@functools.lru_cache(maxsize=None)
def _whisper_runner(directory=WHISPER_DIR):
  """A jitted run of the checkpoint on one clip, as Hugging Face runs it."""
  model = whisper.from_hf_config(hf.read_config(directory),
                                 checkpoint=directory,
                                 output_hidden_states=True)
  params = whisper.load_params(directory)

  @jax.jit
  def run(wav):
    x, mel_lengths = model.log_mel()(wav[None], None)
    out = model.apply({'params': params}, x, mel_lengths)
    return out.hidden_states[:, 0], out.mask.sum()
  return run


def _whisper_alone(wav, directory=WHISPER_DIR):
  """Hidden states (L + 1, T_valid, H) of one clip run alone, unpadded, and
  all of them (L + 1, T, H), the window's padding included."""
  states, valid = _whisper_runner(directory)(np.asarray(wav, np.float32))
  states = np.asarray(states, np.float64)
  return states[:, :int(valid)], states


def _build(name, cache_dir, frames=None, **params):
  fc = FeatureConfig.create('ssl', frames, checkpoint=WHISPER_DIR, **params)
  return cache_lib.build(corpus_lib.load(name), fc, str(cache_dir))


def test_cached_means_equal_the_encoder_on_each_utterance_alone(tmp_path):
  cached = _build('ssl_varied', tmp_path, batch_size=4)
  assert cached.feature_shape == (STATES, HIDDEN)
  assert cached.feature_dtype == np.float32 and not cached.skipped
  rows = _rows(cached)
  corpus = cached.corpus
  assert sorted(rows) == list(range(len(VARIED_SECONDS)))
  padding_mattered = False
  for i, (x, length) in rows.items():
    wav = corpus.read_audio(corpus.utterances[i])
    valid, everything = _whisper_alone(wav)
    assert length == STATES  # Every layer row is valid.
    np.testing.assert_allclose(x, valid.mean(axis=1), atol=1e-5, rtol=1e-5)
    # The window's padded frames would have changed the mean.
    padding_mattered |= not np.allclose(x, everything.mean(axis=1),
                                        atol=1e-3)
  assert padding_mattered


def test_frames_are_padded_or_cropped_with_the_true_length(tmp_path):
  corpus = corpus_lib.load('tiny_src')
  wav = corpus.read_audio(corpus.utterances[0])  # 0.5 s: 25 frames.
  valid, _ = _whisper_alone(wav)
  frames = valid.transpose(1, 0, 2)[:, [2, 0]]  # (T, K, H), layers 2, 0.
  assert frames.shape == (25, 2, HIDDEN)

  cached = _build('tiny_src', tmp_path, frames=40, pool='none', layers='2,0')
  assert cached.feature_shape == (40, 2, HIDDEN)
  x, length = _rows(cached)[0]
  assert length == 25
  np.testing.assert_allclose(x[:25], frames, atol=1e-5, rtol=1e-5)
  assert np.all(x[25:] == 0)

  cropped = _build('tiny_src', tmp_path, frames=10, pool='none', layers='2,0')
  x, length = _rows(cropped)[0]
  assert x.shape == (10, 2, HIDDEN) and length == 10
  np.testing.assert_allclose(x, frames[7:17], atol=1e-5, rtol=1e-5)


def _copy_checkpoint(tmp_path):
  directory = str(tmp_path / 'ckpt')
  shutil.copytree(WHISPER_DIR, directory)
  return directory


def test_cache_key_follows_the_checkpoint_and_the_choices(tmp_path,
                                                          monkeypatch):
  import safetensors.numpy  # pylint: disable=g-import-not-at-top
  directory = _copy_checkpoint(tmp_path)
  calls = []
  real = ssl_features.Extractor.__call__
  monkeypatch.setattr(ssl_features.Extractor, '__call__',
                      lambda self, *a, **k: calls.append(1) or real(
                          self, *a, **k))
  corpus = corpus_lib.load('ssl_varied')
  cache = str(tmp_path / 'cache')

  def build(**params):
    params = {'checkpoint': directory, **params}
    return cache_lib.build(corpus, FeatureConfig.create('ssl', **params),
                           cache)

  first = build()
  built = len(calls)
  assert built >= 2  # The shape probe, then the extraction.
  again = build(batch_size=3)  # The batch size is not part of the key.
  assert again.meta_path == first.meta_path and len(calls) == built
  np.testing.assert_array_equal(_rows(again)[4][0], _rows(first)[4][0])

  layers = build(layers='0,2')
  assert layers.meta_path != first.meta_path and len(calls) > built
  assert layers.feature_shape == (2, HIDDEN)
  np.testing.assert_allclose(_rows(layers)[4][0], _rows(first)[4][0][[0, 2]],
                             atol=1e-6)

  # One weight changed: a new cache with other features.
  path = os.path.join(directory, hf.SAFETENSORS)
  state = safetensors.numpy.load_file(path)
  bias = state['model.encoder.layers.0.fc2.bias'].copy()
  bias[0] += 0.5
  state['model.encoder.layers.0.fc2.bias'] = bias
  safetensors.numpy.save_file(state, path, metadata={'format': 'pt'})
  weights = build()
  assert weights.meta_path != first.meta_path
  changed, before = _rows(weights)[4][0], _rows(first)[4][0]
  np.testing.assert_array_equal(changed[0], before[0])  # Embeddings.
  assert not np.allclose(changed[1:], before[1:], atol=1e-3)

  # A config value changed (the same features, another checkpoint).
  config_path = os.path.join(directory, hf.CONFIG)
  with open(config_path) as f:
    config = json.load(f)
  config['dropout'] = 0.1
  with open(config_path, 'w') as f:
    json.dump(config, f)
  assert build().meta_path not in (first.meta_path, weights.meta_path)


class Interrupted(Exception):
  pass


def test_an_interrupted_build_keeps_its_finished_chunks(tmp_path,
                                                        monkeypatch):
  monkeypatch.setattr(cache_lib, 'BATCHED_CHUNK', 4)
  calls = []
  real = ssl_features.Extractor.__call__

  def failing(self, wavs, progress=None):
    calls.append(len(wavs))
    if len(calls) == 3 and fail:  # Probe, chunk 0, then chunk 1 fails.
      raise Interrupted
    return real(self, wavs, progress)
  fail = True
  monkeypatch.setattr(ssl_features.Extractor, '__call__', failing)
  with pytest.raises(Interrupted):
    _build('ssl_varied', tmp_path)
  staging = [d for d in os.listdir(tmp_path / 'ssl_varied')
             if d.endswith('.staging')]
  assert len(staging) == 1
  assert os.listdir(tmp_path / 'ssl_varied' / staging[0]) == ['00000000.npz']
  calls.clear()
  fail = False
  cached = _build('ssl_varied', tmp_path)
  assert calls == [1, 4, 3]  # Probe, then chunks 1 and 2 only.
  assert sorted(_rows(cached)) == list(range(len(VARIED_SECONDS)))


def _ssl_config(method, cache_dir, **ssl):
  c = tiny_config(method, cache_dir, steps=2)
  c.data.features = 'ssl'
  c.data.feature_params.ssl.checkpoint = WHISPER_DIR
  c.data.feature_params.ssl.update(ssl)
  c.model.name = 'ssl_head'
  c.model.ssl_head.hidden = 16
  return c


@pytest.mark.parametrize('method', ['source_only', 'dann'])
def test_methods_train_end_to_end_on_ssl(tmp_path, cache_dir, method):
  config = _ssl_config(method, cache_dir)
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result['method'] == method and result['steps'] == 2
  assert 0.0 <= result['war'] <= 1.0
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')
          if 'train/loss' in l]
  assert rows and np.isfinite(rows[-1]['train/loss'])


def test_normalisation_applies_to_every_layer(cache_dir):
  config = _ssl_config('source_only', cache_dir)
  config.data.normalize = 'corpus_zscore'
  data = pipeline.load_data(config.data)
  x = data.target_eval.load()['features']
  assert x.shape[1:] == (STATES, HIDDEN)
  # One shift and scale per hidden dimension, shared by the layers; no layer
  # row is treated as padding.
  assert np.all(np.abs(x).reshape(-1, STATES, HIDDEN).max(axis=(0, 2)) > 0.1)
  flat = x.reshape(-1, HIDDEN)
  np.testing.assert_allclose(flat.mean(0), 0, atol=1e-4)
  np.testing.assert_allclose(flat.std(0), 1, atol=1e-3)


# Every single-objective method (DIFL needs segments) on both layouts.
METHODS = ('source_only', 'dann', 'dan', 'jan', 'cdan', 'cdan_e', 'bsp',
           'mmd_ser', 'emodna')
FRAMES = 6


def _step_config(method, pool):
  c = grid.load_config(method, grid.default_configs_dir())
  c.data.features = 'ssl'
  c.data.feature_params.ssl.update(checkpoint=WHISPER_DIR, pool=pool)
  c.data.frames = FRAMES
  c.model.name = 'ssl_head'
  c.model.ssl_head.update(hidden=16, depth=2)
  if 'projection_dim' in c.model:
    c.model.projection_dim = 16
  for block in ('dann', 'cdan', 'cdan_e', 'bsp'):
    if block in c:
      c[block].discriminator_hidden = 8
  return c


def _batch(pool, seed=0, n=4):
  rng = np.random.default_rng(seed)
  shape = (STATES, HIDDEN) if pool == 'mean' else (FRAMES, STATES, HIDDEN)

  def domain(d):
    b = {'features': rng.standard_normal((n,) + shape).astype(np.float32),
         'length': (np.full(n, STATES, np.int32) if pool == 'mean' else
                    rng.integers(1, FRAMES + 1, n).astype(np.int32)),
         'domain': np.full(n, d, np.int32),
         'gender': np.zeros(n, np.int32), 'language': np.zeros(n, np.int32)}
    if d == 0:
      b['label'] = rng.integers(0, 4, n).astype(np.int32)
    return b
  return {'source': domain(0), 'target': domain(1)}


@pytest.mark.parametrize('method,pool', [(m, 'mean') for m in METHODS]
                         + [('emodna', 'none'), ('dann', 'none')])
def test_every_single_objective_method_steps_on_ssl_head(method, pool):
  config = _step_config(method, pool)
  methods_lib.get(method).check_config(config)
  m = methods_lib.create(config, 4, (3, 4, 5, 6))
  batch = _batch(pool)
  tx = optax.sgd(1e-2)
  state = jax.jit(lambda: train.create_train_state(m, tx, 0, batch))()
  new, metrics = jax.device_get(jax.jit(train.make_train_step(m, tx))(
      state, batch))
  assert np.isfinite(metrics['loss']) and metrics['grad_norm'] > 0
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                       jax.device_get(state.params), new.params)
  assert max(jax.tree.leaves(moved)) > 0


def test_head_weights_layers_and_masks_padded_frames():
  config = _step_config('source_only', 'none')
  config.model.ssl_head.dropout = 0.0
  net = registry.build_network(config)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, FRAMES, STATES, HIDDEN)).astype(np.float32)
  lengths = np.array([3, FRAMES], np.int32)
  params = net.init(jax.random.PRNGKey(0), x, lengths, train=False)
  out = net.apply(params, x, lengths, train=False)
  assert out['embedding'].shape == (2, 16)
  assert out['frames'].shape == (2, FRAMES, 16)
  np.testing.assert_array_equal(out['frame_lengths'], lengths)
  noisy = x.copy()
  noisy[0, 3:] = 1e3  # Padding never reaches the embedding.
  np.testing.assert_allclose(
      net.apply(params, noisy, lengths, train=False)['embedding'],
      out['embedding'], atol=1e-6)
  # Pooled input: the head on (B, K, H) equals it on one valid frame.
  means = x[:, 0]
  pooled = net.apply(params, means, np.full(2, STATES, np.int32),
                     train=False)
  one = net.apply(params, x[:, :1], np.ones(2, np.int32), train=False)
  np.testing.assert_allclose(pooled['embedding'], one['embedding'],
                             atol=1e-6)
  assert params['params']['layer_weights'].shape == (STATES,)


def test_network_and_feature_kind_checks():
  assert registry.feature_kind('ssl') == 'layers'
  c = _step_config('source_only', 'mean')
  assert registry.check(c).name == 'ssl_head'
  c.data.features = 'mfcc40'
  with pytest.raises(ValueError) as e:
    registry.check(c)
  assert _one_line(e) == (
      "config.data.features: network 'ssl_head' (config.model.name) takes "
      "self-supervised layer features, got 'mfcc40' (frame-level features)")
  c = _step_config('source_only', 'mean')
  c.model.name = 'cnn_tcn'
  with pytest.raises(ValueError, match="takes frame-level features, got "
                     "'ssl'"):
    registry.check(c)
  c = _step_config('source_only', 'mean')
  c.model.ssl_head.depth = 0
  with pytest.raises(ValueError, match=r'^config.model.ssl_head.depth: '):
    registry.build_network(c)


def _data_error(tmp_path, **ssl):
  data = config_lib.base_config().data
  data.features = 'ssl'
  data.feature_params.ssl.update(ssl)
  data.cache_dir = str(tmp_path)
  with pytest.raises(ValueError) as e:
    pipeline.validate(data, 8)
  return _one_line(e)


def test_errors_name_the_field_or_file(tmp_path):
  field = 'config.data.feature_params.ssl'
  assert _data_error(tmp_path).startswith(f'{field}.checkpoint: empty; ')
  no_weights = tmp_path / 'no_weights'
  no_weights.mkdir()
  shutil.copy(os.path.join(WHISPER_DIR, hf.CONFIG), no_weights)
  assert _data_error(tmp_path, checkpoint=str(no_weights)).startswith(
      f'{field}.checkpoint: checkpoint {no_weights}: no weights file ')
  bert = os.path.join(GOLDEN, 'bert_tiny')
  assert _data_error(tmp_path, checkpoint=bert) == (
      f"{os.path.join(bert, hf.CONFIG)}: model_type='bert' is not an encoder "
      'the ssl feature set runs; known: hubert, wav2vec2, wavlm, whisper')
  assert _data_error(tmp_path, checkpoint=WHISPER_DIR, layers='0,3') == (
      f"{field}.layers='0,3': index 3 out of range; "
      f'{os.path.join(WHISPER_DIR, hf.CONFIG)} has 3 hidden states '
      '(0 = embedding output .. 2)')
  assert _data_error(tmp_path, checkpoint=WHISPER_DIR, layers='1,x'
                     ).startswith(f"{field}.layers='1,x': 'x' is not a ")
  assert _data_error(tmp_path, checkpoint=WHISPER_DIR, pool='max') == (
      f"{field}.pool: 'max', expected one of mean, none")
  assert _data_error(tmp_path, checkpoint=WHISPER_DIR, dtype='float16'
                     ).startswith(f"{field}.dtype: 'float16'")
  assert _data_error(tmp_path, checkpoint=WHISPER_DIR, batch_size=0
                     ).startswith(f'{field}.batch_size: ')


# wav2vec 2.0 / HuBERT (one family) and WavLM: wired when their modules are
# there. Varied lengths: batches of 1 s and 2 s buckets with padded rows.
SSL_GOLDENS = ('wav2vec2_tiny_group', 'wavlm_tiny')


@pytest.mark.parametrize('golden', SSL_GOLDENS)
def test_wav2vec2_family_means_equal_each_utterance_alone(tmp_path, golden):
  directory = os.path.join(GOLDEN, golden)
  if not os.path.isdir(directory):
    pytest.skip(f'no {golden} checkpoint')
  model_type = hf.read_config(directory)['model_type']
  module, attribute, _ = ssl_features.ENCODERS[model_type]
  lib = pytest.importorskip(module)
  family = getattr(lib, attribute)
  corpus = corpus_lib.load('ssl_varied')
  fc = FeatureConfig.create('ssl', checkpoint=directory, batch_size=4)
  cached = cache_lib.build(corpus, fc, str(tmp_path))
  model = family.from_config(dict(checkpoint=directory,
                                  output_hidden_states=True))
  params = family.load_params(directory, model)
  rows = _rows(cached)
  assert sorted(rows) == list(range(len(VARIED_SECONDS)))
  # The shortest, a middle one and the longest (padded in their batches).
  for i in (0, 3, 1):
    x, length = rows[i]
    assert x.shape == (model.layers + 1, model.hidden) and length == x.shape[0]
    wav = corpus.read_audio(corpus.utterances[i])
    out = model.apply({'params': params}, wav[None])
    states = np.asarray(out.hidden_states[:, 0], np.float64)
    np.testing.assert_allclose(x, states.mean(axis=1), atol=1e-5, rtol=1e-4)
