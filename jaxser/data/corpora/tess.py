"""Toronto Emotional Speech Set (TESS), Canadian English.

Layout: `<OAF|YAF>_<emotion>/<OAF|YAF>_<word>_<emotion>.wav`, e.g.
`OAF_angry/OAF_back_angry.wav`: two female speakers (OAF older, YAF younger),
emotions angry, disgust, fear, happy, neutral, ps (pleasant surprise), sad.
Speaker and emotion are read from the file name (folder names vary in case
and spelling between copies, e.g. `YAF_pleasant_surprised`).
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'angry': 'angry', 'disgust': 'disgust', 'fear': 'fear',
            'happy': 'happy', 'neutral': 'neutral', 'ps': 'pleasant_surprise',
            'sad': 'sad'}
_NAME = re.compile(r'(OAF|YAF)_(.+)_([a-z]+)', re.IGNORECASE)


def parse(rel: str) -> dict | str:
  m = _NAME.fullmatch(common.stem(rel))
  if not m or m.group(3).lower() not in EMOTIONS:
    return (f'not <OAF|YAF>_<word>_<emotion>.wav with emotion in '
            f'{"/".join(EMOTIONS)}')
  return dict(speaker=m.group(1).upper(), gender='f',
              emotion=EMOTIONS[m.group(3).lower()])


@register('tess')
def load(root: str) -> Corpus:
  return common.listing('tess', root, parse, language='en')
