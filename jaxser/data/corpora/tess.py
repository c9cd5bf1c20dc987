"""Toronto Emotional Speech Set (TESS), Canadian English.

Layout: `<OAF|YAF>_<emotion>/<OAF|YAF>_<word>_<emotion>.wav`, e.g.
`OAF_angry/OAF_back_angry.wav`: two female speakers (OAF older, YAF younger),
emotions angry, disgust, fear, happy, neutral, ps (pleasant surprise), sad.
Speaker and emotion are read from the file name (folder names vary in case
and spelling between copies, e.g. `YAF_pleasant_surprised`).

Repairs (`common`): a letter-case change of the speaker or emotion
(`oaf_back_Angry`), an extra suffix after the emotion (`OAF_back_angry (1)`,
`OAF_back_angry_2`), and a name without its speaker prefix (`back_angry`)
in a folder that names the speaker (`OAF_angry/`).
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
# The same with the emotion spelt out, so that a suffix after it shows.
_STRICT = re.compile(r'(OAF|YAF)_(.+?)_(' + '|'.join(EMOTIONS) + r')(?![a-z])',
                     re.IGNORECASE)
_BARE = re.compile(r'([^_]+)_(' + '|'.join(EMOTIONS) + r')(?![a-z])',
                   re.IGNORECASE)
_SPEAKER_FOLDER = re.compile(r'(OAF|YAF)_.*', re.IGNORECASE)


def parse(rel: str) -> dict | str:
  name = common.stem(rel)
  m = _NAME.fullmatch(name)
  shortened = suffix = None
  if not m or m.group(3).lower() not in EMOTIONS:
    m, suffix = common.match_name(_STRICT, name)
  if not m:
    # No speaker prefix: only the folder can say whose it is.
    folder = rel.split('/')[-2] if '/' in rel else ''
    bare, suffix = common.match_name(_BARE, name)
    speaker = _SPEAKER_FOLDER.fullmatch(folder)
    if not (bare and speaker):
      return (f'not <OAF|YAF>_<word>_<emotion>.wav with emotion in '
              f'{"/".join(EMOTIONS)}')
    shortened = (f'no speaker prefix; its folder {folder!r} says '
                 f'{speaker.group(1).upper()!r}')
    m = re.fullmatch(r'(\w+?)_(.+)_(\w+)',
                     f'{speaker.group(1)}_{bare.group(0)}')
  speaker, word, emotion = m.group(1), m.group(2), m.group(3)
  canonical = f'{speaker.upper()}_{word}_{emotion.lower()}'
  return common.repaired(
      dict(speaker=speaker.upper(), gender='f',
           emotion=EMOTIONS[emotion.lower()]),
      common.join_reasons(shortened, common.case_reason(
          f'{speaker}_{word}_{emotion}', canonical), suffix), canonical)


@register('tess')
def load(root: str) -> Corpus:
  return common.listing('tess', root, parse, language='en')
