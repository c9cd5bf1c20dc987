"""The network registry: every method runs a train step on at least two
networks in a tiny configuration, and a data config that does not fit the
network is a one-line error naming the field.

The networks are shrunk (a few channels, short inputs) so that each
(method, network) step compiles in seconds; the train step is the loop's
own (`train.create_train_state`, `train.make_train_step`).
"""

import jax
import ml_collections
import numpy as np
import optax
import pytest

from jaxser import config as config_lib
from jaxser import grid
from jaxser import methods as methods_lib
from jaxser import models
from jaxser import train
from jaxser.models import classifier

NUM_CLASSES = 4
BATCH = 4  # Per domain.
FRAMES = 16
SEGMENTS = 3
SAMPLES = 4000  # 0.25 s of waveform: 26 MFCC frames.

# Each method on two networks (together: every network under every family
# of methods); every method's default network is tested in its own file.
PAIRS = [
    ('source_only', 'cnn_blstm'), ('source_only', 'mlp'),
    ('dann', 'cnn_gru'), ('dann', 'mlp'),
    ('dan', 'cnn_blstm'), ('dan', 'mlp'),
    ('jan', 'cnn_gru'), ('jan', 'mlp'),
    ('cdan', 'cnn_blstm'), ('cdan', 'mlp'),
    ('cdan_e', 'cnn_gru'), ('cdan_e', 'mlp'),
    ('bsp', 'cnn_blstm'), ('bsp', 'mlp'),
    ('mmd_ser', 'cnn_tcn'), ('mmd_ser', 'mlp'),
    ('emodna', 'cnn_gru'), ('emodna', 'cnn_blstm'),
    ('difl', 'cnn_tcn'), ('difl', 'mlp'),
    ('multitask', 'cnn_tcn'), ('multitask', 'cnn_gru'),
]
# A feature set of each network's input kind.
FEATURES = {'cnn_tcn': 'mfcc40', 'cnn_gru': 'logmel80',
            'cnn_blstm': 'spec_segments', 'mlp': 'egemaps'}


def _config(method: str, network: str):
  """configs/<method>.py on a tiny `network`."""
  c = grid.load_config(method, grid.default_configs_dir())
  c.model.name = network
  if c.model.frontend:  # Waveforms in, features computed on the device.
    c.data.feature_params.waveform.samples = SAMPLES
  else:
    c.data.features = FEATURES.get(network, 'mfcc40')
  c.data.feature_params.spec_segments.n_segments = SEGMENTS
  m = c.model
  m.cnn_tcn.update(dict(channels=8, dilations=(1, 2), embed_dim=16))
  m.cnn_gru.update(dict(conv_features=(4, 4, 4, 4), gru_hidden=8,
                        fc_hidden=8))
  m.cnn_blstm.update(dict(conv_features=(4,), time_pool=(4,), freq_pool=(8,),
                          lstm_hidden=4, embed_dim=8))
  m.mlp.hidden = (16,)
  if 'lstm_hidden' in m:  # Emo-DNA's corpus encoder: half of E.
    m.projection_dim = 8
  for block in ('dann', 'cdan', 'cdan_e', 'bsp'):
    if block in c:
      c[block].discriminator_hidden = 16
  if 'difl' in c:
    c.difl.head_hidden = 8
  c.train.steps = 10
  return c


def _shape(config):
  """One utterance's features and its length under `config.data`."""
  features = config.data.features
  if features == 'waveform':
    return (SAMPLES,), SAMPLES
  if features == 'spec_segments':
    return (SEGMENTS, 32, 129), SEGMENTS
  if features == 'egemaps':
    return (88,), 1
  return (FRAMES, {'mfcc40': 40, 'logmel80': 80}[features]), FRAMES


def _batch(config, seed=0):
  rng = np.random.default_rng(seed)
  shape, length = _shape(config)

  def domain(with_label, d):
    b = {'features': rng.standard_normal((BATCH,) + shape).astype(
        np.float32) * (0.1 if config.data.features == 'waveform' else 1.0),
         'length': rng.integers(max(1, length // 2), length + 1,
                                BATCH).astype(np.int32),
         'domain': np.full(BATCH, d, np.int32),
         'gender': rng.integers(-1, 2, BATCH).astype(np.int32),
         'language': np.full(BATCH, d, np.int32)}
    if with_label:
      b['label'] = rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32)
    return b
  return {'source': domain(True, 0), 'target': domain(False, 1)}


@pytest.mark.parametrize('method_name,network', PAIRS)
def test_every_method_trains_a_step_on_the_network(method_name, network):
  config = _config(method_name, network)
  method = methods_lib.create(config, NUM_CLASSES, (3, 4, 5, 6))
  batch = _batch(config)
  tx = optax.sgd(1e-2)
  state = jax.jit(lambda: train.create_train_state(method, tx, 0, batch))()
  step = jax.jit(train.make_train_step(method, tx))
  new, metrics = step(state, batch)
  new, metrics = jax.device_get((new, metrics))
  assert np.isfinite(metrics['loss']) and metrics['grad_norm'] > 0
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()),
                       jax.device_get(state.params), new.params)
  assert max(jax.tree.leaves(moved)) > 0
  logits = jax.jit(method.logits)(
      {'params': new.params, 'batch_stats': new.batch_stats},
      batch['target']['features'], batch['target']['length'])
  assert logits.shape == (BATCH, NUM_CLASSES)
  assert np.all(np.isfinite(np.asarray(logits)))


def test_every_network_is_in_the_base_config_with_its_defaults():
  c = config_lib.base_config()
  assert c.model.name == 'cnn_tcn' and c.model.frontend == ''
  assert {'cnn_tcn', 'cnn_gru', 'cnn_blstm', 'mlp'} <= set(models.names())
  for name in models.names():
    assert c.model[name].to_dict() == dict(models.get(name).defaults)
  assert models.get('cnn_blstm').predict_from_frames
  assert not models.get('mlp').frame_sequence


def test_feature_kinds():
  want = {'mfcc40': 'frames', 'logmel80': 'frames', 'fbank128': 'frames',
          'spec_segments': 'segments', 'waveform': 'waveform',
          'is10': 'functionals', 'egemaps': 'functionals'}
  for features, kind in want.items():
    assert models.feature_kind(features) == kind


def _error(config, method='source_only'):
  with pytest.raises(ValueError) as e:
    methods_lib.get(method).check_config(config)
  message = str(e.value)
  assert '\n' not in message
  # The check the loop can run before reading data is the one the method
  # runs when it is built.
  with pytest.raises(ValueError, match='^' + message[:20]):
    methods_lib.create(config, NUM_CLASSES)
  return message


def test_a_data_config_that_does_not_fit_the_network_names_the_field():
  c = _config('source_only', 'cnn_blstm')
  c.data.features = 'mfcc40'
  assert _error(c).startswith(
      "config.data.features: network 'cnn_blstm' (config.model.name) takes "
      "segment spectrograms, got 'mfcc40' (frame-level features)")
  c = _config('source_only', 'cnn_tcn')
  c.data.features = 'spec_segments'
  assert _error(c).startswith("config.data.features: network 'cnn_tcn'")
  c.data.features = 'is10'
  assert 'functionals' in _error(c)
  c.data.features = 'waveform'  # Frames from waveforms need a front end.
  assert 'config.model.frontend' in _error(c)
  c = _config('source_only', 'mlp')
  c.data.features = 'logmel80'
  assert _error(c).startswith("config.data.features: network 'mlp'")

  c = _config('source_only', 'nonet')
  assert _error(c).startswith("config.model.name: unknown network 'nonet'")
  c = _config('multitask', 'cnn_blstm')  # MFCC frames, not segments.
  assert _error(c, 'multitask').startswith(
      "config.model.frontend: network 'cnn_blstm'")
  c = _config('multitask', 'cnn_tcn')
  c.model.frontend = 'mfcc'
  assert _error(c, 'multitask').startswith('config.model.frontend: unknown')
  c = _config('source_only', 'cnn_tcn')
  c.model.frontend = 'mfcc40'  # A front end reads waveforms.
  assert _error(c).startswith('config.data.features: the front end')
  c = _config('emodna', 'mlp')  # No frame sequence for E_c.
  assert _error(c, 'emodna').startswith('config.model.name:')
  c = _config('emodna', 'cnn_gru')  # One g for E (16) and C (2 x 4).
  c.model.lstm_hidden = 4
  assert _error(c, 'emodna').startswith(
      'config.model.lstm_hidden: the projection head g takes E (16 on '
      'cnn_gru)')


def test_classify_outputs_of_a_frame_network():
  """Utterance logits from the mean frame posterior; training rows are the
  valid frames."""
  rng = np.random.default_rng(0)
  frames = rng.standard_normal((2, 3, 5)).astype(np.float32)
  head = classifier.DenseHead(NUM_CLASSES)
  out = {'frames': frames, 'frame_lengths': np.array([1, 3], np.int32),
         'embedding': frames.mean(1)}
  variables = head.init(jax.random.PRNGKey(0), frames[0], train=False)
  got = classifier.classify_outputs(
      out, head.bind(variables), predict_from_frames=True, train=False)
  z = np.asarray(head.apply(variables, frames, train=False))
  np.testing.assert_array_equal(got['instance_mask'],
                                [[1, 0, 0], [1, 1, 1]])
  np.testing.assert_allclose(got['instance_logits'], z, rtol=1e-6)
  p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
  np.testing.assert_allclose(got['logits'][0], np.log(p[0, 0]), rtol=1e-5)
  np.testing.assert_allclose(got['logits'][1], np.log(p[1].mean(0)),
                             rtol=1e-5)
  plain = classifier.classify_outputs(
      out, head.bind(variables), predict_from_frames=False, train=False)
  assert plain['instance_logits'].shape == (2, 1, NUM_CLASSES)
  np.testing.assert_allclose(plain['logits'], plain['instance_logits'][:, 0])


def test_a_run_config_from_before_the_registry_is_upgraded():
  """jaxser.label restores runs whose config.json has the flat
  config.model of each method's own network."""
  def legacy(method, **model):
    c = config_lib.base_config()
    c.method = method
    c.model = ml_collections.ConfigDict(
        {'dropout': 0.1, 'masked_pooling': True, **model})
    return c

  c = legacy('mmd_ser_source_only', conv_features=(8, 8, 8, 8),
             gru_hidden=32, dropout=0.5)
  c.mmd_ser = ml_collections.ConfigDict({'class_weighted': True})
  new = config_lib.upgrade(c)
  assert new.method == 'source_only' and new.source_only.class_weighted
  assert 'mmd_ser' not in new and new.model.name == 'cnn_gru'
  assert new.model.cnn_gru.conv_features == (8, 8, 8, 8)
  assert new.model.cnn_gru.gru_hidden == 32
  assert new.model.cnn_gru.dropout == 0.5
  assert 'gru_hidden' not in new.model and 'dropout' not in new.model

  new = config_lib.upgrade(legacy('source_only', backbone='cnn_blstm',
                                  embed_dim=16))
  assert new.model.name == 'cnn_blstm' and new.model.cnn_blstm.embed_dim == 16
  assert not new.source_only.class_weighted

  new = config_lib.upgrade(legacy('emodna', lstm_hidden=64,
                                  masked_pooling=False))
  assert new.model.name == 'cnn_tcn' and new.model.lstm_hidden == 64
  assert not new.model.cnn_tcn.masked_pooling
  assert config_lib.upgrade(new) is new  # Today's layout stays.
