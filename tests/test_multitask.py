"""The multitask method: on-device augmentation, the JAX MFCC front end, the
loss and its wiring into the train loop.

Each augmentation is checked against a NumPy transcription on a small signal
with fixed parameters, the draws against their probabilities, a drawn chain
(and the aug-task labels) against the NumPy chain of the transforms it says it
applied, and the front end against librosa's `mfcc40`.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from conftest import tiny_config
from jaxser import augment
from jaxser import methods as methods_lib
from jaxser import train
from jaxser.data import features as features_lib
from jaxser.data import pipeline
from jaxser.models import frontend

SR = 16000
T, N = 256, 200  # Padded and valid samples of the small test signals.

# Table 2 of the paper, transcribed independently of jaxser.augment.
TABLE_2 = (
    ('gain', 'polarity_inversion'),
    ('gain', 'polarity_inversion', 'shift'),
    ('gain', 'polarity_inversion', 'time_inversion'),
    ('band_stop', 'peak_normalization', 'shift'),
    ('gain', 'polarity_inversion', 'colored_noise'),
)


def _signal(t=T, n=N, seed=0):
  rng = np.random.default_rng(seed)
  x = np.zeros(t, np.float32)
  x[:n] = (0.4 * np.sin(2 * np.pi * 440 * np.arange(n) / SR) +
           0.1 * rng.standard_normal(n))
  return x


################################################################################
# NumPy references (float64).
################################################################################


def np_gain(x, n, p):
  return x * 10**(p['gain_db'] / 20)


def np_polarity_inversion(x, n, p):
  return -x


def np_shift(x, n, p):
  y = np.zeros_like(x)
  y[:n] = np.roll(x[:n], int(p['shift']))
  return y


def np_time_inversion(x, n, p):
  y = np.zeros_like(x)
  y[:n] = x[:n][::-1]
  return y


def np_band_stop(x, n, p):
  spec = np.fft.rfft(x)
  f = np.fft.rfftfreq(len(x), 1 / SR)
  c, w = p['center_hz'], p['bandwidth_fraction']
  spec[(f >= c * (1 - w / 2)) & (f <= c * (1 + w / 2))] = 0
  y = np.fft.irfft(spec, len(x))
  y[n:] = 0
  return y


def np_peak_normalization(x, n, p):
  return x / np.abs(x).max()


def np_colored_noise(x, n, p):
  bins = len(x) // 2 + 1
  # torch-audiomentations' _gen_noise mask.
  mask = 1 / np.linspace(1, np.sqrt(SR / 2), bins)**p['f_decay']
  noise = np.fft.irfft(np.fft.rfft(p['white']) * mask, len(x))
  noise[n:] = 0
  noise /= np.sqrt(np.mean(noise[:n]**2))
  rms = np.sqrt(np.mean(x[:n]**2))
  return x + rms / 10**(p['snr_db'] / 20) * noise


NP_TRANSFORMS = {
    'gain': np_gain, 'polarity_inversion': np_polarity_inversion,
    'shift': np_shift, 'time_inversion': np_time_inversion,
    'band_stop': np_band_stop, 'peak_normalization': np_peak_normalization,
    'colored_noise': np_colored_noise,
}


def _params(seed=0):
  rng = np.random.default_rng(seed)
  return dict(gain_db=-7.5, shift=-37, center_hz=1234.5,
              bandwidth_fraction=0.8, snr_db=6.0, f_decay=1.3,
              white=rng.standard_normal(T).astype(np.float32))


def _draw_of(params, applied, aug_type=0):
  """A one-example `augment.Draw` with the given parameters."""
  one = lambda v, dt=jnp.float32: jnp.asarray([v], dt)
  return augment.Draw(
      aug_type=one(aug_type, jnp.int32),
      applied=jnp.asarray([applied]),
      gain_db=one(params['gain_db']), shift=one(params['shift'], jnp.int32),
      center_hz=one(params['center_hz']),
      bandwidth_fraction=one(params['bandwidth_fraction']),
      snr_db=one(params['snr_db']), f_decay=one(params['f_decay']),
      white=jnp.asarray(params['white'])[None])


################################################################################
# Augmentations.
################################################################################


def test_table_2_chains_and_order():
  assert augment.TYPES == TABLE_2
  assert sorted(augment.TRANSFORMS) == sorted(NP_TRANSFORMS)
  for chain in TABLE_2:  # Applied in the order Table 2 lists them.
    pos = [augment.TRANSFORMS.index(t) for t in chain]
    assert pos == sorted(pos), chain


def test_each_transform_matches_numpy():
  x, p = _signal(), _params()
  config = augment.AugmentConfig()
  names = augment.TRANSFORMS
  # One example per transform, each applying exactly that transform.
  applied = np.eye(len(names), dtype=bool)
  draws = [_draw_of(p, row) for row in applied]
  d = jax.tree.map(lambda *a: jnp.concatenate(a), *draws)
  batch = jnp.asarray(np.tile(x, (len(names), 1)))
  out = np.asarray(jax.jit(augment.apply, static_argnums=3)(
      batch, jnp.full(len(names), N), d, config))
  for i, name in enumerate(names):
    want = NP_TRANSFORMS[name](x.astype(np.float64), N, p)
    np.testing.assert_allclose(out[i], want, atol=2e-5, rtol=1e-4,
                               err_msg=name)
    assert np.all(out[i][N:] == 0), name  # Padding stays silent.
    assert not np.allclose(out[i], x), name
  # Spot checks of the references themselves.
  assert np.abs(out[names.index('peak_normalization')]).max() == (
      pytest.approx(1.0, abs=1e-6))
  noisy = out[names.index('colored_noise')][:N].astype(np.float64)
  snr = 10 * np.log10(np.mean(x[:N]**2) / np.mean((noisy - x[:N])**2))
  assert snr == pytest.approx(p['snr_db'], abs=1e-3)


def test_draw_probabilities():
  b = 20000
  config = augment.AugmentConfig()
  lengths = jnp.asarray(np.random.default_rng(0).integers(100, T + 1, b))
  d = jax.device_get(jax.jit(augment.draw, static_argnums=(2, 3))(
      jax.random.PRNGKey(0), lengths, 8, config))
  lengths = np.asarray(lengths)
  # Types uniform over a_1..a_5.
  np.testing.assert_allclose(np.bincount(d.aug_type, minlength=5) / b, 0.2,
                             atol=0.02)
  for k, chain in enumerate(TABLE_2):
    rows = d.applied[d.aug_type == k]
    for j, name in enumerate(augment.TRANSFORMS):
      rate = rows[:, j].mean()
      if name in chain:
        assert rate == pytest.approx(0.3, abs=0.03), (k, name)
      else:
        assert rate == 0.0, (k, name)
  # Parameter ranges.
  assert -15 <= d.gain_db.min() and d.gain_db.max() <= 5
  assert np.all(np.abs(d.shift) <= np.round(0.5 * lengths))
  assert abs(np.mean(d.shift / lengths)) < 0.01
  assert d.shift.min() < -0.45 * lengths.min()
  assert 200 <= d.center_hz.min() and d.center_hz.max() <= 4000.01
  # Mel-uniform centres: the median is the centre of the mel range.
  mel = lambda f: 2595 * np.log10(1 + f / 700)
  assert mel(np.median(d.center_hz)) == pytest.approx(
      (mel(200) + mel(4000)) / 2, rel=0.02)
  assert 0.5 <= d.bandwidth_fraction.min() <= d.bandwidth_fraction.max() <= 1.99
  assert 3 <= d.snr_db.min() and d.snr_db.max() <= 30
  assert -2 <= d.f_decay.min() and d.f_decay.max() <= 2


def test_drawn_chains_and_aug_labels_match_what_was_applied():
  b = 64
  config = augment.AugmentConfig(p=0.6)  # More multi-transform chains.
  rng = np.random.default_rng(1)
  lengths = rng.integers(120, T + 1, b)
  x = np.stack([_signal(n=n, seed=i) for i, n in enumerate(lengths)])
  out, d = jax.jit(augment.augment, static_argnums=3)(
      jax.random.PRNGKey(3), jnp.asarray(x), jnp.asarray(lengths), config)
  out, d = np.asarray(out), jax.device_get(d)
  assert d.applied.sum(1).max() >= 2 and (d.applied.sum(1) == 0).any()
  for i in range(b):
    y = x[i].astype(np.float64)
    p = {k: getattr(d, k)[i] for k in ('gain_db', 'shift', 'center_hz',
                                       'bandwidth_fraction', 'snr_db',
                                       'f_decay', 'white')}
    for j, name in enumerate(augment.TRANSFORMS):
      if d.applied[i, j]:
        assert name in TABLE_2[d.aug_type[i]]
        y = NP_TRANSFORMS[name](y, lengths[i], p)
    np.testing.assert_allclose(out[i], y, atol=5e-5, rtol=1e-4)


def test_method_views_carry_the_drawn_labels():
  for target in ('type', 'transforms'):
    config = tiny_config('multitask', '/unused')
    config.data.feature_params.waveform.samples = T
    config.multitask.aug_target = target
    method = methods_lib.get('multitask')(config, 4)
    rng = np.random.default_rng(0)
    lengths = jnp.asarray(rng.integers(120, T + 1, 16))
    x = jnp.asarray(np.stack([_signal(n=int(n)) for n in lengths]))
    key = jax.random.PRNGKey(5)
    waves, labels = jax.jit(method.views)(key, x, lengths)
    assert waves.shape == (2, 16, T)
    reference = jax.jit(augment.augment, static_argnums=3)
    for v in range(2):
      want, d = reference(jax.random.fold_in(key, v), x, lengths,
                          method.aug_config)
      np.testing.assert_allclose(waves[v], want, rtol=1e-6, atol=1e-7)
      np.testing.assert_array_equal(
          labels[v], d.aug_type if target == 'type' else d.applied)
    assert not np.array_equal(waves[0], waves[1])


################################################################################
# Front end.
################################################################################


def test_jax_mfcc_matches_librosa_mfcc40():
  """A speech-like signal: harmonics with vibrato, syllable envelope, noise."""
  rng = np.random.default_rng(0)
  lengths = (11234, 8000, 4567)
  t = np.arange(max(lengths)) / SR
  f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
  phase = 2 * np.pi * np.cumsum(f0) / SR
  voiced = sum(np.sin(k * phase) / k for k in range(1, 15))
  wav = (0.3 * voiced * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))**2 +
         0.01 * rng.standard_normal(t.size)).astype(np.float32)
  padded = 16000
  batch = np.zeros((len(lengths), padded), np.float32)
  for i, n in enumerate(lengths):
    batch[i, :n] = wav[:n]

  fs = features_lib.get('mfcc40')
  mfcc = frontend.MFCC.from_params(fs.defaults)
  out, frames = jax.jit(mfcc)(jnp.asarray(batch), jnp.asarray(lengths))
  out = np.asarray(out)
  assert out.shape == (len(lengths), 1 + padded // 160, 40)
  for i, n in enumerate(lengths):
    want = fs.fn(wav[:n], **fs.defaults)
    assert frames[i] == want.shape[0] == 1 + n // 160
    np.testing.assert_allclose(out[i, :frames[i]], want, atol=2e-3,
                               rtol=1e-4)
    assert np.all(out[i, frames[i]:] == 0)


################################################################################
# The method in the train loop.
################################################################################


def _config(cache_dir, name='multitask', steps=4):
  config = tiny_config(name, cache_dir, steps=steps)
  config.data.feature_params.waveform.samples = 8000  # The 0.5 s clips.
  return config


def test_config_errors_name_the_field():
  for field, value in (('model.name', 'ast_'), ('model.frontend', 'mfcc'),
                       ('multitask.aug_target', 'both'),
                       ('multitask.contrastive_pairs', 'all'),
                       ('multitask.im_domains', 'source')):
    config = _config('/unused')
    section, key = field.split('.')
    config[section][key] = value
    with pytest.raises(ValueError, match=f'config.{field}'):
      methods_lib.get('multitask')(config, 4)
  config = _config('/unused')
  config.data.features = 'mfcc40'
  with pytest.raises(ValueError, match='config.data.features'):
    methods_lib.get('multitask')(config, 4)


def test_source_only_baseline_config():
  base = _config('/unused')
  config = _config('/unused', 'multitask_source_only')
  assert config.method == 'source_only' and 'multitask' not in config
  assert not config.source_only.class_weighted
  for field in ('name', 'frontend'):
    assert config.model[field] == base.model[field]
  assert config.data.to_dict() == base.data.to_dict()
  assert config.train.to_dict() == base.train.to_dict()
  # The same front end and network: the clean-audio emotion model's
  # parameters have the multitask encoder's and emotion head's shapes.
  method = methods_lib.get('source_only')(config, 4)
  batch = {'source': {'features': jnp.ones((2, 8000)),
                      'length': jnp.full(2, 8000)}}
  shapes = jax.eval_shape(method.init_variables, jax.random.PRNGKey(0),
                          batch)['params']
  full = jax.eval_shape(methods_lib.get('multitask')(base, 4).init_variables,
                        jax.random.PRNGKey(0), batch)['params']
  shape = lambda tree: jax.tree.map(lambda a: a.shape, tree)
  network = {k: v for k, v in shapes.items() if k != 'emotion_head'}
  assert shape(network) == shape(full['encoder'])
  assert shape(shapes['emotion_head']) == shape(full['emotion_head'])


def test_end_to_end_writes_results(tmp_path, cache_dir):
  config = _config(cache_dir, steps=2)
  result = train.train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / 'results.json') as f:
    saved = json.load(f)
  assert saved['method'] == 'multitask' and saved['steps'] == 2
  assert saved['features'] == 'waveform' and saved['num_eval'] == 48
  assert 0.0 <= result['uar'] <= 1.0
  rows = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  last = [r for r in rows if 'train/loss' in r][-1]
  for k in ('loss_emotion', 'loss_cl', 'loss_im', 'loss_aug', 'aug_acc'):
    assert np.isfinite(last[f'train/{k}']), k


def test_sharded_step_matches_single_device(cache_dir):
  config = _config(cache_dir)
  data = pipeline.load_data(config.data)
  assert data.source_train.parts[0].cached.feature_shape == (8000,)
  mesh8 = train.make_mesh()
  mesh1 = Mesh(np.array(jax.devices()[:1]), ('data',))
  method = methods_lib.get('multitask')(config, len(data.classes))
  tx = train.make_optimizer(config.train)
  host_batch = jax.tree.map(np.asarray, next(pipeline.train_batches(
      data, 8, config.seed, 0, NamedSharding(mesh1, P('data')))))

  outs = []
  for mesh in (mesh8, mesh1):
    state = jax.jit(lambda: train.create_train_state(
        method, tx, config.seed, train.example_batch(data, 8)))()
    step = train.jit_train_step(method, tx, mesh)
    batch = jax.device_put(host_batch, NamedSharding(mesh, P('data')))
    assert len(batch['source']['features'].sharding.device_set) == (
        mesh.devices.size)
    for _ in range(2):
      state, metrics = step(state, batch)
    outs.append(jax.device_get((state, metrics)))
  (s8, m8), (s1, m1) = outs
  for a, b in zip(jax.tree.leaves(s8), jax.tree.leaves(s1), strict=True):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  for k in m1:
    np.testing.assert_allclose(m8[k], m1[k], rtol=2e-4, atol=2e-5)
  # Eq. 8 with the paper's weights.
  np.testing.assert_allclose(
      m1['loss'], m1['loss_emotion'] + 0.5 * m1['loss_cl'] +
      0.5 * m1['loss_im'] + 0.1 * m1['loss_aug'], rtol=1e-5)
