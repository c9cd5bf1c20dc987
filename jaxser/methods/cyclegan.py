"""CAEmoCyGAN (Su & Lee, multi-source cycle-GAN) and the baselines of its
Table 3, as multi-phase methods of the shared train loop (`jaxser.phases`).

Every method trains on utterance-level functionals (openSMILE `is10`, 1582,
corpus min-max to [-1, 1]) and ends with the same target emotion classifier
F_clf [D, 500, 100, C] trained with cross-entropy on the (augmented) source
data, early-stopped on a selection set without target labels, and evaluated
on the target. The generator methods first learn a source -> target mapping
and add its outputs, with (soft) labels, to the training data.

  dnn                 Cross-corpus DNN: F_clf on the sources alone (selection:
                      10% of the sources held out).
  rp_autoencoder      R-P auto-encoder: G_S->T = Dec_T(Enc_S(.)) trained to
                      map random (S_i, T_j) pairs (L1); fakes G_S->T(S).
  cyclegan            CycleGAN (Zhu et al. 2017): GAN + cycle + identity;
                      fakes G_S->T(S) labelled y_S.
  cycle_emotion_gan   CycleEmotionGAN (Zhao et al. 2019): + emotion
                      consistency of the reconstructions, eq. 16.
  cycada              CyCADA (Hoffman et al. 2018): + semantic consistency
                      (F_s's predictions kept across each mapping), and a
                      feature-level discriminator on F_clf's hidden layer
                      while F_clf trains (task loss on the fakes).
  ccemogan            CCEmoGAN (Su & Lee 2020): generators conditioned on a
                      one-hot emotion; Type B fakes G_S->T(S, y_S).
  cacygan             CACyGAN: the multi-source cycle-GAN with corpus-aware
                      attention (eqs. 1-15), lambda_4 = 0.
  caemocygan          CAEmoCyGAN: CACyGAN + emotion consistency (eq. 16).

Single-source methods treat several sources as one concatenated corpus (the
paper's [IEM+VAM] columns); the corpus-aware ones need two or more.

Phases (each its own parameter groups and optimiser, Table 2: generators and
discriminators Adam 2e-5, attention 2e-2, classifiers 2e-4):

  source_classifier  F_s on all sources (cross-entropy), for the methods with
                     an emotion or semantic consistency term.
  pretrain           L1 on random pairings (sec. 4.2): each source sample's
                     G_S->T output against a random target sample and each
                     target sample's G_T->S_i output against a random sample
                     of source i (and, with attention, the fused fake
                     against the reference target sample).
  adversarial        the GAN objective, eq. 17: lambda_1 cycle + lambda_2
                     identity + lambda_3 GAN + lambda_4 emotion; each step
                     updates the generators (and attention) then the
                     discriminators on the same fakes (the cycle-GAN
                     reference order; `gan.update_order` = d_then_g first
                     updates the discriminators on the current generators'
                     fakes).
  generate           (end of adversarial) Algorithm 1: one pass over the
                     class-balanced, up-sampled sources; each fake gets the
                     soft label alpha . Y_S (one-hot y_S without attention).
                     10% of the fakes (`gan.select_fraction`) are the
                     selection set, 90% join the sources.
  classifier         F_clf, cross-entropy against (soft) labels on sources +
                     fakes, selected by UAR on the held-out fakes.

Choices where the paper is silent, each a `config.gan` field: the update
order (g_then_d), the reference target's encoder (`reference_encoder`:
'target' = Enc_T, eq. 7; Algorithm 1 line 9 writes Enc_S), batch norm before
each hidden ReLU, a tanh output on the decoders, the adversarial phase's
length (`adversarial_epochs`), F_s's training (same network and optimiser as
F_clf, `source_classifier_epochs`), the GAN fake of D_T (the attention-fused
T_fake for the corpus-aware methods, G_S->T(S) otherwise), the generator's
form of eqs. 1-2 (`generator_form`: 'minimax' as printed,
'non_saturating'), and reconstruction losses as per-element means
(`jaxser.losses.gan`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxser import losses
from jaxser import phases as phases_lib
from jaxser.data import features as features_lib
from jaxser.data import pipeline
from jaxser.models import registry
from jaxser.methods import base
from jaxser.models import cyclegan as nets

UPDATE_ORDERS = ('g_then_d', 'd_then_g')
REFERENCE_ENCODERS = ('target', 'source')


class GanFamily(base.Method):
  """What the family shares: networks, groups, data sets, the classifier."""
  generator = True  # Learns a source -> target mapping.
  attention = False  # Corpus-aware multi-source fusion.
  conditional = False  # Generators take a one-hot emotion (CCEmoGAN).
  # Emotion term of the adversarial phase: '', 'reconstruction' (eq. 16),
  # 'semantic' (CyCADA), 'conditional' (CCEmoGAN).
  emotion = ''
  adversarial = True
  feature_adaptation = False  # CyCADA's feature discriminator on F_clf.

  @classmethod
  def check_config(cls, config) -> None:
    """One-line errors naming the field; before any data is read. The
    family's networks are its own (`jaxser.models.cyclegan`), not
    `config.model`'s."""
    g = config.gan
    fc = features_lib.FeatureConfig.from_data_config(config.data)
    if registry.feature_kind(fc.name) != 'functionals':
      raise ValueError(f'config.data.features: {cls.name} trains on '
                       f'utterance-level functionals (is10, emobase, '
                       f'egemaps), not {fc.name!r}')
    if len(pipeline.source_names(config.data)) < cls.min_sources:
      raise ValueError(f'config.data.source: {cls.name} fuses several '
                       f'source corpora; give {cls.min_sources} or more '
                       f'separated by commas, got {config.data.source!r}')
    if len(tuple(g.lambdas)) != 4:
      raise ValueError(f'config.gan.lambdas: four weights (cycle, identity, '
                       f'GAN, emotion), got {tuple(g.lambdas)}')
    for field, value, known in (
        ('gan_form', g.gan_form, losses.gan.GAN_FORMS),
        ('generator_form', g.generator_form, losses.gan.GENERATOR_FORMS),
        ('update_order', g.update_order, UPDATE_ORDERS),
        ('reference_encoder', g.reference_encoder, REFERENCE_ENCODERS),
        ('output_activation', g.output_activation, tuple(nets.ACTIVATIONS))):
      if value not in known:
        raise ValueError(f'config.gan.{field}: unknown {value!r}; known: '
                         f'{", ".join(known)}')
    if g.optimizer not in ('adam', 'sgd'):
      raise ValueError(f'config.gan.optimizer: unknown {g.optimizer!r}; '
                       'known: adam, sgd')
    if not 0.0 < g.select_fraction < 1.0:
      raise ValueError('config.gan.select_fraction: must be in (0, 1), got '
                       f'{g.select_fraction}')

  def __init__(self, config, num_classes, class_counts=None):
    super().__init__(config, num_classes, class_counts)
    g = self.hparams = config.gan
    self.num_sources = len(pipeline.source_names(config.data))
    self.lambdas = tuple(float(x) for x in g.lambdas)
    # Source decoders/discriminators: one per corpus for the corpus-aware
    # methods, one for the concatenated sources otherwise.
    self.decoders = self.num_sources if self.attention else 1
    self.dim = None  # Feature size, known at init.
    self._nets = None

  # --- networks -----------------------------------------------------------

  def nets(self, dim: int) -> dict:
    """name -> module, for feature size `dim`."""
    g, c = self.hparams, self.num_classes
    enc, dec = tuple(g.encoder), tuple(reversed(g.encoder[:-1])) + (dim,)
    bn = bool(g.batch_norm)
    out = {}
    clf = tuple(g.classifier) + (c,)
    out['f_clf'] = nets.FeedForward(clf, batch_norm=bn)
    if self.needs_source_classifier:
      out['f_s'] = nets.FeedForward(clf, batch_norm=bn)
    if self.feature_adaptation:
      out['d_feat'] = nets.FeedForward(
          tuple(g.feature_discriminator) + (1,),
          batch_norm=bool(g.discriminator_batch_norm))
    if not self.generator:
      return out
    out['enc_s'] = nets.FeedForward(enc, 'relu', bn)
    out['dec_t'] = nets.FeedForward(dec, g.output_activation, bn)
    if not self.adversarial:
      return out
    out['enc_t'] = nets.FeedForward(enc, 'relu', bn)
    disc = tuple(g.discriminator) + (1,)
    dbn = bool(g.discriminator_batch_norm)
    for i in range(self.decoders):
      out[f'dec_s{i}'] = nets.FeedForward(dec, g.output_activation, bn)
      out[f'd_s{i}'] = nets.FeedForward(disc, batch_norm=dbn)
    out['d_t'] = nets.FeedForward(disc, batch_norm=dbn)
    if self.attention:
      out['attention'] = nets.CorpusAttention(g.attention_size)
    return out

  @property
  def needs_source_classifier(self) -> bool:
    return bool(self.emotion) and self.lambdas[3] > 0

  def init_variables(self, rng, batch):
    dim = batch['source']['features'].shape[-1]
    self.dim = dim
    self._nets = self.nets(dim)
    params, stats = {}, {}
    cond = self.num_classes if self.conditional else 0
    h = self.hparams.encoder[-1]
    for k, (name, net) in enumerate(sorted(self._nets.items())):
      key = jax.random.fold_in(rng, k)
      if name == 'attention':
        v = net.init(key, jnp.zeros((2, self.num_sources, h)),
                     jnp.zeros((2, h)))
      else:
        width = {'d_feat': self.hparams.classifier[-1]}.get(
            name, h if name.startswith('dec') else dim)
        if name in ('enc_s', 'enc_t'):
          width += cond
        v = net.init(key, jnp.zeros((2, width)), train=False)
      params[name] = v['params']
      if 'batch_stats' in v:
        stats[name] = v['batch_stats']
    return {'params': params, 'batch_stats': stats}

  def net(self, name):
    if self._nets is None:
      raise RuntimeError('init_variables first')
    return self._nets[name]

  def apply(self, name, params, stats, x, *, train):
    """(output, hidden, new stats) of component `name`."""
    net = self.net(name)
    variables = {'params': params[name]}
    if name in stats:
      variables['batch_stats'] = stats[name]
    if train and name in stats:
      (y, h), upd = net.apply(variables, x, train=True,
                              mutable=['batch_stats'])
      return y, h, {**stats, name: upd['batch_stats']}
    y, h = net.apply(variables, x, train=train)
    return y, h, stats

  def logits(self, variables, features, lengths):
    del lengths
    y, _, _ = self.apply('f_clf', variables['params'],
                         variables['batch_stats'], features, train=False)
    return y

  # --- parameter groups ---------------------------------------------------

  def groups(self) -> dict:
    g = self.hparams
    comps = sorted(self.nets(1))  # The names alone do not depend on sizes.
    out = {'classifier': phases_lib.Group(
        'classifier', ('f_clf',), self._optimizer(g.lr_classifier))}
    if 'f_s' in comps:
      out['source_classifier'] = phases_lib.Group(
          'source_classifier', ('f_s',),
          self._optimizer(g.lr_source_classifier))
    gens = tuple(c for c in comps if c.startswith(('enc_', 'dec_')))
    if gens:
      out['generators'] = phases_lib.Group(
          'generators', gens,
          self._optimizer(g.lr_generators, g.adam_b1))
    discs = tuple(c for c in comps if c.startswith('d_') and c != 'd_feat')
    if discs:
      out['discriminators'] = phases_lib.Group(
          'discriminators', discs,
          self._optimizer(g.lr_discriminators, g.adam_b1))
    if 'attention' in comps:
      out['attention'] = phases_lib.Group(
          'attention', ('attention',),
          self._optimizer(g.lr_attention))
    if 'd_feat' in comps:
      out['feature_discriminator'] = phases_lib.Group(
          'feature_discriminator', ('d_feat',),
          self._optimizer(g.lr_classifier))
    return out

  def _optimizer(self, lr, b1=0.9):
    g = self.hparams
    if g.optimizer == 'adam':
      return optax.adam(lr, b1=b1, eps=g.adam_eps)
    return optax.sgd(lr)

  # --- data ---------------------------------------------------------------

  def arrays(self, arrays, seed):
    """Adds the sets the phases draw from (see `phases`)."""
    rng = np.random.default_rng([seed, 7])
    out = dict(arrays)
    k = self.num_classes
    src = arrays['source']
    src = dict(src, soft_label=np.eye(k, dtype=np.float32)[src['label']])
    out['source'] = src
    # Class-balanced random up-sampling (sec. 4.2), per source corpus for
    # the corpus-aware methods, of the concatenated sources otherwise; the
    # corpora (and the target) are then up-sampled to a common size so that
    # they pair.
    names = ([f'source{i}' for i in range(self.num_sources)]
             if self.attention else ['source'])
    balanced = {}
    for name in names:
      labels = arrays[name]['label']
      balanced[name] = pipeline.balance_classes(labels, rng)
    size = max(len(v) for v in balanced.values())
    n_t = len(arrays['target']['features'])
    for i, name in enumerate(names):
      idx = pipeline.upsample(balanced[name], size, rng)
      out[f'up_s{i}'] = pipeline.take(
          dict(arrays[name], soft_label=np.eye(k, dtype=np.float32)[
              arrays[name]['label']]), idx)
    out['up_t'] = pipeline.take(arrays['target'], pipeline.upsample(
        np.arange(n_t), max(size, n_t), rng))
    self.generated_size = size
    if not self.generator:
      # The DNN's selection set: 10% of the sources held out.
      perm = rng.permutation(len(src['features']))
      n_sel = self._num_select(len(perm))
      out['select'] = pipeline.take(src, perm[:n_sel])
      out['augmented'] = pipeline.take(src, perm[n_sel:])
    return out

  # --- phases -------------------------------------------------------------

  def phases(self, arrays):
    g = self.hparams
    out = []
    up = {f's{i}': f'up_s{i}' for i in range(self.decoders)}
    up['t'] = 'up_t'
    if self.needs_source_classifier:
      out.append(phases_lib.Phase(
          'source_classifier', functools.partial(
              self._classifier_step, 'f_s', 'source_classifier', len(out)),
          groups=('source_classifier',), epochs=g.source_classifier_epochs,
          streams={'train': 'source'}))
    if self.generator:
      out.append(phases_lib.Phase(
          'pretrain', functools.partial(self._pretrain_step, len(out)),
          groups=self._generator_groups(), epochs=g.pretrain_epochs,
          streams=up, epoch_arrays='up_s0'))
    if self.generator and self.adversarial:
      out.append(phases_lib.Phase(
          'adversarial', functools.partial(self._adversarial_step, len(out)),
          groups=self._generator_groups() + ('discriminators',),
          epochs=g.adversarial_epochs, streams=up, epoch_arrays='up_s0',
          produce=self._produce))
    elif self.generator:
      out[-1] = dataclasses.replace(out[-1], produce=self._produce)
    streams = {'train': 'augmented'}
    groups = ('classifier',)
    if self.feature_adaptation:
      streams['target'] = 'target'
      groups += ('feature_discriminator',)
    out.append(phases_lib.Phase(
        'classifier', functools.partial(self._final_classifier_step,
                                        len(out)),
        groups=groups, epochs=g.classifier_epochs, streams=streams,
        epoch_size=(len(arrays['augmented']['features'])
                    if 'augmented' in arrays else
                    len(arrays['source']['features']) + self.generated_size
                    - self._num_select(self.generated_size)),
        selection=phases_lib.Selection(
            'select', every=max(1, int(g.select_every)),
            patience=int(g.patience), groups=('classifier',))))
    return out

  def _generator_groups(self):
    return ('generators',) + (('attention',) if self.attention else ())

  # --- steps --------------------------------------------------------------

  def _classifier_step(self, comp, group, phase, state, batch):
    """Cross-entropy of `comp` against the batch's (soft) labels."""
    del phase
    b = batch['train']

    def loss_fn(p):
      y, _, stats = self.apply(comp, p, state.batch_stats, b['features'],
                               train=True)
      loss = losses.soft_cross_entropy(y, b['soft_label'])
      acc = jnp.mean(jnp.argmax(y, -1) == jnp.argmax(b['soft_label'], -1))
      return loss, (stats, acc)

    (loss, (stats, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    state = phases_lib.apply_group_updates(state, self.groups(), group,
                                           {comp: grads[comp]})
    state = state.replace(batch_stats=stats, step=state.step + 1)
    return state, {'loss': loss, 'accuracy': acc}

  def _final_classifier_step(self, phase, state, batch):
    if not self.feature_adaptation:
      return self._classifier_step('f_clf', 'classifier', phase, state, batch)
    return self._cycada_classifier_step(state, batch)

  def _cycada_classifier_step(self, state, batch):
    """F_clf's task loss on sources + fakes, and a feature discriminator on
    its hidden layer: D_feat learns (augmented = 1, target = 0), then F_clf
    learns the task and to make target features look like source ones."""
    b, t = batch['train'], batch['target']
    w = float(self.hparams.feature_weight)
    groups = self.groups()
    # The target passes through F_clf's batch norm in inference mode, as it
    # does at evaluation: its running statistics stay those of sources +
    # fakes, as in every other method of the family. With the target's
    # batches in them (separate passes, or one joint batch) F_clf scored
    # chance on URDU from CASIA + EMOVO even with feature_weight = 0.
    n = b['features'].shape[0]
    _, h_s, _ = self.apply('f_clf', state.params, state.batch_stats,
                           b['features'], train=True)
    _, h_t, _ = self.apply('f_clf', state.params, state.batch_stats,
                           t['features'], train=False)
    h = jax.lax.stop_gradient(jnp.concatenate([h_s, h_t]))

    def d_loss(p):
      d, _, stats = self.apply('d_feat', p, state.batch_stats, h, train=True)
      return losses.gan_discriminator_loss(d[:n, 0], d[n:, 0]), stats

    (ld, d_stats), grads = jax.value_and_grad(d_loss, has_aux=True)(
        state.params)
    state = phases_lib.apply_group_updates(
        state, groups, 'feature_discriminator', {'d_feat': grads['d_feat']})
    state = state.replace(batch_stats=d_stats)

    def c_loss(p):
      y, _, stats = self.apply('f_clf', p, state.batch_stats, b['features'],
                               train=True)
      _, ht, _ = self.apply('f_clf', p, stats, t['features'], train=False)
      d, _, _ = self.apply('d_feat', p, stats, ht, train=False)
      task = losses.soft_cross_entropy(y, b['soft_label'])
      # The target's features should look like the sources' (label 1):
      # ADDA's inverted-label objective.
      adv = jnp.mean(jax.nn.softplus(-d[:, 0]))
      acc = jnp.mean(jnp.argmax(y, -1) == jnp.argmax(b['soft_label'], -1))
      return task + w * adv, (stats, task, adv, acc)

    (loss, (stats, task, adv, acc)), grads = jax.value_and_grad(
        c_loss, has_aux=True)(state.params)
    state = phases_lib.apply_group_updates(state, groups, 'classifier',
                                           {'f_clf': grads['f_clf']})
    state = state.replace(batch_stats=stats, step=state.step + 1)
    return state, {'loss': loss, 'loss_task': task, 'loss_feature_gan': adv,
                   'loss_feature_disc': ld, 'accuracy': acc}

  # Generators. `params`/`stats` are whole trees; each helper returns
  # (output, new stats).

  def _cond(self, x, labels):
    if not self.conditional:
      return x
    return jnp.concatenate(
        [x, jax.nn.one_hot(labels, self.num_classes, dtype=x.dtype)], -1)

  def enc(self, which, p, s, x, labels=None, train=True, memo=None):
    """(code, new stats) of Enc_S / Enc_T.

    With a `memo` dict (one per loss trace), an encoder pass on an input it
    has seen (the same array object and labels) is not computed again: its
    code is reused, so the gradient goes back through one pass, not one
    per use. Its batch-norm running statistics still move once per use, in
    the order of the uses: the pass is run against zero running statistics,
    which leaves (1 - m) * batch statistic, and each use applies
    r <- m r + that, flax's own update.
    """
    name = f'enc_{which}'
    if memo is None or not train or name not in s:
      y, _, s = self.apply(name, p, s, self._cond(x, labels), train=train)
      return y, s
    key = (name, id(x), id(labels))
    if key not in memo:
      zero = jax.tree.map(jnp.zeros_like, s[name])
      y, _, moved = self.apply(name, p, {**s, name: zero},
                               self._cond(x, labels), train=True)
      # x and labels stay referenced, so their ids are not reused.
      memo[key] = (y, moved[name], x, labels)
    y, step = memo[key][:2]
    m = self.net(name).bn_momentum
    return y, {**s, name: jax.tree.map(lambda r, d: m * r + d, s[name],
                                       step)}

  def dec(self, name, p, s, h, train=True):
    y, _, s = self.apply(name, p, s, h, train=train)
    return y, s

  def g_st(self, p, s, x, labels=None, train=True, memo=None):
    """G_S->T = Dec_T(Enc_S(x))."""
    h, s = self.enc('s', p, s, x, labels, train, memo)
    return self.dec('dec_t', p, s, h, train)

  def g_ts(self, i, p, s, x, labels=None, train=True, memo=None):
    """G_T->S_i = Dec_S_i(Enc_T(x))."""
    h, s = self.enc('t', p, s, x, labels, train, memo)
    return self.dec(f'dec_s{i}', p, s, h, train)

  def fuse_sources(self, p, s, xs, xt, train=True, memo=None):
    """Eqs. 6-15: (T_fake, alpha, h_i list, new stats)."""
    hs = []
    for x in xs:
      h, s = self.enc('s', p, s, x, train=train, memo=memo)
      hs.append(h)
    ref = 't' if self.hparams.reference_encoder == 'target' else 's'
    h_ref, s = self.enc(ref, p, s, xt, train=train, memo=memo)
    stack = jnp.stack(hs, 1)
    alpha = self.net('attention').apply({'params': p['attention']}, stack,
                                        h_ref)
    t_fake, s = self.dec('dec_t', p, s, losses.fuse(alpha, stack), train)
    return t_fake, alpha, hs, s

  def _pretrain_step(self, phase, state, batch):
    """L1 on random pairings (module docstring)."""
    rng = phases_lib.fold_rng(state, phase)
    groups = self.groups()
    names = self._generator_groups()
    xs, ys, xt = self._unpack(batch)
    if self.conditional:
      ct = jax.random.randint(rng, (xt.shape[0],), 0, self.num_classes)
    else:
      ct = None

    def loss_fn(p):
      s = state.batch_stats
      total, terms = 0.0, {}
      for i, (x, y) in enumerate(zip(xs, ys)):
        fake_t, s = self.g_st(p, s, x, y if self.conditional else None)
        terms[f'l1_st{i}'] = losses.absolute_error(fake_t, xt)
        if self.adversarial:
          fake_s, s = self.g_ts(i if self.attention else 0, p, s, xt, ct)
          terms[f'l1_ts{i}'] = losses.absolute_error(fake_s, x)
      if self.attention:
        t_fake, _, _, s = self.fuse_sources(p, s, xs, xt)
        terms['l1_fused'] = losses.absolute_error(t_fake, xt)
      total = sum(terms.values())
      return total, (s, terms)

    (loss, (stats, terms)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    for name in names:
      state = phases_lib.apply_group_updates(
          state, groups, name,
          {c: grads[c] for c in groups[name].components})
    state = state.replace(batch_stats=stats, step=state.step + 1)
    return state, dict(terms, loss=loss)

  def _unpack(self, batch):
    xs = [batch[f's{i}']['features'] for i in range(self.decoders)]
    ys = [batch[f's{i}']['label'] for i in range(self.decoders)]
    return xs, ys, batch['t']['features']

  def generator_losses(self, p, s, xs, ys, xt, rng):
    """Eq. 17's generator terms; (total, (stats, fakes, metrics)).

    fakes: discriminator name -> (real, fake) pairs for its update.
    """
    g = self.hparams
    l_cycle, l_ident, l_gan, l_emo = self.lambdas
    ct = (jax.random.randint(rng, (xt.shape[0],), 0, self.num_classes)
          if self.conditional else None)
    cyc, ident, gan, emo = [], [], [], []
    fakes = {}
    # Enc_S(S_i) feeds G_S->T(S_i) and the fusion, Enc_T(T) every
    # G_T->S_i(T) and the reference: each computed once (`enc`).
    memo = {} if g.share_encoder_passes else None
    for i, (x, y) in enumerate(zip(xs, ys)):
      di = i if self.attention else 0
      c = y if self.conditional else None
      fake_t, s = self.g_st(p, s, x, c, memo=memo)  # G_S->T(S_i)
      rec_s, s = self.g_ts(di, p, s, fake_t, c)  # G_T->S_i(G_S->T(S_i))
      fake_s, s = self.g_ts(di, p, s, xt, ct, memo=memo)  # G_T->S_i(T)
      rec_t, s = self.g_st(p, s, fake_s, ct)  # G_S->T(G_T->S_i(T))
      same_s, s = self.g_ts(di, p, s, x, c)  # G_T->S_i(S_i)
      cyc += [(rec_s, x), (rec_t, xt)]
      ident.append((same_s, x))
      d, _, _ = self.apply(f'd_s{di}', p, s, fake_s, train=True)
      gan.append(losses.gan_generator_loss(d[:, 0], g.gan_form,
                                           g.generator_form))
      fakes[f'd_s{di}'] = (x, fake_s)
      if not self.attention:
        fakes['d_t'] = (xt, fake_t)
      if self.emotion in ('reconstruction', 'conditional') and l_emo > 0:
        z, _, _ = self.apply('f_s', p, s, rec_s, train=False)
        emo.append(losses.cross_entropy(z, y))
        if self.emotion == 'conditional':
          z, _, _ = self.apply('f_s', p, s, fake_s, train=False)
          emo.append(losses.cross_entropy(z, ct))
      elif self.emotion == 'semantic' and l_emo > 0:
        # CyCADA: F_s's labels of the input are kept across each mapping.
        for a, b in ((x, fake_t), (xt, fake_s)):
          za, _, _ = self.apply('f_s', p, s, a, train=False)
          zb, _, _ = self.apply('f_s', p, s, b, train=False)
          emo.append(losses.cross_entropy(
              zb, jnp.argmax(jax.lax.stop_gradient(za), -1)))
    same_t, s = self.g_st(p, s, xt, ct, memo=memo)  # G_S->T(T)
    ident.append((same_t, xt))
    metrics = {}
    if self.attention:
      t_fake, alpha, _, s = self.fuse_sources(p, s, xs, xt, memo=memo)
      fakes['d_t'] = (xt, t_fake)
      metrics['attention_max'] = jnp.mean(jnp.max(alpha, -1))
    d, _, _ = self.apply('d_t', p, s, fakes['d_t'][1], train=True)
    gan.append(losses.gan_generator_loss(d[:, 0], g.gan_form,
                                         g.generator_form))
    lc, li = losses.cycle_loss(cyc), losses.identity_loss(ident)
    lg = sum(gan)
    le = sum(emo) if emo else jnp.zeros(())
    total = l_cycle * lc + l_ident * li + l_gan * lg + l_emo * le
    metrics.update(loss_cycle=lc, loss_identity=li, loss_gan_g=lg,
                   loss_emotion=le)
    return total, (s, fakes, metrics)

  def discriminator_loss(self, p, s, fakes):
    """Sum over discriminators of `gan_discriminator_loss` on (real, fake);
    (loss, new stats)."""
    total = 0.0
    for name, (real, fake) in sorted(fakes.items()):
      d_real, _, s = self.apply(name, p, s, real, train=True)
      d_fake, _, s = self.apply(name, p, s, jax.lax.stop_gradient(fake),
                                train=True)
      total += losses.gan_discriminator_loss(d_real[:, 0], d_fake[:, 0],
                                             self.hparams.gan_form)
    return total, s

  def _adversarial_step(self, phase, state, batch):
    """One generator update and one discriminator update (module
    docstring); each with its own loss and gradient."""
    rng = phases_lib.fold_rng(state, phase)
    groups = self.groups()
    xs, ys, xt = self._unpack(batch)
    gen_names = self._generator_groups()
    metrics = {}

    def g_update(state):
      def loss_fn(p):
        return self.generator_losses(p, state.batch_stats, xs, ys, xt, rng)
      (loss, (stats, fakes, m)), grads = jax.value_and_grad(
          loss_fn, has_aux=True)(state.params)
      for name in gen_names:
        state = phases_lib.apply_group_updates(
            state, groups, name,
            {c: grads[c] for c in groups[name].components})
      metrics.update(m, loss_generators=loss)
      # Discriminator statistics are the discriminator update's business.
      stats = {k: (state.batch_stats[k] if k.startswith('d_') else v)
               for k, v in stats.items()}
      return state.replace(batch_stats=stats), fakes

    def d_update(state, fakes):
      def loss_fn(p):
        return self.discriminator_loss(p, state.batch_stats, fakes)
      (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params)
      state = phases_lib.apply_group_updates(
          state, groups, 'discriminators',
          {c: grads[c] for c in groups['discriminators'].components})
      metrics['loss_discriminators'] = loss
      return state.replace(batch_stats=stats)

    if self.hparams.update_order == 'g_then_d':
      state, fakes = g_update(state)
      state = d_update(state, fakes)
    else:
      _, (_, fakes, _) = self.generator_losses(
          state.params, state.batch_stats, xs, ys, xt, rng)
      state = d_update(state, fakes)
      state, _ = g_update(state)
    state = state.replace(step=state.step + 1)
    metrics['loss'] = metrics['loss_generators'] + metrics[
        'loss_discriminators']
    return state, metrics

  # --- generation (Algorithm 1) -------------------------------------------

  def _produce(self, state, arrays):
    """The fakes of one pass over the balanced, up-sampled sources, split
    into the selection set and the augmented training set."""
    k = self.num_classes
    size = self.generated_size
    rng = np.random.default_rng([int(self.config.seed), 11])
    m = int(self.config.train.batch_size)
    n_batches = -(-size // m)
    total = n_batches * m
    src_order = [rng.permutation(len(arrays[f'up_s{i}']['features']))
                 for i in range(self.decoders)]
    t_order = rng.permutation(len(arrays['up_t']['features']))
    pos = np.arange(total)
    src_idx = [o[pos % len(o)] for o in src_order]
    t_idx = t_order[pos % len(t_order)]
    xs = [arrays[f'up_s{i}']['features'][j] for i, j in enumerate(src_idx)]
    ys = [arrays[f'up_s{i}']['label'][j] for i, j in enumerate(src_idx)]
    xt = arrays['up_t']['features'][t_idx]
    fake, alpha = _generate(self, state.params, state.batch_stats, xs, ys,
                            xt, m)
    fake, alpha = fake[:size], alpha[:size]
    onehots = np.stack([np.eye(k, dtype=np.float32)[y[:size]] for y in ys],
                       1)
    soft = np.einsum('bc,bck->bk', alpha, onehots).astype(np.float32)
    gen = {'features': fake.astype(np.float32), 'soft_label': soft,
           'label': soft.argmax(-1).astype(np.int32),
           'length': np.ones(size, np.int32),
           'attention': alpha.astype(np.float32),
           'reference': arrays['up_t']['index'][t_idx[:size]].astype(
               np.int32)}
    perm = rng.permutation(size)
    n_sel = self._num_select(size)
    select = pipeline.take(gen, perm[:n_sel])
    train_part = pipeline.take(gen, perm[n_sel:])
    augmented = pipeline.concat_arrays(arrays['source'], train_part)
    return {'generated': gen, 'select': select, 'augmented': augmented}

  def _num_select(self, size: int) -> int:
    return max(1, int(round(self.hparams.select_fraction * size)))

  # --- analyses -----------------------------------------------------------

  def analyse(self, state, arrays, data, workdir):
    """Attention weights (Table 7, Fig. 3) and the embedding picture
    (Fig. 2) of the corpus-aware methods; {} for the others."""
    del state
    if not self.attention or 'generated' not in arrays:
      return {}
    from jaxser import gan_analysis  # pylint: disable=g-import-not-at-top
    return gan_analysis.analyse(self, arrays, data, workdir)


def _generate(method, params, stats, xs, ys, xt, batch_size):
  """T_fake and alpha for rows of (xs, ys, xt), `batch_size` at a time, in
  inference mode (batch norm's running statistics)."""

  @jax.jit
  def one(params, stats, x_list, y_list, x_t):
    if method.attention:
      t_fake, alpha, _, _ = method.fuse_sources(params, stats, x_list, x_t,
                                                train=False)
      return t_fake, alpha
    c = y_list[0] if method.conditional else None
    t_fake, _ = method.g_st(params, stats, x_list[0], c, train=False)
    return t_fake, jnp.ones((x_t.shape[0], 1), t_fake.dtype)

  fakes, alphas = [], []
  for lo in range(0, len(xt), batch_size):
    f, a = one(params, stats, [x[lo:lo + batch_size] for x in xs],
               [y[lo:lo + batch_size] for y in ys], xt[lo:lo + batch_size])
    fakes.append(np.asarray(f))
    alphas.append(np.asarray(a))
  return np.concatenate(fakes), np.concatenate(alphas)


@base.register('dnn')
class DNN(GanFamily):
  generator = False


@base.register('rp_autoencoder')
class RPAutoencoder(GanFamily):
  adversarial = False


@base.register('cyclegan')
class CycleGAN(GanFamily):
  pass


@base.register('cycle_emotion_gan')
class CycleEmotionGAN(GanFamily):
  emotion = 'reconstruction'


@base.register('cycada')
class CyCADA(GanFamily):
  emotion = 'semantic'
  feature_adaptation = True


@base.register('ccemogan')
class CCEmoGAN(GanFamily):
  conditional = True
  emotion = 'conditional'


@base.register('cacygan')
class CACyGAN(GanFamily):
  attention = True
  min_sources = 2


@base.register('caemocygan')
class CAEmoCyGAN(GanFamily):
  attention = True
  min_sources = 2
  emotion = 'reconstruction'


def hparams() -> ml_collections.ConfigDict:
  """`config.gan`: the family's hyper-parameters (Table 2 and sec. 4.2)."""
  g = ml_collections.ConfigDict()
  g.encoder = (1000, 500, 256)  # Enc_S, Enc_T; decoders mirror it.
  g.discriminator = (1000, 500)  # D_S_i, D_T hidden layers (then 1).
  g.classifier = (500, 100)  # F_clf, F_s hidden layers (then C).
  g.feature_discriminator = (500, 100)  # CyCADA's D_feat (not in the paper).
  g.attention_size = 128  # AH of eq. 10.
  g.lambdas = (10.0, 10.0, 1.0, 10.0)  # cycle, identity, GAN, emotion.
  g.gan_form = 'log'  # log (eqs. 1-2) | least_squares.
  g.generator_form = 'minimax'  # minimax (as printed) | non_saturating.
  g.update_order = 'g_then_d'  # g_then_d | d_then_g (the paper is silent).
  g.reference_encoder = 'target'  # target: Enc_T (eq. 7) | source (Alg. 1).
  g.batch_norm = True
  g.discriminator_batch_norm = True
  # Each encoder pass on the same input once per generator loss (`enc`):
  # the same loss and running statistics, the gradient summed before one
  # backward pass instead of after several (rounding differs).
  g.share_encoder_passes = True
  g.output_activation = 'tanh'  # Decoders' output; features are in [-1, 1].
  g.lr_generators = 2e-5
  g.lr_discriminators = 2e-5  # Table 2 lists one rate for G and D.
  g.lr_attention = 2e-2
  g.lr_classifier = 2e-4
  g.lr_source_classifier = 2e-4
  g.optimizer = 'adam'  # Table 2; sgd (no moments) for tests.
  g.adam_b1 = 0.9
  g.adam_eps = 1e-8
  g.feature_weight = 1.0  # CyCADA's feature-level GAN weight.
  g.source_classifier_epochs = 20.0
  g.pretrain_epochs = 20.0  # Sec. 4.2.
  g.adversarial_epochs = 30.0  # Not in the paper.
  g.classifier_epochs = 60.0  # Sec. 4.1's DNN schedule.
  g.select_fraction = 0.1  # Held-out fakes (sources for the DNN).
  g.select_every = 10  # Steps between selection evaluations.
  g.patience = 10  # Evaluations without improvement; 0: never stop early.
  g.plot_embedding = False  # DIR/embedding_<method>.png (t-SNE).
  return g


def config(method: str) -> ml_collections.ConfigDict:
  """The experiment config every configs/<method>.py of the family starts
  from: two synthetic sources and a synthetic target (real corpora through
  data.source/target/root), `arousal3`, openSMILE `is10` functionals
  min-max normalised per corpus to [-1, 1] (sec. 3.2), batch 256, and
  `config.gan` = `hparams()`."""
  from jaxser import config as config_lib  # pylint: disable=g-import-not-at-top
  c = config_lib.base_config()
  c.method = method
  c.data.source = 'synth_acted_a,synth_acted_b'
  c.data.target = 'synth_natural'
  c.data.task = 'arousal3'
  c.data.features = 'is10'
  c.data.normalize = 'corpus_minmax'
  c.train.batch_size = 256
  c.train.eval_every = 0
  c.train.checkpoint_every = 100
  c.gan = hparams()
  return c
