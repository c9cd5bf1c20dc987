"""BERT (Devlin et al. 2019), a Flax port of Hugging Face's `BertModel` that
loads its checkpoints offline (the `bert-base-uncased` family), and its
word-piece tokenisation through the `tokenizers` package.

  embeddings  z_0 = LN(W_word[ids] + W_pos[0..T-1] + W_type[token types])
  block l     a = LN(z + MSA(z; mask)),  z_l = LN(a + W_2 GELU(W_1 a))
              (post-norm; GELU exact (erf); LayerNorm eps 1e-12)
  output      last_hidden_state = z_L; hidden_states = (z_0, ..., z_L)

The attention mask hides padded keys (their scores get the most negative
float before the softmax, as HF 5 does); padded positions still get outputs,
which pooling leaves out through the same mask. The pooler (tanh over [CLS])
and the pre-training heads are not part of the encoder: their weights are
skipped when a checkpoint carries them.

Tokenisation: `load_tokenizer(DIR)` reads the checkpoint's own
`tokenizer.json`, or else builds BERT's word-piece tokenizer from its
`vocab.txt`, lower-casing (and stripping accents) as its tokenizer_config.json
/ config.json say (`do_lower_case`, default True as for the uncased models).
`encode(tokenizer, texts, max_length)` gives the padded `input_ids` and
`attention_mask` arrays the model takes: [CLS] text [SEP], truncated to
`max_length`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxser.models import hf_checkpoint as hf
from jaxser.models import layers
from jaxser.models import transformer_blocks as tb

MODEL_TYPE = 'bert'
TOKENIZER_JSON = 'tokenizer.json'
VOCAB_TXT = 'vocab.txt'
TOKENIZER_CONFIG = 'tokenizer_config.json'

# (jaxser config.model field, HF config.json key, default = bert-base).
SIZE_FIELDS = (
    ('layers', 'num_hidden_layers', 12),
    ('hidden', 'hidden_size', 768),
    ('heads', 'num_attention_heads', 12),
    ('mlp_dim', 'intermediate_size', 3072),
    ('vocab_size', 'vocab_size', 30522),
    ('max_position_embeddings', 'max_position_embeddings', 512),
    ('type_vocab_size', 'type_vocab_size', 2),
)


class BertLayer(nn.Module):
  """Post-norm encoder block with HF's parameter names."""
  hidden: int
  heads: int
  mlp_dim: int
  layer_norm_eps: float
  hidden_act: str
  dropout: float
  attention_dropout: float
  dtype: Any
  deterministic: bool

  @nn.compact
  def __call__(self, x, mask):
    drop = lambda y: layers.Dropout(
        self.dropout, deterministic=self.deterministic)(y)
    h = tb.SelfAttention(self.hidden, self.heads, True,
                         self.attention_dropout, self.dtype,
                         self.deterministic, name='attention')(x, mask)
    x = tb.layer_norm(self.layer_norm_eps, 'attention_layernorm',
                      self.dtype)(x + drop(h))
    h = tb.dense(self.mlp_dim, 'intermediate', self.dtype)(x)
    h = tb.activation(self.hidden_act, 'BertLayer')(h)
    h = tb.dense(self.hidden, 'output', self.dtype)(h)
    return tb.layer_norm(self.layer_norm_eps, 'output_layernorm',
                         self.dtype)(x + drop(h))


class Bert(nn.Module):
  """BERT encoder; sizes default to bert-base (12 x 768, 12 heads).

  __call__(input_ids (batch, tokens) int, attention_mask (batch, tokens) or
  None (all kept), token_type_ids or None (all 0), *, train) ->
  `TransformerOutput`; `hidden_states` only with `output_hidden_states`.
  Parameters are float32; `dtype` is the compute dtype; `remat` recomputes
  each block in the backward pass.
  """
  hidden: int = 768
  layers: int = 12
  heads: int = 12
  mlp_dim: int = 3072
  vocab_size: int = 30522
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = 'gelu'
  dropout: float = 0.1
  attention_dropout: float = 0.1
  dtype: Any = jnp.float32
  remat: bool = False
  output_hidden_states: bool = False

  def check_input(self, shape, source: str = 'input_ids') -> None:
    """One-line errors for inputs the model cannot take."""
    if len(shape) != 2:
      raise ValueError(f'{source}: expected (batch, tokens), got shape '
                       f'{tuple(shape)}')
    if shape[1] > self.max_position_embeddings:
      raise ValueError(f'{source}: {shape[1]} tokens, more than '
                       f'max_position_embeddings='
                       f'{self.max_position_embeddings}')

  @nn.compact
  def __call__(self, input_ids: jnp.ndarray,
               attention_mask: Optional[jnp.ndarray] = None,
               token_type_ids: Optional[jnp.ndarray] = None, *,
               train: bool = False) -> tb.TransformerOutput:
    self.check_input(input_ids.shape)
    batch, length = input_ids.shape
    if attention_mask is None:
      attention_mask = jnp.ones((batch, length), jnp.float32)
    if token_type_ids is None:
      token_type_ids = jnp.zeros((batch, length), jnp.int32)
    embed = lambda n, name: nn.Embed(
        n, self.hidden, dtype=self.dtype, param_dtype=jnp.float32,
        embedding_init=nn.initializers.normal(0.02), name=name)
    h = (embed(self.vocab_size, 'word_embeddings')(input_ids)
         + embed(self.type_vocab_size, 'token_type_embeddings')(
             token_type_ids)
         + embed(self.max_position_embeddings, 'position_embeddings')(
             jnp.arange(length)[None, :]))
    h = tb.layer_norm(self.layer_norm_eps, 'embeddings_layernorm',
                      self.dtype)(h)
    h = layers.Dropout(self.dropout, deterministic=not train)(h)

    block = nn.remat(BertLayer) if self.remat else BertLayer
    hidden_states = [h]
    for i in range(self.layers):
      h = block(self.hidden, self.heads, self.mlp_dim, self.layer_norm_eps,
                self.hidden_act, self.dropout, self.attention_dropout,
                self.dtype, not train, name=f'layer_{i}')(h, attention_mask)
      hidden_states.append(h)
    return tb.TransformerOutput(
        last_hidden_state=h,
        hidden_states=(jnp.stack(hidden_states)
                       if self.output_hidden_states else None),
        mask=attention_mask.astype(jnp.float32))


def _hf_options(hf_config: dict, config_source: str) -> dict:
  """The non-size settings of an HF BERT config."""
  hf.check_model_type(hf_config, MODEL_TYPE, config_source)
  kind = hf_config.get('position_embedding_type', 'absolute')
  if kind != 'absolute':
    raise ValueError(f'{config_source}: position_embedding_type={kind!r}; '
                     "only 'absolute' is supported")
  if hf_config.get('is_decoder', False):
    raise ValueError(f'{config_source}: is_decoder=true; only the encoder '
                     'is supported')
  act = hf_config.get('hidden_act', 'gelu')
  tb.activation(act, config_source)
  return dict(layer_norm_eps=float(hf_config.get('layer_norm_eps', 1e-12)),
              hidden_act=act,
              dropout=float(hf_config.get('hidden_dropout_prob', 0.1)),
              attention_dropout=float(
                  hf_config.get('attention_probs_dropout_prob', 0.1)))


def from_hf_config(hf_config: dict, config_source: str = 'config.json',
                   **options) -> Bert:
  """A `Bert` with the sizes of a checkpoint's config.json."""
  sizes = hf.resolve_sizes(None, hf_config, SIZE_FIELDS, config_source)
  return Bert(**sizes, **_hf_options(hf_config, config_source), **options)


def from_config(model_cfg, field_prefix: str = 'config.model.') -> Bert:
  """A `Bert` from jaxser's `config.model` (a ConfigDict or dict).

  Sizes: `layers`, `hidden`, `heads`, `mlp_dim` (default 4 x hidden),
  `vocab_size`, `max_position_embeddings`, `type_vocab_size`. With
  `checkpoint` (a directory) the sizes come from its config.json, and a size
  set here that disagrees is an error naming `config.model.<field>`
  (`field_prefix` + field: the registry passes `config.model.<network>.`).
  Options: `dtype` ('float32' | 'bfloat16'), `remat`, `dropout`,
  `attention_dropout` (default: the checkpoint's, else 0.1),
  `output_hidden_states` (default True: the layer-sum pooling needs them).
  """
  get = lambda k: hf.cfg_get(model_cfg, k)
  checkpoint = get('checkpoint')
  fields, options, hf_config, source = SIZE_FIELDS, {}, None, None
  if checkpoint:
    source = os.path.join(checkpoint, hf.CONFIG)
    hf_config = hf.read_config(checkpoint)
    options = _hf_options(hf_config, source)
  elif get('mlp_dim') is None and get('hidden') is not None:
    # Tiny models keep the base model's MLP ratio.
    fields = tuple((f, k, 4 * get('hidden') if f == 'mlp_dim' else d)
                   for f, k, d in SIZE_FIELDS)
  sizes = hf.resolve_sizes(model_cfg, hf_config, fields, source,
                           field_prefix)
  for name in ('dropout', 'attention_dropout', 'remat',
               'output_hidden_states'):
    if get(name) is not None:
      options[name] = get(name)
  options.setdefault('output_hidden_states', True)
  dtype = tb.compute_dtype(get('dtype') or 'float32', f'{field_prefix}dtype')
  return Bert(**sizes, **options, dtype=dtype)


def hf_weights(model: Bert) -> list[hf.Weight]:
  """The HF names, shapes and flax paths of a BERT's weights."""
  H = (model.hidden, 'hidden_size')
  M = (model.mlp_dim, 'intermediate_size')
  w = [
      hf.Weight('embeddings.word_embeddings.weight',
                ('word_embeddings', 'embedding'),
                ((model.vocab_size, 'vocab_size'), H)),
      hf.Weight('embeddings.position_embeddings.weight',
                ('position_embeddings', 'embedding'),
                ((model.max_position_embeddings, 'max_position_embeddings'),
                 H)),
      hf.Weight('embeddings.token_type_embeddings.weight',
                ('token_type_embeddings', 'embedding'),
                ((model.type_vocab_size, 'type_vocab_size'), H)),
  ]
  w += hf.layer_norm('embeddings.LayerNorm', ('embeddings_layernorm',), H)
  for i in range(model.layers):
    hp, fp = f'encoder.layer.{i}', (f'layer_{i}',)
    for name in ('query', 'key', 'value'):
      w += hf.linear(f'{hp}.attention.self.{name}', fp + ('attention', name),
                     H, H)
    w += hf.linear(f'{hp}.attention.output.dense',
                   fp + ('attention', 'output'), H, H)
    w += hf.layer_norm(f'{hp}.attention.output.LayerNorm',
                       fp + ('attention_layernorm',), H)
    w += hf.linear(f'{hp}.intermediate.dense', fp + ('intermediate',), H, M)
    w += hf.linear(f'{hp}.output.dense', fp + ('output',), M, H)
    w += hf.layer_norm(f'{hp}.output.LayerNorm', fp + ('output_layernorm',),
                       H)
  return w


# The original BERT checkpoints (bert-base-uncased among them) name the
# LayerNorm parameters gamma / beta, as TensorFlow did.
RENAMES = ((r'LayerNorm\.gamma$', 'LayerNorm.weight'),
           (r'LayerNorm\.beta$', 'LayerNorm.bias'))
# Not part of the encoder: the pooler, the pre-training and task heads, and
# the position-id buffers some checkpoints carry.
IGNORE = (r'^pooler\.', r'^cls\.', r'^classifier\.', r'^qa_outputs\.',
          r'^embeddings\.position_ids$', r'^embeddings\.token_type_ids$')


def load_params(checkpoint: str, model: Optional[Bert] = None) -> dict:
  """The checkpoint's weights as the `params` of `model` (float32 numpy).

  `model` defaults to the checkpoint's own sizes; a model of other sizes is
  an error naming the field. BertForPreTraining / BertFor*Classification
  checkpoints load too (heads and pooler are left out).
  """
  return hf.load_params(
      checkpoint, model, from_hf_config=from_hf_config,
      size_fields=SIZE_FIELDS, weights=hf_weights,
      example=lambda m: jax.ShapeDtypeStruct((1, 4), jnp.int32),
      prefixes=('bert.',), renames=RENAMES, ignore=IGNORE)


def init_params(model: Bert, rng: jax.Array, tokens: int = 8):
  """Random parameters (float32) of `model`."""
  return model.init(rng, jnp.zeros((1, tokens), jnp.int32))['params']


def _lowercase(checkpoint: str) -> tuple[bool, Optional[bool]]:
  """(do_lower_case, strip_accents) from tokenizer_config.json, then
  config.json; uncased (True, None: strip when lower-casing) by default."""
  for name in (TOKENIZER_CONFIG, hf.CONFIG):
    path = os.path.join(checkpoint, name)
    if not os.path.isfile(path):
      continue
    try:
      with open(path) as f:
        cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
      raise ValueError(f'{path}: not readable JSON ({e})') from None
    if isinstance(cfg, dict) and 'do_lower_case' in cfg:
      return bool(cfg['do_lower_case']), cfg.get('strip_accents')
  return True, None


def load_tokenizer(checkpoint: str):
  """The checkpoint's `tokenizers.Tokenizer`: its tokenizer.json, else BERT
  word-piece from its vocab.txt (lower-cased per its configs)."""
  import tokenizers  # pylint: disable=g-import-not-at-top
  path = os.path.join(checkpoint, TOKENIZER_JSON)
  if os.path.isfile(path):
    try:
      return tokenizers.Tokenizer.from_file(path)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f'{path}: not a readable tokenizer '
                       f'({type(e).__name__}: {e})'.replace('\n', ' ')
                       ) from None
  vocab = os.path.join(checkpoint, VOCAB_TXT)
  if not os.path.isfile(vocab):
    raise ValueError(f'checkpoint {checkpoint}: no {TOKENIZER_JSON} or '
                     f'{VOCAB_TXT} to tokenise with')
  from tokenizers import implementations  # pylint: disable=g-import-not-at-top
  lowercase, strip_accents = _lowercase(checkpoint)
  wrapper = implementations.BertWordPieceTokenizer(
      vocab, lowercase=lowercase, strip_accents=strip_accents,
      clean_text=True, handle_chinese_chars=True)
  # The wrapper's underlying Tokenizer, so both paths return one type.
  return wrapper._tokenizer  # pylint: disable=protected-access


def encode(tokenizer, texts: Sequence[str], max_length: int = 512,
           pad_to: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """(input_ids, attention_mask), int32 (batch, tokens): each text as
  [CLS] word pieces [SEP], truncated to `max_length` tokens, padded with the
  [PAD] id to the longest (or to `pad_to`). Sets the tokenizer's
  truncation to `max_length` and turns its padding off."""
  # The tokenizer's own truncation counts the [CLS] / [SEP] its post-processor
  # adds, as HF's does; padding is done here, to the batch's own width.
  tokenizer.enable_truncation(max_length)
  tokenizer.no_padding()
  ids = [e.ids for e in tokenizer.encode_batch(list(texts))]
  pad = tokenizer.token_to_id('[PAD]')
  pad = 0 if pad is None else pad
  width = pad_to or max((len(r) for r in ids), default=0)
  out = np.full((len(ids), width), pad, np.int32)
  mask = np.zeros((len(ids), width), np.int32)
  for i, row in enumerate(ids):
    out[i, :len(row)] = row
    mask[i, :len(row)] = 1
  return out, mask


class BertNetwork(nn.Module):
  """BERT + learned layer sum + masked mean pooling, called as jaxser's
  network registry calls a network:

    (input_ids (batch, tokens), lengths (batch,) valid tokens, *, train)
      -> {'embedding': (batch, hidden), 'frames': (batch, tokens, hidden),
          'frame_lengths': lengths}

  'embedding' is the multitask paper's utterance embedding (softmax-weighted
  sum of the embedding output and every layer, mean over the valid tokens,
  [CLS] and [SEP] included); 'frames' the layer sum per token. Token types
  are all 0 (single sentences). Parameters: {'encoder': BERT's, 'pool': the
  layer weights}; `load_network_params` puts a checkpoint into 'encoder'.
  """
  encoder: Bert
  # A frozen upstream (config.model.<name>.freeze): no gradient flows into
  # the encoder, so its backward pass is not computed; the layer weights of
  # the pooling still train.
  freeze: bool = False

  @nn.compact
  def __call__(self, input_ids, lengths, *, train: bool = False):
    if not self.encoder.output_hidden_states:
      raise ValueError('BertNetwork needs Bert(output_hidden_states=True)')
    mask = (jnp.arange(input_ids.shape[1])[None, :] < lengths[:, None])
    out = self.encoder(input_ids, mask.astype(jnp.float32), train=train)
    if self.freeze:
      out = jax.lax.stop_gradient(out)
    embedding, frames = tb.LayerSumPooling(name='pool')(out)
    return {'embedding': embedding, 'frames': frames,
            'frame_lengths': lengths}


def network_from_config(model_cfg,
                        field_prefix: str = 'config.model.') -> BertNetwork:
  """`BertNetwork` around `from_config(model_cfg)` (the registry's build)."""
  encoder = from_config(model_cfg, field_prefix)
  if not encoder.output_hidden_states:
    raise ValueError('config.model.output_hidden_states=False: the layer-sum '
                     'pooling needs all hidden states')
  return BertNetwork(encoder)


def load_network_params(params, checkpoint: str):
  """A `BertNetwork`'s initialised `params` with the checkpoint's weights in
  its encoder."""
  return tb.with_encoder_params(params, load_params(checkpoint), checkpoint)


__all__ = ['Bert', 'BertLayer', 'BertNetwork', 'from_config',
           'network_from_config', 'load_network_params', 'from_hf_config',
           'hf_weights', 'load_params', 'init_params', 'load_tokenizer',
           'encode']
