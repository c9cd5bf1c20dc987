"""WavLM (Chen et al. 2022), a Flax port of Hugging Face's `WavLMModel` that
loads its checkpoints offline (wavlm-base, base-plus, large). It is wav2vec
2.0 / HuBERT (`jaxser.models.wav2vec2`: the same conv feature encoder,
feature projection, positional convolution, post-norm or pre-norm blocks
per `do_stable_layer_norm`, masking and normalisation) with a gated relative
position bias in every attention:

  buckets   for a key at offset r = j - i from the query (HF's
            `_relative_positions_bucket`), with n = num_buckets // 2,
            e = n // 2, D = max_bucket_distance:
              b(r) = n [r > 0] + |r|                                if |r| < e
                     n [r > 0] + min(n - 1, e + floor(log(|r| / e)
                                     / log(D / e) (n - e)))       otherwise
  bias      P_h(i, j) = E[b(j - i), h], E (num_buckets, heads) the first
            layer's `rel_attn_embed`; computed once, in layer 0, and passed
            to the others (only layer 0 has E)
  gate      per layer, head h and query i, from the attention's input x_i:
              (a, b) = sigmoid(sum of 4 each of W x_{i,h} + c)  (W: Linear
              head_dim -> 8 `gru_rel_pos_linear`, its 8 outputs summed in
              two groups of four)
              g_{h,i} = a (b * C_h - 1) + 2,  C: `gru_rel_pos_const` (heads)
  attention softmax(Q K^T / sqrt(d_head) + g_{h,i} P_h(i, j) + mask) V

The attention's input x is the block's input (post-norm) or its
LayerNorm (pre-norm), as in HF.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxser.models import hf_checkpoint as hf
from jaxser.models import layers
from jaxser.models import transformer_blocks as tb
from jaxser.models import wav2vec2

MODEL_TYPE = 'wavlm'

SIZE_FIELDS = wav2vec2.SIZE_FIELDS + (
    ('num_buckets', 'num_buckets', 320),
    ('max_bucket_distance', 'max_bucket_distance', 800),
)


def relative_position_buckets(query_length: int, key_length: int,
                              num_buckets: int,
                              max_distance: int) -> jnp.ndarray:
  """(query_length, key_length) int32 bucket of each key offset j - i, as
  HF's WavLMAttention._relative_positions_bucket (float32 logs)."""
  rel = (jnp.arange(key_length)[None, :] -
         jnp.arange(query_length)[:, None])
  n = num_buckets // 2
  buckets = (rel > 0).astype(jnp.int32) * n
  rel = jnp.abs(rel)
  exact = n // 2
  # Where rel < exact the logarithm is not used (and rel may be 0).
  large = jnp.log(jnp.maximum(rel, 1).astype(jnp.float32) / exact)
  large = large / math.log(max_distance / exact) * (n - exact)
  large = jnp.minimum((exact + large).astype(jnp.int32), n - 1)
  return buckets + jnp.where(rel < exact, rel, large)


def position_bias(embedding: jnp.ndarray, length: int,
                  max_distance: int) -> jnp.ndarray:
  """(heads, length, length) ungated bias from `rel_attn_embed`
  (num_buckets, heads)."""
  buckets = relative_position_buckets(length, length, embedding.shape[0],
                                      max_distance)
  return jnp.transpose(embedding[buckets], (2, 0, 1))


def gate(x_heads: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray,
         const: jnp.ndarray) -> jnp.ndarray:
  """(batch, heads, length, 1) gate g of the attention's input split into
  heads (batch, heads, length, head_dim): `gru_rel_pos_linear` (kernel
  (head_dim, 8), bias (8,)) and `gru_rel_pos_const` (1, heads, 1, 1)."""
  proj = jnp.einsum('bhtd,de->bhte', x_heads, kernel) + bias
  proj = proj.reshape(proj.shape[:-1] + (2, 4)).sum(axis=-1)
  a, b = jnp.split(jax.nn.sigmoid(proj), 2, axis=-1)
  return a * (b * const - 1.0) + 2.0


class WavLMAttention(nn.Module):
  """Multi-head self-attention with WavLM's gated relative position bias;
  HF's q/k/v/out projections under BERT's names (query, key, value,
  output). Returns (output, ungated position bias): the bias is computed
  here when `position_bias` is None (layer 0, which holds
  `rel_attn_embed`)."""
  hidden: int
  heads: int
  num_buckets: int
  max_distance: int
  has_relative_position_bias: bool
  dropout: float
  dtype: Any
  deterministic: bool

  @nn.compact
  def __call__(self, x, mask: Optional[jnp.ndarray],
               bias: Optional[jnp.ndarray]):
    batch, length, _ = x.shape
    head_dim = self.hidden // self.heads
    if self.has_relative_position_bias:
      embedding = self.param('rel_attn_embed', nn.initializers.normal(0.02),
                             (self.num_buckets, self.heads), jnp.float32)
      if bias is None:
        bias = position_bias(embedding, length, self.max_distance)
    if bias is None:
      raise ValueError('WavLMAttention: no position bias (the first layer '
                       'computes it)')
    split = lambda y: y.reshape(y.shape[:-1] + (self.heads, head_dim))
    q = split(tb.dense(self.hidden, 'query', self.dtype)(x))
    k = split(tb.dense(self.hidden, 'key', self.dtype)(x))
    v = split(tb.dense(self.hidden, 'value', self.dtype)(x))

    kernel = self.param('gru_rel_pos_linear_kernel',
                        nn.initializers.normal(0.02), (head_dim, 8),
                        jnp.float32)
    gate_bias = self.param('gru_rel_pos_linear_bias', nn.initializers.zeros,
                           (8,), jnp.float32)
    const = self.param('gru_rel_pos_const', nn.initializers.ones,
                       (1, self.heads, 1, 1), jnp.float32)
    x_heads = jnp.transpose(split(x.astype(jnp.float32)), (0, 2, 1, 3))
    g = gate(x_heads, kernel, gate_bias, const)

    scores = jnp.einsum('bqhd,bkhd->bhqk', q, k,
                        preferred_element_type=jnp.float32)
    scores = scores * head_dim ** -0.5 + g * bias[None]
    if mask is not None:
      keep = mask[:, None, None, :].astype(bool)
      scores = jnp.where(keep, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    probs = layers.Dropout(self.dropout,
                           deterministic=self.deterministic)(probs)
    y = jnp.einsum('bhqk,bkhd->bqhd', probs, v)
    y = y.reshape(batch, length, self.hidden)
    return tb.dense(self.hidden, 'output', self.dtype)(y), bias


class WavLMLayer(wav2vec2.Wav2Vec2Layer):
  """`Wav2Vec2Layer` with WavLM's attention."""
  num_buckets: int = 320
  max_distance: int = 800
  has_relative_position_bias: bool = False

  def attend(self, x, mask, bias):
    return WavLMAttention(self.hidden, self.heads, self.num_buckets,
                          self.max_distance, self.has_relative_position_bias,
                          self.attention_dropout, self.dtype,
                          self.deterministic, name='attention')(x, mask, bias)


class WavLM(wav2vec2.Wav2Vec2):
  """WavLM encoder; sizes default to wavlm-base (as wav2vec 2.0 base, 320
  buckets up to a distance of 800 frames). Called as `Wav2Vec2`."""
  num_buckets: int = 320
  max_bucket_distance: int = 800

  def _layer(self, i: int, train: bool):
    block = nn.remat(WavLMLayer) if self.remat else WavLMLayer
    return block(self.hidden, self.heads, self.mlp_dim,
                 self.do_stable_layer_norm, self.layer_norm_eps,
                 self.hidden_act, self.dropout, self.attention_dropout,
                 self.activation_dropout, self.dtype, not train,
                 num_buckets=self.num_buckets,
                 max_distance=self.max_bucket_distance,
                 has_relative_position_bias=(i == 0), name=f'layer_{i}')


class WavLMNetwork(wav2vec2.Wav2Vec2Network):
  """`Wav2Vec2Network` around a WavLM encoder."""


def hf_weights(model: WavLM) -> list[hf.Weight]:
  """The HF names, shapes and flax paths of a WavLM's weights."""
  w = wav2vec2.hf_weights(model)
  heads = (model.heads, 'num_attention_heads')
  head_dim = (model.hidden // model.heads,
              'hidden_size / num_attention_heads')
  one = (1, '1')
  for i in range(model.layers):
    hp, fp = f'encoder.layers.{i}.attention', (f'layer_{i}', 'attention')
    w += [
        hf.Weight(f'{hp}.gru_rel_pos_const', fp + ('gru_rel_pos_const',),
                  (one, heads, one, one)),
        hf.Weight(f'{hp}.gru_rel_pos_linear.weight',
                  fp + ('gru_rel_pos_linear_kernel',), ((8, '8'), head_dim),
                  lambda a: a.T),
        hf.Weight(f'{hp}.gru_rel_pos_linear.bias',
                  fp + ('gru_rel_pos_linear_bias',), ((8, '8'),)),
    ]
    if i == 0:
      w.append(hf.Weight(f'{hp}.rel_attn_embed.weight',
                         fp + ('rel_attn_embed',),
                         ((model.num_buckets, 'num_buckets'), heads)))
  return w


WAVLM = wav2vec2.Family(MODEL_TYPE, WavLM, WavLMNetwork, SIZE_FIELDS,
                        hf_weights, 'wavlm.')

from_hf_config = WAVLM.from_hf_config
from_config = WAVLM.from_config
load_params = WAVLM.load_params
init_params = WAVLM.init_params
network_from_config = WAVLM.network_from_config
load_network_params = WAVLM.load_network_params

__all__ = ['WavLM', 'WavLMLayer', 'WavLMAttention', 'WavLMNetwork', 'WAVLM',
           'from_config', 'network_from_config', 'load_network_params',
           'from_hf_config', 'hf_weights', 'load_params', 'init_params',
           'relative_position_buckets', 'position_bias', 'gate',
           'SIZE_FIELDS']
