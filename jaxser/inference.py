"""A trained model applied to audio: what `jaxser.predict`, `jaxser.export`
and `jaxser.label` share.

A model is a `Model`: the run's config, the class names, the feature
settings, the normalisation statistics of the run's target corpus and the
network's variables (params and batch_stats), restored either from a
training run's folder (its config.json, DIR/inference/ written when the run
started, `save_run_assets`, and the latest checkpoint) or from an exported
bundle (`jaxser.export`). Nothing of the training corpora is needed.

Inference files of a run (DIR/inference/) and of a bundle (MODEL_DIR/):
  inference.json     format, classes, task, method, target corpus, feature
                     set (name, parameters, frames), feature shape and
                     dtype, data.normalize; a bundle adds the step and run.
  normalization.npz  shift, scale (K, D) and groups (K - 1 speaker ids) of
                     the target corpus (`jaxser.data.normalize`); only when
                     data.normalize is not none.
A bundle adds config.json and variables.msgpack (flax.serialization).

Unseen audio has unknown speakers, so `speaker_zscore` with the run's
statistics uses the target corpus's own row (row 0): per-corpus z-scoring
by the target's statistics. With `normalize='self'` the statistics come from
the given files (their parent folder is their speaker under
speaker_zscore).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Sequence

import numpy as np

from jaxser import io as io_lib

INFERENCE_DIR = 'inference'
INFO = 'inference.json'
NORMALIZATION = 'normalization.npz'
VARIABLES = 'variables.msgpack'
CONFIG = 'config.json'
FORMAT = 1
NORMALIZE_CHOICES = ('run', 'self', 'none')


@dataclasses.dataclass
class Model:
  """A restored model (see the module docstring)."""
  config: object  # ml_collections.ConfigDict
  info: dict  # inference.json
  stats: dict | None  # normalization.npz, None when the run did not save it
  variables: dict | None  # {'params', 'batch_stats'}; None until restored
  step: int
  source: str  # The workdir or bundle it came from.
  method: object = None  # The jaxser Method the variables belong to.

  @property
  def classes(self) -> tuple[str, ...]:
    return tuple(self.info['classes'])

  @property
  def feature(self):
    from jaxser.data.features import FeatureConfig  # pylint: disable=g-import-not-at-top
    f = self.info['feature']
    return FeatureConfig(f['name'], tuple(sorted(
        (k, _tuple(v)) for k, v in f['params'].items())), f['frames'])


def _tuple(v):
  """JSON lists back to the tuples FeatureConfig's params hold."""
  return tuple(_tuple(x) for x in v) if isinstance(v, list) else v


def load_config(path: str):
  """A run's config.json as a ConfigDict, upgraded to today's layout."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from jaxser import config as config_lib  # pylint: disable=g-import-not-at-top
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  # A run from before the network registry: its network's fields move into
  # today's layout (same parameter tree, so its checkpoint restores).
  return config_lib.upgrade(config)


def load_run(workdir: str):
  """(config, checkpoint manager) of a training run; errors name the path."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  config_path = os.path.join(workdir, CONFIG)
  if not os.path.isfile(config_path):
    raise ValueError(f'--workdir {workdir}: no {config_path}; not a training '
                     'run (python -m jaxser.main --workdir=... writes it)')
  ckpt_dir = os.path.abspath(os.path.join(workdir, 'checkpoints'))
  ckpt = None
  if os.path.isdir(ckpt_dir):
    ckpt = ocp.CheckpointManager(
        ckpt_dir, options=ocp.CheckpointManagerOptions(read_only=True))
  if ckpt is None or ckpt.latest_step() is None:
    raise ValueError(f'--workdir {workdir}: no finished checkpoint in '
                     f'{ckpt_dir}')
  return load_config(config_path), ckpt


def feature_info(feature, shape: Sequence[int], dtype) -> dict:
  return {'name': feature.name, 'params': dict(feature.params),
          'frames': feature.frames, 'shape': [int(s) for s in shape],
          'dtype': str(np.dtype(dtype))}


def make_info(config, classes: Sequence[str], feature, shape, dtype) -> dict:
  return {'format': FORMAT, 'classes': list(classes),
          'task': config.data.task, 'method': config.method,
          'target': config.data.target,
          'normalize': config.data.get('normalize', 'none'),
          'feature': feature_info(feature, shape, dtype)}


def target_stats(data, config) -> dict | None:
  """The normalisation statistics of the run's target corpus, from the
  `pipeline.Data` training loaded: {'shift', 'scale', 'groups'}, or None
  when the run does not normalise."""
  if config.data.get('normalize', 'none') == 'none':
    return None
  splits = [data.target_train, data.target_eval, data.source_train,
            data.source_val]
  for split in splits:
    for part in (split.parts if split is not None else []):
      if part.cached.corpus.name == config.data.target and part.norm:
        return stats_of_norm(part.norm, part.cached.corpus.utterances)
  return None


def stats_of_norm(norm: dict, utterances) -> dict:
  """A corpus's `pipeline.normalization` map back to its statistics: the
  speaker of row k is that of any utterance using it."""
  rows = np.asarray(norm['rows'])
  speakers = [u.speaker for u in utterances]
  groups = [''] * (len(norm['shift']) - 1)
  for i, r in enumerate(rows):
    if r > 0:
      groups[r - 1] = speakers[i]
  return {'shift': np.asarray(norm['shift'], np.float64),
          'scale': np.asarray(norm['scale'], np.float64),
          'groups': np.asarray(groups, str)}


def write_assets(folder: str, info: dict, stats: dict | None) -> None:
  os.makedirs(folder, exist_ok=True)
  if stats is not None:
    io_lib.write_npz(os.path.join(folder, NORMALIZATION), **stats)
  io_lib.write_json(os.path.join(folder, INFO), info)


def read_stats(folder: str) -> dict | None:
  path = os.path.join(folder, NORMALIZATION)
  if not os.path.isfile(path):
    return None
  with np.load(path) as z:
    return {k: z[k] for k in ('shift', 'scale', 'groups')}


def abstract_variables(config, num_classes: int, shape, dtype, mesh=None):
  """The network's variables as ShapeDtypeStructs (replicated on `mesh`)."""
  # pylint: disable=g-import-not-at-top
  import jax
  from jax.sharding import NamedSharding, PartitionSpec as P
  from jaxser import methods as methods_lib
  # pylint: enable=g-import-not-at-top
  method = methods_lib.create(config, num_classes)
  def domain(with_label):
    b = {k: np.zeros((1,), np.int32)
         for k in ('length', 'domain', 'gender', 'language')}
    b['features'] = np.zeros((1,) + tuple(shape), dtype)
    if with_label:
      b['label'] = np.zeros((1,), np.int32)
    return b
  batch = {'source': domain(True), 'target': domain(False)}
  v = jax.eval_shape(lambda: method.init_variables(jax.random.PRNGKey(0),
                                                   batch))
  v = {'params': v['params'], 'batch_stats': v.get('batch_stats', {})}
  if mesh is not None:
    sharding = NamedSharding(mesh, P())
    v = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype,
                                                    sharding=sharding), v)
  return method, v


def restore_checkpoint(ckpt, config, num_classes: int, shape, dtype, mesh):
  """(method, variables, step): the params and batch_stats of the latest
  checkpoint (the rest of the train state, optimiser included, is not
  read, so any method's run restores the same way)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  method, abstract = abstract_variables(config, num_classes, shape, dtype,
                                        mesh)
  step = ckpt.latest_step()
  item = dict(abstract)
  # A single-objective run with validation keeps its last state (to
  # continue from) and its selected best one in `selection`: the model is
  # the best. (Multi-phase methods restore each phase's best in the state.)
  validation = config.train.get('validation')
  selected = (not hasattr(method, 'phases') and validation is not None
              and bool(validation.every))
  if selected:
    import jax  # pylint: disable=g-import-not-at-top
    item['selection'] = {'train': {
        'params': abstract['params'], 'batch_stats': abstract['batch_stats'],
        'best_step': jax.ShapeDtypeStruct((), np.int32)}}
  variables = ckpt.restore(step, args=ocp.args.PyTreeRestore(
      item=item, partial_restore=True,
      restore_args=ocp.checkpoint_utils.construct_restore_args(item)))
  ckpt.close()
  if selected:
    best = variables.pop('selection')['train']
    if int(best['best_step']) >= 0:
      variables = {'params': best['params'],
                   'batch_stats': best['batch_stats']}
  return method, variables, int(step)


def run_info(workdir: str, config) -> tuple[dict, dict | None]:
  """(inference.json, statistics) of a run: DIR/inference/ when the run
  saved it; else (a run from before it did) derived from its config, with
  no statistics."""
  folder = os.path.join(workdir, INFERENCE_DIR)
  if os.path.isfile(os.path.join(folder, INFO)):
    with open(os.path.join(folder, INFO)) as f:
      return json.load(f), read_stats(folder)
  from jaxser.data import cache as cache_lib  # pylint: disable=g-import-not-at-top
  from jaxser.data import labels as labels_lib  # pylint: disable=g-import-not-at-top
  from jaxser.data.features import FeatureConfig  # pylint: disable=g-import-not-at-top
  feature = FeatureConfig.from_data_config(config.data)
  # The feature shape as the cache finds it: from a probe signal.
  shape = cache_lib._probe_shape(None, feature)  # pylint: disable=protected-access
  return make_info(config, labels_lib.TASK_CLASSES[config.data.task],
                   feature, shape, feature.dtype), None


def recompute_target_stats(config) -> dict | None:
  """The target corpus's statistics from the corpus itself, when its
  folder is where the run's config says (a run from before they were
  saved); None when it is not there."""
  from jaxser.data import corpus as corpus_lib  # pylint: disable=g-import-not-at-top
  from jaxser.data import pipeline  # pylint: disable=g-import-not-at-top
  name = config.data.target
  try:
    root = corpus_lib.corpus_root(name, config.data)
  except corpus_lib.CorpusError:
    return None
  if root is not None and not os.path.isdir(root):
    return None
  cached = pipeline.open_corpus(name, config.data)
  return stats_of_norm(pipeline.normalization(cached, config.data),
                       cached.corpus.utterances)


def ensure_stats(model: Model) -> None:
  """A run from before its statistics were saved: they are recomputed from
  its target corpus when that is where its config says (noted)."""
  if model.stats is not None or model.info.get('normalize', 'none') == 'none':
    return
  model.stats = recompute_target_stats(model.config)
  if model.stats is not None:
    note(f'{model.source}: no saved normalisation statistics (an older '
         f'run); recomputed from its target corpus {model.info["target"]!r}')


def open_run(workdir: str, mesh) -> Model:
  """The model of a finished (or interrupted) training run."""
  config, ckpt = load_run(workdir)
  info, stats = run_info(workdir, config)
  f = info['feature']
  method, variables, step = restore_checkpoint(
      ckpt, config, len(info['classes']), f['shape'], f['dtype'], mesh)
  return Model(config, info, stats, variables, step, workdir, method)


def open_bundle(model_dir: str, mesh) -> Model:
  """The model of an exported bundle (`jaxser.export`)."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import serialization  # pylint: disable=g-import-not-at-top
  info_path = os.path.join(model_dir, INFO)
  if not os.path.isfile(info_path):
    raise ValueError(f'--model {model_dir}: no {info_path}; not a bundle '
                     '(python -m jaxser.export --workdir=RUN --out=DIR '
                     'writes one)')
  with open(info_path) as f:
    info = json.load(f)
  if info.get('format') != FORMAT:
    raise ValueError(f'--model {model_dir}: bundle format '
                     f'{info.get("format")!r}, this jaxser reads {FORMAT}')
  config = load_config(os.path.join(model_dir, CONFIG))
  f = info['feature']
  method, abstract = abstract_variables(config, len(info['classes']),
                                        f['shape'], f['dtype'], mesh)
  with open(os.path.join(model_dir, VARIABLES), 'rb') as fh:
    raw = serialization.msgpack_restore(fh.read())
  raw = {'params': raw.get('params', {}),
         'batch_stats': raw.get('batch_stats', {})}
  want = jax.tree.map(lambda s: (tuple(s.shape), str(s.dtype)), abstract)
  got = jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), raw)
  if want != got:
    raise ValueError(f'--model {model_dir}: {VARIABLES} does not fit the '
                     f'network of its config.json ({config.model.name})')
  variables = jax.tree.map(lambda a, s: jax.device_put(a, s.sharding),
                           raw, abstract)
  return Model(config, info, read_stats(model_dir), variables,
               int(info.get('step', 0)), model_dir, method)


def export(model: Model, out: str) -> list[str]:
  """Writes `model` as a bundle into `out`; returns the files written."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import serialization  # pylint: disable=g-import-not-at-top
  os.makedirs(out, exist_ok=True)
  info = dict(model.info, step=model.step,
              run=os.path.abspath(model.source))
  write_assets(out, info, model.stats)
  io_lib.write_text(os.path.join(out, CONFIG), model.config.to_json(indent=1))
  host = jax.tree.map(np.asarray, model.variables)
  with io_lib.atomic_open(os.path.join(out, VARIABLES), 'wb') as f:
    f.write(serialization.msgpack_serialize(host))
  return ([CONFIG, INFO, VARIABLES] +
          ([NORMALIZATION] if model.stats is not None else []))


################################################################################
# Files to features.
################################################################################


def list_audio(paths: Sequence[str]) -> list[str]:
  """The files of `paths`: a file as given (any extension: libsndfile reads
  the content), a folder's audio files (by extension) sorted, recursively;
  a path that does not exist is kept (it fails with its reason)."""
  from jaxser.data.corpora import common  # pylint: disable=g-import-not-at-top
  out = []
  for p in paths:
    if os.path.isdir(p):
      out += [os.path.join(p, rel) for rel in common.walk(p)
              if common.is_audio(rel)]
    else:
      out.append(p)
  return out


def file_corpus(name: str, files: Sequence[str]):
  """A corpus of the given audio files (utt_id: the path as given; speaker:
  the parent folder)."""
  from jaxser.data import corpus as corpus_lib  # pylint: disable=g-import-not-at-top
  utts = [corpus_lib.Utterance(
      utt_id=f, corpus=name, path=os.path.abspath(f),
      speaker=os.path.basename(os.path.dirname(os.path.abspath(f))))
          for f in files]
  return corpus_lib.Corpus(name, utts)


def featurise(files: Sequence[str], feature, chunk: int = 64,
              progress: bool = True):
  """(features (N, ...), lengths (N,), kept indices into `files`, {index:
  reason} of the files that cannot be used), each file read and featurised
  as the feature cache does it for a corpus."""
  import tqdm  # pylint: disable=g-import-not-at-top
  from jaxser.data import cache as cache_lib  # pylint: disable=g-import-not-at-top
  if feature.reads_text:
    raise ValueError(f'feature set {feature.name!r} reads transcripts, not '
                     'audio; predict takes audio files')
  corpus = file_corpus('predict', files)
  feats, lengths, kept, bad = [], [], [], {}
  bar = tqdm.tqdm(total=len(files), desc='features', unit='file',
                  disable=not progress, dynamic_ncols=True)
  by_id = {u.utt_id: i for i, u in enumerate(corpus.utterances)}
  # pylint: disable=protected-access
  if feature.batched:
    with feature.batch_extractor() as extract:
      for start in range(0, len(files), chunk):
        read = [cache_lib._read_one(corpus, i)
                for i in range(start, min(start + chunk, len(files)))]
        for i, _, reason in read:
          if reason:
            bad[i] = reason
        good = [(i, w) for i, w, _ in read if w is not None]
        for (i, _), (x, n) in zip(good, extract([w for _, w in good])):
          feats.append(x)
          lengths.append(n)
          kept.append(i)
        bar.update(len(read))
  else:
    for start in range(0, len(files), chunk):
      stop = min(start + chunk, len(files))
      r = cache_lib._extract_chunk(corpus, feature, start, stop)
      feats += r['features']
      lengths += r['lengths']
      kept += r['indices']
      bad.update({by_id[u]: why for u, why in r['skipped']})
      bar.update(stop - start)
  # pylint: enable=protected-access
  bar.close()
  shape = ()
  if feats:
    shape = feats[0].shape
  return (np.stack(feats) if feats else np.zeros((0,) + shape, np.float32),
          np.asarray(lengths, np.int32), np.asarray(kept, int), bad)


def normalise(model: Model, features, lengths, speakers, choice: str
              ) -> tuple[np.ndarray, str]:
  """(features normalised as `choice` says, a line saying what was done).

  choice: 'run' (the statistics of the run's target corpus), 'self' (those
  of `features` themselves) or 'none'.
  """
  from jaxser.data import normalize  # pylint: disable=g-import-not-at-top
  if choice not in NORMALIZE_CHOICES:
    raise ValueError(f'--normalize: {choice!r} is not one of '
                     f'{", ".join(NORMALIZE_CHOICES)}')
  method = model.info.get('normalize', 'none')
  if method == 'none':
    return features, ('normalisation: none (the run used '
                      'data.normalize=none)')
  if choice == 'none':
    return features, (f'normalisation: none (--normalize=none; the run used '
                      f'{method})')
  if choice == 'self':
    groups = np.asarray(speakers) if method == 'speaker_zscore' else None
    stats = normalize.compute_stats(features, lengths, groups, method)
    per = (f', per speaker (parent folder): {len(stats["groups"])} with '
           f'{normalize.MIN_GROUP_UTTERANCES}+ files'
           if method == 'speaker_zscore' else '')
    return (normalize.apply(features, lengths, stats, groups),
            f'normalisation: {method} with the statistics of the '
            f'{len(features)} given files (--normalize=self{per})')
  if model.stats is None:
    raise ValueError(
        f'{model.source}: the run normalises features ({method}) but saved '
        f'no statistics of its target corpus {model.info["target"]!r} (a '
        'run from before they were saved, and the corpus is not where its '
        'config says); use --normalize=self')
  rows = ('' if method != 'speaker_zscore' else
          '; unseen speakers: its corpus-level statistics')
  return (normalize.apply(features, lengths, model.stats),
          f'normalisation: {method} with the statistics of the run\'s target '
          f'corpus {model.info["target"]!r}{rows} (--normalize=run)')


def probabilities(model: Model, features, lengths, mesh,
                  batch_size: int | None = None) -> np.ndarray:
  """(N, C) class posteriors, through `train.predict_logits`."""
  from jaxser import train  # pylint: disable=g-import-not-at-top
  if not len(features):
    return np.zeros((0, len(model.classes)))
  batch_size = batch_size or model.config.train.eval_batch_size
  batch_size = min(batch_size, len(features))
  chunks = train.array_chunks({'features': features, 'length': lengths},
                              batch_size)
  logits = train.predict_logits(model.method, model.variables, chunks,
                                batch_size, mesh).astype(np.float64)
  return softmax(logits)


def softmax(logits: np.ndarray) -> np.ndarray:
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  return p / p.sum(axis=1, keepdims=True)


def note(msg: str) -> None:
  print(msg, file=sys.stderr, flush=True)
