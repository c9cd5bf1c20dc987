"""GST-Tacotron 2 trained on a TTS corpus with MMD-SER's soft labels (Cai et
al., ICASSP 2021, sections 3.2 and 4.2): emotion-controllable speech
synthesis from an emotion-unlabelled TTS corpus.

The network is `jaxser.tts.tacotron.GSTTacotron` (its docstring: the model),
the data `jaxser.tts.data` (a TTS corpus, `config.data.target`, as padded
array sets with the soft labels of `config.tts.labels`). One phase of
`config.train.steps` teacher-forced steps on batches of
`config.train.batch_size` (32 in the paper) from the 'train' set, with

  L = L1(mel_before) + L1(mel_after) + L1(linear) + BCE(stop)
      + emotion_weight * CE(emotion predictor, soft labels)

(`jaxser.tts.losses`; the paper names the L1 of the mel and linear
spectrograms and the emotion CE; the stop-token BCE and the L1 before the
post-net are Tacotron 2's; our-2d's CE is the sum of the arousal and valence
CEs; base-4cls has no CE). Adam (b1 0.9, b2 0.999, eps 1e-6) with the Noam
schedule (initial 2e-3, 4000 warm-up steps, decay power -0.5), gradients
clipped to global norm `config.tts.grad_clip` (1.0, Tacotron's usual).

This method brings its own data (`own_data`): the train loop asks it for
its array sets (`load_arrays`), its example batch and, at the end, its
results (`final_results`: the held-out losses; no SER metrics). Speech is
synthesised from the run with `python -m jaxser.synthesize`.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxser import io as io_lib
from jaxser import phases as phases_lib
from jaxser.methods import base
from jaxser.tts import audio as audio_lib
from jaxser.tts import data as tts_data
from jaxser.tts import losses as tts_losses
from jaxser.tts import tacotron

ALIGNMENT_PNG = 'alignment.png'


@base.register('gst_tacotron')
class GSTTacotronMethod(base.Method):
  own_data = True

  def __init__(self, config, num_classes: int = 0, class_counts=None):
    del class_counts
    self.config = config
    self.num_classes = num_classes
    self.check_config(config)
    tts = config.tts
    self.audio = audio_lib.AudioParams.from_config(tts.audio)
    self.model_cfg = tacotron.ModelConfig.from_config(
        tts.model, tts.variant, self.audio.n_mels, self.audio.n_linear)
    self.model = tacotron.GSTTacotron(self.model_cfg)
    self.schedule = tts_losses.noam_schedule(
        tts.learning_rate, tts.warmup_steps, tts.decay_power)
    self.kinds = ({} if tts.variant == 'base-4cls'
                  else tts_data.label_kinds(tts.variant))

  @classmethod
  def check_config(cls, config) -> None:
    tts = config.get('tts')
    if tts is None:
      raise ValueError('config.tts: missing; start from configs/gst_tacotron.py')
    if tts.variant not in tacotron.VARIANTS:
      raise ValueError(f'config.tts.variant: unknown {tts.variant!r}; known: '
                       f'{", ".join(tacotron.VARIANTS)}')
    if tts.variant != 'base-4cls':
      for field, _ in tts_data.label_kinds(tts.variant).values():
        if not tts.get(field):
          raise ValueError(
              f'config.tts.{field}: {tts.variant} learns from soft labels; '
              'give a python -m jaxser.label output folder of the TTS corpus')
    if tts.max_seconds <= 0 or tts.max_chars <= 0:
      raise ValueError('config.tts.max_seconds / max_chars: must be > 0')
    if tts.model.outputs_per_step < 1:
      raise ValueError('config.tts.model.outputs_per_step: must be >= 1')
    if not 0.0 <= tts.val_fraction < 1.0:
      raise ValueError('config.tts.val_fraction: must be in [0, 1), got '
                       f'{tts.val_fraction}')

  # --- data ---------------------------------------------------------------

  def load_arrays(self) -> dict:
    return tts_data.load_arrays(self.config)

  def arrays(self, arrays, seed):
    del seed
    return arrays

  def example_batch(self, arrays, batch_size: int) -> dict:
    """A batch of zeros shaped like the 'train' stream's."""
    return {'train': {k: np.zeros((batch_size,) + v.shape[1:], v.dtype)
                      for k, v in arrays['train'].items()}}

  # --- model --------------------------------------------------------------

  def init_variables(self, rng, batch):
    b = batch['train']
    v = self.model.init({'params': rng, 'dropout': rng}, b['text'],
                        b['text_length'], jnp.asarray(b['mel'], jnp.float32),
                        b['frames'], train=False)
    return {'params': {'tts': v['params']},
            'batch_stats': {'tts': v['batch_stats']}}

  def optimizer(self) -> optax.GradientTransformation:
    tts = self.config.tts
    tx = optax.adam(self.schedule, b1=tts.adam_b1, b2=tts.adam_b2,
                    eps=tts.adam_eps)
    if tts.grad_clip:
      tx = optax.chain(optax.clip_by_global_norm(tts.grad_clip), tx)
    return tx

  def groups(self) -> dict:
    return {'tts': phases_lib.Group('tts', ('tts',), self.optimizer())}

  def phases(self, arrays):
    del arrays
    return [phases_lib.Phase('train', self._step, groups=('tts',),
                             steps=self.config.train.steps,
                             streams={'train': 'train'})]

  def outputs(self, variables, b, rng, train: bool):
    """The model's teacher-forced outputs on batch `b` (and, training, the
    new batch statistics)."""
    args = (b['text'], b['text_length'], jnp.asarray(b['mel'], jnp.float32),
            b['frames'])
    if train:
      return self.model.apply(variables, *args, train=True,
                              mutable=['batch_stats'], rngs={'dropout': rng})
    return self.model.apply(variables, *args, train=False,
                            rngs={'dropout': rng}), None

  def loss_terms(self, out, b):
    """(loss, metrics) of the model's outputs `out` on batch `b`."""
    r = self.model_cfg.outputs_per_step
    mel = jnp.asarray(b['mel'], jnp.float32)
    lin = jnp.asarray(b['linear'], jnp.float32)
    m = {'mel_before_l1': tts_losses.masked_l1(out['mel_before'], mel,
                                               b['frames']),
         'mel_l1': tts_losses.masked_l1(out['mel_after'], mel, b['frames']),
         'linear_l1': tts_losses.masked_l1(out['linear'], lin, b['frames']),
         'stop_bce': tts_losses.stop_loss(out['stop'], b['frames'], r)}
    loss = m['mel_before_l1'] + m['mel_l1'] + m['linear_l1'] + m['stop_bce']
    for kind in self.kinds:
      ce = tts_losses.emotion_loss(out[kind], b[kind], b[f'{kind}_mask'])
      mask = b[f'{kind}_mask']
      hit = jnp.argmax(out[kind], -1) == jnp.argmax(b[kind], -1)
      m[f'{kind}_ce'] = ce
      m[f'{kind}_accuracy'] = jnp.sum(hit * mask) / jnp.maximum(
          jnp.sum(mask), 1.0)
      loss = loss + self.config.tts.emotion_weight * ce
    # How sharply each decoder step attends (1: one character per step).
    steps = -(-b['frames'] // r)
    valid = tts_losses.frame_mask(steps, out['alignment'].shape[1])
    m['attention_focus'] = jnp.sum(out['alignment'].max(-1) * valid) / (
        jnp.maximum(jnp.sum(valid), 1.0))
    return loss, m

  def _step(self, state, batch):
    b = batch['train']
    rng = phases_lib.fold_rng(state, 0)

    def loss_fn(params):
      out, upd = self.outputs({'params': params['tts'],
                               'batch_stats': state.batch_stats['tts']},
                              b, rng, train=True)
      loss, metrics = self.loss_terms(out, b)
      return loss, (upd['batch_stats'], metrics)

    (loss, (stats, metrics)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    # The one phase's step is Adam's update count, the schedule's step.
    lr = self.schedule(state.step)
    state = phases_lib.apply_group_updates(state, self.groups(), 'tts', grads)
    state = state.replace(batch_stats={'tts': stats}, step=state.step + 1)
    return state, dict(metrics, loss=loss, learning_rate=lr,
                       grad_norm=optax.global_norm(grads))

  # --- results ------------------------------------------------------------

  def evaluate(self, variables, arrays, batch_size: int) -> dict:
    """Mean teacher-forced losses over an array set (per-utterance weights:
    each chunk's means weighted by its rows)."""
    fn = jax.jit(lambda v, b: self.loss_terms(
        self.outputs(v, b, jax.random.PRNGKey(0), False)[0], b))
    n = len(arrays['frames'])
    sums: dict[str, float] = {}
    for start in range(0, n, batch_size):
      b = {k: v[start:start + batch_size] for k, v in arrays.items()}
      loss, m = fn(variables, b)
      rows = len(b['frames'])
      for k, v in dict(m, loss=loss).items():
        sums[k] = sums.get(k, 0.0) + float(v) * rows
    return {k: v / n for k, v in sums.items()}

  def final_results(self, state, arrays, workdir: str) -> dict:
    """results.json of a TTS run: the teacher-forced losses on the held-out
    set ('val'; the training set when there is none), the data counts, and
    the attention alignment of one held-out utterance (alignment.png)."""
    variables = {'params': state.params['tts'],
                 'batch_stats': state.batch_stats['tts']}
    name = 'val' if 'val' in arrays else 'train'
    bs = min(self.config.train.eval_batch_size, len(arrays[name]['frames']))
    result = {f'{name}/{k}': v for k, v in
              self.evaluate(variables, arrays[name], bs).items()}
    result.update(
        task='tts', variant=self.config.tts.variant,
        corpus=self.config.data.target,
        num_train=int(len(arrays['train']['frames'])),
        num_val=int(len(arrays['val']['frames'])) if 'val' in arrays else 0)
    if jax.process_index() == 0:
      b = {k: v[:1] for k, v in arrays[name].items()}
      out, _ = self.outputs(variables, b, jax.random.PRNGKey(0), False)
      save_alignment(np.asarray(out['alignment'][0]),
                     int(b['text_length'][0]),
                     -(-int(b['frames'][0]) // self.model_cfg.outputs_per_step),
                     os.path.join(workdir, ALIGNMENT_PNG))
    return result


def save_alignment(alignment: np.ndarray, text_length: int, steps: int,
                   path: str, title: str = '') -> None:
  """A (decoder steps, characters) attention alignment as a picture."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.imshow(alignment[:steps, :text_length].T, aspect='auto', origin='lower',
            interpolation='none')
  ax.set_xlabel('decoder step')
  ax.set_ylabel('character')
  if title:
    ax.set_title(title)
  fig.tight_layout()
  io_lib.save_figure(fig, path, dpi=100)
  plt.close(fig)
