"""Vera am Mittag audio (VAM-Audio, Grimm et al. 2008), German talk show.

Assumed layout: audio in `VAM-Audio/Audio/<set>/<name>.wav` (the sets being
VAM-I, VAM-II, ...), ratings in one or more tables anywhere below the root:
comma-, semicolon- or tab-separated `.csv`, `.tsv` or `.txt` files whose
header names
  a file column:        file, filename, file_name, name, utterance, sentence
  valence:              valence, val
  arousal:              arousal, activation, act, aro
  dominance (optional): dominance, dom
  speaker (optional):   speaker, spk, speaker_id
  gender (optional):    gender, sex (m/f/male/female)
with the mean ratings on the corpus's [-1, 1] scale (`dim_scale` 'vam'). The
distributed per-rater evaluation files must be averaged into such a table
first (their format varies between copies). Text files without such a header
are ignored; an audio file whose name (without extension) is in no table is
reported as unrecognised. VAM has no categories, so `emotion` is None.

Repairs (`common`): a file whose name is a table's file name followed by an
extra suffix (`Satz01 (1).wav`) is that file (letter case never mattered).
"""

from __future__ import annotations

import os

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

_TABLE_EXTENSIONS = ('.csv', '.tsv', '.txt')
_FILE = ('file', 'filename', 'file_name', 'name', 'utterance', 'sentence')
_VALENCE = ('valence', 'val')
_AROUSAL = ('arousal', 'activation', 'act', 'aro')
_DOMINANCE = ('dominance', 'dom')
_SPEAKER = ('speaker', 'spk', 'speaker_id')
_GENDER = ('gender', 'sex')


def rating_tables(root: str) -> dict[str, dict]:
  """Lower-cased file stem -> Utterance fields, from every ratings table."""
  out = {}
  for rel in common.walk(root):
    if not rel.lower().endswith(_TABLE_EXTENSIONS) or common.is_audio(rel):
      continue
    rows = common.read_table(os.path.join(root, rel))
    names = rows[0].keys() if rows else ()
    file_col, val_col, aro_col = (common.column(names, *c)
                                  for c in (_FILE, _VALENCE, _AROUSAL))
    if not (file_col and val_col and aro_col):
      continue
    dom_col, spk_col, sex_col = (common.column(names, *c)
                                 for c in (_DOMINANCE, _SPEAKER, _GENDER))
    for row in rows:
      dims = {'valence': row[val_col], 'arousal': row[aro_col]}
      if dom_col:
        dims['dominance'] = row[dom_col]
      sex = row[sex_col][:1].lower() if sex_col else ''
      out.setdefault(common.stem(row[file_col]).lower(), dict(
          speaker=row[spk_col] if spk_col else '',
          gender=sex if sex in ('m', 'f') else '',
          dims=common.ratings(dims)))
  return out


@register('vam')
def load(root: str) -> Corpus:
  tables = rating_tables(root)
  keys = {k: k for k in tables}  # Already lower-cased.

  def parse(rel: str) -> dict | str:
    name = common.stem(rel)
    key, reason = common.table_key(name.lower(), keys)
    if key is None:
      return ('no row in a ratings table (file, valence, arousal/activation'
              '[, dominance] columns) below the root')
    if reason and reason.startswith('extra suffix'):
      reason = f'extra suffix {name[len(key):]!r} after {name[:len(key)]!r}'
    return common.repaired(tables[key], reason, key)

  return common.listing('vam', root, parse, language='de', dim_scale='vam')
