"""TurEV-DB (Canpolat et al., SLTU 2020), Turkish words in four emotions.

Layout: `Sound Source/<Emotion>/<spk>_<code>_<word>.wav`, e.g.
`Sound Source/Angry/1157_kz_beste.wav`: speaker = a 4-digit actor id, code kz
(kizgin, angry), mt (mutlu, happy), sk (sakin, calm), hl (huzunlu, sad). The
code is authoritative; the folder is optional but must agree with it when it
names an emotion.

Gender: the distribution has no speaker metadata (no table maps the actor ids
to their sex), so gender is '' for every utterance.
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'kz': 'angry', 'mt': 'happy', 'sk': 'calm', 'hl': 'sad'}
_NAME = re.compile(r'(\w+?)_(kz|mt|sk|hl)_(.+)', re.IGNORECASE)


def parse(rel: str) -> dict | str:
  m = _NAME.fullmatch(common.stem(rel))
  if not m:
    return 'not <Emotion>/<spk>_<kz|mt|sk|hl>_<word>.wav'
  emotion = EMOTIONS[m.group(2).lower()]
  return common.folder_conflict(rel, emotion) or dict(speaker=m.group(1),
                                                      emotion=emotion)


@register('turev')
def load(root: str) -> Corpus:
  return common.listing('turev', root, parse, language='tr')
