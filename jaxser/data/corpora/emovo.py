"""EMOVO (Costantini et al., LREC 2014), Italian.

Layout: `<speaker>/<emo>-<speaker>-<sentence>.wav`, e.g. `f1/rab-f1-b1.wav`;
speakers f1-f3 (female) and m1-m3 (male), sentences b1-b3 l1-l4 n1-n5 d1-d2.
Everything is read from the file name, so the speaker folder is optional.
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'dis': 'disgust', 'gio': 'happy', 'neu': 'neutral', 'pau': 'fear',
            'rab': 'angry', 'sor': 'surprise', 'tri': 'sad'}
_NAME = re.compile(r'([a-z]{3})-([fm]\d+)-([a-z]\d+)', re.IGNORECASE)


def parse(rel: str) -> dict | str:
  m = _NAME.fullmatch(common.stem(rel))
  if not m or m.group(1).lower() not in EMOTIONS:
    return ('not <emo>-<speaker>-<sentence>.wav with emo in '
            f'{"/".join(EMOTIONS)}')
  speaker = m.group(2).lower()
  return dict(speaker=speaker, gender=speaker[0],
              emotion=EMOTIONS[m.group(1).lower()])


@register('emovo')
def load(root: str) -> Corpus:
  return common.listing('emovo', root, parse, language='it')
