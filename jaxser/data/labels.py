"""Label mappings: from an utterance's category or ratings to a task's class.

From categories (utterances without a rating of the task's dimension):

| task     | classes                     | categories per class                         |
|----------|-----------------------------|----------------------------------------------|
| emotion4 | neutral, happy, sad, angry  | The four; excited counts as happy (IEMOCAP   |
|          |                             | convention). Ratings are never used.         |
| arousal  | low, high                   | Emo-DNA Table 1. low: boredom, calm,         |
|          |                             | neutral, sad. high: angry, disgust, fear,    |
|          |                             | happy, excited, surprise, pleasant_surprise. |
| valence  | negative, positive          | Emo-DNA Table 1. negative: angry, boredom,   |
|          |                             | disgust, fear, sad. positive: calm, happy,   |
|          |                             | excited, neutral, surprise,                  |
|          |                             | pleasant_surprise.                           |
| arousal3 | low, mid, high              | Schuller et al. 2010, neutral as the middle  |
|          |                             | class. low: boredom, calm, disgust, sad.     |
|          |                             | mid: neutral. high: angry, excited, fear,    |
|          |                             | happy, surprise, pleasant_surprise.          |
| valence3 | negative, neutral, positive | Schuller et al. 2010, neutral as the middle  |
|          |                             | class. negative: angry, boredom, disgust,    |
|          |                             | fear, sad. neutral: neutral. positive: calm, |
|          |                             | excited, happy, surprise, pleasant_surprise. |

Frustrated and other map to no class of any task.

From ratings (`Utterance.dims`, on the scale named by `Corpus.dim_scale`):

| scale       | range   | arousal, valence (MMD-SER) | arousal3, valence3 (CAEmoCyGAN)       |
|-------------|---------|----------------------------|---------------------------------------|
| iemocap     | 1-5     | high / positive if > 2.5   | [1, 2], (2, 4), [4, 5]                |
| msp_improv  | 1-5     | > 2.5 (as IEMOCAP)         | [1, 2], (2, 4), [4, 5] (as IEMOCAP)   |
| vam         | [-1, 1] | > 0.0 (as RECOLA)          | [-1, -0.33], (-0.33, 0.33), [0.33, 1] |
| msp_podcast | 1-7     | > 4.0 (scale midpoint)     | [1, 3], (3, 5), [5, 7]                |

Ratings take precedence: for arousal, valence, arousal3 and valence3, an
utterance with a rating of the task's dimension in a corpus that declares its
scale is classed by the rating, whatever its category (the papers that use
IEMOCAP, MSP-IMPROV and MSP-Podcast for arousal / valence classify ratings);
only utterances without one fall back to their category.

Where the papers leave a choice:
- CAEmoCyGAN writes MSP-Podcast's classes as [1, 3], [3, 5], [5, 7], which
  overlap at 3 and 5; as for its IEMOCAP and VAM boundaries, the outer classes
  are closed and the middle one open, so 3 is low and 5 is high. It gives no
  boundaries for MSP-IMPROV, rated on IEMOCAP's 1-5 scale, which uses
  IEMOCAP's.
- MMD-SER gives thresholds for IEMOCAP (2.5 on 1-5) and RECOLA (0.0 on
  [-1, 1]) only: MSP-IMPROV uses IEMOCAP's, VAM RECOLA's (same scales) and
  MSP-Podcast the midpoint of its 1-7 scale. A rating equal to the threshold
  is low / negative.
- Schuller et al. 2010 (Table 2) class disgust as low arousal, unlike Emo-DNA's
  binary table: arousal3 follows Schuller, arousal follows Emo-DNA. Calm,
  excited and pleasant_surprise, which Schuller's corpora lack, go with their
  nearest category: calm is low arousal and positive valence, excited goes
  with happy, pleasant_surprise with surprise.

Utterances a task does not cover map to None and are left out (and counted).
"""

from __future__ import annotations

from jaxser.data.corpus import Utterance

TASK_CLASSES: dict[str, tuple[str, ...]] = {
    'emotion4': ('neutral', 'happy', 'sad', 'angry'),
    'arousal': ('low', 'high'),
    'valence': ('negative', 'positive'),
    'arousal3': ('low', 'mid', 'high'),
    'valence3': ('negative', 'neutral', 'positive'),
}

# Category -> class name, per task. 'excited' is merged into happy as is usual
# for IEMOCAP; 'pleasant_surprise' (TESS) is a surprise.
_CATEGORY_MAPS: dict[str, dict[str, str]] = {
    'emotion4': {'neutral': 'neutral', 'happy': 'happy', 'excited': 'happy',
                 'sad': 'sad', 'angry': 'angry'},
    'arousal': {'angry': 'high', 'disgust': 'high', 'fear': 'high',
                'happy': 'high', 'excited': 'high', 'surprise': 'high',
                'pleasant_surprise': 'high',
                'boredom': 'low', 'calm': 'low', 'neutral': 'low', 'sad': 'low'},
    'valence': {'angry': 'negative', 'boredom': 'negative',
                'disgust': 'negative', 'fear': 'negative', 'sad': 'negative',
                'calm': 'positive', 'happy': 'positive', 'excited': 'positive',
                'neutral': 'positive', 'surprise': 'positive',
                'pleasant_surprise': 'positive'},
    'arousal3': {'boredom': 'low', 'calm': 'low', 'disgust': 'low',
                 'sad': 'low', 'neutral': 'mid', 'angry': 'high',
                 'excited': 'high', 'fear': 'high', 'happy': 'high',
                 'surprise': 'high', 'pleasant_surprise': 'high'},
    'valence3': {'angry': 'negative', 'boredom': 'negative',
                 'disgust': 'negative', 'fear': 'negative', 'sad': 'negative',
                 'neutral': 'neutral', 'calm': 'positive',
                 'excited': 'positive', 'happy': 'positive',
                 'surprise': 'positive', 'pleasant_surprise': 'positive'},
}

# The rating each dimensional task reads.
_DIMENSION = {'arousal': 'arousal', 'valence': 'valence',
              'arousal3': 'arousal', 'valence3': 'valence'}

# Per rating scale: the binary threshold (MMD-SER) and the 3-class boundaries
# (lo, hi) with low = [min, lo], mid = (lo, hi), high = [hi, max] (CAEmoCyGAN).
SCALES: dict[str, tuple[float, tuple[float, float]]] = {
    'iemocap': (2.5, (2.0, 4.0)),
    'msp_improv': (2.5, (2.0, 4.0)),
    'vam': (0.0, (-0.33, 0.33)),
    'msp_podcast': (4.0, (3.0, 5.0)),
}


def tasks() -> list[str]:
  return sorted(TASK_CLASSES)


def check_task(task: str) -> None:
  if task not in TASK_CLASSES:
    raise ValueError(
        f'config.data.task: unknown task {task!r}; known: {", ".join(tasks())}')


def _from_rating(task: str, value: float, dim_scale: str) -> int:
  if dim_scale not in SCALES:
    raise ValueError(f'unknown rating scale {dim_scale!r}; known: '
                     f'{", ".join(sorted(SCALES))}')
  threshold, (lo, hi) = SCALES[dim_scale]
  if len(TASK_CLASSES[task]) == 2:
    return int(value > threshold)
  return 0 if value <= lo else 2 if value >= hi else 1


def label(task: str, utt: Utterance, dim_scale: str | None = None) -> int | None:
  """The class index of `utt` for `task`, or None if the task does not cover it.

  Args:
    task: a key of TASK_CLASSES.
    utt: the utterance.
    dim_scale: the scale of `utt.dims` (its corpus's `dim_scale`), a key of
      SCALES; None when the corpus has no ratings.
  """
  check_task(task)
  dim = _DIMENSION.get(task)
  if dim_scale is not None and dim in utt.dims:
    return _from_rating(task, utt.dims[dim], dim_scale)
  name = _CATEGORY_MAPS[task].get(utt.emotion)
  if name is None:
    return None
  return TASK_CLASSES[task].index(name)
