"""jaxser.models.layers: the fast max-pool equals flax's, the hashed-bits
dropout has the right rate, scale and independence."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser.models import layers


@pytest.mark.parametrize('shape,window', [
    ((3, 300, 5), (2,)),
    ((3, 75, 5), (2,)),        # odd length: the last frame is dropped
    ((2, 32, 129, 4), (2, 2)),  # odd frequency axis
    ((2, 9, 7, 3), (1, 2)),
    ((2, 9, 7, 3), (3, 1)),
])
def test_max_pool_matches_flax(shape, window):
  x = jax.random.normal(jax.random.key(0), shape)
  want = nn.max_pool(x, window, strides=window)
  got = layers.max_pool(x, window)
  assert got.shape == want.shape
  np.testing.assert_array_equal(got, want)
  # Without ties (continuous random input) the gradients agree exactly.
  g_want = jax.grad(lambda v: (nn.max_pool(v, window, strides=window)**3
                               ).sum())(x)
  g_got = jax.grad(lambda v: (layers.max_pool(v, window)**3).sum())(x)
  np.testing.assert_allclose(g_got, g_want, rtol=1e-6)


def test_max_pool_rejects_wrong_window_rank():
  with pytest.raises(ValueError, match='window'):
    layers.max_pool(jnp.zeros((2, 8, 8, 1)), (2,))
  with pytest.raises(ValueError, match='size 1 is shorter than its window 2'):
    layers.max_pool(jnp.zeros((2, 1, 3)), (2,))


def _dropout(x, rate, seed, deterministic=False):
  return layers.Dropout(rate, deterministic=deterministic).apply(
      {}, x, rngs={'dropout': jax.random.key(seed)})


def test_dropout_rate_and_scale():
  x = jnp.ones((64, 100, 32))
  for rate in (0.1, 0.5):
    y = np.asarray(_dropout(x, rate, 0))
    kept = y != 0
    # 204800 Bernoulli draws: 5 standard deviations is < 0.0056.
    assert abs(1 - kept.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) /
                                                       y.size)
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)


def test_dropout_masks_look_independent():
  x = jnp.ones((256, 1024))
  a = np.asarray(_dropout(x, 0.5, 0)) != 0
  b = np.asarray(_dropout(x, 0.5, 1)) != 0
  # Two keys: masks agree on about half of the elements.
  assert abs((a == b).mean() - 0.5) < 0.01
  # Neighbouring elements (the hash inputs differ by 1) are uncorrelated,
  # along both axes, and no row repeats another shifted.
  for u, v in ((a[:, 1:], a[:, :-1]), (a[1:], a[:-1])):
    assert abs(np.corrcoef(u.ravel(), v.ravel())[0, 1]) < 0.01
  # Same key: the same mask.
  np.testing.assert_array_equal(a, np.asarray(_dropout(x, 0.5, 0)) != 0)


def test_dropout_deterministic_and_edge_rates():
  x = jax.random.normal(jax.random.key(3), (4, 5))
  np.testing.assert_array_equal(_dropout(x, 0.5, 0, deterministic=True), x)
  np.testing.assert_array_equal(_dropout(x, 0.0, 0), x)
  np.testing.assert_array_equal(_dropout(x, 1.0, 0), jnp.zeros_like(x))
