"""The train loop: sharding, resumption, results.json, config errors."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from conftest import tiny_config
from jaxser import methods as methods_lib
from jaxser import train
from jaxser.data import pipeline

RESULT_KEYS = {'uar', 'war', 'macro_f1', 'per_class_recall', 'confusion',
               'classes', 'num_eval', 'source', 'target', 'task', 'protocol',
               'method', 'seed', 'steps'}


def test_eight_devices_are_forced():
  assert jax.device_count() == 8


@pytest.mark.parametrize('method', ['emodna', 'source_only'])
def test_sharded_step_matches_single_device(method, cache_dir):
  config = tiny_config(method, cache_dir)
  data = pipeline.load_data(config.data)
  mesh8 = train.make_mesh()
  mesh1 = Mesh(np.array(jax.devices()[:1]), ('data',))
  method_obj = methods_lib.get(method)(config, len(data.classes))
  tx = train.make_optimizer(config.train)
  host_batch = next(pipeline.train_batches(
      data, 8, config.seed, 0,
      jax.sharding.NamedSharding(mesh1, jax.sharding.PartitionSpec('data'))))
  host_batch = jax.tree.map(np.asarray, host_batch)

  outs = []
  for mesh in (mesh8, mesh1):
    state = jax.jit(lambda: train.create_train_state(
        method_obj, tx, config.seed, train.example_batch(data, 8)))()
    step = train.jit_train_step(method_obj, tx, mesh)
    batch = jax.device_put(host_batch, jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec('data')))
    for _ in range(2):
      state, metrics = step(state, batch)
    assert len(batch['source']['features'].sharding.device_set) == (
        mesh.devices.size)
    outs.append(jax.device_get((state, metrics)))
  (s8, m8), (s1, m1) = outs
  leaves8, leaves1 = jax.tree.leaves(s8), jax.tree.leaves(s1)
  assert len(leaves8) == len(leaves1)
  for a, b in zip(leaves8, leaves1):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  for k in m1:
    np.testing.assert_allclose(m8[k], m1[k], rtol=2e-4, atol=2e-5)


def test_end_to_end_writes_results_and_resume_matches(tmp_path, cache_dir):
  config = tiny_config('emodna', cache_dir, steps=4)
  full = train.train_and_evaluate(config, str(tmp_path / 'full'))
  with open(tmp_path / 'full' / 'results.json') as f:
    saved = json.load(f)
  assert RESULT_KEYS <= set(saved)
  assert saved['num_eval'] == 48 and saved['steps'] == 4
  assert saved['method'] == 'emodna' and saved['protocol'] == 'transductive'
  assert set(saved['per_class_recall']) == set(saved['classes'])
  assert np.sum(saved['confusion']) == saved['num_eval']
  assert 0.0 <= saved['uar'] <= 1.0
  rows = [json.loads(l) for l in open(tmp_path / 'full' / 'metrics.jsonl')]
  assert any('train/loss' in r and np.isfinite(r['train/loss']) for r in rows)

  # Interrupted after 2 steps (its last checkpoint), then resumed to 4.
  config.train.steps = 2
  train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  config.train.steps = 4
  resumed = train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  assert resumed['confusion'] == full['confusion']
  assert resumed['uar'] == full['uar']
  rows = [json.loads(l) for l in open(tmp_path / 'resumed' / 'metrics.jsonl')]
  loss_steps = [r['step'] for r in rows if 'train/loss' in r]
  assert loss_steps == sorted(set(loss_steps))  # No step logged twice.


def test_resume_refuses_a_different_experiment(tmp_path, cache_dir):
  config = tiny_config('source_only', cache_dir, steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  config.train.learning_rate = 0.5
  with pytest.raises(ValueError, match='config.train.learning_rate'):
    train.train_and_evaluate(config, str(tmp_path))


def test_protocols_never_leak_target_labels(cache_dir):
  config = tiny_config('source_only', cache_dir)
  for protocol in ('transductive', 'split', 'within'):
    config.data.protocol = protocol
    data = pipeline.load_data(config.data)
    part, = data.target_train.parts
    assert (part.labels == -1).all()
    train_utts = {u.utt_id for u in data.target_train.utterances()}
    eval_utts = {u.utt_id for u in data.target_eval.utterances()}
    if protocol == 'transductive':
      assert train_utts == eval_utts
    else:
      assert not train_utts & eval_utts
      # Speaker-independent.
      assert not ({u.speaker for u in data.target_train.utterances()}
                  & {u.speaker for u in data.target_eval.utterances()})
    if protocol == 'within':
      assert data.source_train.name == 'tiny_tgt'
      assert {u.utt_id for u in data.source_train.utterances()} == train_utts


@pytest.mark.parametrize('field,value,message', [
    ('source', 'nope', 'config.data.source'),
    ('target', 'nope', 'config.data.target'),
    ('task', 'joy', 'config.data.task'),
    ('protocol', 'magic', 'config.data.protocol'),
])
def test_bad_data_field_names_the_field(field, value, message, cache_dir):
  config = tiny_config('emodna', cache_dir)
  config.data[field] = value
  with pytest.raises(ValueError, match=message):
    pipeline.validate(config.data, config.train.batch_size)


def test_batch_not_divisible_by_devices(cache_dir):
  config = tiny_config('emodna', cache_dir)
  with pytest.raises(ValueError, match='config.train.batch_size'):
    pipeline.validate(config.data, 12)


def test_main_prints_one_line_error(tmp_path):
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, '-m', 'jaxser.main', '--config=configs/emodna.py',
       f'--workdir={tmp_path}', '--config.data.task=joy'],
      cwd=repo, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(
      'error: config.data.task')


def test_corpus_zscore_normalises_each_corpus(cache_dir):
  config = tiny_config('source_only', cache_dir)
  config.data.normalize = 'corpus_zscore'
  data = pipeline.load_data(config.data)
  for split in (data.source_train, data.target_eval):
    arrays = split.load()
    valid = (np.arange(arrays['features'].shape[1])[None]
             < arrays['length'][:, None])
    frames = arrays['features'][valid]
    np.testing.assert_allclose(frames.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(frames.std(0), 1.0, atol=1e-2)
    assert (arrays['features'][~valid] == 0).all()
  config.data.normalize = 'sideways'
  with pytest.raises(ValueError, match='config.data.normalize'):
    pipeline.validate(config.data, 8)
