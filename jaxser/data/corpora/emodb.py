"""Berlin EmoDB (Burkhardt et al. 2005), German.

Layout: `wav/<spk><text><E><version>.wav`, e.g. `wav/03a01Fa.wav`: speaker =
characters 1-2, text = 3-5, emotion letter = 6 (W anger, L boredom, E
disgust, A fear, F happiness, T sadness, N neutral), version = 7. Male
speakers are 03 10 11 12 15, female 08 09 13 14 16.
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'W': 'angry', 'L': 'boredom', 'E': 'disgust', 'A': 'fear',
            'F': 'happy', 'T': 'sad', 'N': 'neutral'}
MALE = frozenset({'03', '10', '11', '12', '15'})
FEMALE = frozenset({'08', '09', '13', '14', '16'})
_NAME = re.compile(r'(\d\d)([a-z]\d\d)([WLEAFTN])([a-z])')


def parse(rel: str) -> dict | str:
  m = _NAME.fullmatch(common.stem(rel))
  if not m:
    return 'not <spk><text><W|L|E|A|F|T|N><version>.wav (e.g. 03a01Fa.wav)'
  speaker = m.group(1)
  gender = 'm' if speaker in MALE else 'f' if speaker in FEMALE else ''
  return dict(speaker=speaker, gender=gender, emotion=EMOTIONS[m.group(3)])


@register('emodb')
def load(root: str) -> Corpus:
  return common.listing('emodb', root, parse, language='de')
