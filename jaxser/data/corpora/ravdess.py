"""RAVDESS (Livingstone & Russo 2018), North-American English.

Layout: `Actor_XX/MM-VV-EE-II-SS-RR-AA.wav`: modality MM (01 audio-video, 02
video-only, 03 audio-only), vocal channel VV (01 speech, 02 song), emotion EE
(01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08
surprised), intensity II, statement SS, repetition RR, actor AA (01-24; odd
= male). Everything is read from the file name.

Only audio-only speech files (03-01-...) are used: the song files (VV = 02)
are sung, not spoken, and audio extracted from the video files (MM = 01/02)
would duplicate the audio-only recordings; both are reported as unrecognised
with that reason.

Repairs (`common`): an extra suffix (`03-01-05-01-02-01-01 (1).wav`).
"""

from __future__ import annotations

import re

from jaxser.data.corpora import common
from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register

EMOTIONS = {'01': 'neutral', '02': 'calm', '03': 'happy', '04': 'sad',
            '05': 'angry', '06': 'fear', '07': 'disgust', '08': 'surprise'}
_NAME = re.compile(r'(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)')


def parse(rel: str) -> dict | str:
  m, suffix = common.match_name(_NAME, common.stem(rel))
  if not m or m.group(3) not in EMOTIONS:
    return 'not MM-VV-EE-II-SS-RR-AA.wav with emotion EE in 01..08'
  modality, channel, emotion, *_, actor = m.groups()
  if modality != '03':
    return f'modality {modality} is a video file; only audio-only (03) is used'
  if channel != '01':
    return f'vocal channel {channel} is song; only speech (01) is used'
  return common.repaired(dict(speaker=actor,
                              gender='m' if int(actor) % 2 else 'f',
                              emotion=EMOTIONS[emotion]), suffix, m.group(0))


@register('ravdess')
def load(root: str) -> Corpus:
  return common.listing('ravdess', root, parse, language='en')
