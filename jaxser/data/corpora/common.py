"""What every corpus loader shares: walking the tree, reading tables, listing.

A loader is a `parse(rel_path) -> dict | str` function per corpus: given the
path of an audio file relative to the corpus root (POSIX separators), it
returns the `Utterance` fields it reads from the name (and the corpus's
annotation files), or a string saying why it does not recognise the file.
Loaders look only at the trailing components of the path, so an extra parent
folder (the one an archive unpacks into, say) does not matter.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Callable, Mapping

from jaxser.data.corpus import Corpus
from jaxser.data.corpus import EMOTIONS
from jaxser.data.corpus import Utterance

# Extensions of the containers libsndfile reads (see jaxser.data.audio).
AUDIO_EXTENSIONS = frozenset({
    '.wav', '.wave', '.flac', '.aif', '.aiff', '.aifc', '.ogg', '.oga',
    '.mp3', '.au', '.snd', '.caf', '.w64', '.rf64',
})

Parse = Callable[[str], 'dict | str']


def walk(root: str) -> list[str]:
  """Paths relative to `root` (POSIX separators) of every file below it."""
  out = []
  for dirpath, _, filenames in os.walk(root, followlinks=True):
    for name in filenames:
      rel = os.path.relpath(os.path.join(dirpath, name), root)
      out.append(rel.replace(os.sep, '/'))
  return sorted(out)


def is_audio(rel: str) -> bool:
  """Whether `rel` names an audio file (not macOS's '._' resource forks)."""
  name = os.path.basename(rel)
  return (not name.startswith('._')
          and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS)


def find(root: str, name: str) -> list[str]:
  """Absolute paths of the files called `name` (any case) below `root`."""
  return [os.path.join(root, rel) for rel in walk(root)
          if os.path.basename(rel).lower() == name.lower()]


def stem(rel: str) -> str:
  return os.path.splitext(os.path.basename(rel))[0]


def read_table(path: str) -> list[dict[str, str]]:
  """Rows of a delimited text table with a header, keys lower-cased.

  The delimiter (comma, semicolon or tab) is sniffed from the header line, so
  a spreadsheet export in any of the three reads the same.
  """
  with open(path, newline='', encoding='utf-8-sig', errors='replace') as f:
    header = f.readline()
    f.seek(0)
    delimiter = max(',;\t', key=header.count)
    reader = csv.DictReader(f, delimiter=delimiter)
    return [{(k or '').strip().lower(): (v or '').strip()
             for k, v in row.items()} for row in reader]


def column(fieldnames, *candidates: str) -> str | None:
  """The first of `candidates` (lower-case names) present among `fieldnames`."""
  present = set(fieldnames)
  return next((c for c in candidates if c in present), None)


def listing(name: str, root: str, parse: Parse, language: str,
            dim_scale: str | None = None,
            unrecognised: list[tuple[str, str]] | None = None) -> Corpus:
  """The corpus of the audio files below `root` as `parse` reads them.

  Args:
    name: corpus name.
    root: the corpus folder.
    parse: rel_path -> Utterance fields (speaker, gender, emotion, dims,
      partition) or the reason the file is not recognised.
    language: ISO 639-1 code of the corpus.
    dim_scale: scale of the ratings in `dims` (see jaxser.data.labels).
    unrecognised: further (path, reason) pairs the loader found, e.g. rows of
      an annotation table naming a missing file.

  Returns:
    The corpus, utterances and unrecognised files sorted by relative path.
  """
  utts, bad = [], list(unrecognised or [])
  for rel in walk(root):
    if not is_audio(rel):
      continue
    fields = parse(rel)
    if isinstance(fields, str):
      bad.append((rel, fields))
      continue
    utts.append(Utterance(utt_id=rel, corpus=name, language=language,
                          path=os.path.join(root, rel), **fields))
  return Corpus(name, utts, unrecognised=sorted(bad), root=root,
                dim_scale=dim_scale)


def folder_conflict(rel: str, emotion: str) -> str | None:
  """Why `rel`'s folder contradicts `emotion` when it names another emotion.

  For corpora that sort files into emotion folders and also code the emotion
  in the file name: the name is authoritative, a disagreeing folder means a
  misfiled or renamed file.
  """
  folder = rel.split('/')[-2].lower() if '/' in rel else ''
  if folder in EMOTIONS and folder != emotion:
    return f'in folder {folder!r} but its name says {emotion!r}'
  return None


def ratings(values: Mapping[str, str | None]) -> dict[str, float]:
  """Float ratings by dimension name, leaving out blank and NaN values."""
  out = {}
  for dim, text in values.items():
    try:
      v = float(text)
    except (TypeError, ValueError):
      continue
    if math.isfinite(v):
      out[dim] = v
  return out
