"""EMOVO (Costantini et al., LREC 2014), Italian.

Layout: `<speaker>/<emo>-<speaker>-<sentence>.wav`, e.g. `f1/rab-f1-b1.wav`;
speakers f1-f3 (female) and m1-m3 (male), sentences b1-b3 l1-l4 n1-n5 d1-d2.
Everything is read from the file name, so the speaker folder is optional.

Repairs (`common`): a letter-case change (`Rab-F1-B1`), an extra suffix
(`rab-f1-b1 (1)`) and a speaker shortened to its number (`f1/rab-1-b1`)
where the speaker folder has the same number.
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'dis': 'disgust', 'gio': 'happy', 'neu': 'neutral', 'pau': 'fear',
            'rab': 'angry', 'sor': 'surprise', 'tri': 'sad'}
_NAME = re.compile(r'([a-z]{3})-([fm]?)(\d+)-([a-z]\d+)', re.IGNORECASE)
_SPEAKER = re.compile(r'[fm]\d+', re.IGNORECASE)


def parse(rel: str) -> dict | str:
  m, suffix = common.match_name(_NAME, common.stem(rel))
  if not m or m.group(1).lower() not in EMOTIONS:
    return ('not <emo>-<speaker>-<sentence>.wav with emo in '
            f'{"/".join(EMOTIONS)}')
  emo, letter, number, sentence = m.groups()
  shortened = None
  if not letter:
    # Only the speaker folder can say whose it is.
    folder = rel.split('/')[-2] if '/' in rel else ''
    if not (_SPEAKER.fullmatch(folder) and folder[1:] == number):
      return (f'speaker {number!r} without f/m, and no speaker folder '
              f'f{number} or m{number} to tell which')
    letter = folder[0]
    shortened = f'speaker {number!r} shortened; its folder says {folder!r}'
  speaker = f'{letter}{number}'.lower()
  canonical = f'{emo}-{speaker}-{sentence}'.lower()
  written = m.group(0) if not shortened else f'{emo}-{letter}{number}-{sentence}'
  return common.repaired(
      dict(speaker=speaker, gender=speaker[0], emotion=EMOTIONS[emo.lower()]),
      common.join_reasons(shortened, common.case_reason(written, canonical),
                          suffix), canonical)


@register('emovo')
def load(root: str) -> Corpus:
  return common.listing('emovo', root, parse, language='it')
