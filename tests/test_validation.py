"""Validation on a held-out source part: the split, early stopping,
reduce-on-plateau, resumption; and the one atomic-write helper."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_config
from jaxser import inference
from jaxser import io as io_lib
from jaxser import phases as phases_lib
from jaxser import predictions as predictions_lib
from jaxser import train
from jaxser.data import pipeline


def _val_config(cache_dir, steps=8, **validation):
  config = tiny_config('source_only', cache_dir, steps=steps)
  config.data.source_val_fraction = 0.25
  config.train.validation.update(dict(every=2, metric='war', patience=0,
                                      plateau_factor=0.1,
                                      plateau_patience=1))
  config.train.validation.update(validation)
  config.train.eval_every = 0
  config.train.checkpoint_every = 2
  return config


def test_source_split_holds_out_a_share_of_each_class(cache_dir):
  config = _val_config(cache_dir)
  data = pipeline.load_data(config.data)
  train_ids = {u.utt_id for u in data.source_train.utterances()}
  val_ids = {u.utt_id for u in data.source_val.utterances()}
  assert train_ids and val_ids and not train_ids & val_ids
  # 12 per class in tiny_src: 3 held out of each.
  assert data.source_val.class_counts(4) == [3, 3, 3, 3]
  assert data.source_train.class_counts(4) == [9, 9, 9, 9]
  assert {p.cached.corpus.name for p in data.source_val.parts} == {'tiny_src'}
  # Deterministic in split_seed, and another seed draws another part.
  again = pipeline.load_data(config.data)
  assert {u.utt_id for u in again.source_val.utterances()} == val_ids
  config.data.split_seed = 1
  other = pipeline.load_data(config.data)
  assert {u.utt_id for u in other.source_val.utterances()} != val_ids


@pytest.mark.parametrize('field,value,message', [
    ('every', 2, 'config.data.source_val_fraction'),
    ('metric', 'loss', 'config.train.validation.metric'),
    ('plateau_factor', 2.0, 'config.train.validation.plateau_factor'),
    ('patience', -1, 'config.train.validation.patience'),
])
def test_bad_validation_fields_name_the_field(field, value, message,
                                              cache_dir):
  config = _val_config(cache_dir)
  if field == 'every':
    config.data.source_val_fraction = 0.0
  config.train.validation[field] = value
  with pytest.raises(ValueError, match=message):
    train.validation_selection(config)


def test_multi_corpus_refuses_a_source_validation_split(cache_dir):
  config = _val_config(cache_dir)
  config.data.protocol = 'multi_corpus'
  with pytest.raises(ValueError, match='config.data.source_val_fraction'):
    pipeline.validate(config.data, config.train.batch_size)


def test_plateau_scale_multiplies_the_updates():
  """A step with the plateau's scale at 0.1 moves the parameters a tenth
  as far as one at 1 (SGD), and reports the scale."""
  class Quadratic:
    def loss(self, params, batch_stats, method_state, batch, rng, step):
      del rng, step, batch
      l = jnp.sum(params['w'] ** 2)
      return l, (batch_stats, method_state, {})

  plateau = optax.contrib.reduce_on_plateau(factor=0.1, patience=1)
  tx = optax.sgd(0.5)
  params = {'w': jnp.ones(3)}
  sel = phases_lib.Selection('source_val', 1, 0, (), 'war', plateau)
  phase = phases_lib.Phase('train', None, selection=sel)
  selection = phases_lib.init_selection([phase], None, params, {})
  state = train.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                           batch_stats={}, opt_state=tx.init(params),
                           rng=jax.random.PRNGKey(0), method_state={},
                           selection=selection)
  step = train.make_train_step(Quadratic(), tx, plateau_phase='train')
  moved = 1.0 - step(state, None)[0].params['w']
  _, reduced = plateau.update(jnp.zeros(()), selection['train']['plateau'],
                              value=0.5)
  _, reduced = plateau.update(jnp.zeros(()), reduced, value=0.5)
  assert float(reduced.scale) == pytest.approx(0.1)
  state = state.replace(selection={'train': dict(selection['train'],
                                                 plateau=reduced)})
  new, metrics = step(state, None)
  np.testing.assert_allclose(1.0 - new.params['w'], 0.1 * moved, rtol=1e-6)
  assert float(metrics['lr_scale']) == pytest.approx(0.1)


def test_validation_restores_the_best_state_and_resume_matches(tmp_path,
                                                                cache_dir):
  config = _val_config(cache_dir, steps=8)
  full = train.train_and_evaluate(config, str(tmp_path / 'full'))
  v = full['validation']
  assert v['arrays'] == 'source_val' and v['metric'] == 'war'
  rows = [json.loads(l) for l in open(tmp_path / 'full' / 'metrics.jsonl')]
  selects = [(r['step'], r['select/war'], r['select/lr_scale'])
             for r in rows if 'select/war' in r]
  assert [s for s, _, _ in selects] == [2, 4, 6, 8]
  best = max(w for _, w, _ in selects)
  assert v['best'] == pytest.approx(best)
  assert v['best_step'] == [s for s, w, _ in selects if w == best][0]
  # The restored state is the best one: it scores the best value again.
  assert v['restored'] == pytest.approx(best)
  # The scale drops after each evaluation without improvement (patience 1).
  scale, best_so_far = 1.0, -1.0
  for _, w, s in selects:
    if w > best_so_far + 1e-9:
      best_so_far = w
    else:
      scale *= 0.1
    assert s == pytest.approx(scale)

  # The final checkpoint holds the last step's state (a rerun with more
  # steps continues from it) and the best one in its selection entry, which
  # is the model jaxser.inference (label, predict) opens.
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with ocp.CheckpointManager(str(tmp_path / 'full' / 'checkpoints')) as m:
    saved = m.restore(m.latest_step(), args=ocp.args.StandardRestore())
  assert int(saved['step']) == 8
  best = saved['selection']['train']
  model = inference.open_run(str(tmp_path / 'full'), train.make_mesh())
  for a, b in zip(jax.tree.leaves(model.variables['params']),
                  jax.tree.leaves(best['params'])):
    np.testing.assert_array_equal(a, b)
  if v['best_step'] != 8:
    assert any(not np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(saved['params']), jax.tree.leaves(best['params'])))

  # Interrupted at step 4 (a checkpoint), then resumed to 8.
  config.train.steps = 4
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  config.train.steps = 8
  resumed = train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  assert resumed['confusion'] == full['confusion']
  assert resumed['validation'] == full['validation']

  # predictions.csv holds the final evaluation's logits, one row per
  # target utterance: its argmax gives results.json's confusion matrix.
  keys, labels, logits, classes = predictions_lib.read(
      str(tmp_path / 'full' / predictions_lib.FILE))
  assert list(classes) == full['classes'] and len(keys) == full['num_eval']
  assert len(set(keys)) == len(keys) and {k[0] for k in keys} == {'tiny_tgt'}
  confusion = np.zeros((4, 4), int)
  np.add.at(confusion, (labels, logits.argmax(-1)), 1)
  assert confusion.tolist() == full['confusion']


def test_early_stopping_stops_after_patience(tmp_path, cache_dir):
  config = _val_config(cache_dir, steps=40, patience=1,
                       plateau_factor=1.0)
  config.train.learning_rate = 0.0  # Nothing improves after the first.
  result = train.train_and_evaluate(config, str(tmp_path))
  v = result['validation']
  assert v['stopped_early'] and v['best_step'] == 2
  assert 'lr_scale' not in v


def test_atomic_open_keeps_the_old_file_on_failure(tmp_path):
  path = str(tmp_path / 'results.json')
  io_lib.write_json(path, {'a': 1})
  with pytest.raises(RuntimeError):
    with io_lib.atomic_open(path) as f:
      f.write('{"half": ')
      raise RuntimeError('interrupted')
  with open(path) as f:
    assert json.load(f) == {'a': 1}
  assert os.listdir(tmp_path) == ['results.json']  # No temporary left.
  umask = os.umask(0o022)
  try:
    io_lib.write_json(path, {'a': 2})
  finally:
    os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o644  # Not mkstemp's 0600.
  io_lib.write_csv(str(tmp_path / 't.csv'), ['x', 'y'], [(1, 2)])
  assert open(tmp_path / 't.csv').read().splitlines() == ['x,y', '1,2']
  io_lib.write_npz(str(tmp_path / 'a.npz'), v=np.arange(3))
  assert np.load(tmp_path / 'a.npz')['v'].tolist() == [0, 1, 2]
  with pytest.raises(ValueError, match='no such directory'):
    io_lib.write_text(str(tmp_path / 'missing' / 'x.txt'), 'x')
