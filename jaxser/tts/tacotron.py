"""GST-Tacotron 2 with an emotion predictor on the style-token weights.

Cai et al. 2021, section 3.2 (MMD-SER's emotional TTS): a standard
Tacotron 2 (Shen et al. 2018) plus Tacotron's (Wang et al. 2017) CBHG
post-net from the mel to the linear spectrogram, and the reference encoder +
global style tokens of Wang et al. 2018, with an auxiliary emotion predictor
on the token weights.

  Encoder        character embedding (512) -> 3 x [conv 5 x 512, batch
                 norm, ReLU, dropout 0.5] -> BiLSTM (256 per direction).
  GST            reference encoder: 6 x [conv 3x3 stride 2 (32, 32, 64, 64,
                 128, 128), batch norm, ReLU] over the target mel -> GRU
                 (128), its state at the last valid frame; style token layer:
                 10 tokens (tanh'd), 4-head attention with the reference
                 embedding as query -> token weights w (B, heads, tokens)
                 and the style embedding (256) = concat_h sum_t w_ht V_h t.
                 The style embedding is concatenated to every encoder state
                 (our choice; Wang et al. 2018 describe both adding and
                 concatenating).
  Decoder        per step (r = outputs_per_step frames): pre-net (2 x 256,
                 ReLU, dropout 0.5 also at synthesis, as Tacotron 2) of the
                 previous frame -> attention LSTM (1024) on [pre-net,
                 previous context] -> location-sensitive attention (below)
                 -> decoder LSTM (1024) on [attention LSTM output, context]
                 -> linear projections of [decoder LSTM output, context] to
                 r mel frames and a stop-token logit. (NVIDIA's Tacotron 2
                 layout; zoneout is left out.)
  Post-net       5 x [conv 5 x 512, batch norm, tanh, dropout 0.5] (the
                 last to n_mels, linear) added to the decoder's mel.
  Linear         CBHG (conv bank K = 8 x 128, max-pool, projections 256 /
                 n_mels, 4 highway layers of 128, BiGRU 128) -> dense to
                 n_fft / 2 + 1 bins.
  Emotion        `our-4cls`: one dense layer from the flattened weights
                 (heads x tokens) to 4 classes. `our-2d`: the tokens split in
                 halves; the first half's weights (all heads) -> dense to 2
                 arousal classes, the second half's -> 2 valence classes
                 (the paper splits "the style token weight vector into two
                 halves"; splitting along the token axis, our reading, lets
                 each half's tokens carry one dimension). `base-4cls`: none.

Location-sensitive attention (Chorowski et al. 2015, Tacotron 2):

  f_j   = U (conv_F * [a_{i-1}, sum_{k<i} a_k])_j    (location features)
  e_ij  = v^T tanh(W s_i + V h_j + f_j + b)
  a_i   = softmax_j(e_ij / T) over the valid encoder steps
  c_i   = sum_j a_ij h_j

with s_i the attention LSTM output and T the softmax temperature (1 in
training, 2.0 at synthesis in the paper). Training scans the decoder over
the teacher-forced frames with `flax.linen.scan`; synthesis scans the same
cell (same parameters) for a fixed number of steps feeding back its own
frames, and the caller cuts at the first step whose stop probability passes
the threshold (`stop_length`).
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxser.tts import text as text_lib

VARIANTS = ('our-4cls', 'our-2d', 'base-4cls')


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The fields of `config.tts.model` (+ variant, n_mels, n_linear)."""
  variant: str = 'our-4cls'
  n_mels: int = 80
  n_linear: int = 513
  outputs_per_step: int = 1
  embed_dim: int = 512
  encoder_convs: int = 3
  encoder_kernel: int = 5
  encoder_lstm: int = 256
  dropout: float = 0.5
  prenet: tuple[int, ...] = (256, 256)
  attention_rnn: int = 1024
  decoder_rnn: int = 1024
  attention_dim: int = 128
  location_filters: int = 32
  location_kernel: int = 31
  postnet_convs: int = 5
  postnet_channels: int = 512
  postnet_kernel: int = 5
  cbhg_bank: int = 8
  cbhg_channels: int = 128
  cbhg_projections: int = 256
  cbhg_highway: int = 4
  cbhg_gru: int = 128
  reference_filters: tuple[int, ...] = (32, 32, 64, 64, 128, 128)
  reference_gru: int = 128
  num_tokens: int = 10
  token_dim: int = 256
  token_heads: int = 4

  @classmethod
  def from_config(cls, model_cfg, variant: str, n_mels: int,
                  n_linear: int) -> 'ModelConfig':
    kw = {}
    for f in dataclasses.fields(cls):
      if f.name in model_cfg:
        v = model_cfg[f.name]
        kw[f.name] = tuple(v) if isinstance(v, (list, tuple)) else v
    return cls(**dict(kw, variant=variant, n_mels=n_mels, n_linear=n_linear))


def text_mask(lengths: jax.Array, n: int) -> jax.Array:
  return jnp.arange(n)[None, :] < lengths[:, None]


class ConvNorm(nn.Module):
  """1-D conv -> batch norm -> activation -> dropout, padded rows zeroed."""
  features: int
  kernel: int
  activation: str = 'relu'
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, mask, train: bool):
    x = nn.Conv(self.features, (self.kernel,), padding='SAME')(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.99)(x)
    x = {'relu': nn.relu, 'tanh': jnp.tanh, 'linear': lambda y: y}[
        self.activation](x)
    if self.dropout:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x * mask[..., None]


class Encoder(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, ids, lengths, train: bool):
    c = self.cfg
    mask = text_mask(lengths, ids.shape[1])
    x = nn.Embed(text_lib.VOCAB_SIZE, c.embed_dim)(ids)
    for _ in range(c.encoder_convs):
      x = ConvNorm(c.embed_dim, c.encoder_kernel, 'relu', c.dropout)(
          x, mask, train)
    x = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(c.encoder_lstm)),
                         nn.RNN(nn.OptimizedLSTMCell(c.encoder_lstm)))(
                             x, seq_lengths=lengths)
    return x * mask[..., None]


class LocationSensitiveAttention(nn.Module):
  """e_ij = v^T tanh(W s_i + V h_j + U conv([a_prev, a_cum])_j + b)."""
  dim: int
  filters: int
  kernel: int

  def setup(self):
    self.query_layer = nn.Dense(self.dim, use_bias=False)
    self.location_conv = nn.Conv(self.filters, (self.kernel,),
                                 padding='SAME', use_bias=False)
    self.location_layer = nn.Dense(self.dim, use_bias=False)
    self.v = nn.Dense(1)  # Its bias is b.

  def energies(self, query, processed_memory, prev, cum):
    """(B, N) e_ij; processed_memory is V h (the decoder's memory_layer)."""
    loc = self.location_layer(self.location_conv(jnp.stack([prev, cum], -1)))
    return self.v(jnp.tanh(self.query_layer(query)[:, None, :]
                           + processed_memory + loc))[..., 0]

  def __call__(self, query, processed_memory, memory, mask, prev, cum,
               temperature):
    e = self.energies(query, processed_memory, prev, cum)
    a = attention_weights(e, mask, temperature)
    return jnp.einsum('bn,bnd->bd', a, memory), a


def attention_weights(energies, mask, temperature=1.0):
  """softmax_j(e_ij / T) over the valid steps (zero on the others)."""
  e = jnp.where(mask, energies / temperature, -1e9)
  return jax.nn.softmax(e, axis=-1) * mask


class Prenet(nn.Module):
  sizes: tuple[int, ...]
  dropout: float

  @nn.compact
  def __call__(self, x):
    for s in self.sizes:
      # Dropout also at synthesis (Tacotron 2): it is the pre-net's noise
      # that keeps the autoregressive decoder from copying its input.
      x = nn.Dropout(self.dropout, deterministic=False)(nn.relu(
          nn.Dense(s)(x)))
    return x


class DecoderCell(nn.Module):
  """One decoder step: (carry, previous frame) -> (carry, outputs)."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, carry, frame, processed_memory, memory, mask, teacher,
               temperature):
    c = self.cfg
    att_c, dec_c, context, prev, cum, own = carry
    # Teacher forcing: the true previous frame; synthesis: our own.
    x = jnp.where(teacher, frame, own)
    p = Prenet(c.prenet, c.dropout, name='prenet')(x)
    att_c, att_h = nn.OptimizedLSTMCell(c.attention_rnn, name='attention_rnn')(
        att_c, jnp.concatenate([p, context], -1))
    context, a = LocationSensitiveAttention(
        c.attention_dim, c.location_filters, c.location_kernel,
        name='attention')(att_h, processed_memory, memory, mask, prev, cum,
                          temperature)
    dec_c, dec_h = nn.OptimizedLSTMCell(c.decoder_rnn, name='decoder_rnn')(
        dec_c, jnp.concatenate([att_h, context], -1))
    h = jnp.concatenate([dec_h, context], -1)
    frames = nn.Dense(c.n_mels * c.outputs_per_step,
                      name='frame_projection')(h)
    stop = nn.Dense(1, name='stop_projection')(h)[..., 0]
    carry = (att_c, dec_c, context, a, cum + a, frames[:, -c.n_mels:])
    return carry, (frames, stop, a)


class Decoder(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, memory, mask, frames, teacher, temperature):
    """Scans the decoder over the steps of `frames` (B, S, n_mels): each
    step's previous frame (teacher forcing) or zeros (synthesis, `teacher`
    False). Returns (mel (B, S*r, n_mels), stop logits (B, S), alignments
    (B, S, N))."""
    c = self.cfg
    b, n = mask.shape
    processed = nn.Dense(c.attention_dim, use_bias=False,
                         name='memory_layer')(memory)
    zeros = lambda k: jnp.zeros((b, k), memory.dtype)
    carry = ((zeros(c.attention_rnn), zeros(c.attention_rnn)),
             (zeros(c.decoder_rnn), zeros(c.decoder_rnn)),
             zeros(memory.shape[-1]),
             # The first step attends from the first character.
             jnp.zeros((b, n), memory.dtype).at[:, 0].set(1.0),
             jnp.zeros((b, n), memory.dtype), zeros(c.n_mels))
    scan = nn.scan(DecoderCell, variable_broadcast='params',
                   split_rngs={'params': False, 'dropout': True},
                   in_axes=(1, nn.broadcast, nn.broadcast, nn.broadcast,
                            nn.broadcast, nn.broadcast), out_axes=1)
    _, (out, stop, align) = scan(c, name='cell')(
        carry, frames, processed, memory, mask, jnp.asarray(teacher),
        jnp.asarray(temperature, memory.dtype))
    steps = frames.shape[1]
    return (out.reshape(b, steps * c.outputs_per_step, c.n_mels), stop,
            align)


class Postnet(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, mel, mask, train: bool):
    c = self.cfg
    x = mel
    for i in range(c.postnet_convs):
      last = i == c.postnet_convs - 1
      x = ConvNorm(c.n_mels if last else c.postnet_channels, c.postnet_kernel,
                   'linear' if last else 'tanh', c.dropout)(x, mask, train)
    return x


class CBHG(nn.Module):
  """Tacotron's post-net: mel -> linear spectrogram."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x, lengths, train: bool):
    c = self.cfg
    mask = text_mask(lengths, x.shape[1])
    bank = jnp.concatenate(
        [ConvNorm(c.cbhg_channels, k, 'relu')(x, mask, train)
         for k in range(1, c.cbhg_bank + 1)], -1)
    h = nn.max_pool(bank, (2,), strides=(1,), padding='SAME')
    h = ConvNorm(c.cbhg_projections, 3, 'relu')(h, mask, train)
    h = ConvNorm(x.shape[-1], 3, 'linear')(h, mask, train) + x
    h = nn.Dense(c.cbhg_channels)(h)
    for _ in range(c.cbhg_highway):
      gate = nn.sigmoid(nn.Dense(c.cbhg_channels,
                                 bias_init=nn.initializers.constant(-1.0))(h))
      h = nn.relu(nn.Dense(c.cbhg_channels)(h)) * gate + h * (1.0 - gate)
    h = nn.Bidirectional(nn.RNN(nn.GRUCell(c.cbhg_gru)),
                         nn.RNN(nn.GRUCell(c.cbhg_gru)))(h, seq_lengths=lengths)
    return nn.Dense(c.n_linear)(h) * mask[..., None]


class ReferenceEncoder(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, mel, frames, train: bool):
    c = self.cfg
    x = (mel * text_mask(frames, mel.shape[1])[..., None])[..., None]
    for f in c.reference_filters:
      x = nn.Conv(f, (3, 3), strides=(2, 2), padding='SAME')(x)
      x = nn.relu(nn.BatchNorm(use_running_average=not train,
                               momentum=0.99)(x))
    b, t = x.shape[:2]
    x = x.reshape(b, t, -1)
    down = 2 ** len(c.reference_filters)
    lengths = jnp.clip(-(-frames // down), 1, t)
    state, _ = nn.RNN(nn.GRUCell(c.reference_gru), return_carry=True)(
        x, seq_lengths=lengths)
    return state


class StyleTokens(nn.Module):
  """The token bank and its multi-head attention (Wang et al. 2018):

    q_h = (W_q r)_h,  k_th = (W_k tanh(g_t))_h,  v_th = (W_v tanh(g_t))_h
    w_ht = softmax_t(q_h . k_th / sqrt(d)),   d = token_dim / heads
    style = concat_h sum_t w_ht v_th
  """
  cfg: ModelConfig

  def setup(self):
    c = self.cfg
    self.tokens = self.param('tokens', nn.initializers.normal(0.5),
                             (c.num_tokens, c.token_dim // c.token_heads))
    self.query = nn.Dense(c.token_dim, use_bias=False)
    self.key = nn.Dense(c.token_dim, use_bias=False)
    self.value = nn.Dense(c.token_dim, use_bias=False)

  def _heads(self, x):
    return x.reshape(x.shape[:-1] + (self.cfg.token_heads, -1))

  def weights(self, reference):
    """(B, R) reference embeddings -> (B, heads, tokens) weights."""
    q = self._heads(self.query(reference))
    k = self._heads(self.key(jnp.tanh(self.tokens)))
    d = q.shape[-1]
    return jax.nn.softmax(jnp.einsum('bhd,thd->bht', q, k) / math.sqrt(d),
                          axis=-1)

  def embed(self, weights):
    """(B, heads, tokens) weights -> (B, token_dim) style embeddings."""
    v = self._heads(self.value(jnp.tanh(self.tokens)))
    out = jnp.einsum('bht,thd->bhd', weights, v)
    return out.reshape(out.shape[0], -1)

  def __call__(self, reference):
    w = self.weights(reference)
    return w, self.embed(w)


def split_halves(weights):
  """(B, H, T) token weights -> (first half of the tokens, second half),
  each flattened to (B, H * T/2): our-2d's arousal and valence inputs."""
  half = weights.shape[-1] // 2
  b = weights.shape[0]
  return (weights[..., :half].reshape(b, -1),
          weights[..., half:].reshape(b, -1))


def combine_halves(arousal_weights, valence_weights):
  """our-2d synthesis: the arousal half of the tokens from one (H, T)
  weight matrix, the valence half from another."""
  half = arousal_weights.shape[-1] // 2
  return jnp.concatenate([arousal_weights[..., :half],
                          valence_weights[..., half:]], -1)


class GSTTacotron(nn.Module):
  cfg: ModelConfig

  def setup(self):
    c = self.cfg
    if c.variant not in VARIANTS:
      raise ValueError(f'config.tts.variant: unknown {c.variant!r}; known: '
                       f'{", ".join(VARIANTS)}')
    if c.token_dim % c.token_heads:
      raise ValueError('config.tts.model.token_dim: must be a multiple of '
                       f'token_heads ({c.token_heads}), got {c.token_dim}')
    self.encoder = Encoder(c)
    self.reference = ReferenceEncoder(c)
    self.gst = StyleTokens(c)
    self.decoder = Decoder(c)
    self.postnet = Postnet(c)
    self.linear = CBHG(c)
    if c.variant == 'our-4cls':
      self.emotion = nn.Dense(4)
    elif c.variant == 'our-2d':
      self.arousal = nn.Dense(2)
      self.valence = nn.Dense(2)

  def token_weights(self, mel, frames, train: bool = False):
    """(B, heads, tokens) style-token weights of reference mels."""
    return self.gst.weights(self.reference(mel, frames, train))

  def emotion_logits(self, weights) -> dict:
    """The emotion predictor's logits of (B, heads, tokens) weights."""
    if self.cfg.variant == 'our-4cls':
      return {'emotion': self.emotion(weights.reshape(weights.shape[0], -1))}
    if self.cfg.variant == 'our-2d':
      a, v = split_halves(weights)
      return {'arousal': self.arousal(a), 'valence': self.valence(v)}
    return {}

  def _decode(self, ids, text_lengths, style, prev_frames, teacher,
              temperature, train):
    c = self.cfg
    enc = self.encoder(ids, text_lengths, train)
    style = jnp.broadcast_to(style[:, None, :], enc.shape[:2]
                             + (style.shape[-1],))
    memory = jnp.concatenate([enc, style], -1)
    mask = text_mask(text_lengths, ids.shape[1])
    mel, stop, align = self.decoder(memory, mask, prev_frames, teacher,
                                    temperature)
    return mel, stop, align

  def __call__(self, ids, text_lengths, mel, frames, train: bool = True):
    """Teacher-forced outputs for (B, N) ids and (B, F, n_mels) targets, F
    a multiple of outputs_per_step: dict of mel_before, mel_after, linear,
    stop (B, F/r logits), alignment (B, F/r, N), weights (B, H, T) and the
    emotion logits."""
    c = self.cfg
    r = c.outputs_per_step
    b, f, m = mel.shape
    weights = self.token_weights(mel, frames, train)
    style = self.gst.embed(weights)
    # Step s is fed the last frame of step s - 1 (zeros for the first).
    prev = jnp.concatenate([jnp.zeros((b, 1, m), mel.dtype),
                            mel[:, r - 1:f - 1:r]], 1)
    before, stop, align = self._decode(ids, text_lengths, style, prev, True,
                                       1.0, train)
    mask = text_mask(frames, f)
    after = before + self.postnet(before, mask, train)
    linear = self.linear(after, frames, train)
    return dict(mel_before=before, mel_after=after, linear=linear, stop=stop,
                alignment=align, weights=weights,
                **self.emotion_logits(weights))

  def synthesize(self, ids, text_lengths, weights, steps: int,
                 temperature: float = 1.0):
    """Free-running outputs for given (B, H, T) token weights, `steps`
    decoder steps: mel_after, linear (B, steps*r, ...), stop (B, steps)
    logits, alignment."""
    c = self.cfg
    b = ids.shape[0]
    style = self.gst.embed(weights)
    zeros = jnp.zeros((b, steps, c.n_mels), jnp.float32)
    before, stop, align = self._decode(ids, text_lengths, style, zeros, False,
                                       temperature, False)
    f = steps * c.outputs_per_step
    full = jnp.full((b,), f, jnp.int32)
    mask = text_mask(full, f)
    after = before + self.postnet(before, mask, False)
    linear = self.linear(after, full, False)
    return dict(mel_after=after, linear=linear, stop=stop, alignment=align)


def stop_length(stop_logits: np.ndarray, threshold: float,
                outputs_per_step: int) -> np.ndarray:
  """(B,) frames to keep: up to and including the first decoder step whose
  stop probability exceeds `threshold`, all steps (the maximum decoder
  length) where none does."""
  p = 1.0 / (1.0 + np.exp(-np.asarray(stop_logits, np.float64)))
  over = p > threshold
  steps = np.where(over.any(1), over.argmax(1) + 1, over.shape[1])
  return (steps * outputs_per_step).astype(np.int32)
