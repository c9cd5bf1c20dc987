"""A user's own corpus: any folder of audio, unlabelled or labelled by a CSV.

Every audio file below the root is an utterance (utt_id = its relative path,
language ''). Labels, when there are any, come from a table of
  path (or file, filename, wav): the audio file, relative to the table's
    folder or absolute;
  label (or emotion, category): the emotion, canonical or a common synonym
    (anger -> angry, happiness / joy -> happy, sadness -> sad, fearful ->
    fear, surprised -> surprise, ..., see SYNONYMS); empty for unlabelled;
  speaker, gender (m/f/male/female), partition: optional;
  text (or transcript, transcription): optional, the utterance's transcript
    (what the `tokens` feature set reads; whitespace runs become one space,
    empty for unknown).
A table with a text column may leave out the label column (an unlabelled
corpus with transcripts). The table is `labels.csv` in the root (comma,
semicolon or tab separated), or the file named by the environment variable
JAXSER_FOLDER_LABELS. Files the table does not list stay unlabelled and
untranscribed; rows with an unknown label are reported as unrecognised
files, and so are rows naming a file that is not there. Quote a text that
holds the delimiter ("Well, no.").
"""

from __future__ import annotations

import os

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import CorpusError
from jaxser.data.corpus import EMOTIONS
from jaxser.data.corpus import register

LABELS_ENV = 'JAXSER_FOLDER_LABELS'
SYNONYMS = {
    'anger': 'angry', 'ang': 'angry', 'mad': 'angry',
    'happiness': 'happy', 'joy': 'happy', 'hap': 'happy', 'glad': 'happy',
    'sadness': 'sad',
    'neu': 'neutral',
    'fearful': 'fear', 'afraid': 'fear', 'scared': 'fear', 'fea': 'fear',
    'disgusted': 'disgust', 'dis': 'disgust',
    'surprised': 'surprise', 'sur': 'surprise',
    'bored': 'boredom',
    'excitement': 'excited', 'exc': 'excited',
    'frustration': 'frustrated', 'fru': 'frustrated',
    'ps': 'pleasant_surprise', 'pleasant_surprised': 'pleasant_surprise',
    'others': 'other', 'oth': 'other',
}
_PATH = ('path', 'file', 'filename', 'wav')
_LABEL = ('label', 'emotion', 'category')
_TEXT = ('text', 'transcript', 'transcription')


def canonical(label: str) -> str | None:
  """The canonical emotion of `label`, or None if it is not one."""
  key = label.strip().lower().replace(' ', '_').replace('-', '_')
  key = SYNONYMS.get(key, key)
  return key if key in EMOTIONS else None


def read_labels(table: str, root: str):
  """Labels from a table.

  Returns:
    (fields, missing): absolute path -> Utterance fields, or the reason its
    row is unusable; and (path, reason) of the rows naming no existing file.
  """
  rows = common.read_table(table)
  names = rows[0].keys() if rows else ()
  path_col, label_col = common.column(names, *_PATH), common.column(
      names, *_LABEL)
  text_col = common.column(names, *_TEXT)
  if not (path_col and (label_col or text_col)):
    raise CorpusError(
        f'corpus \'folder\': {table} needs a path column ({"/".join(_PATH)}) '
        f'and a label column ({"/".join(_LABEL)}) or a text column '
        f'({"/".join(_TEXT)}); it has {list(names)}')
  fields, missing = {}, []
  base = os.path.dirname(os.path.abspath(table))
  for row in rows:
    path = os.path.normpath(os.path.join(base, row[path_col]))
    label = row[label_col] if label_col else ''
    emotion = canonical(label) if label else None
    sex = row.get('gender', '')[:1].lower()
    if not os.path.isfile(path):
      missing.append((os.path.relpath(path, root),
                      f'listed in {table} but missing'))
    elif label and emotion is None:
      fields[path] = f'label {label!r} in {table} is not an emotion'
    else:
      fields[path] = dict(emotion=emotion, speaker=row.get('speaker', ''),
                          gender=sex if sex in ('m', 'f') else '',
                          partition=row.get('partition', ''),
                          text=' '.join(row.get(text_col, '').split())
                          if text_col else '')
  return fields, missing


@register('folder')
def load(root: str) -> Corpus:
  table = os.environ.get(LABELS_ENV)
  if table and not os.path.isfile(table):
    raise CorpusError(f'corpus \'folder\': {LABELS_ENV}={table} is not a file')
  table = table or os.path.join(root, 'labels.csv')
  fields, missing = (read_labels(table, root) if os.path.isfile(table)
                     else ({}, []))
  root_abs = os.path.abspath(root)

  def parse(rel: str) -> dict | str:
    return fields.get(os.path.normpath(os.path.join(root_abs, rel)), {})

  return common.listing('folder', root, parse, language='',
                        unrecognised=missing)
