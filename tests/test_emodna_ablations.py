"""Emo-DNA's ablation switches (its Tables 4 and 6) and L_SCL as an option of
the baselines (its Table 5): each switch removes exactly its loss terms.

Every variant is evaluated on one batch with the full model's parameters
(less the removed modules'), so the terms a switch keeps must equal the full
model's and the ones it removes must be logged as 0 (Emo-DNA) or be absent
(a baseline without L_SCL).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxser import grid
from jaxser import methods as methods_lib
from jaxser.methods import emodna

NUM_CLASSES = 2
BATCH = 6  # Per domain.
FRAMES = 32
DIMS = 40
TERMS = ('loss_emotion', 'loss_corpus', 'loss_decouple', 'loss_mmd',
         'loss_scl')


def _batch(seed=0):
  rng = np.random.default_rng(seed)

  def domain(with_label, shift):
    b = {'features': (rng.standard_normal((BATCH, FRAMES, DIMS)) + shift
                      ).astype(np.float32),
         'length': np.full(BATCH, FRAMES, np.int32),
         'domain': np.zeros(BATCH, np.int32)}
    if with_label:
      b['label'] = np.array([0, 1] * (BATCH // 2), np.int32)
    return b
  return {'source': domain(True, 0.0), 'target': domain(False, 0.5)}


def _method(name, **hparams):
  config = grid.load_config(name, grid.default_configs_dir())
  # A small CNN + TCN (seconds, not minutes, on 2 cores), without dropout
  # so that models with and without extra heads see the same network.
  net = config.model.cnn_tcn
  net.channels, net.dilations, net.embed_dim, net.dropout = 8, (1, 2), 16, 0.0
  config.model.projection_dim = 16
  for k, v in hparams.items():
    config[name][k] = v
  return methods_lib.get(name)(config, NUM_CLASSES)


def _loss(method, variables, batch, state=None):
  """(total loss, metrics, new method state) of one step, op by op: the
  variants share the compiled ops, where a jit per variant costs more."""
  state = method.init_state() if state is None else state
  loss, (_, new_state, metrics) = method.loss(
      variables['params'], variables['batch_stats'], state, batch,
      jax.random.PRNGKey(1), jnp.asarray(0))
  return float(loss), {k: float(v) for k, v in metrics.items()}, new_state


def _init(method, batch):
  # Jitted: op by op, a model's first init takes a minute on 2 cores.
  return jax.jit(method.init_variables)(jax.random.PRNGKey(0), batch)


def _restrict(variables, like):
  """`variables` reduced to the entries of `like`'s tree (same values)."""
  if not isinstance(like, dict):
    return variables
  return {k: _restrict(variables[k], v) for k, v in like.items()}


@pytest.fixture(scope='module')
def full():
  batch = _batch()
  method = _method('emodna')
  variables = _init(method, batch)
  loss, metrics, _ = _loss(method, variables, batch)
  return batch, variables, loss, metrics


def _variant(full_fixture, **switches):
  batch, variables, _, _ = full_fixture
  method = _method('emodna', **switches)
  own = jax.eval_shape(method.init_variables, jax.random.PRNGKey(0), batch)
  loss, metrics, state = _loss(method, _restrict(variables, own), batch)
  return method, own, loss, metrics, state


def _total(method, metrics):
  m = method.hparams
  return (metrics['loss_emotion'] + metrics['loss_corpus'] +
          metrics['loss_decouple'] + metrics['loss_mmd'] +
          m.alpha * metrics['loss_scl'])


def test_full_model_logs_every_term_and_sums_them(full):
  _, _, loss, metrics = full
  for term in TERMS:
    assert term in metrics and np.isfinite(metrics[term])
  # On random features every term but L_decouple is clearly non-zero.
  for term in ('loss_emotion', 'loss_corpus', 'loss_mmd', 'loss_scl'):
    assert metrics[term] > 1e-3, term
  method = _method('emodna')
  assert loss == pytest.approx(_total(method, metrics), rel=1e-5)


# Table 4's rows (labels as printed; `jaxser.methods.emodna`), Table 6's
# "w/o L_SCL": switches -> the terms they remove.
VARIANTS = {
    'v2_no_decouple_align': (dict(decouple=False, mmd=False, scl=False),
                             ('loss_decouple', 'loss_mmd', 'loss_scl')),
    'v3_no_decouple': (dict(decouple=False), ('loss_decouple',)),
    'v4_no_align': (dict(mmd=False, scl=False), ('loss_mmd', 'loss_scl')),
    'v5_no_decoupling': (dict(corpus_encoder=False, decouple=False),
                         ('loss_corpus', 'loss_decouple')),
    'no_scl': (dict(scl=False), ('loss_scl',)),
    'no_mmd': (dict(mmd=False), ('loss_mmd',)),
    # Everything off: L_emotion alone, source-only's loss.
    'all_off': (dict(corpus_encoder=False, decouple=False, mmd=False,
                     scl=False),
                ('loss_corpus', 'loss_decouple', 'loss_mmd', 'loss_scl')),
}


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_switch_removes_exactly_its_terms(full, name):
  switches, removed = VARIANTS[name]
  _, _, _, full_metrics = full
  method, own, loss, metrics, _ = _variant(full, **switches)
  for term in TERMS:
    if term in removed:
      assert metrics[term] == 0.0, term
    else:
      assert metrics[term] == pytest.approx(full_metrics[term], rel=1e-5,
                                            abs=1e-6), term
  assert loss == pytest.approx(_total(method, metrics), rel=1e-5)
  assert loss < _total(method, full_metrics) or 'loss_decouple' in removed
  # Removed modules have no parameters: E_c and phi_c without the corpus
  # encoder, g without anything that projects.
  params = own['params']
  assert ('corpus_encoder' in params) == switches.get('corpus_encoder', True)
  assert ('corpus_head' in params) == switches.get('corpus_encoder', True)
  projects = switches.get('decouple', True) or switches.get('scl', True)
  assert ('projection' in params) == projects


def test_thresholds(full):
  batch = full[0]
  _, _, _, adaptive, state = _variant(full)
  assert adaptive['tau'] == pytest.approx(float(state['tau']))
  # tau_1 = 0.999 / C + 0.001 * mean max prob: just above 1/2.
  assert 0.5 < adaptive['tau'] < 0.5 + 1e-3
  _, _, _, fixed, state = _variant(full, threshold='fixed')
  assert fixed['tau'] == pytest.approx(0.9) and float(state['tau']) == (
      pytest.approx(0.9))
  _, _, _, none, _ = _variant(full, threshold='none')
  assert none['tau'] == 0.0 and none['confident'] == 1.0
  # Only L_SCL depends on the threshold.
  for term in ('loss_emotion', 'loss_corpus', 'loss_decouple', 'loss_mmd'):
    assert fixed[term] == pytest.approx(adaptive[term], rel=1e-5)
    assert none[term] == pytest.approx(adaptive[term], rel=1e-5)
  # Fewer target rows pass 0.9 than the adaptive ~0.5 at initialisation.
  assert fixed['confident'] <= adaptive['confident'] <= none['confident']
  _, _, _, fixed_half, _ = _variant(full, threshold='fixed',
                                    fixed_threshold=0.0)
  assert fixed_half['loss_scl'] == pytest.approx(none['loss_scl'], rel=1e-5)
  del batch


@pytest.mark.parametrize('switches, field', [
    (dict(corpus_encoder=False), 'config.emodna.decouple'),
    (dict(threshold='ema'), 'config.emodna.threshold'),
])
def test_bad_switches_name_the_field(switches, field):
  with pytest.raises(ValueError, match=field.replace('.', r'\.')):
    _method('emodna', **switches)


def test_switch_defaults_are_the_config_defaults():
  config = grid.load_config('emodna', grid.default_configs_dir())
  for field, value in emodna.SWITCH_DEFAULTS.items():
    assert config.emodna[field] == value, field
  # A run's config from before the switches reads as the full model.
  del config.emodna['scl'], config.emodna['threshold']
  m = emodna.hparams(config)
  assert m.scl is True and m.threshold == 'adaptive'
  assert 'scl' not in config.emodna


################################################################################
# Table 5: L_SCL added to the baselines.
################################################################################


# DANN and DAN carry the option for their subclasses; those run with -m slow.
@pytest.mark.parametrize('name, discrepancy', [
    ('dann', 'loss_domain'), ('dan', 'loss_mmd'),
    pytest.param('jan', 'loss_jmmd', marks=pytest.mark.slow),
    pytest.param('cdan', 'loss_domain', marks=pytest.mark.slow),
    pytest.param('bsp', 'loss_bsp', marks=pytest.mark.slow)])
def test_scl_option_of_the_baselines(name, discrepancy):
  batch = _batch()
  off = _method(name)
  on = _method(name, scl_weight=0.1)
  assert off.init_state() == {}
  v_on = _init(on, batch)
  v_off = jax.eval_shape(off.init_variables, jax.random.PRNGKey(0), batch)
  # The option adds g beside the model, whose parameters keep their names.
  assert set(v_on['params']) == set(v_off['params']) | {'scl_projection'}
  loss_off, m_off, state_off = _loss(off, _restrict(v_on, v_off), batch)
  loss_on, m_on, state_on = _loss(on, v_on, batch)
  assert 'loss_scl' not in m_off and state_off == {}
  assert m_on['loss_scl'] > 1e-3
  assert 0.5 < float(state_on['tau']) < 0.5 + 1e-3  # EMA from 1/C.
  for term in ('loss_emotion', discrepancy):
    assert m_on[term] == pytest.approx(m_off[term], rel=1e-5), term
  assert loss_on - loss_off == pytest.approx(0.1 * m_on['loss_scl'],
                                             rel=1e-4)
  # Inference is the inner model's.
  x, lengths = batch['target']['features'], batch['target']['length']
  np.testing.assert_allclose(
      on.logits(v_on, x, lengths), off.logits(_restrict(v_on, v_off), x,
                                              lengths), rtol=1e-5, atol=1e-6)


def test_scl_weight_must_not_be_negative():
  with pytest.raises(ValueError, match=r'config\.dan\.scl_weight'):
    _method('dan', scl_weight=-1.0)
