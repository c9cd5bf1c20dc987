"""The grid runner: table numbers, config overrides, resumption (no training:
the train function is a stand-in)."""

import csv
import io
import json
import os

import ml_collections
import pytest

from jaxser import grid

PAIRS = [('a', 'b'), ('a', 'c'), ('b', 'a')]


def _result(method, source, target, seed, war, task='arousal'):
  return dict(method=method, source=source, target=target, task=task,
              seed=seed, war=war, macro_f1=war / 2, uar=war)


def _results():
  wars = {  # seed -> pair -> WAR
      0: {('a', 'b'): 0.6, ('a', 'c'): 0.8, ('b', 'a'): 0.5},
      1: {('a', 'b'): 0.7, ('a', 'c'): 0.9, ('b', 'a'): 0.7}}
  out = [_result('m1', s, t, seed, w) for seed, pairs in wars.items()
         for (s, t), w in pairs.items()]
  # m2: seed 1 has only a->b, so only seed 0 counts anywhere.
  out += [_result('m2', s, t, 0, w) for (s, t), w in wars[0].items()]
  out.append(_result('m2', 'a', 'b', 1, 0.1))
  # m3: no column complete; m1 on another task.
  out.append(_result('m3', 'a', 'b', 0, 0.6))
  out.append(_result('m1', 'a', 'b', 0, 0.4, task='valence'))
  return out


def test_table_rows_by_hand():
  tables = grid.table_rows(_results(), PAIRS)
  assert list(tables) == ['arousal', 'valence']
  rows = {r['method']: r['columns'] for r in tables['arousal']}
  assert list(rows) == ['m1', 'm2', 'm3']
  assert list(rows['m1']) == ['a', 'b', 'Average']
  approx = lambda *x: pytest.approx(x)
  # Source a: per seed (60 + 80) / 2 = 70 and (70 + 90) / 2 = 80.
  assert rows['m1']['a']['WAR'] == approx(75.0, 5.0, 2)
  assert rows['m1']['a']['F1'] == approx(37.5, 2.5, 2)
  assert rows['m1']['a']['UAR'] == approx(75.0, 5.0, 2)
  assert rows['m1']['b']['WAR'] == approx(60.0, 10.0, 2)
  # Average: per seed 190 / 3 and 230 / 3.
  assert rows['m1']['Average']['WAR'] == approx(70.0, 20 / 3, 2)
  assert rows['m2']['a']['WAR'] == approx(70.0, 0.0, 1)
  assert rows['m2']['Average']['WAR'] == approx(190 / 3, 0.0, 1)
  assert rows['m3']['a']['WAR'] is None
  assert rows['m3']['b']['WAR'] is None
  assert rows['m3']['Average']['F1'] is None
  # On valence only a->b is finished: no column is complete.
  valence, = tables['valence']
  assert all(v is None for col in valence['columns'].values()
             for v in col.values())


def test_markdown_and_csv():
  tables = grid.table_rows(_results(), PAIRS)
  md = grid.to_markdown(tables)
  assert '## arousal' in md and '## valence' in md
  header = ('| Method | a → mean WAR | a → mean F1 | a → mean UAR | '
            'b → mean WAR | b → mean F1 | b → mean UAR | '
            'Average WAR | Average F1 | Average UAR |')
  assert header in md
  assert ('| m1 | 75.0 ± 5.0 | 37.5 ± 2.5 | 75.0 ± 5.0 | 60.0 ± 10.0 | '
          '30.0 ± 5.0 | 60.0 ± 10.0 | 70.0 ± 6.7 | 35.0 ± 3.3 | 70.0 ± 6.7 |'
          in md)
  # m2 has one complete seed: the value alone, no '± 0.0'.
  assert '| m2 | 70.0 | 35.0 | 70.0 | 50.0 | 25.0 | 50.0 | 63.3 |' in md
  assert '| m3 | - | - |' in md

  rows = list(csv.DictReader(io.StringIO(grid.to_csv(tables))))
  assert [(r['task'], r['method']) for r in rows] == [
      ('arousal', 'm1'), ('arousal', 'm2'), ('arousal', 'm3'),
      ('valence', 'm1')]
  assert float(rows[0]['Average_WAR_mean']) == pytest.approx(70.0)
  assert float(rows[0]['Average_WAR_std']) == pytest.approx(20 / 3, abs=1e-4)
  assert rows[0]['Average_WAR_seeds'] == '2'
  assert rows[1]['a_F1_seeds'] == '1'
  assert rows[2]['a_WAR_mean'] == '' and rows[2]['a_WAR_seeds'] == '0'


def test_parse_and_cells():
  assert grid.parse_pairs(['casia:emovo', 'emovo:casia']) == [
      ('casia', 'emovo'), ('emovo', 'casia')]
  with pytest.raises(ValueError, match='--pairs'):
    grid.parse_pairs(['casia'])
  cells = grid.grid_cells(['m1', 'm2'], PAIRS[:2], ['arousal'], 2)
  assert len(cells) == 8
  assert cells[0] == grid.Cell('m1', 'a', 'b', 'arousal', 0)
  assert cells[1].seed == 1 and cells[-1].method == 'm2'
  assert cells[0].workdir('/g') == '/g/arousal/m1/a_b/seed0'
  assert grid.parse_override('dann.trade_off=0.5') == ('dann.trade_off',
                                                       '0.5')
  with pytest.raises(ValueError, match='--set'):
    grid.parse_override('steps')


def test_real_configs_load_and_overrides_apply():
  configs_dir = grid.default_configs_dir()
  methods = ['source_only', 'dann', 'dan', 'jan', 'cdan', 'cdan_e', 'bsp']
  configs = {m: grid.load_config(m, configs_dir) for m in methods}
  assert all(configs[m].method == m for m in methods)
  grid.apply_overrides(configs, [
      ('train.steps', '7'), ('dann.trade_off', '0.5'), ('data.root', '/x'),
      ('model.cnn_tcn.masked_pooling', 'false'), ('dan.scales', '(1.0, 2.0)'),
      ('bsp.bsp_weight', '1')])
  assert all(c.train.steps == 7 and c.data.root == '/x' and
             not c.model.cnn_tcn.masked_pooling for c in configs.values())
  assert configs['dann'].dann.trade_off == 0.5
  assert 'dann' not in configs['dan']
  assert configs['dan'].dan.scales == (1.0, 2.0)
  assert configs['bsp'].bsp.bsp_weight == 1.0
  with pytest.raises(ValueError, match='no method config has the field'):
    grid.apply_overrides(configs, [('dann.trade_of', '1')])
  with pytest.raises(ValueError, match='not a bool'):
    grid.apply_overrides(configs, [('model.cnn_tcn.masked_pooling', 'maybe')])
  with pytest.raises(ValueError, match='train.steps'):
    grid.apply_overrides(configs, [('train.steps', "'many'")])
  with pytest.raises(ValueError, match='no config'):
    grid.load_config('nope', configs_dir)

  cell = grid.Cell('dann', 'casia', 'emovo', 'valence', 2)
  config = grid.cell_config(configs['dann'], cell)
  assert (config.data.source, config.data.target, config.data.task,
          config.seed) == ('casia', 'emovo', 'valence', 2)
  assert configs['dann'].seed == 0  # The method's config is left alone.


class FakeTrain:
  """Stands in for train_many: records calls (one per cell, and the batches
  of cells given together), writes results.json."""

  def __init__(self):
    self.calls = []
    self.batches = []

  def __call__(self, configs, workdirs):
    self.batches.append(list(workdirs))
    return [self.one(c, w) for c, w in zip(configs, workdirs)]

  def one(self, config, workdir):
    self.calls.append((config, workdir))
    result = dict(war=0.5 + 0.1 * config.seed, macro_f1=0.4, uar=0.45,
                  method=config.method, source=config.data.source,
                  target=config.data.target, task=config.data.task,
                  seed=config.seed)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, 'results.json'), 'w') as f:
      json.dump(result, f)
    return result


def test_run_grid_skips_finished_cells(tmp_path):
  root = str(tmp_path)
  cells = grid.grid_cells(['m1'], PAIRS[:2], ['arousal'], 2)
  # Cell 1 finished earlier; cell 2 was interrupted (a checkpoint, no
  # results.json), so it is trained again, which resumes it.
  done = cells[1].workdir(root)
  os.makedirs(done)
  with open(os.path.join(done, 'results.json'), 'w') as f:
    json.dump(dict(war=0.9, macro_f1=0.8, uar=0.7), f)
  os.makedirs(os.path.join(cells[2].workdir(root), 'checkpoints'))

  fake, lines, seen = FakeTrain(), [], []
  make_config = lambda cell: ml_collections.ConfigDict(dict(
      method=cell.method, seed=cell.seed, data=dict(
          source=cell.source, target=cell.target, task=cell.task)))
  results = grid.run_grid(cells, root, make_config, fake,
                          on_result=lambda r: seen.append(len(r)),
                          log=lines.append)
  assert [w for _, w in fake.calls] == [
      cells[i].workdir(root) for i in (0, 2, 3)]
  assert [r['war'] for r in results] == pytest.approx([0.5, 0.9, 0.5, 0.6])
  assert results[1]['method'] == 'm1' and results[1]['seed'] == 1
  # The three unfinished cells (one task and method) go together.
  assert fake.batches == [[cells[i].workdir(root) for i in (0, 2, 3)]]
  assert seen == [1, 4]
  assert len(lines) == 4 and lines[1].startswith('[2/4] m1 a->b arousal seed1')
  assert 'done before' in lines[1] and 'WAR 0.9000' in lines[1]

  # A second run trains nothing.
  again = FakeTrain()
  grid.run_grid(cells, root, make_config, again, log=lines.append)
  assert not again.calls


def test_run_writes_tables(tmp_path):
  fake = FakeTrain()
  root = str(tmp_path / 'grid')
  results = grid.run(['source_only', 'dann'], PAIRS, ['arousal'], 2, root,
                     grid.default_configs_dir(),
                     [('train.steps', '3'), ('data.root', '/corpora')],
                     train_fn=fake)
  assert len(results) == len(fake.calls) == 12
  config, workdir = fake.calls[-1]
  assert workdir == os.path.join(root, 'arousal', 'dann', 'b_a', 'seed1')
  assert (config.method, config.data.source, config.data.target,
          config.seed, config.train.steps, config.data.root) == (
              'dann', 'b', 'a', 1, 3, '/corpora')
  md = open(os.path.join(root, 'table.md')).read()
  # WAR 50 and 60 for seeds 0 and 1.
  assert '| dann | 55.0 ± 5.0 | 40.0 ± 0.0 | 45.0 ± 0.0 |' in md
  assert os.path.exists(os.path.join(root, 'table.csv'))
  # The grid's figures and report (jaxser.report.write_grid).
  for name in ('plots/arousal_uar.png', 'plots/arousal_sources.png',
               'pairs.md', 'report.md'):
    assert os.path.exists(os.path.join(root, name)), name


def test_positive_class_f1_column_only_where_a_task_has_it():
  results = [r for r in _results() if r['task'] == 'arousal']
  for s, t in PAIRS:
    r = _result('m1', s, t, 0, 0.5, task='valence')
    r['positive_class_f1'] = 0.25 if s == 'a' else 0.75
    results.append(r)
  tables = grid.table_rows(results, PAIRS)
  cols = tables['valence'][0]['columns']
  assert cols['a']['F1-pos'] == pytest.approx((25.0, 0.0, 1))
  assert cols['Average']['F1-pos'] == pytest.approx((125 / 3, 0.0, 1))
  md = grid.to_markdown(tables)
  arousal, valence = md.split('## valence')
  assert 'F1-pos' not in arousal  # No binary F1 in its results: no column.
  assert '| Method | a → mean WAR | a → mean F1 | a → mean F1-pos |' in valence
  assert '| m1 | 50.0 | ' in valence and '| 25.0 |' in valence


def test_preset_rows_are_the_grid_methods(tmp_path):
  fake = FakeTrain()
  root = str(tmp_path / 'grid')
  grid.run(None, PAIRS[:1], ['arousal'], 1, root, grid.default_configs_dir(),
           [('train.steps', '3')], train_fn=fake, preset='emodna_table6')
  by_dir = {os.path.relpath(w, root).split(os.sep)[1]: c
            for c, w in fake.calls}
  assert list(by_dir) == ['emodna_no_scl', 'emodna_no_threshold',
                          'emodna_fixed_threshold', 'emodna']
  fixed = by_dir['emodna_fixed_threshold']
  assert fixed.method == 'emodna' and fixed.emodna.threshold == 'fixed'
  assert fixed.train.steps == 3 and by_dir['emodna'].emodna.threshold == (
      'adaptive')
  md = open(os.path.join(root, 'table.md')).read()
  assert '| emodna_fixed_threshold |' in md
  with pytest.raises(ValueError, match='--preset'):
    grid.run(['dann'], PAIRS[:1], ['arousal'], 1, root,
             grid.default_configs_dir(), [], train_fn=fake,
             preset='emodna_table6')
  with pytest.raises(ValueError, match='--preset: unknown preset'):
    grid.run(None, PAIRS[:1], ['arousal'], 1, root,
             grid.default_configs_dir(), [], train_fn=fake, preset='table9')
