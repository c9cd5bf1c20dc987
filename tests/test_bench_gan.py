"""`python -m jaxser.bench` on a multi-phase method, and the PyTorch reference
of CAEmoCyGAN's adversarial step (benchmarks/torch_caemocygan.py) against
jaxser's with the same weights.

The torch tests are skipped where torch is not installed (it is not a jaxser
dependency).
"""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxser import train

ROOT = os.path.join(os.path.dirname(__file__), '..')
NUM_CLASSES = 3
B = 16


@pytest.mark.slow  # A subprocess compiling the GAN step: ~75 s.
def test_bench_times_the_adversarial_step():
  # Small networks: the JSON line and the stream count are what is tested.
  env = dict(os.environ, XLA_FLAGS='', JAX_PLATFORMS='cpu')
  out = subprocess.run(
      [sys.executable, '-m', 'jaxser.bench', '--config=configs/caemocygan.py',
       '--steps=2', '--warmup=1', '--config.train.batch_size=8',
       '--config.gan.encoder=(16,8,4)', '--config.gan.discriminator=(8,4)',
       '--config.gan.classifier=(8,4)'],
      cwd=ROOT, env=env, capture_output=True, text=True, check=True)
  line = json.loads(out.stdout.strip().splitlines()[-1])
  assert line['method'] == 'caemocygan'
  assert line['phase'] == 'adversarial'
  assert line['streams'] == 3  # Two sources and the target.
  assert line['batch_size_per_domain'] == 8
  assert line['input_shape'] == [1582]
  assert line['samples_per_s'] > 0 and line['flops_per_step'] > 0


def _torch_module():
  path = os.path.join(ROOT, 'benchmarks', 'torch_caemocygan.py')
  spec = importlib.util.spec_from_file_location('torch_caemocygan', path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _jax_setup():
  """The CAEmoCyGAN method, its adversarial phase and an initial state with
  random batch-norm statistics for F_s (its eval mode is then tested)."""
  from jaxser import grid  # pylint: disable=g-import-not-at-top
  from jaxser import methods as methods_lib  # pylint: disable=g-import-not-at-top
  config = grid.load_config('caemocygan', grid.default_configs_dir())
  method = methods_lib.create(config, NUM_CLASSES)
  example = {'source': {'features': np.zeros((2, 1582), np.float32),
                        'label': np.zeros((2,), np.int32)},
             'target': {'features': np.zeros((2, 1582), np.float32)}}
  state = jax.jit(lambda: train.create_train_state(method, None, 0,
                                                   example))()
  rng = np.random.default_rng(2)
  fs = jax.tree.map(np.asarray, state.batch_stats['f_s'])
  fs = {k: {'mean': 0.3 * rng.standard_normal(v['mean'].shape).astype(
                np.float32),
            'var': (0.5 + rng.random(v['var'].shape)).astype(np.float32)}
        for k, v in fs.items()}
  state = state.replace(batch_stats={**state.batch_stats, 'f_s': fs})
  return method, state


def _port(params, stats, model, torch):
  """jaxser's GAN-family variables -> the torch CAEmoCyGAN."""
  def a(v):
    return torch.tensor(np.asarray(v))

  def ff(m, p, s):
    for i, linear in enumerate(m.linears):
      linear.weight.data = a(p[f'dense{i}']['kernel']).T.contiguous()
      if 'bias' in p[f'dense{i}']:
        linear.bias.data = a(p[f'dense{i}']['bias'])
      else:
        assert linear.bias is None
      if f'bn{i}' in p:
        norm = m.norms[i]
        norm.weight.data = a(p[f'bn{i}']['scale'])
        norm.bias.data = a(p[f'bn{i}']['bias'])
        norm.running_mean = a(s[f'bn{i}']['mean'])
        norm.running_var = a(s[f'bn{i}']['var'])
      else:
        assert isinstance(m.norms[i], torch.nn.Identity)

  for name, m in (('enc_s', model.enc_s), ('enc_t', model.enc_t),
                  ('dec_t', model.dec_t), ('d_t', model.d_t),
                  ('f_s', model.f_s)):
    ff(m, params[name], stats.get(name, {}))
  for i in range(len(model.dec_s)):
    ff(model.dec_s[i], params[f'dec_s{i}'], stats[f'dec_s{i}'])
    ff(model.d_s[i], params[f'd_s{i}'], stats[f'd_s{i}'])
  att = params['attention']
  model.attention.score.weight.data = a(att['score']['kernel']).T.contiguous()
  model.attention.score.bias.data = a(att['score']['bias'])
  model.attention.v.weight.data = a(att['v']['kernel']).T.contiguous()


def _batch():
  rng = np.random.default_rng(3)
  xs = [rng.uniform(-1, 1, (B, 1582)).astype(np.float32) for _ in range(2)]
  ys = [rng.integers(0, NUM_CLASSES, B).astype(np.int32) for _ in range(2)]
  xt = rng.uniform(-1, 1, (B, 1582)).astype(np.float32)
  return xs, ys, xt


def test_torch_step_matches_jaxser():
  torch = pytest.importorskip('torch')
  tc = _torch_module()
  method, state = _jax_setup()
  xs, ys, xt = _batch()
  trainer = tc.Trainer(num_sources=2, num_classes=NUM_CLASSES)
  _port(jax.tree.map(np.asarray, state.params),
        jax.tree.map(np.asarray, state.batch_stats), trainer.model, torch)
  tb = {'xs': [torch.tensor(x) for x in xs],
        'ys': [torch.tensor(y, dtype=torch.long) for y in ys],
        'xt': torch.tensor(xt)}

  # The generator loss, term by term, for the same weights.
  total, (_, _, m) = jax.jit(method.generator_losses)(
      state.params, state.batch_stats, xs, ys, xt, jax.random.PRNGKey(0))
  got_total, got_terms, _ = tc.generator_loss(trainer.model, tb['xs'],
                                              tb['ys'], tb['xt'])
  want_terms = [m['loss_cycle'], m['loss_identity'], m['loss_gan_g'],
                m['loss_emotion']]
  np.testing.assert_allclose(float(got_total.detach()), float(total),
                             rtol=1e-4)
  for g, w in zip(got_terms, want_terms):
    np.testing.assert_allclose(float(g.detach()), float(w), rtol=1e-4,
                               atol=1e-6)
  # generator_loss above ran in training mode: it updated the generators'
  # running statistics as jaxser's does, so port again before the steps.
  _port(jax.tree.map(np.asarray, state.params),
        jax.tree.map(np.asarray, state.batch_stats), trainer.model, torch)

  # Two whole steps (generators + attention, then discriminators): the
  # second step's losses see the first step's Adam updates.
  phases = method.phases(method.arrays(_tiny_arrays(), 0))
  phase = [p for p in phases if p.name == 'adversarial'][0]
  step = jax.jit(phase.step)
  batch = {'s0': {'features': xs[0], 'label': ys[0]},
           's1': {'features': xs[1], 'label': ys[1]},
           't': {'features': xt}}
  for k in range(2):
    state, want = step(state, batch)
    got = trainer.step(tb)
    for key in ('loss_generators', 'loss_discriminators', 'loss_emotion'):
      np.testing.assert_allclose(float(got[key]), float(want[key]),
                                 rtol=1e-4, atol=1e-6, err_msg=key)
    if k == 0:
      # Batch-norm running means after one step: the same calls in the same
      # order. (Not after two: each Dense bias before a batch norm has a
      # zero gradient up to rounding, which Adam turns into +-lr steps of
      # either sign on either side.)
      for name, m in (('enc_s', trainer.model.enc_s),
                      ('dec_s1', trainer.model.dec_s[1]),
                      ('d_t', trainer.model.d_t)):
        np.testing.assert_allclose(
            m.norms[0].running_mean.numpy(),
            np.asarray(state.batch_stats[name]['bn0']['mean']), rtol=1e-4,
            atol=1e-6, err_msg=name)


def _tiny_arrays():
  """What `method.arrays` reads (two labelled sources and a target)."""
  rng = np.random.default_rng(4)
  def corpus(n, labelled):
    return {'features': rng.uniform(-1, 1, (n, 1582)).astype(np.float32),
            'label': (np.arange(n) % NUM_CLASSES if labelled
                      else np.full(n, -1)).astype(np.int32),
            'index': np.arange(n, dtype=np.int32),
            'length': np.ones(n, np.int32),
            'domain': np.zeros(n, np.int32)}
  s0, s1 = corpus(6, True), corpus(6, True)
  return {'source': {k: np.concatenate([s0[k], s1[k]]) for k in s0},
          'source0': s0, 'source1': s1, 'target': corpus(6, False),
          'target_eval': corpus(6, True)}
