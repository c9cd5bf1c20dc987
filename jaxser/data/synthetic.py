"""Synthetic emotional-speech corpora rendered by source-filter synthesis.

Each corpus is a deterministic list of utterances whose 16 kHz audio is
synthesised on demand, so the corpora need no download and go through the same
feature and cache path as real recordings.

Acoustic model. An utterance is a sentence of syllables (onset consonants, a
vowel, an optional coda) drawn from the corpus's made-up language. A glottal
source (Rosenberg pulses, differentiated for lip radiation, with a one-pole
return-phase filter setting the spectral tilt, cycle-to-cycle jitter and
shimmer, and pulsed aspiration noise) follows an F0 contour made of a
declination line, pitch accents on stressed syllables, a final fall and a slow
wander. It excites a cascade of seven formant resonators: F1-F3 follow the
segments' targets, smoothed into transitions (coarticulation), and are scaled
by the speaker's vocal-tract length; fricatives and stop bursts add band-pass
noise. The vocal tract is applied as a time-varying filter by weighted
overlap-add in the frequency domain, then the recording channel: room
reverberation (exponentially decaying noise impulse response), additive
coloured noise and mains hum at a given SNR, microphone low cut and
colouration, gain, optional mu-law codec and telephone band-limiting, DC
offset and clipping.

Emotions follow the vocal-emotion literature qualitatively (Scherer 2003;
Banse & Scherer 1996; Juslin & Laukka 2003): anger and happiness raise F0 level
and range, speaking rate and vocal effort; anger most of all, with a tense
voice (short open phase, flatter spectral tilt, more high-frequency energy,
more jitter and shimmer); sadness lowers F0, flattens the contour, slows the
rate, adds pauses, softens and breathes the voice (long open phase, steep
tilt, aspiration noise) and centralises the vowels. Each parameter also varies
per utterance and per speaker, so that the classes overlap. A corpus's
`expressiveness` scales the emotional deviations from neutral, and its
`style` replaces the acted portrayal of an emotion by another display: the
spontaneous corpora show 'cold' anger (quiet, flat, slow, tense voice) and
quiet happiness (lively contour, smiling formants, little added effort), as
natural speech does more often than acted speech.

Corpora (4 emotions, balanced; speakers `spkNN`, utterance ids
`spkNN/<emotion>/NNNN`, 1.4-3.5 s each, about 11 ms of CPU to render):

  synth_acted_a: acted studio corpus (the default source). Language 'xa': five
    vowels, CV(C) syllables, penultimate stress. 8 speakers (4 f, 4 m) x 12
    utterances per emotion, the same 12 sentences in every emotion, strong
    expression (1.0) and little variation, quiet booth (SNR 40 dB, RT60
    0.15 s).
  synth_acted_b: a second acted corpus. Language 'xb': eight vowels with front
    rounded ones, consonant clusters, many fricatives, initial stress. 8
    speakers (4 f, 4 m) x 12, exaggerated expression (1.15), small room
    (RT60 0.3 s), bright microphone (+5 dB at 4 kHz), SNR 32 dB.
  synth_natural: spontaneous-like speech (the default target). Language 'xc':
    three vowels, strict CV, fast, final stress. 10 speakers (5 f, 5 m) x 20,
    a new text per utterance, spontaneous display (cold anger, quiet
    happiness), weaker expression (0.85) and more variation,
    reverberant room (RT60 0.6 s, DRR 2 dB), rumble and 50 Hz hum at SNR
    15 dB, boxy microphone (+4 dB at 1.2 kHz), low gain, DC offset.
  synth_phone: call-centre speech. Language 'xd': six vowels, CVC syllables.
    8 speakers (3 f, 5 m) x 12, spontaneous display, moderate expression
    (0.8), telephone channel
    (300-3400 Hz, 8-bit mu-law), line noise at SNR 22 dB.

Recording conditions, language, expressiveness and display style make the
gap between corpora; `python -m jaxser.data.synthetic_check` measures it with
a linear classifier on MFCC functionals.

Transcripts. Every utterance also has a deterministic English-like
transcript (`Utterance.text`, `transcript`), what a text branch (the
`tokens` feature set) reads; it is not what the audio says (the audio speaks
the made-up language). It is 4-14 words: neutral filler words of the
corpus's register (`Lexicon.fillers`: scripted prose in the acted corpora,
hedges and discourse markers in synth_natural, account and billing talk in
synth_phone), and at each position, with probability `TEXT_EMOTION_RATE`,
an emotion-bearing word instead. That word is of the utterance's emotion,
except with probability `TEXT_CONFUSION` of another emotion (noise: text
alone is an imperfect cue), and comes from a lexicon shared by all corpora
(`_CORE_WORDS`, e.g. angry 'hate', 'ridiculous') with probability
`TEXT_CORE_SHARE`, else from the corpus's own words for that emotion
(`Lexicon.emotion_words`, e.g. synth_natural's angry 'damn', 'seriously';
synth_phone's 'complaint', 'manager'): the text domain gap. Sentences end in
'!' more often when angry or happy. An acted corpus's transcript is its
script sentence (the same fillers in every emotion, as its audio reads the
same sentence) with the emotion words inserted: synth_acted_a's sentence 0
is "In today the the it morning tomorrow morning", spk00/angry/0000 reads
"In today the the it morning disgrace tomorrow morning!" and spk00/happy/0000
"In splendid today the the it morning tomorrow certainly glad splendid
morning.". A bag-of-words classifier gets about 65-73% (chance 25%) within a
corpus and 57-62% across corpora. The transcript depends only on (corpus
name, utt_id), like the waveform, and leaves the audio unchanged.

The waveform of an utterance depends only on (corpus name, utt_id): every
random draw comes from a generator seeded by a CRC of them (speaker traits
from corpus and speaker, texts from corpus and sentence number).
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import functools
import zlib

import numpy as np
from scipy import fft
from scipy import signal

from jaxser.data.corpus import Corpus
from jaxser.data.corpus import register
from jaxser.data.corpus import SAMPLE_RATE
from jaxser.data.corpus import Utterance

# Bump whenever the rendered audio changes, so feature caches are rebuilt.
VERSION = '3'
EMOTIONS = ('neutral', 'happy', 'sad', 'angry')
MAX_SECONDS = 3.5

# F4-F7 of an adult male, fixed: with F1-F3 they make up the all-pole response
# of the whole tract up to 8 kHz; with fewer poles the spectrum would fall off
# too fast above F3 (what Klatt's higher-pole correction makes up for).
_HIGHER_FORMANTS = np.array([3300.0, 4300.0, 5300.0, 6300.0])
_BANDWIDTHS = np.array([60.0, 90.0, 140.0, 220.0, 300.0, 400.0, 500.0])
_CTRL = 64  # Control rate of the synthesis parameters: 4 ms.
_HOP, _WIN, _NFFT = 256, 512, 1024  # Time-varying filtering by overlap-add.
# Output scale: a neutral voice at 0 dB effort comes out near -32 dBFS.
_LEVEL = 0.004
# About the RMS of the pulse source: noise sources are scaled by it so that
# their levels read as dB re the voiced source.
_SOURCE_RMS = 3.0

# Emotions as deviations from neutral (scaled by the corpus expressiveness):
# f0 [semitones], range / rate / tilt / perturb / space / f1 [log2 factors of
# pitch-accent excursion, speaking rate, return-phase corner frequency, jitter
# and shimmer, vowel dispersion, F1], level [dB of vocal effort], oq [open
# quotient], breath [dB of aspiration noise], pause [probability of a pause
# between words].
_EMOTION_SHIFT = {
    'neutral': {},
    'happy': dict(f0=3.0, range=0.5, rate=0.12, level=2.0, tilt=0.5,
                  oq=-0.03, breath=0.0, perturb=0.2, space=0.1, f1=0.06,
                  pause=-0.04),
    'sad': dict(f0=-2.0, range=-0.9, rate=-0.32, level=-3.5, tilt=-1.0,
                oq=0.08, breath=5.0, perturb=0.3, space=-0.3, f1=-0.04,
                pause=0.15),
    'angry': dict(f0=4.0, range=0.4, rate=0.15, level=4.5, tilt=1.5,
                  oq=-0.12, breath=-4.0, perturb=0.6, space=0.15, f1=0.1,
                  pause=-0.05),
}
# How spontaneous speakers display emotion where it differs from the acted,
# full-blown portrayals of `_EMOTION_SHIFT` (Banse & Scherer 1996 portray
# both forms): 'cold' anger, controlled and quiet, with a flat, low contour,
# deliberate rate, pauses and a tense, hyper-articulated voice instead of the
# loud, high-pitched hot anger; and quiet happiness (contentment, amusement)
# with a lively contour, a smiling voice (lip spreading raises the formants)
# and some breathiness, but little added effort. A model that learnt the acted
# forms misreads these, which is the label-conditional part of the gap
# between acted and natural corpora that feature alignment cannot close.
_SPONTANEOUS_STYLE = {
    'angry': dict(f0=-0.5, range=-0.5, rate=-0.15, level=0.5, tilt=1.2,
                  oq=-0.12, breath=-5.0, perturb=0.5, space=0.3, f1=0.0,
                  pause=0.1),
    'happy': dict(f0=1.0, range=0.8, rate=0.0, level=-0.5, tilt=-0.3,
                  oq=0.04, breath=3.0, perturb=0.0, space=0.0, f1=0.12,
                  pause=0.0),
}
# Per-utterance standard deviation of each parameter within an emotion (scaled
# by the corpus variability): what makes the classes overlap.
_EMOTION_SPREAD = dict(f0=1.5, range=0.3, rate=0.08, level=2.5, tilt=0.35,
                       oq=0.04, breath=3.0, perturb=0.3, space=0.1, f1=0.04,
                       pause=0.05)


@dataclasses.dataclass(frozen=True)
class Consonant:
  """A consonant: manner, voicing, noise band and formant locus (male, Hz)."""
  manner: str  # 'stop', 'fricative', 'nasal' or 'approximant'.
  voiced: bool
  noise_hz: float  # Centre of the frication or burst noise.
  noise_gain: float  # Noise amplitude re the voiced source.
  locus: tuple[float, float, float]  # F1-F3 during the constriction.


_CONSONANTS = {
    'p': Consonant('stop', False, 900, 0.5, (300, 900, 2200)),
    'b': Consonant('stop', True, 900, 0.3, (300, 900, 2200)),
    't': Consonant('stop', False, 4200, 0.6, (300, 1700, 2600)),
    'd': Consonant('stop', True, 4200, 0.4, (300, 1700, 2600)),
    'k': Consonant('stop', False, 2200, 0.6, (300, 2000, 2400)),
    'g': Consonant('stop', True, 2200, 0.4, (300, 2000, 2400)),
    'f': Consonant('fricative', False, 5000, 0.12, (300, 1100, 2300)),
    'v': Consonant('fricative', True, 5000, 0.06, (300, 1100, 2300)),
    's': Consonant('fricative', False, 5500, 0.45, (300, 1600, 2700)),
    'z': Consonant('fricative', True, 5500, 0.2, (300, 1600, 2700)),
    'sh': Consonant('fricative', False, 3000, 0.45, (300, 1900, 2400)),
    'x': Consonant('fricative', False, 1800, 0.25, (350, 1600, 2400)),
    'm': Consonant('nasal', True, 0, 0, (250, 1100, 2200)),
    'n': Consonant('nasal', True, 0, 0, (250, 1700, 2500)),
    'ng': Consonant('nasal', True, 0, 0, (250, 2000, 2400)),
    'l': Consonant('approximant', True, 0, 0, (360, 1300, 2700)),
    'r': Consonant('approximant', True, 0, 0, (420, 1250, 1700)),
    'w': Consonant('approximant', True, 0, 0, (300, 700, 2200)),
    'j': Consonant('approximant', True, 0, 0, (280, 2200, 2900)),
}
# Vowel formants F1-F3 of an adult male voice (Peterson & Barney style), Hz.
_VOWELS = {
    'i': (270, 2290, 3010), 'y': (270, 1800, 2150), 'e': (400, 2050, 2650),
    'E': (530, 1840, 2480), 'ae': (660, 1720, 2410), 'a': (720, 1250, 2500),
    'A': (640, 1190, 2390), 'O': (570, 840, 2410), 'o': (450, 850, 2450),
    'u': (300, 870, 2240), '2': (400, 1550, 2300), '@': (500, 1500, 2500),
    'I': (320, 1400, 2400),
}
_SCHWA = _VOWELS['@']


@dataclasses.dataclass(frozen=True)
class Language:
  """A made-up language: vowel and consonant inventories and phonotactics.

  Attributes:
    code: language code given to the utterances.
    vowels: keys of `_VOWELS`.
    consonants: keys of `_CONSONANTS`.
    onset: probabilities of 0, 1 and 2 onset consonants.
    coda: probability of one coda consonant.
    stress: stressed syllable of a word: 'initial', 'penultimate' or 'final'.
    syllable_s: mean neutral syllable duration, s.
    syllables: range of the number of syllables per sentence.
  """
  code: str
  vowels: tuple[str, ...]
  consonants: tuple[str, ...]
  onset: tuple[float, float, float]
  coda: float
  stress: str
  syllable_s: float
  syllables: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class Channel:
  """The recording chain after the talker's mouth.

  Attributes:
    snr_db: mean SNR of the additive noise re the utterance, dB.
    noise_colour: one-pole coefficient colouring the noise (0 white, near 1
      rumble).
    hum_hz: mains hum fundamental (0 for none).
    rt60: reverberation time of the room, s (0 for dry).
    drr_db: direct-to-reverberant energy ratio, dB.
    highpass_hz: microphone / preamplifier low cut.
    eq: microphone colouration as a peaking filter (Hz, dB, Q).
    band: band-limiting (low, high) Hz, e.g. the telephone band, or None.
    mulaw: whether an 8-bit mu-law codec quantises the signal.
    gain_db: recording gain.
    dc: DC offset of the converter.
  """
  snr_db: float = 40.0
  noise_colour: float = 0.0
  hum_hz: float = 0.0
  rt60: float = 0.0
  drr_db: float = 10.0
  highpass_hz: float = 60.0
  eq: tuple[float, float, float] = (2500.0, 0.0, 1.0)
  band: tuple[float, float] | None = None
  mulaw: bool = False
  gain_db: float = 0.0
  dc: float = 0.0


@dataclasses.dataclass(frozen=True)
class Spec:
  """A synthetic corpus.

  Attributes:
    name: registry name.
    language: what is said.
    genders: one letter ('f' or 'm') per speaker.
    per_class: utterances per speaker and emotion.
    sentences: number of distinct sentences, each spoken in every emotion as
      in acted corpora; 0 for a new text per utterance (spontaneous speech).
    expressiveness: scale of the emotional deviations from neutral.
    variability: scale of the per-utterance variation of every parameter.
    channel: the recording chain.
    style: emotion -> deviations from neutral replacing `_EMOTION_SHIFT`'s
      for that emotion (how this corpus's speakers display it).
  """
  name: str
  language: Language
  genders: str
  per_class: int
  sentences: int
  expressiveness: float
  variability: float
  channel: Channel
  style: Mapping[str, Mapping[str, float]] = dataclasses.field(
      default_factory=dict)
  lexicon: 'Lexicon | None' = None


@dataclasses.dataclass(frozen=True)
class Lexicon:
  """The words of a corpus's transcripts (module docstring, Transcripts).

  Attributes:
    fillers: emotionally neutral words of the corpus's register.
    emotion_words: emotion -> the corpus's own emotion-bearing words.
  """
  fillers: tuple[str, ...]
  emotion_words: Mapping[str, tuple[str, ...]]


# Emotion-bearing words every corpus uses.
_CORE_WORDS = {
    'neutral': ('okay', 'fine', 'usual', 'normal', 'regular', 'alright'),
    'happy': ('great', 'wonderful', 'love', 'glad', 'happy', 'lovely'),
    'sad': ('sorry', 'miss', 'lost', 'alone', 'tired', 'sad'),
    'angry': ('hate', 'ridiculous', 'stupid', 'enough', 'furious',
              'unacceptable'),
}
TEXT_EMOTION_RATE = 0.3  # Per word: an emotion-bearing word.
TEXT_CONFUSION = 0.3  # Per emotion word: of another emotion.
TEXT_CORE_SHARE = 0.5  # Per emotion word: from `_CORE_WORDS`.
_EXCLAIM = {'angry': 0.5, 'happy': 0.4, 'sad': 0.05, 'neutral': 0.05}

_LEXICON_A = Lexicon(
    fillers=('the', 'a', 'letter', 'window', 'table', 'morning', 'was', 'is',
             'on', 'we', 'they', 'will', 'bring', 'paper', 'house', 'today',
             'tomorrow', 'train', 'garden', 'under', 'in', 'it'),
    emotion_words={'neutral': ('indeed', 'certainly', 'ordinary'),
                   'happy': ('delightful', 'splendid', 'cheerful'),
                   'sad': ('grief', 'mourning', 'heartbroken'),
                   'angry': ('outrageous', 'disgrace', 'insolent')})
_LEXICON_B = Lexicon(
    fillers=('the', 'a', 'box', 'kitchen', 'evening', 'car', 'friday',
             'doctor', 'street', 'she', 'has', 'left', 'bag', 'station',
             'near', 'after', 'old', 'his', 'by', 'to', 'of', 'there'),
    emotion_words={'neutral': ('routine', 'plain', 'average'),
                   'happy': ('joyful', 'marvellous', 'thrilled'),
                   'sad': ('sorrow', 'weeping', 'gloomy'),
                   'angry': ('scandal', 'infuriating', 'livid')})
_LEXICON_NATURAL = Lexicon(
    fillers=('um', 'like', 'you', 'know', 'i', 'mean', 'yeah', 'so', 'and',
             'then', 'just', 'really', 'kind', 'of', 'stuff', 'guy', 'thing',
             'went', 'there', 'was', 'it', 'my'),
    emotion_words={'neutral': ('whatever', 'sure', 'anyway'),
                   'happy': ('awesome', 'cool', 'haha'),
                   'sad': ('sucks', 'bummed', 'ugh'),
                   'angry': ('damn', 'crap', 'seriously')})
_LEXICON_PHONE = Lexicon(
    fillers=('account', 'number', 'order', 'bill', 'payment', 'hold', 'line',
             'service', 'card', 'please', 'my', 'the', 'refund', 'call',
             'your', 'is', 'on', 'for', 'this', 'month', 'i', 'have'),
    emotion_words={'neutral': ('confirm', 'standard', 'noted'),
                   'happy': ('perfect', 'thanks', 'appreciate'),
                   'sad': ('unfortunately', 'disappointed', 'worried'),
                   'angry': ('complaint', 'manager', 'cancel')})


ACTED_A = Spec(
    'synth_acted_a',
    Language('xa', ('i', 'e', 'a', 'o', 'u'),
             ('p', 't', 'k', 'b', 'd', 'g', 'm', 'n', 's', 'l'),
             onset=(0.1, 0.9, 0.0), coda=0.3, stress='penultimate',
             syllable_s=0.2, syllables=(6, 10)),
    genders='fmfmfmfm', per_class=12, sentences=12, expressiveness=1.0,
    variability=0.5, lexicon=_LEXICON_A,
    channel=Channel(snr_db=40.0, rt60=0.15, drr_db=15.0, highpass_hz=50.0))
ACTED_B = Spec(
    'synth_acted_b',
    Language('xb', ('i', 'y', 'E', '2', 'a', 'O', 'u', '@'),
             ('t', 'k', 'd', 's', 'sh', 'x', 'v', 'z', 'r', 'n'),
             onset=(0.1, 0.6, 0.3), coda=0.5, stress='initial',
             syllable_s=0.23, syllables=(5, 9)),
    genders='mfmfmfmf', per_class=12, sentences=12, expressiveness=1.15,
    variability=0.5, lexicon=_LEXICON_B,
    channel=Channel(snr_db=32.0, noise_colour=0.5, rt60=0.3, drr_db=8.0,
                    highpass_hz=90.0, eq=(4000.0, 5.0, 1.2), gain_db=-1.0))
NATURAL = Spec(
    'synth_natural',
    Language('xc', ('i', 'a', 'u'),
             ('p', 't', 'k', 'm', 'n', 'ng', 'w', 'j', 'l'),
             onset=(0.0, 1.0, 0.0), coda=0.0, stress='final',
             syllable_s=0.17, syllables=(7, 12)),
    genders='fmfmfmfmfm', per_class=20, sentences=0, expressiveness=0.85,
    variability=0.8, style=_SPONTANEOUS_STYLE, lexicon=_LEXICON_NATURAL,
    channel=Channel(snr_db=15.0, noise_colour=0.97, hum_hz=50.0, rt60=0.6,
                    drr_db=2.0, highpass_hz=40.0, eq=(1200.0, 4.0, 0.7),
                    gain_db=-4.0, dc=0.004))
PHONE = Spec(
    'synth_phone',
    Language('xd', ('ae', 'A', 'I', 'E', 'O', 'u'),
             ('t', 'd', 'k', 'g', 'sh', 'f', 's', 'm', 'n', 'r'),
             onset=(0.15, 0.85, 0.0), coda=0.6, stress='penultimate',
             syllable_s=0.21, syllables=(6, 10)),
    genders='mfmmfmfm', per_class=12, sentences=0, expressiveness=0.8,
    variability=0.8, style=_SPONTANEOUS_STYLE, lexicon=_LEXICON_PHONE,
    channel=Channel(snr_db=22.0, noise_colour=0.3, rt60=0.2, drr_db=10.0,
                    band=(300.0, 3400.0), mulaw=True, gain_db=2.0))

SPECS = {s.name: s for s in (ACTED_A, ACTED_B, NATURAL, PHONE)}
DEFAULT_SOURCE = ACTED_A.name
DEFAULT_TARGET = NATURAL.name
DEFAULT_CORPORA = tuple(SPECS)


def _rng(*keys: str) -> np.random.Generator:
  # A stable hash (unlike hash()), so every process draws the same numbers.
  return np.random.default_rng(zlib.crc32('/'.join(keys).encode()))


def build(spec: Spec) -> Corpus:
  """Lists the utterances of `spec`; audio is rendered by `render`."""
  utts = []
  for i, gender in enumerate(spec.genders):
    speaker = f'spk{i:02d}'
    for emotion in EMOTIONS:
      for j in range(spec.per_class):
        utt_id = f'{speaker}/{emotion}/{j:04d}'
        utts.append(Utterance(
            utt_id=utt_id, corpus=spec.name,
            speaker=speaker, gender=gender, language=spec.language.code,
            emotion=emotion, text=transcript(spec, utt_id)))
  return Corpus(name=spec.name, utterances=utts, root=None,
                render=functools.partial(render, spec), version=VERSION)


def _emotion_word(spec: Spec, emotion: str, rng: np.random.Generator) -> str:
  if rng.random() < TEXT_CONFUSION:
    emotion = str(rng.choice([e for e in EMOTIONS if e != emotion]))
  pool = (_CORE_WORDS if rng.random() < TEXT_CORE_SHARE
          else spec.lexicon.emotion_words)[emotion]
  return str(rng.choice(pool))


def transcript(spec: Spec, utt_id: str) -> str:
  """The transcript of utterance `utt_id` (module docstring, Transcripts);
  '' for a spec without a lexicon."""
  if spec.lexicon is None:
    return ''
  _, emotion, index = utt_id.split('/')
  rng = _rng(spec.name, 'transcript', utt_id)
  fillers = spec.lexicon.fillers
  if spec.sentences:
    # The script sentence, the same in every emotion; emotion words inserted.
    script = _rng(spec.name, 'script', str(int(index) % spec.sentences))
    words = [str(w) for w in script.choice(fillers, script.integers(4, 9))]
    for _ in range(len(words)):
      if rng.random() < TEXT_EMOTION_RATE:
        words.insert(int(rng.integers(len(words) + 1)),
                     _emotion_word(spec, emotion, rng))
  else:
    words = [_emotion_word(spec, emotion, rng)
             if rng.random() < TEXT_EMOTION_RATE else str(rng.choice(fillers))
             for _ in range(int(rng.integers(4, 11)))]
  end = '!' if rng.random() < _EXCLAIM[emotion] else (
      '?' if rng.random() < 0.15 else '.')
  return ' '.join(words).capitalize() + end


@register(ACTED_A.name, synthetic=True)
def _load_acted_a(root):
  del root
  return build(ACTED_A)


@register(ACTED_B.name, synthetic=True)
def _load_acted_b(root):
  del root
  return build(ACTED_B)


@register(NATURAL.name, synthetic=True)
def _load_natural(root):
  del root
  return build(NATURAL)


@register(PHONE.name, synthetic=True)
def _load_phone(root):
  del root
  return build(PHONE)


def _voice(spec: Spec, speaker: str, gender: str, emotion: str,
           rng: np.random.Generator) -> dict[str, float]:
  """Voice parameters of one utterance: speaker traits, emotion, variation."""
  s = _rng(spec.name, speaker)
  female = gender == 'f'
  f0 = (200.0 if female else 112.0) * np.exp(0.12 * s.standard_normal())
  vtl = (1.16 if female else 1.0) * np.exp(0.04 * s.standard_normal())
  traits = dict(
      range=3.0 * np.exp(0.2 * s.standard_normal()),
      rate=np.exp(0.08 * s.standard_normal()),
      level=1.5 * s.standard_normal(),
      tilt=2000.0 * np.exp(0.15 * s.standard_normal()),
      oq=0.6 + 0.05 * female + 0.03 * s.standard_normal(),
      breath=-28.0 + 4.0 * female + 3.0 * s.standard_normal(),
      jitter=0.008 * np.exp(0.25 * s.standard_normal()),
      shimmer=0.04 * np.exp(0.25 * s.standard_normal()))
  shift = spec.style.get(emotion, _EMOTION_SHIFT[emotion])
  u = {k: spec.expressiveness * shift.get(k, 0.0)
          + spec.variability * sd * rng.standard_normal()
       for k, sd in _EMOTION_SPREAD.items()}
  return dict(
      f0=f0 * 2 ** (u['f0'] / 12), vtl=vtl,
      range=traits['range'] * 2 ** u['range'],
      rate=traits['rate'] * 2 ** u['rate'],
      level=traits['level'] + u['level'],
      tilt=traits['tilt'] * 2 ** u['tilt'],
      oq=float(np.clip(traits['oq'] + u['oq'], 0.35, 0.9)),
      breath=traits['breath'] + u['breath'],
      jitter=traits['jitter'] * 2 ** u['perturb'],
      shimmer=traits['shimmer'] * 2 ** u['perturb'],
      space=2 ** u['space'], f1=2 ** u['f1'],
      pause=float(np.clip(0.1 + u['pause'], 0.0, 0.6)))


def _text(lang: Language, rng: np.random.Generator):
  """A sentence: words of (onset, vowel, coda, stressed) syllables."""
  n = rng.integers(lang.syllables[0], lang.syllables[1] + 1)
  words = []
  while n > 0:
    k = min(n, int(rng.integers(1, 4)))
    n -= k
    stress = {'initial': 0, 'penultimate': max(k - 2, 0), 'final': k - 1}
    words.append([(tuple(rng.choice(lang.consonants,
                                    rng.choice(3, p=lang.onset))),
                   str(rng.choice(lang.vowels)),
                   tuple(rng.choice(lang.consonants,
                                    int(rng.random() < lang.coda))),
                   i == stress[lang.stress])
                  for i in range(k)])
  return words


def _segments(words, lang: Language, v: dict, rng: np.random.Generator):
  """Control tracks (one row per 4 ms) and pitch accents of a sentence.

  Returns:
    tracks: (n, 7) array of F1-F3 targets, voicing, aspiration and frication
      gains, and the frication centre frequency.
    accents: (time s, height semitones) of the pitch accents.
  """
  rows, accents = [], []
  t = 0.0
  budget = MAX_SECONDS - 0.3  # Room for the trailing silence.

  def add(dur, formants, voicing=0.0, asp=0.0, fric=0.0, fc=0.0):
    nonlocal t
    n = max(1, int(round(dur * SAMPLE_RATE / _CTRL)))
    rows.append(np.tile([*formants, voicing, asp, fric, fc], (n, 1)))
    t += n * _CTRL / SAMPLE_RATE

  def consonant(c, amp, scale):
    k = _CONSONANTS[c]
    loc = np.asarray(k.locus) * v['vtl']
    fc = min(k.noise_hz * v['vtl'], 7000.0)
    if k.manner == 'stop':
      add(0.05 * scale, loc, voicing=0.15 * k.voiced)
      add(0.012, loc, fric=k.noise_gain * amp, fc=fc)
      if not k.voiced:
        add(0.03 * scale, loc, asp=0.3 * amp)
    elif k.manner == 'fricative':
      add(0.09 * scale, loc, voicing=0.3 * k.voiced * amp,
          fric=k.noise_gain * amp, fc=fc)
    else:
      add((0.06 if k.manner == 'nasal' else 0.05) * scale, loc,
          voicing=(0.4 if k.manner == 'nasal' else 0.7) * amp)

  centre = np.asarray(_SCHWA) * v['vtl']
  add(rng.uniform(0.12, 0.25), centre)
  cscale = v['rate'] ** -0.5  # Consonants stretch less than vowels.
  for w, word in enumerate(words):
    # A word that would overrun the duration limit ends the sentence early.
    undo = len(rows), len(accents), t
    if w and rng.random() < v['pause']:
      add(rng.uniform(0.1, 0.3) / v['rate'], centre)
    for i, (onset, vowel, coda, stressed) in enumerate(word):
      last = w == len(words) - 1 and i == len(word) - 1
      amp = (1.0 if stressed else 0.7) * np.exp(0.1 * rng.standard_normal())
      amp *= 0.7 if last else 1.0
      dur = (lang.syllable_s / v['rate'] * np.exp(0.12 * rng.standard_normal())
             * (1.3 if stressed else 1.0) * (1.35 if last else 1.0))
      start = t
      for c in onset:
        consonant(c, amp, cscale)
      f = np.asarray(_VOWELS[vowel]) * v['vtl']
      f = centre + v['space'] * (f - centre)
      f[0] *= v['f1']
      vdur = max(0.05, dur - (t - start) - 0.08 * len(coda) * cscale)
      if stressed and rng.random() < 0.85:
        accents.append((t + vdur / 2, v['range'] * rng.uniform(0.5, 1.1)))
      add(vdur, f, voicing=amp)
      for c in coda:
        consonant(c, amp, cscale)
    if w and t > budget:
      del rows[undo[0]:], accents[undo[1]:]
      t = undo[2]
      break
  add(rng.uniform(0.15, 0.3), centre)
  return np.concatenate(rows), accents


def _smooth(x: np.ndarray, taps: int) -> np.ndarray:
  """Moving average along axis 0 with edge padding."""
  pad = np.pad(x, ((taps // 2, taps - 1 - taps // 2), (0, 0)), mode='edge')
  c = np.cumsum(np.concatenate([np.zeros((1, x.shape[1])), pad]), axis=0)
  return (c[taps:] - c[:-taps]) / taps


def _f0_track(n: int, accents, v: dict, rng: np.random.Generator):
  """F0 per control frame, Hz: declination, accents, final fall, wander."""
  t = np.arange(n) * _CTRL / SAMPLE_RATE
  dur = t[-1] + 1e-3
  st = v['range'] * 0.8 * (0.5 - t / dur)
  if accents:
    c, h = np.asarray(accents).T
    st += (h * np.exp(-0.5 * ((t[:, None] - c) / 0.07) ** 2)).sum(axis=1)
  st -= v['range'] * 0.6 * np.clip((t - dur + 0.5) / 0.4, 0.0, 1.0)
  knots = np.arange(0.0, dur + 0.25, 0.2)
  st += np.interp(t, knots, 0.4 * rng.standard_normal(knots.size))
  return v['f0'] * 2 ** (st / 12)


def _glottal_source(f0: np.ndarray, v: dict, rng: np.random.Generator):
  """Differentiated Rosenberg pulses with jitter/shimmer; and glottal flow."""
  # Jitter: one random factor per glottal period (periods counted before it).
  k = (np.cumsum(f0) / SAMPLE_RATE).astype(int)
  f0 = f0 * (1 + v['jitter'] * rng.standard_normal(k[-1] + 1))[k]
  phase = np.cumsum(f0) / SAMPLE_RATE
  k = phase.astype(int)
  p = phase - k
  # Opening and closing phases, as fractions of the period. The closing phase
  # shortens faster than the open phase as the voice tenses (small open
  # quotient), which strengthens the high harmonics.
  tn = v['oq'] ** 2 / 2
  tp = v['oq'] - tn
  flow = np.where(p < tp, 0.5 - 0.5 * np.cos(np.pi * p / tp),
                  np.where(p < v['oq'], np.cos(0.5 * np.pi * (p - tp) / tn), 0))
  # Derivative with respect to phase rather than time, so that the source
  # power does not depend on F0 and vocal effort alone sets the level.
  dflow = np.diff(flow, prepend=0.0) * SAMPLE_RATE / f0
  dflow *= (1 + v['shimmer'] * rng.standard_normal(k[-1] + 1))[k]
  # The return phase of the LF model acts as a first-order low-pass: its corner
  # sets the spectral tilt (high for tense, low for lax voices).
  a = np.exp(-2 * np.pi * v['tilt'] / SAMPLE_RATE)
  return signal.lfilter([1 - a], [1, -a], dflow), flow


def _resonators(freqs: np.ndarray, bws: np.ndarray) -> np.ndarray:
  """Response of cascaded unity-DC-gain two-pole resonators, one per frame.

  Args:
    freqs: (frames, k) centre frequencies, Hz.
    bws: (frames, k) bandwidths, Hz.

  Returns:
    (frames, _NFFT // 2 + 1) complex response on the FFT grid.
  """
  r = np.exp(-np.pi * bws / SAMPLE_RATE)
  b, c = 2 * r * np.cos(2 * np.pi * freqs / SAMPLE_RATE), -r ** 2
  # Multiplying the sections' denominators 1 - b z^-1 - c z^-2 into one
  # polynomial lets a single short FFT per frame evaluate the whole cascade.
  a = np.ones((len(freqs), 1))
  for k in range(freqs.shape[1]):
    a = (np.pad(a, ((0, 0), (0, 2)))
         - b[:, k, None] * np.pad(a, ((0, 0), (1, 1)))
         - c[:, k, None] * np.pad(a, ((0, 0), (2, 0))))
  return (1 - b - c).prod(axis=1)[:, None] / fft.rfft(a, _NFFT)


def _vocal_tract(x: np.ndarray, tracks: np.ndarray, v: dict) -> np.ndarray:
  """Filters the excitation with the time-varying formant cascade.

  Weighted overlap-add: each Hann-windowed frame of the excitation is convolved
  (zero-padded FFT, so without wrap-around) with the filter of its centre time;
  the windows sum to one, so this is a time-varying linear filter that
  crossfades from one frame's filter to the next.
  """
  n = x.size
  frames = n // _HOP + 2  # Every sample lies under two windows.
  tr = tracks[np.minimum(np.arange(frames) * (_HOP // _CTRL), len(tracks) - 1)]
  formants = np.concatenate(
      [tr[:, :3], np.tile(np.minimum(_HIGHER_FORMANTS * v['vtl'], 7400.0),
                          (frames, 1))], axis=1)
  bws = _BANDWIDTHS * np.ones((frames, 1))
  bws[:, 0] += 120 * (v['oq'] - 0.5)  # Glottal losses widen B1 when open.
  win = signal.get_window('hann', _WIN).astype(np.float32)
  xp = np.pad(x.astype(np.float32), (_WIN // 2, _WIN))
  seg = np.lib.stride_tricks.sliding_window_view(xp, _WIN)[::_HOP][:frames]
  y = fft.irfft(fft.rfft(seg * win, _NFFT)
                * _resonators(formants, bws).astype(np.complex64), _NFFT)
  blocks = np.zeros((frames + _NFFT // _HOP, _HOP), np.float32)
  for j in range(_NFFT // _HOP):
    blocks[j:j + frames] += y[:, j * _HOP:(j + 1) * _HOP]
  return blocks.reshape(-1)[_WIN // 2:_WIN // 2 + n]


def _frication(gain: np.ndarray, fc: np.ndarray, rng: np.random.Generator):
  """Noise of fricatives and stop bursts, band-pass around each centre fc.

  Args:
    gain: per control frame, the noise amplitude.
    fc: per control frame, the noise centre frequency (0 where none).
    rng: noise source.

  Returns:
    The frication signal at the sample rate.
  """
  ring = 4 * _CTRL  # The resonance rings a little past its segment.
  out = np.zeros(len(gain) * _CTRL + ring)
  edges = np.flatnonzero(np.diff(fc, prepend=0.0, append=0.0))
  for a, b in zip(edges[:-1], edges[1:]):
    if fc[a] == 0:
      continue
    # One resonance of bandwidth fc / 2 and unity gain at its centre, excited
    # by white noise with 30% cosine ramps.
    w = 2 * np.pi * fc[a] / SAMPLE_RATE
    r = np.exp(-np.pi * fc[a] / 2 / SAMPLE_RATE)
    den = [1.0, -2 * r * np.cos(w), r ** 2]
    g = np.abs(np.polyval(den[::-1], np.exp(-1j * w)))
    m = (b - a) * _CTRL
    e = (gain[a] * _SOURCE_RMS * signal.windows.tukey(m, 0.3)
         * rng.standard_normal(m))
    out[a * _CTRL:b * _CTRL + ring] += signal.lfilter(
        [g], den, np.pad(e, (0, ring)))
  return out[:len(gain) * _CTRL]


@functools.lru_cache(maxsize=None)
def _sos_highpass(hz: float) -> np.ndarray:
  return signal.butter(2, hz, 'highpass', fs=SAMPLE_RATE, output='sos')


@functools.lru_cache(maxsize=None)
def _sos_band(lo: float, hi: float) -> np.ndarray:
  # Order 6 (36 dB/octave): a telephone line's filter is steep.
  return signal.butter(6, (lo, hi), 'bandpass', fs=SAMPLE_RATE, output='sos')


@functools.lru_cache(maxsize=None)
def _sos_peak(hz: float, db: float, q: float) -> np.ndarray:
  """RBJ-cookbook peaking equaliser."""
  a = 10 ** (db / 40)
  w = 2 * np.pi * hz / SAMPLE_RATE
  alpha = np.sin(w) / (2 * q)
  b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
  den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
  return np.concatenate([b, den])[None] / den[0]


def _channel(x: np.ndarray, ch: Channel, rng: np.random.Generator):
  """Room, noise, microphone, codec, line and converter."""
  if ch.rt60 > 0:
    t = np.arange(int(min(ch.rt60, 0.8) * SAMPLE_RATE)) / SAMPLE_RATE
    tail = rng.standard_normal(t.size) * np.exp(-6.91 * t / ch.rt60)
    tail[:int(0.004 * SAMPLE_RATE)] = 0.0  # Gap before the first reflections.
    tail = signal.lfilter([0.6], [1, -0.4], tail)  # Walls absorb the highs.
    tail *= 10 ** (-ch.drr_db / 20) / np.sqrt(np.sum(tail ** 2))
    tail[0] = 1.0
    x = signal.fftconvolve(x, tail)[:x.size]
  noise = signal.lfilter([1.0], [1, -ch.noise_colour],
                         rng.standard_normal(x.size))
  if ch.hum_hz:
    # Mains hum: five harmonics falling as 1/h; one period, tiled.
    period = np.arange(round(SAMPLE_RATE / ch.hum_hz)) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * ch.hum_hz * h * period) / h
              for h in range(1, 6))
    noise = noise / np.std(noise) + np.resize(
        np.roll(hum, rng.integers(hum.size)), x.size)
  snr = ch.snr_db + 3.0 * rng.standard_normal()
  x = x + noise * np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2)
                          * 10 ** (-snr / 10))
  x = signal.sosfilt(_sos_highpass(ch.highpass_hz), x)
  x = signal.sosfilt(_sos_peak(*ch.eq), x) * 10 ** (ch.gain_db / 20)
  if ch.mulaw:
    mu = 255.0
    y = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1)) / np.log1p(mu)
    y = np.round(y * 127) / 127
    x = np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu
  if ch.band is not None:
    # After the codec, as the line and the decoder's reconstruction filter
    # also remove its quantisation noise outside the band.
    x = signal.sosfilt(_sos_band(*ch.band), x)
  return np.clip(x + ch.dc, -1.0, 1.0)


def render(spec: Spec, utt: Utterance) -> np.ndarray:
  """The 16 kHz mono float32 waveform of `utt`, a function of its id alone."""
  speaker, emotion, index = utt.utt_id.split('/')
  rng = _rng(spec.name, utt.utt_id)
  v = _voice(spec, speaker, spec.genders[int(speaker[3:])], emotion, rng)
  if spec.sentences:
    # Acted corpora: every speaker reads the same sentences in every emotion.
    words = _text(spec.language,
                  _rng(spec.name, 'text', str(int(index) % spec.sentences)))
  else:
    words = _text(spec.language, rng)
  tracks, accents = _segments(words, spec.language, v, rng)
  frication = _frication(tracks[:, 5], tracks[:, 6], rng)
  # Coarticulation: formants glide over ~40 ms, gains ramp over ~12 ms.
  tracks = np.concatenate(
      [_smooth(tracks[:, :3], 11), _smooth(tracks[:, 3:5], 3)], axis=1)
  n = len(tracks) * _CTRL

  def per_sample(x):
    return np.interp(np.arange(n), (np.arange(len(x)) + 0.5) * _CTRL, x)

  f0 = per_sample(_f0_track(len(tracks), accents, v, rng))
  dflow, flow = _glottal_source(f0, v, rng)
  white = rng.standard_normal((2, n))
  # Aspiration: turbulence at the glottis, pulsed by the glottal flow.
  breath = 10 ** (v['breath'] / 20) * _SOURCE_RMS * (0.3 + flow) * white[0]
  voiced = (per_sample(tracks[:, 3]) * (dflow + breath)
            + per_sample(tracks[:, 4]) * _SOURCE_RMS * white[1])
  x = _vocal_tract(voiced, tracks, v) + frication
  x *= _LEVEL * 10 ** (v['level'] / 20)
  return _channel(x, spec.channel, rng).astype(np.float32)
