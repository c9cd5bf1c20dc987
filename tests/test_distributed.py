"""`python -m jaxser.main --distributed`: two CPU processes on localhost end
with the results of one process holding as many devices."""

import json
import os
import socket
import subprocess
import sys
import zlib

import numpy as np
import pytest
import soundfile as sf

from jaxser import runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_corpora(root: str) -> None:
  """Tiny CASIA and EMOVO trees (real file naming, so the real loaders read
  them in a subprocess): 3 speakers x 4 emotions x 4 tones of 0.5 s, the
  pitch set by the emotion and shifted in EMOVO (the domain gap)."""
  layouts = {
      'casia': (('wangzhe', 'liuchanhg', 'zhaoquanyin'),
                ('neutral', 'happy', 'sad', 'angry'),
                lambda s, e, i: f'{s}/{e}/{200 + i}.wav'),
      'emovo': (('f1', 'm1', 'f2'), ('neu', 'gio', 'tri', 'rab'),
                lambda s, e, i: f'{s}/{e}-{s}-b{i + 1}.wav'),
  }
  t = np.arange(8000) / 16000
  for corpus, (speakers, emotions, name) in layouts.items():
    shift = 1.3 if corpus == 'emovo' else 1.0
    for s in speakers:
      for k, e in enumerate(emotions):
        for i in range(4):
          rel = name(s, e, i)
          rng = np.random.default_rng(zlib.crc32(f'{corpus}/{rel}'.encode()))
          f0 = (150 + 60 * k) * shift * (1 + 0.05 * rng.standard_normal())
          wav = (0.3 * np.sin(2 * np.pi * f0 * t)
                 + 0.05 * rng.standard_normal(t.size))
          path = os.path.join(root, corpus, rel)
          os.makedirs(os.path.dirname(path), exist_ok=True)
          sf.write(path, wav.astype(np.float32), 16000)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _command(tmp_path, workdir, *extra):
  # DANN on a tiny CNN + TCN: gradient reversal, a domain discriminator,
  # batch statistics, a mid-run evaluation and checkpoints (orbax's
  # multi-process barriers) all cross the process boundary.
  return [sys.executable, '-m', 'jaxser.main', '--config=configs/dann.py',
          f'--workdir={workdir}', '--config.data.source=casia',
          '--config.data.target=emovo',
          f'--config.data.root={tmp_path / "corpora"}',
          f'--config.data.cache_dir={tmp_path / "cache"}',
          '--config.data.frames=48', '--config.data.workers=0',
          '--config.train.steps=6', '--config.train.batch_size=8',
          '--config.train.log_every=2', '--config.train.eval_every=4',
          '--config.train.checkpoint_every=2',
          '--config.train.eval_batch_size=16',
          '--config.model.cnn_tcn.channels=8',
          '--config.model.cnn_tcn.dilations=1,2',
          '--config.model.cnn_tcn.embed_dim=16',
          '--config.dann.discriminator_hidden=16',
          '--config.report.embedding=none', *extra]


def _env(tmp_path, devices: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / 'xla'),
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  env.pop('CUDA_VISIBLE_DEVICES', None)
  return env


def _finish(procs, timeout):
  try:
    outs = [p.communicate(timeout=timeout) for p in procs]
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    raise
  for p, (out, _) in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]


@pytest.mark.slow  # Three processes compile the same program: ~1-2 min.
def test_two_processes_end_as_one_process_with_two_devices(tmp_path):
  _write_corpora(str(tmp_path / 'corpora'))
  # The feature cache first, in one process: the runs below only read it.
  from jaxser.data import pipeline  # pylint: disable=g-import-not-at-top
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      'cfg_dann', os.path.join(REPO, 'configs', 'dann.py'))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  data = mod.get_config().data
  data.root, data.cache_dir = str(tmp_path / 'corpora'), str(tmp_path / 'cache')
  data.frames, data.workers = 48, 0
  for name in ('casia', 'emovo'):
    pipeline.open_corpus(name, data)

  port = _free_port()
  run = lambda cmd, env: subprocess.Popen(  # noqa: E731
      cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  procs = [run(_command(tmp_path, tmp_path / 'one'), _env(tmp_path, 2))]
  procs += [run(_command(tmp_path, tmp_path / 'two', '--distributed',
                         f'--coordinator_address=127.0.0.1:{port}',
                         '--num_processes=2', f'--process_id={i}'),
                _env(tmp_path, 1)) for i in range(2)]
  _finish(procs, timeout=600)

  one = json.loads((tmp_path / 'one' / 'results.json').read_text())
  two = json.loads((tmp_path / 'two' / 'results.json').read_text())
  assert (one['processes'], one['devices']) == (1, 2)
  assert (two['processes'], two['devices']) == (2, 2)
  for key in ('uar', 'war', 'macro_f1', 'confusion', 'num_eval', 'steps'):
    assert one[key] == two[key], key
  # Bit for bit: the same global batches, the same partitioned program; a
  # two-operand all-reduce rounds alike in process and over gloo.
  read = lambda d: (tmp_path / d / 'predictions.csv').read_text()  # noqa: E731
  assert read('one') == read('two')
  rows = lambda d: [  # noqa: E731
      {k: v for k, v in json.loads(l).items() if k != 'train/samples_per_s'}
      for l in (tmp_path / d / 'metrics.jsonl').read_text().splitlines()]
  assert rows('one') == rows('two')
  assert sorted(os.listdir(tmp_path / 'two' / 'checkpoints')) == ['4', '6']


def test_bad_process_flags_are_one_line_errors():
  with pytest.raises(ValueError, match='--process_id must be in'):
    runtime.initialize_distributed('127.0.0.1:1', 2, 2)
  with pytest.raises(ValueError, match='--num_processes'):
    runtime.initialize_distributed('127.0.0.1:1', 0, 0)


def test_process_flags_without_distributed_are_refused(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'jaxser.main', '--config=configs/dann.py',
       f'--workdir={tmp_path}', '--num_processes=2'],
      cwd=REPO, env=_env(tmp_path, 1), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      'error: --coordinator_address, --num_processes and --process_id need '
      '--distributed')
