"""The one way jaxser writes a file: atomically.

Everything a run, a grid or a tool leaves behind (results.json, tables,
caches, predictions, plots) is written to a temporary file in the target's
folder and renamed over the target, so an interruption (kill -9, a full
disk, a bad input met half-way) never leaves half a file and never destroys
the previous complete one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
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
  fmt = os.path.splitext(path)[1].lstrip('.') or 'png'
  with atomic_open(path, 'wb') as f:
    fig.savefig(f, format=fmt, **kwargs)
