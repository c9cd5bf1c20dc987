"""Fine-tuning a pretrained upstream: frozen upstream, layer-wise learning-
rate decay (`registry.optimizer_multipliers`, `train.method_optimizer`)."""

import jax
import numpy as np
import pytest

from jaxser import methods as methods_lib
from jaxser import train
from jaxser.models import registry

from test_networks import _batch, _config, FRAMES, NUM_CLASSES


def _setup(**options):
  c = _config('source_only')
  c.model.ast.layers = 2
  c.model.ast.update(options)
  method = methods_lib.create(c, NUM_CLASSES)
  batch = _batch(FRAMES)
  return c, method, batch


def _run(c, method, batch):
  tx = train.method_optimizer(c, method, batch)

  @jax.jit
  def run():
    state = train.create_train_state(method, tx, 0, batch)
    return state, train.make_train_step(method, tx)(state, batch)[0]
  before, after = jax.device_get(run())
  return before.params, after.params


def _moved(before, after):
  return jax.tree.map(lambda a, b: float(np.abs(b - a).max()), before, after)


def test_no_option_no_factors():
  c, method, batch = _setup()
  params = jax.eval_shape(lambda: method.init_variables(
      jax.random.PRNGKey(0), batch))['params']
  assert registry.optimizer_multipliers(c, params) is None


def test_layer_decay_factors():
  c, method, batch = _setup(layer_decay=0.5)
  params = jax.eval_shape(lambda: method.init_variables(
      jax.random.PRNGKey(0), batch))['params']
  f = registry.optimizer_multipliers(c, params)
  enc = f['encoder']
  assert set(jax.tree.leaves(enc['layer_1'])) == {0.5}
  assert set(jax.tree.leaves(enc['layer_0'])) == {0.25}
  assert set(jax.tree.leaves(enc['layernorm'])) == {1.0}
  assert set(jax.tree.leaves(enc['embeddings_patch'])) == {0.125}
  assert enc['position_embeddings'] == 0.125
  assert set(jax.tree.leaves(f['pool'])) == {1.0}
  assert set(jax.tree.leaves(f['emotion_head'])) == {1.0}
  c.model.ast.layer_decay = 1.5
  with pytest.raises(ValueError, match='config.model.ast.layer_decay'):
    registry.optimizer_multipliers(c, params)


def test_frozen_upstream_trains_only_the_pooling_and_heads():
  c, method, batch = _setup(freeze=True)
  before, after = _run(c, method, batch)
  moved = _moved(before, after)
  assert max(jax.tree.leaves(moved['encoder'])) == 0.0
  assert max(jax.tree.leaves(moved['emotion_head'])) > 0.0


def test_layer_decay_scales_each_layers_first_update():
  """One Adam step: an update's size is the learning rate times the sign
  pattern of the gradient, so a layer's step is its factor times the step
  without decay."""
  c, method, batch = _setup()
  c.train.optimizer = 'adam'
  before, plain = _run(c, method, batch)
  c.model.ast.layer_decay = 0.5
  method = methods_lib.create(c, NUM_CLASSES)
  _, decayed = _run(c, method, batch)
  for name, factor in (('layer_1', 0.5), ('layer_0', 0.25),
                       ('embeddings_patch', 0.125), ('layernorm', 1.0)):
    a = jax.tree.leaves(jax.tree.map(lambda x, y: y - x, before['encoder'][name],
                                     plain['encoder'][name]))
    b = jax.tree.leaves(jax.tree.map(lambda x, y: y - x, before['encoder'][name],
                                     decayed['encoder'][name]))
    for u, v in zip(a, b):
      np.testing.assert_allclose(v, factor * u, rtol=1e-3, atol=2e-7)
