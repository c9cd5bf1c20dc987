"""The four real corpora in ../shared/corpora: full listings, readable audio.

The folder is $JAXSER_SHARED_CORPORA, else shared/corpora beside the
repository; the tests skip where it is absent (as on a user's machine).
Only listings are checked in full; a few files of each go through the real
audio and feature path.
"""

import collections
import os
from pathlib import Path

import numpy as np
import pytest

from jaxser.data import audio
from jaxser.data import corpus as corpus_lib
from jaxser.data.features import FeatureConfig

SHARED = Path(os.environ.get('JAXSER_SHARED_CORPORA')
              or Path(__file__).resolve().parents[2] / 'shared' / 'corpora')

# What each corpus's README says: files, per-class and per-speaker counts
# (speaker -> (files, gender)).
EXPECTED = {
    'casia': (1200, {e: 200 for e in ('angry', 'fear', 'happy', 'neutral',
                                      'sad', 'surprise')},
              {'liuchanhg': (300, 'f'), 'wangzhe': (300, 'm'),
               'zhaoquanyin': (300, 'f'), 'ZhaoZuoxiang': (300, 'm')}),
    'emovo': (588, {e: 84 for e in ('disgust', 'happy', 'neutral', 'fear',
                                    'angry', 'surprise', 'sad')},
              {s: (98, s[0]) for s in ('f1', 'f2', 'f3', 'm1', 'm2', 'm3')}),
    'urdu': (400, {e: 100 for e in ('angry', 'happy', 'neutral', 'sad')},
             None),
    'emodb': (92, {'angry': 27, 'boredom': 9, 'disgust': 9, 'fear': 5,
                   'happy': 11, 'neutral': 20, 'sad': 11},
              {'03': (49, 'm'), '09': (43, 'f')}),
}


def _load(name):
  root = SHARED / name
  if not root.is_dir():
    pytest.skip(f'{root} is absent')
  return corpus_lib.load(name, str(root))


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_listing_is_complete(name):
  files, per_class, per_speaker = EXPECTED[name]
  corpus = _load(name)
  utts = corpus.utterances
  assert len(utts) == files and not corpus.unrecognised
  assert collections.Counter(u.emotion for u in utts) == per_class
  if per_speaker is not None:
    assert collections.Counter(u.speaker for u in utts) == {
        s: n for s, (n, _) in per_speaker.items()}
    assert {u.speaker: u.gender for u in utts} == {
        s: g for s, (_, g) in per_speaker.items()}
  assert len({u.utt_id for u in utts}) == files


def test_urdu_speakers():
  utts = _load('urdu').utterances
  speakers = {u.speaker: u.gender for u in utts}
  # 29 ids in the file names; the gender is their second letter.
  assert len(speakers) == 29
  assert all(g == s[1].lower() for s, g in speakers.items())
  assert collections.Counter(speakers.values()) == {'m': 18, 'f': 11}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_audio_reads_and_featurises(name):
  utts = _load(name).utterances
  feature = FeatureConfig.create('mfcc40', frames=100)
  for u in utts[::len(utts) // 8][:8]:
    wav = audio.load(u.path)
    audio.check(wav)
    x, n = feature.compute(wav)
    assert x.shape == (100, 40) and n > 0 and np.all(np.isfinite(x))
