"""URDU (Latif et al. 2018), Urdu talk-show speech.

Layout: `<Emotion>/S<G><id>_F<n>_<E><k>.wav`, e.g. `Angry/SM1_F19_A019.wav`:
speaker `S<G><id>` (G = M or F gives the gender), emotion letter E (A angry,
H happy, N neutral, S sad). The letter is authoritative; the folder is
optional but must agree with it when it names an emotion.
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'A': 'angry', 'H': 'happy', 'N': 'neutral', 'S': 'sad'}
_NAME = re.compile(r'(S([MF])\d+)_F\d+_([AHNS])\d+', re.IGNORECASE)


def parse(rel: str) -> dict | str:
  m = _NAME.fullmatch(common.stem(rel))
  if not m:
    return 'not <Emotion>/S<M|F><id>_F<n>_<A|H|N|S><k>.wav'
  emotion = EMOTIONS[m.group(3).upper()]
  return common.folder_conflict(rel, emotion) or dict(
      speaker=m.group(1).upper(), gender=m.group(2).lower(), emotion=emotion)


@register('urdu')
def load(root: str) -> Corpus:
  return common.listing('urdu', root, parse, language='ur')
