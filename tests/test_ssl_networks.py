"""The self-supervised encoders as registered networks (`wav2vec2`,
`hubert`, `wavlm`, `whisper`): a train step of a method on each tiny
encoder (the CNN feature encoder frozen by default), checkpoints loaded into
a method's parameters, every method on a tiny WavLM (slow), and the
multitask paper's "Replace AST with wav2vec 2.0" config."""

import os

import jax
import numpy as np
import optax
import pytest

from jaxser import config as config_lib
from jaxser import methods as methods_lib
from jaxser import train
from jaxser.models import registry

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                       'configs')
SAMPLES = 8000
TINY = {'wav2vec2': dict(layers=2, hidden=32, heads=2, mlp_dim=64),
        'hubert': dict(layers=2, hidden=32, heads=2, mlp_dim=64),
        'wavlm': dict(layers=2, hidden=32, heads=2, mlp_dim=64),
        'whisper': dict(layers=2, hidden=32, heads=2, mlp_dim=64,
                        max_source_positions=50)}
GOLDENS = {'wav2vec2': 'wav2vec2_tiny_group', 'hubert': 'hubert_tiny',
           'wavlm': 'wavlm_tiny', 'whisper': 'whisper_tiny'}


def _config(method, network, checkpoint=''):
  c = config_lib.load(os.path.join(CONFIGS, f'{method}.py'))
  c.model.name = network
  c.model.frontend = ''
  c.data.features = 'waveform'
  c.data.feature_params.waveform.samples = SAMPLES
  if checkpoint:
    c.model[network].checkpoint = checkpoint
  else:
    c.model[network].update(TINY[network])
  if 'lstm_hidden' in c.model:
    c.model.projection_dim = 8
  for block in ('dann', 'cdan', 'cdan_e', 'bsp'):
    if block in c:
      c[block].discriminator_hidden = 16
  return c


def _batch(seed=0, b=2):
  rng = np.random.default_rng(seed)

  def domain(label, d):
    out = {'features': (0.1 * rng.standard_normal((b, SAMPLES))).astype(
               np.float32),
           'length': np.array([SAMPLES, SAMPLES // 2][:b], np.int32),
           'domain': np.full(b, d, np.int32),
           'gender': np.zeros(b, np.int32),
           'language': np.zeros(b, np.int32)}
    if label:
      out['label'] = rng.integers(0, 4, b).astype(np.int32)
    return out
  return {'source': domain(True, 0), 'target': domain(False, 1)}


def _step(config, params=None):
  method = methods_lib.create(config, 4)
  batch = _batch()
  tx = train.method_optimizer(config, method, batch)

  @jax.jit
  def run(params):
    state = train.create_train_state(method, tx, 0, batch)
    if params is not None:
      state = state.replace(params=params)
    new, metrics = train.make_train_step(method, tx)(state, batch)
    return state.params, new.params, metrics
  return method, jax.device_get(run(params))


@pytest.mark.parametrize('network', [
    pytest.param(n, marks=() if n == 'wavlm' else pytest.mark.slow)
    for n in sorted(TINY)])
def test_a_method_trains_a_step_on_each_encoder(network):
  config = _config('dann', network)
  _, (before, after, metrics) = _step(config)
  assert np.isfinite(float(metrics['loss']))
  moved = _upstream(jax.tree.map(lambda a, b: float(np.abs(b - a).max()),
                                 before, after))
  assert max(jax.tree.leaves(moved['layer_1'])) > 0
  if network != 'whisper':  # The CNN feature encoder stays as it was.
    assert max(jax.tree.leaves(moved['feature_extractor'])) == 0


def _upstream(tree):
  """The encoder's parameters, wherever the method nests the network."""
  if isinstance(tree, dict):
    if 'layer_1' in tree:
      return tree
    for value in tree.values():
      found = _upstream(value)
      if found is not None:
        return found
  return None


@pytest.mark.parametrize('network', sorted(GOLDENS))
def test_checkpoint_loads_into_the_method(network):
  directory = os.path.join(GOLDEN, GOLDENS[network])
  config = _config('source_only', network, checkpoint=directory)
  method = methods_lib.create(config, 4)
  params = jax.eval_shape(lambda: method.init_variables(
      jax.random.PRNGKey(0), _batch()))['params']
  params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), params)
  loaded = registry.load_pretrained(config, params)
  want = registry.get(network).load_params(registry.options(config))
  leaves = jax.tree.leaves(loaded['encoder'])
  assert len(leaves) == len(jax.tree.leaves(want))
  for a, b in zip(leaves, jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, np.asarray(b).astype(a.dtype))
  assert any(np.abs(a).max() > 0 for a in leaves)  # Not the zeros.


def test_size_disagreeing_with_the_checkpoint_names_the_field():
  config = _config('source_only', 'wavlm',
                   checkpoint=os.path.join(GOLDEN, 'wavlm_tiny'))
  config.model.wavlm.layers = 5
  with pytest.raises(ValueError, match='config.model.wavlm.layers'):
    registry.check(config)
  config = _config('source_only', 'hubert')
  config.model.hubert.normalize = 'maybe'
  with pytest.raises(ValueError, match='config.model.hubert.normalize'):
    registry.check(config)


def test_replace_ast_with_wav2vec2_config():
  c = config_lib.load(os.path.join(CONFIGS, 'multitask_wav2vec2.py'))
  assert (c.model.name, c.model.frontend, c.data.features) == (
      'wav2vec2', '', 'waveform')
  assert c.multitask.lambda_aug == 0.1 and c.train.learning_rate == 1e-4
  methods_lib.get('multitask').check_config(c)
  c.model.wav2vec2.update(TINY['wav2vec2'])
  c.data.feature_params.waveform.samples = SAMPLES
  c.train.batch_size = 2
  method = methods_lib.create(c, 4)
  batch = _batch()
  variables = method.init_variables(jax.random.PRNGKey(0), batch)
  loss, (_, _, metrics) = jax.jit(lambda v, b: method.loss(
      v['params'], v.get('batch_stats', {}), method.init_state(), b,
      jax.random.PRNGKey(1), 0))(variables, batch)
  assert np.isfinite(float(loss)) and 'loss_cl' in metrics


METHODS = ('source_only', 'dan', 'jan', 'cdan', 'cdan_e', 'bsp', 'mmd_ser',
           'emodna', 'multitask')


@pytest.mark.slow
@pytest.mark.parametrize('method', METHODS)
def test_every_method_trains_a_step_on_a_tiny_wavlm(method):
  config = _config(method, 'wavlm')
  if method == 'multitask':
    config.train.batch_size = 2
  _, (_, _, metrics) = _step(config)
  assert np.isfinite(float(metrics['loss']))
