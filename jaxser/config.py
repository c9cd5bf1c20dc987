"""The base experiment config every file in configs/ starts from.

Fields (any can be overridden on the command line, e.g.
`--config.train.steps=300 --config.data.source=casia,emovo`):

  seed                 the run's seed (init, dropout, data order).
  seeds                '' or several seeds, e.g. '0,1,2': one run per seed,
                       packed into one program where they fit, each in
                       DIR/seed<k>/, and DIR/summary.json (mean and std).
  method               registered method name (jaxser.methods).
  data.source          corpus name, or several comma-separated (multi-source).
  data.target          corpus name.
  data.task            emotion4 | arousal | valence | arousal3 | valence3
                       (jaxser/data/labels.py).
  data.label_from      ratings | categories: whether a rating of the task's
                       dimension (IEMOCAP, MSP-IMPROV, MSP-Podcast, VAM) or
                       the category classes an utterance (jaxser/data/labels.py).
  data.category_map    emodna | difl: the arousal / valence table of
                       categories (Emo-DNA's or DIFL's Table 1).
  data.protocol        transductive | split | within | multi_corpus.
  data.target_train_fraction  train share of the target under split/within
                       (of every corpus under multi_corpus).
  data.split_seed      seed of the (speaker-independent) target split and
                       of the source validation split.
  data.source_val_fraction  share of every source corpus held out as the
                       labelled validation set (0: none; jaxser.data.pipeline).
  data.root            folder holding <corpus>/ folders (default: $JAXSER_DATA).
  data.paths.<name>    folder of one corpus, overriding data.root.
  data.features        feature set (jaxser.data.features).
  data.feature_params.<set>.<param>  parameters of each feature set.
  data.frames          frames per utterance (pad / centre-crop).
  data.normalize       none | corpus_minmax | corpus_zscore | speaker_zscore.
  data.cache_dir       feature cache (default: $JAXSER_CACHE or ~/.cache/jaxser).
  data.workers         feature-extraction processes (-1: one per core).
  data.resident        auto | device | stream: keep the training sets on the
                       devices and draw batches inside the step (auto: when
                       they take at most data.resident_max_mib), or stream
                       them through tf.data (jaxser.data.resident).
  train.*              steps, batch_size (per domain), optimiser, intervals.
  train.steps_per_dispatch  steps per host call (lax.scan); logs, evaluations
                       and checkpoints happen on these boundaries.
  train.pack_step      auto | vmap | in_turn: how a packed program steps its
                       runs: all at once (jax.vmap), or one after another
                       through the same compiled step (auto: in_turn on CPU,
                       where vmap is slower than runs apart; vmap elsewhere).
  train.validation.*   validation on the held-out source part (needs
                       data.source_val_fraction > 0): every (steps; 0 off),
                       metric (war | uar | macro_f1), patience (evaluations
                       without improvement before stopping; 0 never stops),
                       plateau_factor / plateau_patience (the learning rate
                       times plateau_factor after plateau_patience
                       evaluations without improvement, optax's
                       reduce_on_plateau; 1.0 off). The best state is
                       restored for the final evaluation.
  model.name           the network (jaxser.models.registry): cnn_tcn (Emo-DNA's
                       CNN + TCN, the default), cnn_gru (MMD-SER's), cnn_blstm
                       (DIFL's, on segments), mlp (on functionals), ...; every
                       method runs on every network whose outputs it needs.
  model.<name>.*       that network's options (one block per network).
  model.frontend       '' or a feature set computed on the device from
                       'waveform' data (e.g. mfcc40) as the network's input.
  model.*              other fields: the method's own heads (e.g. Emo-DNA's
                       corpus encoder `lstm_hidden`, `projection_dim`).
  <method>.*           the method's own hyper-parameters.
  profile.start_step / profile.num_steps  JAX profiler trace window (-1: off).
  report.embedding     the finished run's embedding figure (jaxser.report):
                       'umap', 'tsne', 'pca' or 'none' (no figure).
  report.max_points    utterances per corpus it embeds at most.
"""

from __future__ import annotations

import ml_collections

from jaxser.data import corpus as corpus_lib
from jaxser.data import features as features_lib
from jaxser.data import synthetic
from jaxser.models import registry as models_lib


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.seeds = ''
  c.method = ''

  c.data = ml_collections.ConfigDict()
  c.data.source = synthetic.DEFAULT_SOURCE
  c.data.target = synthetic.DEFAULT_TARGET
  c.data.task = 'emotion4'
  c.data.label_from = 'ratings'
  c.data.category_map = 'emodna'
  c.data.protocol = 'transductive'
  c.data.target_train_fraction = 0.7
  c.data.split_seed = 0
  c.data.source_val_fraction = 0.0
  c.data.root = ''
  c.data.paths = ml_collections.ConfigDict(
      {name: '' for name in corpus_lib.available()
       if not corpus_lib.is_synthetic(name)})
  c.data.features = 'mfcc40'
  c.data.feature_params = ml_collections.ConfigDict(
      {name: dict(features_lib.get(name).defaults)
       for name in features_lib.available()})
  c.data.frames = 300
  c.data.normalize = 'none'
  c.data.cache_dir = ''
  c.data.workers = -1
  c.data.resident = 'auto'
  c.data.resident_max_mib = 4096

  c.train = ml_collections.ConfigDict()
  c.train.steps = 2000
  c.train.steps_per_dispatch = 1
  c.train.pack_step = 'auto'
  c.train.batch_size = 64
  c.train.optimizer = 'radam'
  c.train.learning_rate = 1e-3
  c.train.weight_decay = 0.0
  c.train.grad_clip = 0.0
  c.train.log_every = 20
  c.train.eval_every = 500
  c.train.eval_batch_size = 256
  c.train.checkpoint_every = 500
  c.train.keep_checkpoints = 2
  c.train.validation = ml_collections.ConfigDict(dict(
      every=0, metric='war', patience=0, plateau_factor=1.0,
      plateau_patience=5))

  c.model = models_lib.default_options()
  c.model.name = 'cnn_tcn'
  c.model.frontend = ''

  c.profile = ml_collections.ConfigDict()
  c.profile.start_step = -1
  c.profile.num_steps = 5

  c.report = ml_collections.ConfigDict()
  c.report.embedding = 'umap'
  c.report.max_points = 2000
  return c


def source_only_baseline(config: ml_collections.ConfigDict,
                         class_weighted: bool = False
                         ) -> ml_collections.ConfigDict:
  """`config` turned into its no-adaptation baseline: `source_only` on the
  same network, front end, data and training settings, without the
  method's own block (`config.<method>`). `class_weighted`: the
  class-weighted cross-entropy (`config.source_only.class_weighted`)."""
  config = config.copy_and_resolve_references()
  if config.method and config.method in config:
    del config[config.method]
  config.method = 'source_only'
  config.source_only = ml_collections.ConfigDict(
      {'class_weighted': class_weighted})
  return config


# The flat config.model fields each network read before the network registry
# (now config.model.<network>.<field>; `upgrade`).
_LEGACY_NETWORK_FIELDS = {
    'cnn_tcn': ('dropout', 'masked_pooling'),
    'cnn_gru': ('conv_features', 'conv_kernel_sizes', 'conv_strides',
                'conv_pool', 'gru_hidden', 'fc_hidden', 'dropout',
                'masked_pooling'),
    'cnn_blstm': ('conv_features', 'kernel_size', 'time_pool', 'freq_pool',
                  'lstm_hidden', 'embed_dim', 'embed_activation', 'dropout'),
}


def upgrade(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A run's config written before the network registry (no
  `config.model.name`) in today's layout; other configs unchanged.

  Each method then built its own network: DIFL and `model.backbone =
  'cnn_blstm'` the CNN-BLSTM, MMD-SER and its `mmd_ser_source_only` baseline
  the CNN + BiGRU, every other method the CNN + TCN; the network's flat
  `config.model` fields move into its block. `mmd_ser_source_only` becomes
  `source_only` with the class-weighted loss. The parameter trees are the
  ones those runs saved, so their checkpoints restore (`jaxser.label`).
  """
  if 'name' in config.model:
    return config
  c = config.copy_and_resolve_references()
  old = c.model.to_dict()
  if c.method == 'difl' or old.get('backbone') == 'cnn_blstm':
    name = 'cnn_blstm'
  elif c.method in ('mmd_ser', 'mmd_ser_source_only'):
    name = 'cnn_gru'
  else:
    name = 'cnn_tcn'
  model = models_lib.default_options()
  model.name = name
  model.frontend = old.get('frontend', '')
  for field in _LEGACY_NETWORK_FIELDS[name]:
    if field in old:
      model[name][field] = old[field]
  # What is left are the method's own head fields (Emo-DNA's lstm_hidden,
  # the multitask projection sizes).
  network_fields = set(_LEGACY_NETWORK_FIELDS[name]) | {
      'backbone', 'frontend', 'dropout', 'masked_pooling'}
  for field, value in old.items():
    if field not in network_fields:
      model[field] = value
  c.model = model
  if c.method == 'mmd_ser_source_only':
    weighted = c.mmd_ser.class_weighted
    del c['mmd_ser']
    c = source_only_baseline(c, class_weighted=weighted)
  elif c.method == 'source_only' and 'source_only' not in c:
    c.source_only = ml_collections.ConfigDict({'class_weighted': False})
  return c


def load(path: str) -> ml_collections.ConfigDict:
  """get_config() of the config file at `path` (e.g. configs/difl.py)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f'jaxser_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
