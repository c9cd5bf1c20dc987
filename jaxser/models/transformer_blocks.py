"""Pieces the Flax ports of Hugging Face's AST and BERT share: multi-head
self-attention in HF's parameter layout, the outputs both return, and the
learned weighted sum of hidden states + masked mean pooling that turns either
into an utterance embedding (the multitask paper, section 3.1.2; SUPERB).

Numerics follow HF's eager PyTorch code so that a converted checkpoint gives
the same hidden states to float32 rounding:

  Attention(x) = softmax(Q K^T / sqrt(d_head) + B) V,   Q = x W_q + b_q, ...

with B = 0 on kept keys and the most negative float on masked ones (HF >= 5;
HF 4 used -10000, which gives the same weights to float precision). Scores
and the softmax are computed in float32 whatever `dtype` is, so bf16 compute
keeps the attention weights of a float32 run to about 1e-2.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxser.models import layers

# HF `hidden_act` names -> functions. HF's "gelu" is the exact (erf) GELU;
# flax's default is the tanh approximation, which differs by up to 5e-4.
ACTIVATIONS = {
    'gelu': functools.partial(nn.gelu, approximate=False),
    'gelu_new': functools.partial(nn.gelu, approximate=True),
    'gelu_pytorch_tanh': functools.partial(nn.gelu, approximate=True),
    'relu': nn.relu,
}

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16,
          'float16': jnp.float16}


def compute_dtype(name: Any, field: str = 'config.model.dtype'):
  """'float32' | 'bfloat16' | 'float16' (or a dtype) -> jnp dtype."""
  if not isinstance(name, str):
    return jnp.dtype(name).type
  if name not in DTYPES:
    raise ValueError(f'{field}={name!r}: not one of {sorted(DTYPES)}')
  return DTYPES[name]


def activation(name: str, source: str):
  """HF's `hidden_act` -> function; `source` names where the value came from."""
  if name not in ACTIVATIONS:
    raise ValueError(f'{source}: hidden_act={name!r} is not supported (one '
                     f'of {sorted(ACTIVATIONS)})')
  return ACTIVATIONS[name]


def dense(features: int, name: str, dtype, use_bias: bool = True) -> nn.Dense:
  """A Linear layer: compute in `dtype`, parameters in float32."""
  # HF initialises Linear weights with N(0, 0.02) (initializer_range).
  return nn.Dense(features, use_bias=use_bias, dtype=dtype,
                  param_dtype=jnp.float32, name=name,
                  kernel_init=nn.initializers.normal(0.02))


def layer_norm(eps: float, name: str, dtype) -> nn.LayerNorm:
  # Two-pass variance (E[(x - mean)^2]) as PyTorch computes it: flax's fast
  # E[x^2] - mean^2 loses digits when |mean| >> std, as embeddings can have.
  return nn.LayerNorm(epsilon=eps, dtype=dtype, param_dtype=jnp.float32,
                      use_fast_variance=False, name=name)


class SelfAttention(nn.Module):
  """Multi-head self-attention with HF's query/key/value/output Linears.

  x: (batch, tokens, hidden); mask: (batch, tokens) of the keys that may be
  attended to (1 = keep) or None. Returns (batch, tokens, hidden) after the
  output projection (no residual, no norm: the blocks add those).
  """
  hidden: int
  heads: int
  qkv_bias: bool = True
  dropout: float = 0.0
  dtype: Any = jnp.float32
  deterministic: bool = True

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask: Optional[jnp.ndarray]):
    if self.hidden % self.heads:
      raise ValueError(f'hidden size {self.hidden} is not a multiple of the '
                       f'number of heads {self.heads}')
    head_dim = self.hidden // self.heads
    split = lambda y: y.reshape(y.shape[:-1] + (self.heads, head_dim))
    q = split(dense(self.hidden, 'query', self.dtype, self.qkv_bias)(x))
    k = split(dense(self.hidden, 'key', self.dtype, self.qkv_bias)(x))
    v = split(dense(self.hidden, 'value', self.dtype, self.qkv_bias)(x))
    scores = jnp.einsum('bqhd,bkhd->bhqk', q, k,
                        preferred_element_type=jnp.float32)
    scores = scores * head_dim ** -0.5
    if mask is not None:
      keep = mask[:, None, None, :].astype(bool)
      scores = jnp.where(keep, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
    probs = layers.Dropout(self.dropout,
                           deterministic=self.deterministic)(probs)
    y = jnp.einsum('bhqk,bkhd->bqhd', probs, v)
    y = y.reshape(y.shape[:-2] + (self.hidden,))
    return dense(self.hidden, 'output', self.dtype)(y)


@flax.struct.dataclass
class TransformerOutput:
  """What AST and BERT return.

  last_hidden_state: (batch, tokens, hidden), HF's `last_hidden_state`.
  hidden_states: (layers + 1, batch, tokens, hidden), HF's
    `output_hidden_states` stacked (embedding output, then each layer's
    output; for AST the last one is before the final LayerNorm, as in HF), or
    None unless the module's `output_hidden_states` is set.
  mask: (batch, tokens) float, 1 on the tokens that carry input (BERT: the
    attention mask; AST: the cls/distillation tokens and the patches that
    start inside the utterance's true length). Pooling uses it.
  """
  last_hidden_state: jnp.ndarray
  hidden_states: Optional[jnp.ndarray]
  mask: jnp.ndarray


def masked_mean(x: jnp.ndarray, mask: Optional[jnp.ndarray]) -> jnp.ndarray:
  """Mean over axis 1 of (batch, tokens, dims), counting tokens where mask=1:

    u_b = sum_t m_bt x_bt / max(sum_t m_bt, 1).
  """
  if mask is None:
    return x.mean(axis=1)
  mask = mask.astype(x.dtype)
  total = jnp.einsum('btd,bt->bd', x, mask)
  return total / jnp.maximum(mask.sum(axis=1, keepdims=True), 1.0)


class WeightedLayerSum(nn.Module):
  """Learned convex combination of all hidden states (SUPERB; the multitask
  paper's eq. before (1)):

    h_bt = sum_l softmax(w)_l H_lbt,   w in R^(layers + 1), initialised to 0
                                       (the plain average).

  hidden_states: (layers + 1, batch, tokens, hidden) -> (batch, tokens,
  hidden). The weights are float32 and the sum is accumulated in float32.
  """

  @nn.compact
  def __call__(self, hidden_states: jnp.ndarray) -> jnp.ndarray:
    w = self.param('layer_weights', nn.initializers.zeros,
                   (hidden_states.shape[0],), jnp.float32)
    a = jax.nn.softmax(w)
    return jnp.einsum('l,lbth->bth', a, hidden_states,
                      preferred_element_type=jnp.float32)


class LayerSumPooling(nn.Module):
  """Weighted layer sum, then masked mean over tokens.

  Takes a `TransformerOutput` whose `hidden_states` were returned (the
  encoder's `output_hidden_states=True`) and gives (utterance embedding
  (batch, hidden), frame sequence (batch, tokens, hidden)); the sequence's
  valid tokens are `output.mask`.
  """

  @nn.compact
  def __call__(self, output: TransformerOutput):
    if output.hidden_states is None:
      raise ValueError('LayerSumPooling needs all hidden states: build the '
                       'encoder with output_hidden_states=True')
    frames = WeightedLayerSum(name='layer_sum')(output.hidden_states)
    return masked_mean(frames, output.mask), frames


def with_encoder_params(params, encoder_params, source: str):
  """A network's `params` (from `init`) with its 'encoder' subtree replaced
  by a checkpoint's (`ast.load_params` / `bert.load_params`); the shapes
  must agree. The pooling's layer weights keep their initial values."""
  from jaxser.models import hf_checkpoint  # pylint: disable=g-import-not-at-top
  if 'encoder' not in params:
    raise ValueError(f'{source}: the network parameters have no encoder '
                     f'subtree (keys: {sorted(params)})')
  hf_checkpoint.check_tree(encoder_params, params['encoder'], source)
  return {**params, 'encoder': encoder_params}
