"""The one way jaxser writes a file: atomically.

Everything a run, a grid or a tool leaves behind (results.json, tables,
caches, predictions, plots) is written to a temporary file in the target's
folder and renamed over the target, so an interruption (kill -9, a full
disk, a bad input met half-way) never leaves half a file and never destroys
the previous complete one.

Paths may also be URLs of object stores (`gs://bucket/run/results.json`,
through etils' epath: TensorFlow's gfile for gs://, fsspec for s3:// and
the others), so a run's workdir can live on Cloud Storage. An object store
has no rename; there an object is written in one request once the block
has finished, which is atomic per object in the same way: a failed write
leaves the previous object, and nobody reads half of one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import posixpath
import tempfile
from typing import Any, Iterable, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'w', **kwargs) -> Iterator[Any]:
  """`open(path, mode)` whose content replaces `path` only if the block
  finishes; otherwise the temporary file is removed and `path` is left as
  it was. `mode` is 'w' or 'wb'; kwargs go to `os.fdopen` (e.g.
  newline='')."""
  if mode not in ('w', 'wb'):
    raise ValueError(f'atomic_open: mode must be w or wb, got {mode!r}')
  if is_remote(path):
    with _remote_open(str(path), mode, **kwargs) as f:
      yield f
    return
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise ValueError(f'{path}: no such directory {directory}')
  fd, tmp = tempfile.mkstemp(dir=directory,
                             prefix=f'.{os.path.basename(path)}.',
                             suffix='.tmp')
  try:
    # mkstemp makes the file 0600; a result is as readable as any file the
    # user writes (the usual umask), e.g. by colleagues on a shared server.
    os.chmod(tmp, 0o666 & ~_umask())
    with os.fdopen(fd, mode, **kwargs) as f:
      yield f
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def is_remote(path) -> bool:
  """Whether `path` is an object-store URL (gs://, s3://...), not a file."""
  return '://' in str(path)


def _epath(path: str):
  from etils import epath  # pylint: disable=g-import-not-at-top
  return epath.Path(path)


@contextlib.contextmanager
def _remote_open(path: str, mode: str, newline: str | None = None,
                 encoding: str = 'utf-8') -> Iterator[Any]:
  """The block writes to memory; the object is uploaded in one request once
  it has finished (no rename on object stores)."""
  buf = io.BytesIO() if mode == 'wb' else io.StringIO(newline=newline)
  yield buf
  target = _epath(path)
  if mode == 'wb':
    target.write_bytes(buf.getvalue())
  else:
    target.write_text(buf.getvalue(), encoding=encoding)


def join(path: str, *parts: str) -> str:
  """`os.path.join` that keeps an object-store URL one (gs://b/a/parts)."""
  if is_remote(path):
    return posixpath.join(str(path), *parts)
  return os.path.join(path, *parts)


def abspath(path: str) -> str:
  """`os.path.abspath` for files; URLs as they are (orbax needs one or the
  other: `os.path.abspath('gs://b/x')` is '<cwd>/gs:/b/x')."""
  return str(path) if is_remote(path) else os.path.abspath(path)


def exists(path: str) -> bool:
  return _epath(path).exists() if is_remote(path) else os.path.exists(path)


def makedirs(path: str) -> None:
  """`os.makedirs(path, exist_ok=True)`; on object stores folders are
  prefixes, made by writing below them (epath's mkdir is a no-op there)."""
  if is_remote(path):
    _epath(path).mkdir(parents=True, exist_ok=True)
  else:
    os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
  if is_remote(path):
    _epath(path).unlink()
  else:
    os.remove(path)


def read_text(path: str) -> str:
  if is_remote(path):
    return _epath(path).read_text()
  with open(path) as f:
    return f.read()


def append_text(path: str, text: str) -> None:
  """Appends `text` to `path` (created if missing). Object stores cannot
  append: the object is read and written back whole, fine for logs of a
  few thousand lines (metrics.jsonl)."""
  if is_remote(path):
    old = read_text(path) if exists(path) else ''
    write_text(path, old + text)
  else:
    with open(path, 'a') as f:
      f.write(text)


def _umask() -> int:
  mask = os.umask(0o22)
  os.umask(mask)
  return mask


def write_text(path: str, text: str) -> None:
  with atomic_open(path) as f:
    f.write(text)


def write_json(path: str, obj: Any, indent: int | None = 1) -> None:
  with atomic_open(path) as f:
    json.dump(obj, f, indent=indent)


def write_csv(path: str, header: list[str], rows: Iterable) -> None:
  with atomic_open(path, newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def write_npz(path: str, **arrays) -> None:
  """`np.savez` to `path` (its name kept as given, no '.npz' appended)."""
  with atomic_open(path, 'wb') as f:
    np.savez(f, **arrays)


def save_figure(fig, path: str, **kwargs) -> None:
  """A matplotlib figure to `path` (format from its extension)."""
  fmt = posixpath.splitext(str(path))[1].lstrip('.') or 'png'
  with atomic_open(path, 'wb') as f:
    fig.savefig(f, format=fmt, **kwargs)
