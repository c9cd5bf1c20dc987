"""Waveform augmentation on the accelerator, inside the jitted train step.

The five augmentation types of the multitask transformer (its Table 2), each
a chain of torch-audiomentations transforms, every transform applied with
probability p = 0.3:

  a_1  Gain, PolarityInversion
  a_2  Gain, PolarityInversion, Shift
  a_3  Gain, PolarityInversion, TimeInversion
  a_4  BandStopFilter, PeakNormalization, Shift
  a_5  Gain, PolarityInversion, AddColoredNoise

Each example draws one type uniformly (the paper augments every utterance
with each of the five types, "boosting the data five times"; a uniform draw
per view is the same in expectation), then each transform of that type
independently with probability p. All seven transforms are computed for every
example and kept with `jnp.where`, so shapes are static and the batch is
vectorised; they run in the order of `TRANSFORMS`, which keeps the order of
every chain of Table 2.

Parameters follow torch-audiomentations (v0.11) defaults where the paper
gives none (`AugmentConfig`). Every transform respects the clip's valid
length n: samples from n on are zero in and out. Where we depart from the
library:
  * Shift rolls the valid part only (rollover, as the library's default),
    by an integer uniform in [-round(f n), round(f n)], f = 0.5 (the
    library's +-0.5 of the length, here of the valid length).
  * BandStopFilter is an ideal notch: the FFT bins of the zero-padded clip
    in [c (1 - w/2), c (1 + w/2)] are zeroed (the library subtracts julius'
    windowed-sinc band-pass). c is drawn uniformly on the mel scale in
    [200, 4000] Hz and w uniformly in [0.5, 1.99], as the library does.
  * AddColoredNoise: white Gaussian noise over the whole clip (the library
    tiles one second of it), its spectrum scaled by the library's mask
    1 / linspace(1, sqrt(sr / 2), bins)^f_decay, RMS-normalised over the
    valid part and added at the drawn SNR relative to the clip's RMS over
    the valid part; f_decay uniform in [-2, 2], SNR uniform in [3, 30] dB.
  * Gain is uniform in [-15, 5] dB (the paper's range; library default
    [-18, 6]).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxser.data.corpus import SAMPLE_RATE

# Application order (see module docstring).
TRANSFORMS = ('gain', 'polarity_inversion', 'band_stop', 'peak_normalization',
              'shift', 'time_inversion', 'colored_noise')

# Table 2: the transforms of each augmentation type a_1 .. a_5.
TYPES = (
    ('gain', 'polarity_inversion'),
    ('gain', 'polarity_inversion', 'shift'),
    ('gain', 'polarity_inversion', 'time_inversion'),
    ('band_stop', 'peak_normalization', 'shift'),
    ('gain', 'polarity_inversion', 'colored_noise'),
)

# (num_types, num_transforms) bool: which transforms a type may apply.
MEMBERSHIP = np.array([[t in ty for t in TRANSFORMS] for ty in TYPES])


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Probabilities and parameter ranges (see module docstring)."""
  p: float = 0.3
  gain_db: Sequence[float] = (-15.0, 5.0)
  max_shift_fraction: float = 0.5
  band_stop_center_hz: Sequence[float] = (200.0, 4000.0)
  band_stop_bandwidth_fraction: Sequence[float] = (0.5, 1.99)
  noise_snr_db: Sequence[float] = (3.0, 30.0)
  noise_f_decay: Sequence[float] = (-2.0, 2.0)
  sample_rate: int = SAMPLE_RATE

  def __post_init__(self):
    for f in dataclasses.fields(self):
      v = getattr(self, f.name)
      if isinstance(v, (list, tuple)):
        object.__setattr__(self, f.name, tuple(float(x) for x in v))


@flax.struct.dataclass
class Draw:
  """One draw of augmentation parameters for a batch (all (B, ...) arrays).

  Attributes:
    aug_type: (B,) int, the augmentation type (0..4 for a_1..a_5).
    applied: (B, len(TRANSFORMS)) bool, the transforms applied: drawn with
      probability p and belonging to the type.
    gain_db, shift, center_hz, bandwidth_fraction, snr_db, f_decay: (B,)
      parameters of the transforms (drawn for all, used where applied).
    white: (B, T) standard normal noise of AddColoredNoise.
  """
  aug_type: jax.Array
  applied: jax.Array
  gain_db: jax.Array
  shift: jax.Array
  center_hz: jax.Array
  bandwidth_fraction: jax.Array
  snr_db: jax.Array
  f_decay: jax.Array
  white: jax.Array


def hz_to_mel(f):
  """The mel scale torch-audiomentations samples centre frequencies on."""
  return 2595.0 * jnp.log10(1.0 + f / 700.0)


def mel_to_hz(m):
  return 700.0 * (10.0**(m / 2595.0) - 1.0)


def draw(rng: jax.Array, lengths: jax.Array, samples: int,
         config: AugmentConfig) -> Draw:
  """Draws the augmentation of every example of a batch.

  Args:
    rng: key.
    lengths: (B,) valid samples per example.
    samples: T, the padded length.
    config: probabilities and ranges.

  Returns:
    A `Draw`.
  """
  b = lengths.shape[0]
  keys = jax.random.split(rng, 9)
  uniform = lambda k, lohi: jax.random.uniform(k, (b,), jnp.float32, *lohi)
  aug_type = jax.random.randint(keys[0], (b,), 0, len(TYPES))
  fire = jax.random.uniform(keys[1], (b, len(TRANSFORMS))) < config.p
  applied = fire & jnp.asarray(MEMBERSHIP)[aug_type]
  # Integer uniform in [-m, m], m = round(f n).
  m = jnp.round(config.max_shift_fraction * lengths).astype(jnp.int32)
  u = jax.random.uniform(keys[3], (b,))
  shift = jnp.minimum(jnp.floor(u * (2 * m + 1)).astype(jnp.int32), 2 * m) - m
  mel_lo, mel_hi = (hz_to_mel(f) for f in config.band_stop_center_hz)
  return Draw(
      aug_type=aug_type, applied=applied,
      gain_db=uniform(keys[2], config.gain_db),
      shift=shift,
      center_hz=mel_to_hz(uniform(keys[4], (mel_lo, mel_hi))),
      bandwidth_fraction=uniform(keys[5], config.band_stop_bandwidth_fraction),
      snr_db=uniform(keys[6], config.noise_snr_db),
      f_decay=uniform(keys[7], config.noise_f_decay),
      white=jax.random.normal(keys[8], (b, samples)))


################################################################################
# The transforms, on one example: x (T,) with n valid samples.
################################################################################


def _valid(x, n):
  return jnp.arange(x.shape[-1]) < n


def _rms(x, n):
  """RMS over the n valid samples."""
  return jnp.sqrt(jnp.sum(jnp.where(_valid(x, n), x * x, 0.0)) /
                  jnp.maximum(n, 1))


def gain(x, gain_db):
  """x 10^(g / 20)."""
  return x * 10.0**(gain_db / 20.0)


def polarity_inversion(x):
  return -x


def shift(x, n, s):
  """Rolls the valid part by s samples: y_i = x_{(i - s) mod n}, i < n."""
  i = jnp.arange(x.shape[-1])
  return jnp.where(i < n, x[jnp.mod(i - s, jnp.maximum(n, 1))], 0.0)


def time_inversion(x, n):
  """Reverses the valid part: y_i = x_{n - 1 - i}, i < n."""
  i = jnp.arange(x.shape[-1])
  return jnp.where(i < n, x[jnp.clip(n - 1 - i, 0, x.shape[-1] - 1)], 0.0)


def band_stop(x, n, center_hz, bandwidth_fraction, sample_rate):
  """Zeroes the FFT bins in [c (1 - w/2), c (1 + w/2)] Hz."""
  t = x.shape[-1]
  freqs = jnp.arange(t // 2 + 1) * (sample_rate / t)
  lo = center_hz * (1.0 - 0.5 * bandwidth_fraction)
  hi = center_hz * (1.0 + 0.5 * bandwidth_fraction)
  spec = jnp.fft.rfft(x)
  spec = jnp.where((freqs >= lo) & (freqs <= hi), 0.0, spec)
  return jnp.where(_valid(x, n), jnp.fft.irfft(spec, t), 0.0)


def peak_normalization(x):
  """x / max |x| (unchanged when silent): the peak goes to 0 dBFS."""
  peak = jnp.max(jnp.abs(x))
  return jnp.where(peak > 0, x / jnp.where(peak > 0, peak, 1.0), x)


def colored_noise(x, n, white, snr_db, f_decay, sample_rate):
  """x + noise with torch-audiomentations' spectral mask at `snr_db`."""
  t = x.shape[-1]
  bins = t // 2 + 1
  mask = jnp.linspace(1.0, (sample_rate / 2)**0.5, bins)**(-f_decay)
  noise = jnp.fft.irfft(jnp.fft.rfft(white) * mask, t)
  noise = jnp.where(_valid(x, n), noise, 0.0)
  noise = noise / jnp.maximum(_rms(noise, n), 1e-12)
  return x + _rms(x, n) / 10.0**(snr_db / 20.0) * noise


def _apply_one(x, n, d: Draw, config: AugmentConfig):
  """The drawn chain on one example (d holds this example's parameters)."""
  sr = config.sample_rate
  outputs = {
      'gain': lambda x: gain(x, d.gain_db),
      'polarity_inversion': polarity_inversion,
      'band_stop': lambda x: band_stop(x, n, d.center_hz,
                                       d.bandwidth_fraction, sr),
      'peak_normalization': peak_normalization,
      'shift': lambda x: shift(x, n, d.shift),
      'time_inversion': lambda x: time_inversion(x, n),
      'colored_noise': lambda x: colored_noise(x, n, d.white, d.snr_db,
                                               d.f_decay, sr),
  }
  for j, name in enumerate(TRANSFORMS):
    x = jnp.where(d.applied[j], outputs[name](x), x)
  return x


def apply(wave: jax.Array, lengths: jax.Array, d: Draw,
          config: AugmentConfig) -> jax.Array:
  """Applies a `Draw` to (B, T) waveforms with (B,) valid lengths."""
  return jax.vmap(lambda x, n, di: _apply_one(x, n, di, config))(
      wave, lengths, d)


def augment(rng: jax.Array, wave: jax.Array, lengths: jax.Array,
            config: AugmentConfig):
  """Draws and applies an augmentation per example; returns (wave, Draw)."""
  d = draw(rng, lengths, wave.shape[1], config)
  return apply(wave, lengths, d, config), d


def token_cutoff(rng: jax.Array, ids: jax.Array, lengths: jax.Array,
                 p: float, keep_special: bool = True) -> jax.Array:
  """Token cutoff (Shen et al. 2020), the multitask paper's text
  augmentation (its section 3.2.3): every valid token id is set to 0 with
  probability p, independently, so that no trace of the removed token is
  left in the input embeddings.

    x'_bt = 0 if u_bt < p and t is a cut-able position, else x_bt,
    u_bt ~ U[0, 1).

  Positions from `lengths` on (padding) are left as they are. With
  `keep_special` (our choice; the paper does not say) the first and the last
  valid token, BERT's [CLS] and [SEP], are never cut.

  Args:
    rng: key.
    ids: (B, T) token ids (any numeric dtype; returned in the same dtype).
    lengths: (B,) valid tokens per row.
    p: the cutoff probability (0.15 in the paper).
    keep_special: keep the first and last valid token.
  """
  t = jnp.arange(ids.shape[1])[None, :]
  lengths = lengths[:, None]
  cut = jax.random.uniform(rng, ids.shape) < p
  cut &= t < lengths
  if keep_special:
    cut &= (t > 0) & (t < lengths - 1)
  return jnp.where(cut, jnp.zeros((), ids.dtype), ids)
