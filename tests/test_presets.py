"""Grid presets of the papers' tables (`jaxser.presets`): every row builds
a valid config whose switches are the row's, and the grid runs the rows as
methods (with a fake trainer)."""

import re

import pytest

from jaxser import grid
from jaxser import methods as methods_lib
from jaxser import presets

CONFIGS = grid.default_configs_dir()


@pytest.mark.parametrize('preset', presets.names())
def test_every_row_builds_and_passes_its_method_checks(preset):
  configs = presets.build_configs(preset, CONFIGS)
  names = [r.name for r in presets.rows(preset)]
  assert list(configs) == names and len(set(names)) == len(names)
  for name, config in configs.items():
    assert re.fullmatch(r'[a-z0-9_]+', name), name
    methods_lib.get(config.method).check_config(config)
  assert len(presets.describe(preset).splitlines()) == len(names)


def test_table4_rows_are_the_papers_ablations():
  c = presets.build_configs('emodna_table4', CONFIGS)
  assert c['v1_source_only'].method == 'source_only'
  on = lambda row: {f for f in ('corpus_encoder', 'decouple', 'mmd', 'scl')
                    if c[row].emodna[f]}
  assert on('v2_no_decouple_align') == {'corpus_encoder'}
  assert on('v3_no_decouple') == {'corpus_encoder', 'mmd', 'scl'}
  assert on('v4_no_align') == {'corpus_encoder', 'decouple'}
  assert on('v5_no_decoupling') == {'mmd', 'scl'}
  assert on('emodna') == {'corpus_encoder', 'decouple', 'mmd', 'scl'}
  assert all(c[r].emodna.threshold == 'adaptive' for r in c
             if r != 'v1_source_only')


def test_table5_and_table6_rows():
  c = presets.build_configs('emodna_table5', CONFIGS)
  for m in ('dann', 'dan', 'jan', 'cdan', 'bsp'):
    assert c[m].method == c[f'{m}_scl'].method == m
    assert c[m][m].scl_weight == 0.0 and c[f'{m}_scl'][m].scl_weight == 0.1
  c = presets.build_configs('emodna_table6', CONFIGS)
  assert c['emodna_no_scl'].emodna.scl is False
  assert c['emodna_no_threshold'].emodna.threshold == 'none'
  assert c['emodna_fixed_threshold'].emodna.threshold == 'fixed'
  assert c['emodna_fixed_threshold'].emodna.fixed_threshold == 0.9
  assert c['emodna'].emodna.threshold == 'adaptive' and c['emodna'].emodna.scl


def test_global_overrides_apply_and_rows_win():
  c = presets.build_configs(
      'emodna_table4', CONFIGS,
      [('train.steps', '7'), ('emodna.mmd', 'False'), ('emodna.alpha', '0.5')])
  assert all(config.train.steps == 7 for config in c.values())
  assert c['emodna'].emodna.mmd is False  # --set reaches unset fields ...
  assert c['v3_no_decouple'].emodna.alpha == 0.5
  assert c['v2_no_decouple_align'].emodna.decouple is False  # ... not rows'.


def test_errors_are_one_line_value_errors(monkeypatch):
  with pytest.raises(ValueError, match='--preset: unknown preset'):
    presets.rows('emodna_table7')
  with pytest.raises(ValueError, match='no method config has the field'):
    presets.build_configs('emodna_table6', CONFIGS, [('emodna.nope', '1')])
  monkeypatch.setitem(presets.PRESETS, 'typo', (
      presets.Row('x', 'emodna', (('emodna.decoupel', 'False'),)),))
  with pytest.raises(ValueError, match='emodna.decoupel'):
    presets.build_configs('typo', CONFIGS)


def test_grid_takes_preset_rows_as_methods(tmp_path):
  # What jaxser.grid does with --preset: rows as methods, each in its folder.
  configs = presets.build_configs('emodna_table6', CONFIGS)
  cells = grid.grid_cells(list(configs), [('casia', 'emovo')], ['arousal'], 1)
  assert [c.method for c in cells] == list(configs)
  by_dir = {c.workdir(str(tmp_path)): grid.cell_config(configs[c.method], c)
            for c in cells}
  none = by_dir[str(tmp_path / 'arousal' / 'emodna_no_threshold' /
                    'casia_emovo' / 'seed0')]
  assert none.emodna.threshold == 'none' and none.data.source == 'casia'
  assert none.method == 'emodna'
  results = [dict(war=0.5, macro_f1=0.4, uar=0.45, **vars(c)) for c in cells]
  tables = grid.table_rows(results, [('casia', 'emovo')])
  assert [r['method'] for r in tables['arousal']] == list(configs)


def test_preset_from_the_command_line(tmp_path):
  """`python -m jaxser.grid --preset` builds its rows in the __main__ module
  (a second import of jaxser.grid would define its flags twice)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  out = subprocess.run(
      [sys.executable, '-m', 'jaxser.grid', '--preset=emodna_table4',
       '--pairs=tiny_src:tiny_tgt', f'--workdir={tmp_path}',
       '--set=emodna.no_such_field=1'],
      capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 2, out.stderr[-2000:]
  lines = [l for l in out.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and 'no_such_field' in lines[0], out.stderr[-2000:]
  assert 'DuplicateFlagError' not in out.stderr


def test_methods_pick_rows_of_a_preset_in_table_order(tmp_path):
  seen = []

  def fake_train(configs, workdirs):
    seen.extend((c.method, c.emodna.decouple if 'emodna' in c else None)
                for c in configs)
    return [dict(war=0.5, macro_f1=0.4, uar=0.45) for _ in configs]

  results = grid.run(['emodna', 'v1_source_only'], [('casia', 'emovo')],
                     ['arousal'], 1, str(tmp_path), CONFIGS, [],
                     train_fn=fake_train, preset='emodna_table4')
  assert [r['method'] for r in results] == ['v1_source_only', 'emodna']
  assert seen == [('source_only', None), ('emodna', True)]
  with pytest.raises(ValueError, match=r'--methods: v9 not a row of '
                     r'--preset=emodna_table4; its rows: v1_source_only'):
    grid.run(['v9'], [('casia', 'emovo')], ['arousal'], 1, str(tmp_path),
             CONFIGS, [], train_fn=fake_train, preset='emodna_table4')
