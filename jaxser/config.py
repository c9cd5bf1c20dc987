"""The base experiment config every file in configs/ starts from.

Fields (any can be overridden on the command line, e.g.
`--config.train.steps=300 --config.data.source=casia,emovo`):

  seed                 the run's seed (init, dropout, data order).
  method               registered method name (jaxser.methods).
  data.source          corpus name, or several comma-separated (multi-source).
  data.target          corpus name.
  data.task            emotion4 | arousal | valence | arousal3 | valence3
                       (jaxser/data/labels.py).
  data.protocol        transductive | split | within | multi_corpus.
  data.target_train_fraction  train share of the target under split/within
                       (of every corpus under multi_corpus).
  data.split_seed      seed of the (speaker-independent) target split.
  data.root            folder holding <corpus>/ folders (default: $JAXSER_DATA).
  data.paths.<name>    folder of one corpus, overriding data.root.
  data.features        feature set (jaxser.data.features).
  data.feature_params.<set>.<param>  parameters of each feature set.
  data.frames          frames per utterance (pad / centre-crop).
  data.normalize       none | corpus_minmax | corpus_zscore | speaker_zscore.
  data.cache_dir       feature cache (default: $JAXSER_CACHE or ~/.cache/jaxser).
  data.workers         feature-extraction processes (-1: one per core).
  train.*              steps, batch_size (per domain), optimiser, intervals.
  model.*              network options.
  method.*             the method's own hyper-parameters.
  profile.start_step / profile.num_steps  JAX profiler trace window (-1: off).
"""

from __future__ import annotations

import ml_collections

from jaxser.data import corpus as corpus_lib
from jaxser.data import features as features_lib
from jaxser.data import synthetic


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = ''

  c.data = ml_collections.ConfigDict()
  c.data.source = synthetic.DEFAULT_SOURCE
  c.data.target = synthetic.DEFAULT_TARGET
  c.data.task = 'emotion4'
  c.data.protocol = 'transductive'
  c.data.target_train_fraction = 0.7
  c.data.split_seed = 0
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

  c.train = ml_collections.ConfigDict()
  c.train.steps = 2000
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

  c.model = ml_collections.ConfigDict()
  c.model.dropout = 0.1
  c.model.masked_pooling = True

  c.profile = ml_collections.ConfigDict()
  c.profile.start_step = -1
  c.profile.num_steps = 5
  return c
