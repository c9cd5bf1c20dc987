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

With `label_from` 'ratings' (the default), ratings take precedence: for
arousal, valence, arousal3 and valence3, an utterance with a rating of the
task's dimension in a corpus that declares its scale is classed by the
rating, whatever its category (MMD-SER and CAEmoCyGAN classify the ratings
of IEMOCAP, VAM and MSP-Podcast; DIFL classifies IEMOCAP's and MSP-IMPROV's
categories, `label_from` 'categories', below); only utterances without one
fall back to their category.

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

Which of the two an utterance is classed by, and which category table the
binary tasks use, are the data config's `label_from` and `category_map`
(`options`):

| label_from | an utterance with a rating of the task's dimension ...      |
|------------|-------------------------------------------------------------|
| ratings    | is classed by the rating (above; the default: MMD-SER,      |
|            | CAEmoCyGAN)                                                 |
| categories | is classed by its category like any other; ratings are      |
|            | never read (Emo-DNA, whose corpora have none; DIFL Table 1) |

| category_map | arousal / valence from categories                          |
|--------------|------------------------------------------------------------|
| emodna       | Emo-DNA Table 1 (above): disgust is high arousal           |
| difl         | DIFL Table 1, after Schuller et al. 2010: disgust is low   |
|              | arousal (SAVEE and Emo-DB rows); valence as Emo-DNA's.     |
|              | IEMOCAP counts only neutral, happy + excited, sad, angry   |
|              | (its 5531 utterances) and MSP-IMPROV neutral, happy, sad,  |
|              | angry: their other categories (frustrated, surprise, fear, |
|              | disgust, ...) are left out for every task.                 |

DIFL's Table 1, checked against the corpora's category counts: Emo-DB
(low B,D,N,SA 268 / high A,F,H 267; negative A,B,D,F,SA 385 / positive H,N
150) and SAVEE (240 / 240 both) match exactly; IEMOCAP's arousal counts
match its four categories (N+SA 1708+1084 = 2792, A+H 1103+1636 = 2739) but
its valence counts are printed swapped (A,SA is 2187, H,N 3344, not 3344 /
2187). MSP-IMPROV's counts (8438 = every utterance; low 3660 / high 4778) fit
no category table of its consensus labels (neutral 3477, happy 2644, sad 885,
angry 792: 7798 utterances, N+SA = 4362): jaxser classes the consensus
categories, so the 640 or so utterances without one (O, X) are left out.

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

# DIFL Table 1 (Schuller et al. 2010's binary mapping): Emo-DNA's, but
# disgust is low arousal. Categories DIFL's corpora lack go as in
# Emo-DNA's table (calm low / positive, excited and pleasant_surprise high /
# positive).
_DIFL_MAPS: dict[str, dict[str, str]] = {
    'arousal': dict(_CATEGORY_MAPS['arousal'], disgust='low'),
    'valence': dict(_CATEGORY_MAPS['valence']),
}
# The categories DIFL counts per corpus (Table 1's utterance counts); other
# corpora keep every category the task's table covers.
DIFL_CORPUS_CATEGORIES: dict[str, frozenset[str]] = {
    'iemocap': frozenset({'neutral', 'happy', 'excited', 'sad', 'angry'}),
    'msp_improv': frozenset({'neutral', 'happy', 'sad', 'angry'}),
}
LABEL_FROM = ('ratings', 'categories')
CATEGORY_MAPS = ('emodna', 'difl')

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


def options(data_cfg) -> dict[str, str]:
  """The `label` keyword arguments of a data config (`label_from`,
  `category_map`; 'ratings' and 'emodna' where the config lacks them).

  Raises:
    ValueError: an unknown value, naming the field.
  """
  out = {'label_from': str(data_cfg.get('label_from', 'ratings')),
         'category_map': str(data_cfg.get('category_map', 'emodna'))}
  for field, known in (('label_from', LABEL_FROM),
                       ('category_map', CATEGORY_MAPS)):
    if out[field] not in known:
      raise ValueError(f'config.data.{field}: unknown value '
                       f'{out[field]!r}; known: {", ".join(known)}')
  return out


def label(task: str, utt: Utterance, dim_scale: str | None = None, *,
          label_from: str = 'ratings',
          category_map: str = 'emodna') -> int | None:
  """The class index of `utt` for `task`, or None if the task does not cover it.

  Args:
    task: a key of TASK_CLASSES.
    utt: the utterance.
    dim_scale: the scale of `utt.dims` (its corpus's `dim_scale`), a key of
      SCALES; None when the corpus has no ratings.
    label_from: 'ratings' (a rating of the task's dimension first) or
      'categories' (the category only), see the module docstring.
    category_map: 'emodna' or 'difl', the category table of arousal and
      valence (and, for 'difl', DIFL's per-corpus category subsets).
  """
  check_task(task)
  if label_from not in LABEL_FROM:
    raise ValueError(f'label_from: unknown value {label_from!r}; known: '
                     f'{", ".join(LABEL_FROM)}')
  if category_map not in CATEGORY_MAPS:
    raise ValueError(f'category_map: unknown value {category_map!r}; known: '
                     f'{", ".join(CATEGORY_MAPS)}')
  dim = _DIMENSION.get(task)
  if label_from == 'ratings' and dim_scale is not None and dim in utt.dims:
    return _from_rating(task, utt.dims[dim], dim_scale)
  table = _CATEGORY_MAPS[task]
  if category_map == 'difl':
    counted = DIFL_CORPUS_CATEGORIES.get(utt.corpus)
    if counted is not None and utt.emotion not in counted:
      return None
    table = _DIFL_MAPS.get(task, table)
  name = table.get(utt.emotion)
  if name is None:
    return None
  return TASK_CLASSES[task].index(name)
