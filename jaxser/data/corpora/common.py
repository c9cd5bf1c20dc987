"""What every corpus loader shares: walking the tree, reading tables, listing.

A loader is a `parse(rel_path) -> dict | str` function per corpus: given the
path of an audio file relative to the corpus root (POSIX separators), it
returns the `Utterance` fields it reads from the name (and the corpus's
annotation files), or a string saying why it does not recognise the file.
Loaders look only at the trailing components of the path, so an extra parent
folder (the one an archive unpacks into, say) does not matter.

Repairs. Real copies of corpora hold files whose names break the corpus's
own scheme in small ways: an extra suffix (`03a01Fa (1).wav`,
`1001_DFA_ANG_XX_16k.wav`), a letter-case change (`03A01FA.wav`), a
shortened prefix (`Angry/M1_F10_A010.wav` for `SM1_...`). Where the folder
and the rest of the name still identify the utterance unambiguously, `parse`
takes the file and adds `repaired` (the reason) and `canonical` (the stem
the scheme expects) to its fields; `listing` lists it in
`Corpus.repaired`. A repaired file whose canonical name is already taken in
its folder (by a well-named file or an earlier repaired one) is a copy, and
is reported as unrecognised instead, so no utterance is counted twice.
"""

from __future__ import annotations

import csv
import math
import os
import re
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


# What may separate an extra suffix from a well-formed name: whitespace,
# '_', '-', '.', an opening bracket.
_SUFFIX_START = re.compile(r'[\s_.\-(\[]')


def match_name(pattern: re.Pattern, name: str
               ) -> tuple[re.Match | None, str | None]:
  """`pattern` against a file stem, allowing an extra suffix.

  Returns:
    (match, None) when `name` is well-formed (fullmatch); (match, reason)
    when a well-formed name is followed by a separator and anything else
    (`03a01Fa (1)`, `SM1_F10_A010_16k`), the match covering the well-formed
    part; (None, None) otherwise.
  """
  m = pattern.fullmatch(name)
  if m:
    return m, None
  m = pattern.match(name)
  if m and 0 < m.end() < len(name) and _SUFFIX_START.match(name, m.end()):
    return m, f'extra suffix {name[m.end():]!r} after {m.group(0)!r}'
  return None, None


def repaired(fields: dict, reason: str | None, canonical: str) -> dict:
  """`fields` marked as repaired for `reason` (a no-op when None), with the
  stem the corpus's scheme expects (`canonical`, for the copy check)."""
  if reason:
    fields = dict(fields, repaired=reason, canonical=canonical)
  return fields


def table_key(name: str, keys: dict[str, str]
              ) -> tuple[str | None, str | None]:
  """The key of an annotation table that file stem `name` stands for.

  Args:
    name: a file stem.
    keys: lower-cased key -> key as the table writes it.

  Returns:
    (key, None) when `name` is a key; (key, reason) when it is one but for
    its letter case, or one followed by an extra suffix (the longest key
    that `name` starts with, the rest starting with a separator);
    (None, None) otherwise.
  """
  key = keys.get(name.lower())
  if key is not None:
    return key, (None if key == name else
                 f'letter case: {name!r} for {key!r}')
  for m in reversed(list(_SUFFIX_START.finditer(name))):
    key = keys.get(name[:m.start()].lower())
    if key is not None and m.start() > 0:
      return key, join_reasons(
          f'extra suffix {name[m.start():]!r} after {name[:m.start()]!r}',
          None if name[:m.start()] == key else
          f'letter case: {name[:m.start()]!r} for {key!r}')
  return None, None


def case_reason(written: str, canonical: str) -> str | None:
  """Why `written` is not `canonical` when they differ in letter case only
  (None when equal)."""
  return None if written == canonical else (
      f'letter case: {written!r} for {canonical!r}')


def join_reasons(*reasons: str | None) -> str | None:
  """The non-empty reasons joined with '; ', or None."""
  kept = [r for r in reasons if r]
  return '; '.join(kept) if kept else None


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
    The corpus, utterances, repaired and unrecognised files sorted by
    relative path (see the module docstring for repairs).
  """
  utts, bad, fixed = [], list(unrecognised or []), []
  parsed = []
  for rel in walk(root):
    if not is_audio(rel):
      continue
    fields = parse(rel)
    if isinstance(fields, str):
      bad.append((rel, fields))
    else:
      parsed.append((rel, fields))
  # (folder, lower-case stem) of every well-named file: a repaired file
  # whose canonical name is among them (or among earlier repairs) is a copy.
  taken = {(os.path.dirname(rel), stem(rel).lower()): rel
           for rel, fields in parsed if 'repaired' not in fields}
  for rel, fields in parsed:
    if 'repaired' in fields:
      fields = dict(fields)
      reason, canonical = fields.pop('repaired'), fields.pop('canonical')
      key = (os.path.dirname(rel), canonical.lower())
      if key in taken:
        bad.append((rel, f'{reason}, but a copy of {taken[key]}'))
        continue
      taken[key] = rel
      fixed.append((rel, reason))
    utts.append(Utterance(utt_id=rel, corpus=name, language=language,
                          path=os.path.join(root, rel), **fields))
  return Corpus(name, utts, unrecognised=sorted(bad), root=root,
                dim_scale=dim_scale, repaired=sorted(fixed))


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
