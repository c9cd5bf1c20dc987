"""An LJSpeech-style TTS corpus: `metadata.csv` and a folder of wavs.

Layout (LJSpeech 1.1, and the many TTS corpora that copy it):
  <root>/metadata.csv   pipe-separated, no header: id|text|normalized text
                        (the third column optional; it is used when present
                        and not empty: numbers and abbreviations spelled out)
  <root>/wavs/<id>.wav  the audio (any folder below the root: files are
                        matched by their stem)
Every row becomes an unlabelled utterance with its transcript (single
speaker, language 'en'); rows naming no audio file and audio files the table
does not list are reported as unrecognised.
"""

from __future__ import annotations

import csv
import os

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import CorpusError
from jaxser.data.corpus import register

METADATA = 'metadata.csv'


def read_metadata(path: str) -> dict[str, str]:
  """id -> transcript of an LJSpeech metadata.csv."""
  out = {}
  with open(path, newline='', encoding='utf-8-sig', errors='replace') as f:
    for row in csv.reader(f, delimiter='|', quoting=csv.QUOTE_NONE):
      if not row or not row[0].strip():
        continue
      text = row[2] if len(row) > 2 and row[2].strip() else (
          row[1] if len(row) > 1 else '')
      out[row[0].strip()] = ' '.join(text.split())
  return out


@register('ljspeech')
def load(root: str) -> Corpus:
  table = os.path.join(root, METADATA)
  if not os.path.isfile(table):
    raise CorpusError(f'corpus \'ljspeech\': no {METADATA} in {root}')
  texts = read_metadata(table)
  seen = set()

  def parse(rel: str) -> dict | str:
    key = common.stem(rel)
    if key not in texts:
      return f'not listed in {METADATA}'
    seen.add(key)
    return dict(text=texts[key], speaker='ljspeech')

  corpus = common.listing('ljspeech', root, parse, language='en')
  corpus.unrecognised = sorted(corpus.unrecognised + [
      (f'wavs/{k}.wav', f'listed in {METADATA} but missing')
      for k in texts if k not in seen])
  return corpus
