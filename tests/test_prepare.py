"""python -m jaxser.prepare on a tiny EmoDB-named fixture corpus."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
from absl import flags

from jaxser import prepare
from jaxser.data import labels

REQUIRED = {'corpus', 'files', 'usable', 'skipped', 'speakers', 'per_class',
            'duration_s', 'features'}
# EmoDB names: speaker 03 (m) and 09 (f); W angry, T sad, F happy, L boredom.
GOOD = ('03a01Wa', '03a02Ta', '03a04Fa', '09a01Wa', '09b01La', '09b02Fb')


@pytest.fixture
def run(capsys):
  """Runs prepare's main with the given flags; returns (exit code, out, err)."""
  def call(*argv):
    flags.FLAGS(['prepare', *argv])
    try:
      prepare.main([])
      code = 0
    except SystemExit as e:
      code = e.code
    finally:
      flags.FLAGS.unparse_flags()
    out, err = capsys.readouterr()
    return code, out, err
  return call


@pytest.fixture
def root(tmp_path):
  wav_dir = tmp_path / 'emodb' / 'wav'
  wav_dir.mkdir(parents=True)
  rng = np.random.default_rng(0)
  for name in GOOD:
    sf.write(str(wav_dir / f'{name}.wav'),
             0.1 * rng.standard_normal(4800).astype(np.float32), 16000)
  sf.write(str(wav_dir / '09a05Nc.wav'), np.zeros(4800, np.float32), 16000)
  sf.write(str(wav_dir / 'notes.wav'), np.zeros(4800, np.float32), 16000)
  return tmp_path / 'emodb'


def test_summary(run, root, tmp_path):
  cache = tmp_path / 'cache'
  summary_path = tmp_path / 'out' / 'summary.json'
  code, out, _ = run('--corpus=emodb', f'--root={root}', '--features=mfcc40',
                     f'--summary={summary_path}', f'--cache_dir={cache}',
                     '--workers=0', '--frames=20')
  assert code == 0
  s = json.loads(summary_path.read_text())
  assert REQUIRED <= set(s)
  assert s == json.loads((cache / 'emodb' / prepare.SUMMARY_NAME).read_text())
  assert (s['corpus'], s['files'], s['usable']) == ('emodb', 7, 6)
  assert s['skipped'] == [{'path': str(root / 'wav' / '09a05Nc.wav'),
                           'reason': 'all silent'}]
  assert [u['path'] for u in s['unrecognised']] == [
      str(root / 'wav' / 'notes.wav')]
  assert s['speakers'] == {'03': 3, '09': 3}
  assert s['genders'] == {'f': 3, 'm': 3}
  assert set(s['per_class']) == set(labels.TASK_CLASSES)
  assert s['per_class']['emotion4'] == {'neutral': 0, 'happy': 2, 'sad': 1,
                                        'angry': 2}
  assert s['not_covered']['emotion4'] == 1
  assert s['per_class']['arousal3'] == {'low': 2, 'mid': 0, 'high': 4}
  assert s['duration_s'] == pytest.approx(6 * 0.3)
  assert s['features'] == {'mfcc40': [20, 40]}
  assert '6 usable, 1 skipped, 1 unrecognised' in out
  assert 'all silent' in out

  # A second run finds the cache and gives the same summary.
  code, _, _ = run('--corpus=emodb', f'--root={root}', f'--cache_dir={cache}',
                   f'--summary={summary_path}', '--workers=0', '--frames=20')
  assert code == 0
  again = json.loads(summary_path.read_text())
  assert {k: v for k, v in again.items() if k != 'seconds'} == {
      k: v for k, v in s.items() if k != 'seconds'}


@pytest.mark.parametrize('args,message', [
    (('--corpus=nope',), "unknown corpus 'nope'"),
    (('--corpus=emodb', '--root=/no/such/folder'), 'does not exist'),
    (('--corpus=emodb', '--features=nope'), "unknown feature set 'nope'"),
])
def test_errors_are_one_line_with_status_2(run, root, args, message):
  if not any(a.startswith('--root') for a in args):
    args += (f'--root={root}',)
  code, out, err = run(*args)
  assert code == 2 and not out
  assert message in err and err.count('\n') == 1


def test_only_bad_files_is_an_error_naming_the_folder(run, tmp_path):
  wav_dir = tmp_path / 'bad' / 'wav'
  wav_dir.mkdir(parents=True)
  sf.write(str(wav_dir / '03a01Wa.wav'), np.zeros(4800, np.float32), 16000)
  code, _, err = run('--corpus=emodb', f'--root={tmp_path / "bad"}',
                     f'--cache_dir={tmp_path / "cache"}', '--workers=0',
                     '--frames=20')
  assert code == 2 and str(tmp_path / 'bad') in err and 'all silent' in err
  assert not os.path.exists(tmp_path / 'cache' / 'emodb' / 'summary.json')


def test_no_root_says_how_to_give_one(run, monkeypatch):
  monkeypatch.delenv('JAXSER_DATA', raising=False)
  code, _, err = run('--corpus=casia')
  assert code == 2 and '--root=PATH' in err
