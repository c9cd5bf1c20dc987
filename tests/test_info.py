"""jaxser.cli (configs found from anywhere, one-line flag errors with a
suggestion) and jaxser.info (what jaxser offers, one line each)."""

import os
import subprocess
import sys

import pytest

from jaxser import cli
from jaxser import info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMODNA = os.path.join(ROOT, 'configs', 'emodna.py')


def test_configs_are_found_from_anywhere(tmp_path, monkeypatch):
  monkeypatch.chdir(ROOT)
  assert cli.find_config('configs/emodna.py') == 'configs/emodna.py'
  assert cli.find_config('configs/emodna') == 'configs/emodna.py'
  monkeypatch.chdir(tmp_path)  # Outside the clone: the shipped configs.
  for spec in ('emodna', 'emodna.py', 'configs/emodna', 'configs/emodna.py'):
    assert os.path.samefile(cli.find_config(spec), EMODNA)
  # A local file of the same name wins over the shipped one.
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / 'emodna.py').write_text('')
  assert cli.find_config('configs/emodna') == 'configs/emodna.py'
  with pytest.raises(ValueError, match=r'--config: no config file '
                     r'configs/emodnaa .*did you mean emodna\?') as e:
    cli.find_config('configs/emodnaa')
  assert '\n' not in str(e.value)
  assert 'emodna' in cli.shipped_configs()
  assert 'source_only' in cli.shipped_configs()


def test_misspelt_config_field_is_one_line_with_the_closest(monkeypatch):
  monkeypatch.chdir(ROOT)
  with pytest.raises(ValueError) as e:
    cli.resolve_config_arg(['prog', '--config=configs/emodna',
                            '--config.train.stepz=100'])
  assert str(e.value) == ('--config.train.stepz: no such config field; did '
                          'you mean --config.train.steps? (python -m '
                          'jaxser.info lists them)')
  with pytest.raises(ValueError, match='did you mean --config.model.cnn_tcn'
                     '.dropout'):
    cli.resolve_config_arg(['p', '--config', EMODNA,
                            '--config.model.cnn_tcn.dropuot=0.1'])
  # Found without .py, valid overrides kept, the path put in its place.
  assert cli.resolve_config_arg(
      ['p', '--config=configs/emodna', '--config.train.steps=7',
       '--config.data.paths.casia=/x']) == [
           'p', '--config=configs/emodna.py', '--config.train.steps=7',
           '--config.data.paths.casia=/x']
  assert cli.resolve_config_arg(['p', '--config', 'configs/emodna']) == [
      'p', '--config', 'configs/emodna.py']
  # Libraries' multi-line or quoted messages become one line.
  assert cli.one_line('\'stepz\'\\nDid you mean "steps"?\'') == (
      'stepz\' Did you mean "steps"?')
  assert cli.one_line('flag --x=1x:\n  invalid literal') == (
      'flag --x=1x: invalid literal')


def test_main_prints_the_one_line_error(tmp_path):
  env = dict(os.environ, NUMBA_CACHE_DIR=os.environ.get(
      'NUMBA_CACHE_DIR', '/tmp/numba'))
  r = subprocess.run(
      [sys.executable, '-m', 'jaxser.main', '--config=configs/source_only',
       f'--workdir={tmp_path}', '--config.train.stepz=100'],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  assert r.returncode == 2
  lines = r.stderr.strip().split('\n')
  assert lines == ['error: --config.train.stepz: no such config field; did '
                   'you mean --config.train.steps? (python -m jaxser.info '
                   'lists them)'], r.stderr


def test_first_line_keeps_abbreviations():
  assert info.first_line('CREMA-D (Cao et al. 2014), English.\n\nMore.') == (
      'CREMA-D (Cao et al. 2014), English.')
  assert info.first_line('A b. C d.') == 'A b.'
  assert info.first_line('e.g. mfcc40 on the device. Next.') == (
      'e.g. mfcc40 on the device.')


def test_info_lists_everything_with_a_meaning():
  methods = dict(info.section('methods'))
  for m in ('source_only', 'dann', 'emodna', 'mmd_ser', 'difl', 'dnn'):
    assert methods[m], m
  assert 'DANN' in methods['dann'] and 'Emo-DNA' in methods['emodna']
  networks = dict(info.section('networks'))
  assert {'cnn_tcn', 'cnn_gru', 'cnn_blstm', 'mlp'} <= set(networks)
  assert 'TCN' in networks['cnn_tcn']
  corpora = dict(info.section('corpora'))
  assert corpora['emodb'].startswith('Berlin EmoDB') and 'folder' in corpora
  assert dict(info.section('tasks'))['arousal'] == 'classes: low, high'
  assert 'mfcc40' in dict(info.section('features'))
  assert dict(info.section('configs'))['dann'].startswith('method dann')
  fields = dict(info.section('fields'))
  assert 'normalize' not in fields and 'data.normalize' in fields
  docs = info.field_docs()
  assert info.describe_field('data.normalize', docs).startswith('none |')
  assert info.describe_field('train.steps', docs).startswith('steps,')
  assert info.describe_field('data.paths.casia', docs).startswith('folder')
  assert info.describe_field('dann.trade_off', docs) == (
      "the method's own hyper-parameters.")
  rows = dict(info.section('fields', 'dann'))
  assert rows['dann.trade_off = 1.0']
  assert rows["method = 'dann'"].startswith('registered method name')
  with pytest.raises(ValueError, match='did you mean methods'):
    info.section('method')
  # Every row is one line.
  assert all('\n' not in k + v for k, v in methods.items())
