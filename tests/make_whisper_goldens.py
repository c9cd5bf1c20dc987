"""Regenerates the golden files of tests/test_ssl_whisper.py (dev only).

Needs torch and transformers, which jaxser never depends on:

  pip install torch transformers
  python tests/make_whisper_goldens.py

Writes tests/golden/whisper_tiny/:

  config.json, model.safetensors   a tiny random-initialised Hugging Face
      `WhisperForConditionalGeneration` (a `WhisperModel` under `model.`, as
      the Hub's openai/whisper-* checkpoints are laid out: encoder weights
      `model.encoder.*`, decoder weights `model.decoder.*`), saved with
      `save_pretrained` (safetensors). d_model 32, 2 encoder layers of 4
      heads and ffn 64 (not 4 x d_model, so that a wrong default shows), 1
      decoder layer, vocabulary 64. HF's encoder takes exactly
      2 x max_source_positions mel frames; with Whisper's 1500 positions the
      position table alone would be 192 KB and every hidden state 1500 frames
      long, so this model has max_source_positions=50: 100 mel frames, 1 s.
  preprocessor_config.json         its `WhisperFeatureExtractor` (80 bins,
      chunk_length=1: pads / truncates to 16000 samples = 100 frames).
  golden.npz
      waveforms        (2, 16800) float16-exact waveforms: noise (6450
                       samples, not a multiple of the hop; zeros after) and
                       a tone in noise (16800 samples, longer than the 1 s
                       window: truncated); `lengths` (2,) their lengths
      input_features   (2, 80, 100) the tiny extractor's output on them (its
                       torch path, float32 STFT); `input_features_np`
                       (1, 80, 100) the noise through its NumPy path (float64
                       STFT, as where torch is absent); `attention_mask`
                       (2, 100) its frame mask
      hidden_states    (3, 2, 50, 32) HF's encoder `output_hidden_states`
                       on `input_features` (embedding output, then each
                       layer; the last one is after the final layer norm and
                       equals HF's `last_hidden_state`, which is therefore
                       not stored again)
      features_30s_head  (2, 80, 108) the first 108 frames of the default
                       (whisper-base, 80 bins, 30 s) extractor on the same
                       two waveforms; the other 2892 frames are padding, all
                       equal to the last frame, `features_30s_last` (2, 80)
      features_128_head, features_128_last  the same for the large-v3
                       extractor (128 bins) on the noise
      long_head, long_tail  (80, 40) the first and last 40 frames of the
                       default extractor on `long_waveform()` (31 s, longer
                       than the 30 s window: truncated), which the test
                       recomputes from the same formula
      mel_filters_80, mel_filters_128  the extractors' `mel_filters`
                       (201, n_mels) float64

Every parameter is randomised (0.2 N(0, 1); LayerNorm scales 1 + 0.2
N(0, 1)), the position table too. The attention runs in HF's eager
implementation.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import torch
import transformers

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden',
                    'whisper_tiny')
SEED = 0
SR = 16000
HEAD = 108  # 30 s features kept: the tone's 105 frames and a few more.
LONG = 40  # Frames kept at each end of the long waveform's features.


def long_waveform() -> np.ndarray:
  """31 s of a chirp plus a tone, float32 (tests/test_ssl_whisper.py has the
  same formula)."""
  t = np.arange(31 * SR, dtype=np.float64) / SR
  x = 0.3 * np.sin(2 * np.pi * (120.0 * t + 40.0 * t ** 2))
  x += 0.1 * np.sin(2 * np.pi * 1234.5 * t) * (1 + np.cos(2 * np.pi * 0.3 * t))
  return x.astype(np.float32)


def _waveforms(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Noise of 6450 samples (not a multiple of the hop) and 1.05 s of a
  harmonic tone in noise, both exactly representable in float16."""
  noise = 0.1 * rng.standard_normal(6450)
  t = np.arange(16800) / SR
  tone = (0.4 * np.sin(2 * np.pi * 220 * t) + 0.15 * np.sin(2 * np.pi * 660 * t)
          + 0.01 * rng.standard_normal(t.size))
  lengths = np.array([noise.size, tone.size])
  batch = np.zeros((2, tone.size), np.float16)
  batch[0, :noise.size] = noise
  batch[1] = tone
  return batch, lengths


def _randomise(model: torch.nn.Module, rng: np.random.Generator) -> None:
  with torch.no_grad():
    for name, p in model.named_parameters():
      if 'layer_norm' in name and name.endswith('weight'):
        value = 1.0 + 0.2 * rng.standard_normal(p.shape)
      else:
        value = 0.2 * rng.standard_normal(p.shape)
      p.copy_(torch.from_numpy(value.astype(np.float32)))


def _extract(fe, clips, **kw):
  out = fe([c.astype(np.float32) for c in clips], sampling_rate=SR,
           return_tensors='np', **kw)
  return out


def main() -> None:
  torch.manual_seed(SEED)
  rng = np.random.default_rng(SEED)
  if os.path.isdir(HERE):
    shutil.rmtree(HERE)
  os.makedirs(HERE)

  config = transformers.WhisperConfig(
      d_model=32, encoder_layers=2, encoder_attention_heads=4,
      encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=4,
      decoder_ffn_dim=64, vocab_size=64, max_source_positions=50,
      max_target_positions=16, num_mel_bins=80, pad_token_id=0,
      bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
      begin_suppress_tokens=None, attn_implementation='eager')
  model = transformers.WhisperForConditionalGeneration(config).eval()
  _randomise(model, rng)
  model.save_pretrained(HERE, safe_serialization=True)
  tiny_fe = transformers.WhisperFeatureExtractor(feature_size=80,
                                                 chunk_length=1)
  tiny_fe.save_pretrained(HERE)

  batch, lengths = _waveforms(rng)
  clips = [batch[i, :n] for i, n in enumerate(lengths)]
  out = _extract(tiny_fe, clips, return_attention_mask=True)
  features = out['input_features'].astype(np.float32)
  padded = np.stack([np.pad(c.astype(np.float32), (0, max(0, SR - c.size)))
                     [:SR] for c in clips])
  features_np = tiny_fe._np_extract_fbank_features(padded, 'cpu').astype(  # pylint: disable=protected-access
      np.float32)
  with torch.no_grad():
    enc = model.model.encoder(torch.from_numpy(features),
                              output_hidden_states=True)
  hidden = np.stack([h.numpy() for h in enc.hidden_states])

  fe80 = transformers.WhisperFeatureExtractor()
  fe128 = transformers.WhisperFeatureExtractor(feature_size=128)
  # HF ties the last hidden state to last_hidden_state (after layer_norm).
  np.testing.assert_array_equal(hidden[-1], enc.last_hidden_state.numpy())
  features_30s = _extract(fe80, clips)['input_features'].astype(np.float32)
  features_128 = _extract(fe128, clips[:1])['input_features'].astype(
      np.float32)
  long = _extract(fe80, [long_waveform()])['input_features'][0].astype(
      np.float32)
  # The frames after HEAD of the 30 s features are padding: all equal to
  # the last frame (the floor), which is stored instead.
  for f in (features_30s, features_128):
    np.testing.assert_array_equal(f[..., HEAD:], f[..., -1:].repeat(
        f.shape[-1] - HEAD, -1))
  np.savez_compressed(
      os.path.join(HERE, 'golden.npz'), waveforms=batch, lengths=lengths,
      input_features=features, input_features_np=features_np[:1],
      attention_mask=out['attention_mask'].astype(np.int32),
      hidden_states=hidden,
      features_30s_head=features_30s[..., :HEAD],
      features_30s_last=features_30s[..., -1],
      features_128_head=features_128[..., :HEAD],
      features_128_last=features_128[..., -1],
      long_head=long[:, :LONG], long_tail=long[:, -LONG:],
      mel_filters_80=fe80.mel_filters, mel_filters_128=fe128.mel_filters)

  total = sum(os.path.getsize(os.path.join(HERE, f)) for f in os.listdir(HERE))
  print(f'wrote {HERE} ({total / 1024:.0f} KiB) with transformers '
        f'{transformers.__version__}, torch {torch.__version__}; torch vs '
        f'NumPy extractor paths differ by '
        f'{np.abs(features - features_np).max():.2e}')
  with open(os.path.join(HERE, 'config.json')) as f:
    assert json.load(f)['model_type'] == 'whisper'


if __name__ == '__main__':
  main()
