"""jaxser.io: atomic local writes, and whole-object writes to gs:// (an
object store faked by a local folder through etils' own epath mock)."""

import contextlib
import json
import os

import numpy as np
import pytest
from etils import epath
from etils.epath import gpath

from jaxser import io as io_lib


@contextlib.contextmanager
def fake_bucket(root, monkeypatch):
  """gs://bucket/... lives in `root`/...; yields the list of backend calls
  (so a test sees that nothing is renamed and each object is opened once)."""
  calls = []
  # With TensorFlow installed epath sends gs:// to tf.io.gfile directly,
  # past the mock's backend table.
  monkeypatch.setattr(gpath, '_is_tf_installed', lambda: False)

  def local(path):
    path = os.fspath(path)
    assert path.startswith('gs://bucket/'), path
    return os.path.join(root, path[len('gs://bucket/'):])

  def record(name, fn):
    def mocked(original, path, *args, **kwargs):
      del original
      calls.append((name, os.fspath(path)) + tuple(
          a for a in args if isinstance(a, str)))
      return fn(local(path), *args, **kwargs)
    return mocked

  def makedirs(path, exist_ok=False):
    os.makedirs(path, exist_ok=exist_ok)

  def fail(path, *args, **kwargs):
    raise AssertionError(f'no rename on an object store: {path} {args}')
  with epath.testing.mock_epath(
      open=record('open', open), exists=record('exists', os.path.exists),
      makedirs=record('makedirs', makedirs),
      mkdir=record('mkdir', makedirs), rename=record('rename', fail),
      replace=record('replace', fail)):
    yield calls


def test_gs_writes_each_object_in_one_go_and_reads_back(tmp_path,
                                                          monkeypatch):
  with fake_bucket(str(tmp_path), monkeypatch) as calls:
    io_lib.makedirs('gs://bucket/run')
    io_lib.write_json('gs://bucket/run/results.json', {'uar': 0.5})
    io_lib.write_csv('gs://bucket/run/t.csv', ['a', 'b'], [[1, 'x,y']])
    io_lib.write_npz('gs://bucket/run/a.npz', x=np.arange(3))
    io_lib.append_text('gs://bucket/run/metrics.jsonl', '{"step": 1}\n')
    io_lib.append_text('gs://bucket/run/metrics.jsonl', '{"step": 2}\n')
    assert io_lib.exists('gs://bucket/run/results.json')
    assert not io_lib.exists('gs://bucket/run/nothing.json')
    assert json.loads(io_lib.read_text('gs://bucket/run/results.json')) == {
        'uar': 0.5}
  run = tmp_path / 'run'
  assert (run / 't.csv').read_bytes() == b'a,b\r\n1,"x,y"\r\n'
  with np.load(run / 'a.npz') as z:
    np.testing.assert_array_equal(z['x'], np.arange(3))
  assert (run / 'metrics.jsonl').read_text() == '{"step": 1}\n{"step": 2}\n'
  opened = [c for c in calls if c[0] == 'open' and 'w' in c[2]]
  assert [c[1] for c in opened] == [
      'gs://bucket/run/results.json', 'gs://bucket/run/t.csv',
      'gs://bucket/run/a.npz', 'gs://bucket/run/metrics.jsonl',
      'gs://bucket/run/metrics.jsonl']
  # Nothing written under a temporary name.
  assert sorted(os.listdir(run)) == ['a.npz', 'metrics.jsonl',
                                     'results.json', 't.csv']


def test_gs_write_failing_half_way_leaves_the_old_object(tmp_path,
                                                         monkeypatch):
  with fake_bucket(str(tmp_path), monkeypatch):
    io_lib.write_text('gs://bucket/r.txt', 'complete')
    with pytest.raises(RuntimeError):
      with io_lib.atomic_open('gs://bucket/r.txt') as f:
        f.write('half')
        raise RuntimeError('interrupted')
    assert io_lib.read_text('gs://bucket/r.txt') == 'complete'


def test_local_write_failing_half_way_leaves_the_old_file(tmp_path):
  path = str(tmp_path / 'r.txt')
  io_lib.write_text(path, 'complete')
  with pytest.raises(RuntimeError):
    with io_lib.atomic_open(path) as f:
      f.write('half')
      raise RuntimeError('interrupted')
  assert io_lib.read_text(path) == 'complete'
  assert os.listdir(tmp_path) == ['r.txt']


def test_paths_keep_urls_and_make_files_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert io_lib.abspath('gs://b/run/checkpoints') == 'gs://b/run/checkpoints'
  assert io_lib.abspath('run') == os.path.join(str(tmp_path), 'run')
  assert io_lib.join('gs://b/run', 'checkpoints') == 'gs://b/run/checkpoints'
  assert io_lib.is_remote('gs://b') and not io_lib.is_remote('/tmp/gs:')


def test_metric_writer_buffers_rows_on_an_object_store(tmp_path, monkeypatch):
  from jaxser import train  # pylint: disable=g-import-not-at-top
  (tmp_path / 'run').mkdir()  # The fake bucket's folders are real ones.
  with fake_bucket(str(tmp_path), monkeypatch):
    w = train.MetricWriter('gs://bucket/run', start_step=0)
    w.write(1, {'train/loss': 1.0})
    w.write(2, {'train/loss': 0.5})
    # Buffered: an object store rewrites the whole object on each append.
    assert not (tmp_path / 'run' / 'metrics.jsonl').exists()
    w.close()
    rows = [json.loads(l) for l in
            (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in rows] == [1, 2]
    # A resumed run from step 1 drops the rows it will write again.
    w = train.MetricWriter('gs://bucket/run', start_step=1)
    w.write(2, {'train/loss': 0.25})
    w.close()
    rows = [json.loads(l) for l in
            (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
    assert [(r['step'], r['train/loss']) for r in rows] == [(1, 1.0),
                                                          (2, 0.25)]
