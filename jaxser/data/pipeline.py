"""From a data config to the source/target streams and the evaluation set.

`load_data(config.data, seed)` lists the corpora, builds or opens their feature
caches, labels every utterance for the task, applies the protocol and returns
a `Data`: the labelled source training set, the unlabelled target training
set and the labelled target evaluation set. `train_batches` turns the two
training sets into a deterministic stream of globally sharded device batches,
`batch_size` source and `batch_size` target examples per step, that can start
at any step (so a resumed run sees the same batches as an uninterrupted one).

Protocols:
  transductive: the unlabelled target training set is the evaluation set.
  split: the target is split (speaker-independently when speakers are known)
    into an unlabelled training part and a held-out evaluation part.
  within: supervised training and evaluation on the two parts of that split,
    source corpora unused: the upper bound the papers report.
  multi_corpus: DIFL's multi-corpus evaluation. Every corpus named in source
    and target is split speaker-independently (`target_train_fraction` is the
    train share of each, 0.8 in DIFL); the labelled training set is all the
    training parts (each corpus its own domain id), the unlabelled stream is
    the same parts with their labels hidden, and the evaluation set is all
    the test parts (results.json adds `per_corpus` metrics).
Target labels reach the model only under `within` and `multi_corpus` (where
every corpus is a training corpus).

Source validation: with `source_val_fraction` > 0 (not under multi_corpus),
that share of every source corpus, drawn at random within each class
(seeded by `split_seed`), is held out of the labelled training set as
`Data.source_val`: the multitask paper's S_va, the set validation-based early
stopping and reduce-on-plateau read (`config.train.validation`). It never
holds target labels.

Every example also carries speaker metadata that is not an emotion label and
so may be used on the target too (DIFL's adversarial heads do): 'gender'
(0 = f, 1 = m, -1 unknown), 'language' (index into `Data.languages`, the
sorted languages of all corpora of the run; -1 unknown) and 'speaker'
(index into `Data.speakers`, `corpus.speaker_vocabulary` of the run's
corpora; -1 unknown).
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import numpy as np

from jaxser import io as io_lib
from jaxser.data import cache as cache_lib
from jaxser.data import corpus as corpus_lib
from jaxser.data import labels as labels_lib
from jaxser.data import normalize
from jaxser.data.features import FeatureConfig

PROTOCOLS = ('transductive', 'split', 'within', 'multi_corpus')
GENDERS = ('f', 'm')  # Index of each gender code in the 'gender' key.


@dataclasses.dataclass
class Part:
  """The selected utterances of one cached corpus.

  Attributes:
    cached: the cached corpus.
    indices: selected indices into its listing.
    labels: their class indices (-1 where hidden).
    domain: domain id (sources 0.., target after them).
    norm: normalisation of the corpus's features: {'rows': (listing,) row of
      each utterance, 'shift', 'scale': (K, dims)} (see `normalize`), or
      None for none.
    languages: the run's language vocabulary ('language' indexes it).
    speakers: the run's speaker vocabulary ('speaker' indexes it).
  """
  cached: cache_lib.CachedCorpus
  indices: np.ndarray
  labels: np.ndarray
  domain: int
  norm: dict | None = None
  languages: tuple[str, ...] = ()
  speakers: tuple[str, ...] = ()


@dataclasses.dataclass
class Split:
  """A selection of utterances of one or more cached corpora."""
  parts: list[Part]

  @property
  def size(self) -> int:
    return int(sum(len(p.indices) for p in self.parts))

  @property
  def name(self) -> str:
    return '+'.join(p.cached.corpus.name for p in self.parts)

  def class_counts(self, num_classes: int) -> list[int]:
    y = np.concatenate([p.labels for p in self.parts])
    return np.bincount(y[y >= 0], minlength=num_classes).tolist()

  def utterances(self) -> list[corpus_lib.Utterance]:
    return [p.cached.corpus.utterances[i] for p in self.parts
            for i in p.indices]

  def dataset(self, with_index: bool = False):
    """A tf.data.Dataset of {'features', 'length', 'label', 'domain',
    'gender', 'language'}, and 'index' (into its corpus's listing) when
    `with_index`: the cache's order is not the listing's."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    out = None
    for part in self.parts:
      n = len(part.cached.corpus.utterances)
      keep = np.zeros(n, bool)
      keep[part.indices] = True
      label_table = np.full(n, -1, np.int32)
      label_table[part.indices] = part.labels
      utts = part.cached.corpus.utterances
      gender_table = np.array([GENDERS.index(u.gender) if u.gender in GENDERS
                               else -1 for u in utts], np.int32)
      language_table = np.array(
          [part.languages.index(u.language) if u.language in part.languages
           else -1 for u in utts], np.int32)
      speaker_of = {s: i for i, s in enumerate(part.speakers)}
      speaker_table = np.array(
          [speaker_of.get(corpus_lib.speaker_key(u), -1) for u in utts],
          np.int32)
      ds = part.cached.builder.as_dataset(split='train', shuffle_files=False)
      keep_t = tf.constant(keep)
      ds = ds.filter(lambda ex, k=keep_t: tf.gather(k, ex['index']))
      ds = ds.map(functools.partial(
          _indexed_example if with_index else _example,
          labels=tf.constant(label_table), domain=part.domain,
          genders=tf.constant(gender_table),
          languages=tf.constant(language_table),
          speakers=tf.constant(speaker_table),
          norm=None if part.norm is None else {
              k: tf.constant(v, tf.int32 if k == 'rows' else tf.float32)
              for k, v in part.norm.items()}))
      out = ds if out is None else out.concatenate(ds)
    return out

  def load(self, with_index: bool = False) -> dict[str, np.ndarray]:
    """The whole split as numpy arrays (with 'index' into each part's
    listing when `with_index`; 'domain' tells the parts apart)."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    rows = list(tfds.as_numpy(self.dataset(with_index=with_index)))
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


  def utterances_of(self, arrays: dict[str, np.ndarray]
                    ) -> list[corpus_lib.Utterance]:
    """The utterance of every row of `arrays` (loaded with 'index')."""
    by_domain = {p.domain: p.cached.corpus.utterances for p in self.parts}
    return [by_domain[int(d)][int(i)]
            for d, i in zip(arrays['domain'], arrays['index'])]


def _indexed_example(ex, **kwargs):
  """`_example` plus the utterance's 'index' into its corpus's listing."""
  return dict(_example(ex, **kwargs), index=ex['index'])


def _example(ex, *, labels, domain, norm, genders=None, languages=None,
             speakers=None):
  """A cached example -> a training example, normalised and labelled."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = ex['features']
  if norm is not None:
    r = tf.gather(norm['rows'], ex['index'])
    x = (x - norm['shift'][r]) * norm['scale'][r]
    if len(x.shape) >= 2:  # Padding along the first axis stays zero.
      valid = tf.sequence_mask(ex['length'], x.shape[0], tf.float32)
      x *= tf.reshape(valid, [-1] + [1] * (len(x.shape) - 1))
  return {'features': x, 'length': ex['length'],
          'label': tf.gather(labels, ex['index']),
          'domain': tf.constant(domain, tf.int32),
          'gender': (tf.constant(-1, tf.int32) if genders is None
                     else tf.gather(genders, ex['index'])),
          'language': (tf.constant(-1, tf.int32) if languages is None
                       else tf.gather(languages, ex['index'])),
          'speaker': (tf.constant(-1, tf.int32) if speakers is None
                      else tf.gather(speakers, ex['index']))}


@dataclasses.dataclass
class Data:
  classes: tuple[str, ...]
  source_train: Split
  target_train: Split
  target_eval: Split
  left_out: dict[str, int]  # corpus -> utterances the task does not cover.
  skipped: dict[str, int]  # corpus -> unusable files.
  languages: tuple[str, ...] = ()  # The 'language' vocabulary.
  source_val: Split | None = None  # Held-out labelled source part.
  speakers: tuple[str, ...] = ()  # The 'speaker' vocabulary.
  # False for a target corpus without any label (a TTS corpus, a user's
  # recordings): it is the adaptation target; there are no target metrics.
  target_labelled: bool = True

  def summary(self) -> str:
    k = len(self.classes)
    val = ('' if self.source_val is None else
           f'source validation: {self.source_val.size} '
           f'{self.source_val.class_counts(k)} | ')
    return (f'source {self.source_train.name}: {self.source_train.size} '
            f'{self.source_train.class_counts(k)} | {val}target train '
            f'{self.target_train.name}: {self.target_train.size} | ' + (
                f'target eval: {self.target_eval.size} '
                f'{self.target_eval.class_counts(k)} | '
                if self.target_labelled else 'target unlabelled | ') +
            f'classes {list(self.classes)} | left out (task) {self.left_out} '
            f'| skipped (bad files) {self.skipped}')


def source_names(data_cfg) -> list[str]:
  names = [s.strip() for s in str(data_cfg.source).split(',') if s.strip()]
  if not names:
    raise ValueError('config.data.source: empty; give one corpus name or '
                     'several separated by commas')
  return names


def corpus_names(data_cfg) -> list[str]:
  """The run's corpora in the order of their 'domain' ids.

  The sources then the target (under `within` domain 0 holds the target's
  labelled part); under `multi_corpus` every corpus once.
  """
  names = source_names(data_cfg) + [data_cfg.target]
  if data_cfg.protocol == 'multi_corpus':
    names = list(dict.fromkeys(names))
  return names


def validate(data_cfg, batch_size: int) -> None:
  """Checks the data config; errors name the offending field."""
  known = corpus_lib.available()
  for name in source_names(data_cfg):
    if name not in known:
      raise ValueError(f'config.data.source: unknown corpus {name!r}; '
                       f'known: {", ".join(known)}')
  if data_cfg.target not in known:
    raise ValueError(f'config.data.target: unknown corpus '
                     f'{data_cfg.target!r}; known: {", ".join(known)}')
  labels_lib.check_task(data_cfg.task)
  labels_lib.options(data_cfg)  # label_from, category_map.
  if data_cfg.protocol not in PROTOCOLS:
    raise ValueError(f'config.data.protocol: unknown protocol '
                     f'{data_cfg.protocol!r}; known: {", ".join(PROTOCOLS)}')
  val = data_cfg.get('source_val_fraction', 0.0)
  if not 0.0 <= val < 1.0:
    raise ValueError('config.data.source_val_fraction: must be in [0, 1), '
                     f'got {val}')
  if val and data_cfg.protocol == 'multi_corpus':
    raise ValueError('config.data.source_val_fraction: not available under '
                     "protocol 'multi_corpus' (every corpus's training part "
                     'is also its unlabelled stream); use 0')
  if not 0.0 < data_cfg.target_train_fraction < 1.0:
    raise ValueError('config.data.target_train_fraction: must be in (0, 1), '
                     f'got {data_cfg.target_train_fraction}')
  if data_cfg.get('normalize', 'none') not in normalize.METHODS:
    raise ValueError(f'config.data.normalize: unknown method '
                     f'{data_cfg.normalize!r}; known: '
                     f'{", ".join(normalize.METHODS)}')
  FeatureConfig.from_data_config(data_cfg)
  n = jax.device_count()
  if batch_size <= 0 or batch_size % n:
    raise ValueError(f'config.train.batch_size: {batch_size} is not a positive '
                     f'multiple of the number of devices ({n})')


def _speaker_split(utts: list[corpus_lib.Utterance], idx: np.ndarray,
                   train_fraction: float, seed: int):
  """Splits `idx` into (train, test), by speaker when speakers are known."""
  rng = np.random.default_rng(seed)
  speakers = sorted({utts[i].speaker for i in idx})
  if len(speakers) >= 2 and '' not in speakers:
    order = rng.permutation(len(speakers))
    per_speaker = {s: 0 for s in speakers}
    for i in idx:
      per_speaker[utts[i].speaker] += 1
    test_speakers, n_test = set(), 0
    for j in order:
      # Keep at least one speaker for training.
      if (n_test >= (1 - train_fraction) * len(idx)
          or len(test_speakers) == len(speakers) - 1):
        break
      test_speakers.add(speakers[j])
      n_test += per_speaker[speakers[j]]
    is_test = np.array([utts[i].speaker in test_speakers for i in idx])
  else:
    is_test = np.zeros(len(idx), bool)
    is_test[rng.permutation(len(idx))[:int(round((1 - train_fraction)
                                                 * len(idx)))]] = True
  return idx[~is_test], idx[is_test]


def cache_dir(data_cfg) -> str:
  return os.path.expanduser(
      data_cfg.get('cache_dir') or os.environ.get('JAXSER_CACHE')
      or '~/.cache/jaxser')


def open_corpus(name: str, data_cfg) -> cache_lib.CachedCorpus:
  """Lists corpus `name` and builds or opens its feature cache."""
  corpus = corpus_lib.load(name, corpus_lib.corpus_root(name, data_cfg))
  workers = data_cfg.get('workers', 0)
  if workers < 0:
    workers = os.cpu_count() or 1
  return cache_lib.build(corpus, FeatureConfig.from_data_config(data_cfg),
                         cache_dir(data_cfg), workers=workers)


def normalization(cached: cache_lib.CachedCorpus, data_cfg) -> dict | None:
  """The corpus's `config.data.normalize` map, from all its usable utterances.

  No labels are used, so normalising the target corpus with its own
  statistics is allowed under every protocol (as CAEmoCyGAN does). The
  statistics are saved beside the cache and computed once.
  """
  method = data_cfg.get('normalize', 'none')
  if method == 'none':
    return None
  path = f'{cached.meta_path[:-len(".json")]}.norm_{method}.npz'
  speakers = np.array([u.speaker for u in cached.corpus.utterances])
  if not os.path.exists(path):
    whole = Split([Part(cached, cached.usable,
                        np.full(len(cached.usable), -1, np.int32), 0)]).load()
    stats = normalize.compute_stats(
        whole['features'], whole['length'],
        speakers[cached.usable], method)
    io_lib.write_npz(path, **stats)
  with np.load(path) as z:
    stats = dict(z)
  return {'rows': normalize.row_index(stats, speakers),
          'shift': stats['shift'], 'scale': stats['scale']}


def load_data(data_cfg) -> Data:
  """Builds the source and target sets of `data_cfg` (see module docstring)."""
  task = data_cfg.task
  classes = labels_lib.TASK_CLASSES[task]
  left_out, skipped = {}, {}

  label_options = labels_lib.options(data_cfg)

  def labelled(cached):
    c = cached.corpus
    lab = np.array([labels_lib.label(task, c.utterances[i], c.dim_scale,
                                     **label_options)
                    for i in cached.usable], object)
    ok = np.array([l is not None for l in lab], bool)
    left_out[c.name] = int((~ok).sum())
    skipped[c.name] = len(cached.skipped)
    return cached.usable[ok], lab[ok].astype(np.int32)

  if data_cfg.protocol == 'multi_corpus':
    data = _with_languages(Data(
        classes, *_multi_corpus_splits(data_cfg, labelled), left_out,
        skipped))
    if jax.process_index() == 0:
      print(f'data: {data.summary()}', flush=True)
    return data

  target = open_corpus(data_cfg.target, data_cfg)
  t_idx, t_lab = labelled(target)
  target_labelled = bool(len(t_idx))
  if not target_labelled:
    utts = [target.corpus.utterances[i] for i in target.usable]
    if (not utts or data_cfg.protocol == 'within'
        or any(u.emotion is not None or u.dims for u in utts)):
      raise ValueError(
          f'config.data.target: corpus {data_cfg.target!r} has no '
          f'utterance covered by task {task!r}' + (
              '' if utts else ' (no usable audio)'))
    # No labels at all: every usable utterance is the unlabelled target;
    # the final "evaluation" only predicts them (predictions.csv).
    t_idx = target.usable
    t_lab = np.full(len(t_idx), -1, np.int32)
    left_out[target.corpus.name] = 0
  n_sources = len(source_names(data_cfg))
  if data_cfg.protocol == 'transductive' or not target_labelled:
    t_train = t_test = (t_idx, t_lab)
  else:
    tr, te = _speaker_split(target.corpus.utterances, t_idx,
                            data_cfg.target_train_fraction,
                            data_cfg.get('split_seed', 0))
    lab_of = dict(zip(t_idx.tolist(), t_lab.tolist()))
    t_train = (tr, np.array([lab_of[i] for i in tr], np.int32))
    t_test = (te, np.array([lab_of[i] for i in te], np.int32))
  hidden = np.full(len(t_train[0]), -1, np.int32)
  t_norm = normalization(target, data_cfg)
  target_train = Split([Part(target, t_train[0], hidden, n_sources, t_norm)])
  target_eval = Split([Part(target, t_test[0], t_test[1], n_sources, t_norm)])

  if data_cfg.protocol == 'within':
    source_train = Split([Part(target, t_train[0], t_train[1], 0, t_norm)])
  else:
    parts = []
    for d, name in enumerate(source_names(data_cfg)):
      cached = open_corpus(name, data_cfg)
      idx, lab = labelled(cached)
      if not len(idx):
        raise ValueError(f'config.data.source: corpus {name!r} has no '
                         f'utterance covered by task {task!r}')
      parts.append(Part(cached, idx, lab, d,
                        normalization(cached, data_cfg)))
    source_train = Split(parts)
  source_val = None
  if data_cfg.get('source_val_fraction', 0.0):
    source_train, source_val = hold_out(
        source_train, data_cfg.source_val_fraction,
        data_cfg.get('split_seed', 0))
  data = Data(classes, source_train, target_train, target_eval, left_out,
              skipped, source_val=source_val, target_labelled=target_labelled)
  data = _with_languages(data)
  if jax.process_index() == 0:
    print(f'data: {data.summary()}', flush=True)
  return data


def hold_out(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
  """(kept, held out): `fraction` of every part's utterances of each class
  (rounded, at least one where the class has two or more), at random."""
  kept, held = [], []
  for k, part in enumerate(split.parts):
    rng = np.random.default_rng([seed, k, 7])
    out = np.zeros(len(part.indices), bool)
    for c in np.unique(part.labels):
      rows = np.flatnonzero(part.labels == c)
      n = int(round(fraction * len(rows)))
      n = min(max(n, 1), len(rows) - 1)
      out[rng.choice(rows, n, replace=False)] = True
    kept.append(dataclasses.replace(part, indices=part.indices[~out],
                                    labels=part.labels[~out]))
    held.append(dataclasses.replace(part, indices=part.indices[out],
                                    labels=part.labels[out]))
  return Split(kept), Split(held)


def _multi_corpus_splits(data_cfg, labelled):
  """(source_train, target_train, target_eval) of the multi_corpus protocol.

  Each corpus of `corpus_names` is split by speaker into
  `target_train_fraction` for training and the rest for evaluation; its
  domain id is its position in that list. `labelled(cached)` gives the
  (indices, labels) of its utterances the task covers.
  """
  train_parts, test_parts = [], []
  for d, name in enumerate(corpus_names(data_cfg)):
    cached = open_corpus(name, data_cfg)
    idx, lab = labelled(cached)
    if not len(idx):
      field = 'source' if name in source_names(data_cfg) else 'target'
      raise ValueError(f'config.data.{field}: corpus {name!r} has no '
                       f'utterance covered by task {data_cfg.task!r}')
    tr, te = _speaker_split(cached.corpus.utterances, idx,
                            data_cfg.target_train_fraction,
                            data_cfg.get('split_seed', 0))
    lab_of = dict(zip(idx.tolist(), lab.tolist()))
    norm = normalization(cached, data_cfg)
    for part_idx, parts in ((tr, train_parts), (te, test_parts)):
      parts.append(Part(cached, part_idx, np.array(
          [lab_of[i] for i in part_idx], np.int32), d, norm))
  hidden = [dataclasses.replace(p, labels=np.full(len(p.indices), -1,
                                                   np.int32))
            for p in train_parts]
  return Split(train_parts), Split(hidden), Split(test_parts)


def _with_languages(data: Data) -> Data:
  """Gives every part the run's language vocabulary: the sorted non-empty
  languages of all utterances of the run's corpora."""
  parts = [p for split in (data.source_train, data.target_train,
                           data.target_eval, data.source_val)
           if split is not None for p in split.parts]
  vocab = tuple(sorted({u.language for p in parts
                        for u in p.cached.corpus.utterances if u.language}))
  # Speakers: every corpus of the run once (its listing, as DIFL counts them).
  speakers = corpus_lib.speaker_vocabulary(
      {p.cached.corpus.name: p.cached.corpus for p in parts}.values())
  for p in parts:
    p.languages = vocab
    p.speakers = speakers
  return dataclasses.replace(data, languages=vocab, speakers=speakers)


def _stream(split: Split, batch_size: int, seed: int, start_step: int,
            with_labels: bool):
  """An endless deterministic stream of batches starting at `start_step`.

  Epoch e is the split in the order of a shuffle seeded by (seed, e), so the
  batch at step s is a function of (seed, s) alone and a resumed run starts at
  its step without replaying the ones before.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  n = split.size
  base = split.dataset().cache()
  if not with_labels:
    base = base.map(lambda ex: {k: v for k, v in ex.items() if k != 'label'})
  first_epoch, skip = divmod(start_step * batch_size, n)
  ds = tf.data.Dataset.range(first_epoch, 2**62).flat_map(
      lambda e: base.shuffle(n, seed=e * 1_000_003 + seed))
  ds = ds.skip(skip).batch(batch_size, drop_remainder=True)
  # Each process keeps its own slice of every global batch.
  per_host = batch_size // jax.process_count()
  lo = jax.process_index() * per_host
  if jax.process_count() > 1:
    ds = ds.map(lambda b: {k: v[lo:lo + per_host] for k, v in b.items()})
  return ds


def train_batches(data: Data, batch_size: int, seed: int, start_step: int,
                  sharding: jax.sharding.NamedSharding | None):
  """Yields {'source': {...}, 'target': {...}} of global arrays sharded by
  `sharding`, or, with None, of this process's numpy slices."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ds = tf.data.Dataset.zip({
      'source': _stream(data.source_train, batch_size, 2 * seed, start_step,
                        with_labels=True),
      'target': _stream(data.target_train, batch_size, 2 * seed + 1,
                        start_step, with_labels=False),
  }).prefetch(2)
  for batch in ds.as_numpy_iterator():
    yield (batch if sharding is None
           else jax.tree.map(lambda x: to_global(x, sharding), batch))


def to_global(x: np.ndarray, sharding: jax.sharding.NamedSharding):
  """A process-local batch slice as one global array sharded on 'data'."""
  global_shape = (x.shape[0] * jax.process_count(),) + x.shape[1:]
  return jax.make_array_from_process_local_data(sharding, x, global_shape)


# In-memory array sets: utterance-level data small enough to hold on the host
# (functionals, generated samples) as dicts of numpy arrays with a common
# leading axis. Multi-phase methods draw their batches from them.


def load_arrays(data: Data) -> dict[str, dict[str, np.ndarray]]:
  """The run's data as array sets.

  'source': all source corpora (labels, 'domain' = source index);
  'source<i>': source corpus i alone; 'target': the unlabelled target
  training set (its labels are -1; 'index' is its listing index);
  'target_eval': the labelled evaluation set.
  """
  def load(split, with_index=False):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    rows = list(tfds.as_numpy(split.dataset(with_index=with_index)))
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

  source = load(data.source_train)
  out = {'source': source}
  for i in range(len(data.source_train.parts)):
    rows = source['domain'] == data.source_train.parts[i].domain
    out[f'source{i}'] = {k: v[rows] for k, v in source.items()}
  out['target'] = load(data.target_train, with_index=True)
  out['target_eval'] = load(data.target_eval, with_index=True)
  return out


def balance_classes(labels: np.ndarray, rng: np.random.Generator,
                    size: int | None = None) -> np.ndarray:
  """Indices that up-sample every class to the largest class's count.

  Random duplication (CAEmoCyGAN, sec. 4.2): each class keeps all its
  examples and draws the missing ones with replacement from itself. With
  `size`, the balanced set is then up-sampled by random duplication to
  `size` examples (to pair corpora of different sizes). Classes absent from
  `labels` stay absent.
  """
  labels = np.asarray(labels)
  classes = np.unique(labels[labels >= 0])
  most = max(int((labels == c).sum()) for c in classes)
  parts = []
  for c in classes:
    idx = np.flatnonzero(labels == c)
    parts += [idx, rng.choice(idx, most - len(idx), replace=True)]
  out = np.concatenate(parts)
  return upsample(out, size, rng) if size else out


def upsample(indices: np.ndarray, size: int,
             rng: np.random.Generator) -> np.ndarray:
  """`indices` plus random duplicates of them, `size` in all (>= len)."""
  indices = np.asarray(indices)
  if size < len(indices):
    raise ValueError(f'cannot up-sample {len(indices)} examples to {size}')
  return np.concatenate([indices, rng.choice(indices, size - len(indices),
                                             replace=True)])


def take(arrays: dict[str, np.ndarray], idx) -> dict[str, np.ndarray]:
  return {k: v[idx] for k, v in arrays.items()}


def concat_arrays(*sets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Row-wise concatenation of array sets over their common keys."""
  keys = set(sets[0]).intersection(*sets[1:])
  return {k: np.concatenate([s[k] for s in sets]) for k in sorted(keys)}


def epoch_positions(n: int, batch_size: int, seed: int, stream: int,
                    step: int) -> np.ndarray:
  """Indices into a set of `n` examples of batch `step` of a stream.

  The stream is an endless sequence of epochs, each a permutation seeded by
  (seed, stream, epoch), cut into batches of `batch_size`: a function of
  (seed, stream, step) alone, so a resumed run draws the same batches.
  """
  lo = step * batch_size
  out, pos = [], lo
  while pos < lo + batch_size:
    epoch, offset = divmod(pos, n)
    perm = np.random.default_rng([seed, stream, epoch]).permutation(n)
    take_n = min(n - offset, lo + batch_size - pos)
    out.append(perm[offset:offset + take_n])
    pos += take_n
  return np.concatenate(out)


def array_batches(sets: dict[str, dict[str, np.ndarray]], batch_size: int,
                  seed: int, start_step: int,
                  sharding: jax.sharding.NamedSharding):
  """Yields {key: {name: global array}}: `batch_size` examples of each set.

  The same code draws from real and generated sets (`epoch_positions`);
  each process keeps its slice of every global batch.
  """
  per_host = batch_size // jax.process_count()
  lo = jax.process_index() * per_host
  step = start_step
  while True:
    batch = {}
    for k, (key, arrays) in enumerate(sorted(sets.items())):
      n = len(next(iter(arrays.values())))
      idx = epoch_positions(n, batch_size, seed, k, step)[lo:lo + per_host]
      batch[key] = {name: to_global(v[idx], sharding)
                    for name, v in arrays.items()}
    yield batch
    step += 1
