"""The PyTorch reference of the Emo-DNA step (benchmarks/torch_emodna.py).

Skipped where torch is not installed (it is not a jaxser dependency).
"""

import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser import grid
from jaxser.methods import emodna

torch = pytest.importorskip('torch')

NUM_CLASSES = 4


def _torch_emodna():
  path = os.path.join(os.path.dirname(__file__), '..', 'benchmarks',
                      'torch_emodna.py')
  spec = importlib.util.spec_from_file_location('torch_emodna', path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _jax_net(num_classes):
  """Emo-DNA's network as configs/emodna.py builds it."""
  config = grid.load_config('emodna', grid.default_configs_dir())
  return emodna.EmoDNA(config, num_classes).model


def _jax_num_params(num_classes):
  net = _jax_net(num_classes)
  x = jnp.zeros((2, 48, 40), jnp.float32)
  lengths = jnp.full((2,), 48, jnp.int32)
  shapes = jax.eval_shape(
      lambda: net.init({'params': jax.random.PRNGKey(0),
                        'dropout': jax.random.PRNGKey(1)},
                       x, lengths, train=False))
  return sum(int(np.prod(a.shape))
             for a in jax.tree_util.tree_leaves(shapes['params']))


def test_param_count_matches_jaxser():
  te = _torch_emodna()
  model = te.EmoDNANet(NUM_CLASSES)
  assert te.num_trainable_params(model) == _jax_num_params(NUM_CLASSES)


def test_one_train_step_is_finite():
  te = _torch_emodna()
  torch.manual_seed(0)
  trainer = te.Trainer(NUM_CLASSES)
  batch = te.random_batch(batch_size=4, frames=48, num_classes=NUM_CLASSES)
  # Uneven lengths exercise the packed BiLSTM and the masked means.
  batch['length_cpu'] = torch.tensor([48, 40, 30, 17, 48, 33, 24, 9])
  batch['length'] = batch['length_cpu'].clone()
  before = [p.detach().clone() for p in trainer.model.parameters()]
  loss = float(trainer.step(batch))
  assert math.isfinite(loss)
  assert any(not torch.equal(b, p)
             for b, p in zip(before, trainer.model.parameters()))
  assert 0.0 < float(trainer.tau) < 1.0


def test_losses_match_jaxser():
  from jaxser import losses  # pylint: disable=g-import-not-at-top
  te = _torch_emodna()
  rng = np.random.default_rng(0)
  x = rng.standard_normal((16, 128)).astype(np.float32)
  y = rng.standard_normal((16, 128)).astype(np.float32) + 0.3
  z = x / np.linalg.norm(x, axis=1, keepdims=True)
  labels = rng.integers(0, NUM_CLASSES, 16)
  mask = (rng.random(16) > 0.3).astype(np.float32)
  protos = [rng.standard_normal(128).astype(np.float32) for _ in range(4)]
  want = jax.jit(lambda: (
      losses.mk_mmd(x, y),
      losses.supervised_contrastive(z, labels, mask, 0.01),
      losses.prototype_decoupling(*protos, temperature=0.01)))()
  t = torch.tensor
  got = (te.mk_mmd(t(x), t(y)),
         te.supervised_contrastive(t(z), t(labels), t(mask)),
         te.prototype_decoupling(*map(t, protos)))
  for g, w in zip(got, want):
    np.testing.assert_allclose(float(g), float(w), rtol=1e-4, atol=1e-7)


def _port(params, stats, model):
  """Copies EmoDNANet variables into the torch model (eval-mode check)."""
  def a(v):
    return torch.tensor(np.asarray(v))

  def conv(m, p):
    m.weight.data = a(p['kernel']).permute(2, 1, 0).contiguous()
    m.bias.data = a(p['bias'])

  def bn(m, p, s):
    m.weight.data, m.bias.data = a(p['scale']), a(p['bias'])
    m.running_mean, m.running_var = a(s['mean']), a(s['var'])

  def dense(m, p):
    m.weight.data = a(p['kernel']).T.contiguous()
    m.bias.data = a(p['bias'])

  pb, sb = params['backbone'], stats['backbone']
  for i in range(3):
    conv(model.backbone.net[5 * i], pb[f'Conv_{i}'])
    bn(model.backbone.net[5 * i + 1], pb[f'BatchNorm_{i}'],
       sb[f'BatchNorm_{i}'])
  pe, se = params['emotion_encoder'], stats['emotion_encoder']
  for k, block in enumerate(model.emotion_encoder.blocks):
    p, s = pe[f'TemporalBlock_{k}'], se[f'TemporalBlock_{k}']
    for j in range(2):
      conv(block.net[5 * j + 1], p[f'Conv_{j}'])
      bn(block.net[5 * j + 2], p[f'BatchNorm_{j}'], s[f'BatchNorm_{j}'])
  dense(model.emotion_encoder.fc, pe['Dense_0'])
  lstm = model.corpus_encoder.lstm
  for d, suffix in ((0, ''), (1, '_reverse')):
    c = params['corpus_encoder'][f'OptimizedLSTMCell_{d}']
    cat = lambda names, key: np.concatenate(  # noqa: E731
        [np.asarray(c[g][key]).T for g in names])
    getattr(lstm, 'weight_ih_l0' + suffix).data = torch.tensor(
        cat(('ii', 'if', 'ig', 'io'), 'kernel'))
    getattr(lstm, 'weight_hh_l0' + suffix).data = torch.tensor(
        cat(('hi', 'hf', 'hg', 'ho'), 'kernel'))
    getattr(lstm, 'bias_ih_l0' + suffix).data = torch.tensor(
        cat(('hi', 'hf', 'hg', 'ho'), 'bias'))
  # flax names ProjectionHead's Dense layers in construction order: the
  # outer (output) layer is Dense_0.
  dense(model.projection.fc1, params['projection']['Dense_1'])
  dense(model.projection.fc2, params['projection']['Dense_0'])
  dense(model.emotion_head, params['emotion_head'])
  dense(model.corpus_head, params['corpus_head'])


def test_same_network_as_jaxser():
  te = _torch_emodna()
  rng = np.random.default_rng(1)
  x = rng.standard_normal((6, 64, 40)).astype(np.float32)
  lengths = np.array([64, 50, 33, 64, 17, 40], np.int32)
  net = _jax_net(NUM_CLASSES)
  # Random values in the shapes of EmoDNANet's variables (no jitted init:
  # cheaper), positive for the batch-norm variances.
  shapes = jax.eval_shape(
      lambda: net.init({'params': jax.random.PRNGKey(0),
                        'dropout': jax.random.PRNGKey(1)},
                       x, lengths, train=False))
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  values = []
  for path, leaf in leaves:
    v = 0.3 * rng.standard_normal(leaf.shape)
    if jax.tree_util.keystr(path).endswith("['var']"):
      v = 0.5 + np.abs(v)
    values.append(v.astype(np.float32))
  variables = jax.tree_util.tree_unflatten(treedef, values)
  want = jax.jit(lambda v: net.apply(v, x, lengths, train=False))(variables)
  model = te.EmoDNANet(NUM_CLASSES).eval()
  _port(variables['params'], variables['batch_stats'], model)
  with torch.no_grad():
    got = model(torch.tensor(x), torch.tensor(lengths, dtype=torch.long))
  for k in ('emotion_logits', 'corpus_logits', 'e', 'z_e', 'z_c'):
    np.testing.assert_allclose(got[k].numpy(), np.asarray(want[k]),
                               rtol=1e-4, atol=1e-4, err_msg=k)
