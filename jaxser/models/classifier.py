"""The emotion model every method trains: (front end ->) network -> head.

A network (`jaxser.models.registry`) maps its input to an utterance embedding
and, where it has one, a frame sequence; the head maps embeddings to emotion
logits. Methods add their own heads (discriminators, projections) around
this model and read its outputs (`classify_outputs`):

  embedding        (B, d) the utterance embedding E (what the adaptation
                   losses align).
  frames, frame_lengths  (B, T, d_f), (B,): the frame sequence, where the
                   network has one.
  logits           (B, C) utterance logits: head(E), or for networks that
                   predict from their frames (DIFL's segments) the log of the
                   mean posterior of the valid frames.
  instances, instance_logits, instance_mask  (B, K, d), (B, K, C), (B, K):
                   what the emotion loss classifies: each utterance (K = 1,
                   its embedding), or every valid frame of a network that
                   predicts from its frames (DIFL trains on segments).

The network and the head share the model's parameter scope
(`nn.share_scope`), so a model's parameters are the network's and the
head's side by side ({'Backbone_0', 'emotion_encoder', 'emotion_head'} for
the CNN + TCN), as the networks had them when each method built its own.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxser.models import cnn_tcn


def average_frame_posteriors(frame_logits: jnp.ndarray,
                             mask: jnp.ndarray) -> jnp.ndarray:
  """Utterance log-posteriors from frame (segment) logits.

    log p(y | u) = log( sum_s m_s softmax(z_s)_y / max(sum_s m_s, 1) ),

  the log of the mean posterior of the utterance's valid frames (m_s = 1);
  DIFL predicts an utterance from its segments this way. Its argmax is the
  utterance prediction. Rows with no valid frame give log(tiny), finite.

  Args:
    frame_logits: (B, S, C) per-frame logits.
    mask: (B, S) bool or 0/1, the valid frames.

  Returns:
    (B, C) log of the mean frame posterior.
  """
  m = mask.astype(frame_logits.dtype)[..., None]
  p = jnp.sum(jax.nn.softmax(frame_logits, axis=-1) * m, axis=1)
  p = p / jnp.maximum(jnp.sum(m, axis=1), 1.0)
  return jnp.log(jnp.maximum(p, jnp.finfo(p.dtype).tiny))


class DenseHead(nn.Module):
  """The default emotion head: one Dense layer, `emotion_head`."""
  num_classes: int

  @nn.compact
  def __call__(self, x, *, train: bool):
    del train
    return nn.Dense(self.num_classes, name='emotion_head')(x)


def classify_outputs(out: dict, head: nn.Module, *, predict_from_frames: bool,
                     train: bool) -> dict:
  """A network's outputs plus the head's (module docstring): logits,
  instances, instance_logits, instance_mask."""
  out = dict(out)
  if predict_from_frames:
    frames = out['frames']
    b, s = frames.shape[:2]
    mask = cnn_tcn.time_mask(out['frame_lengths'], s) > 0
    # Every frame of the batch as one row, as the head sees embeddings.
    frame_logits = head(frames.reshape((b * s,) + frames.shape[2:]),
                        train=train).reshape((b, s, -1))
    out.update(logits=average_frame_posteriors(frame_logits, mask),
               instances=frames, instance_logits=frame_logits,
               instance_mask=mask)
  else:
    e = out['embedding']
    logits = head(e, train=train)
    out.update(logits=logits, instances=e[:, None],
               instance_logits=logits[:, None],
               instance_mask=jnp.ones(e.shape[:1] + (1,), bool))
  return out


class EmotionModel(nn.Module):
  """Front end (optional) -> network -> emotion head, in one scope.

  Attributes:
    network: the registered network (see `jaxser.models.registry`).
    head: maps (..., d) embeddings to (..., C) logits (`DenseHead`, or the
      network's own classifier).
    frontend: None, or an on-device front end (`jaxser.models.frontend`):
      (waveforms, sample counts) -> (features, frame counts), run first.
    predict_from_frames: whether utterances are predicted from the mean
      posterior of their frames (the network's declaration).
  """
  network: nn.Module
  head: nn.Module
  frontend: Any = None
  predict_from_frames: bool = False

  def setup(self):
    nn.share_scope(self, self.network)
    nn.share_scope(self, self.head)

  def __call__(self, x, lengths, *, train: bool) -> dict:
    if self.frontend is not None:
      x, lengths = self.frontend(x, lengths)
    return classify_outputs(self.network(x, lengths, train=train), self.head,
                            predict_from_frames=self.predict_from_frames,
                            train=train)

  def classify(self, x, lengths):
    """(B, C) utterance logits in inference mode."""
    return self(x, lengths, train=False)['logits']
