"""Regenerates the golden files of tests/test_ssl_wav2vec2.py (dev only).

Needs torch and transformers, which jaxser never depends on:

  pip install torch transformers
  python tests/make_ssl_goldens.py

Builds tiny random-initialised Hugging Face `Wav2Vec2Model` (a base-like
'group' / post-norm one and a large-lv60-like 'layer' / stable-layer-norm
one), `HubertModel` and `WavLMModel` (base-like and large-like), saves them
in the Hugging Face layout (`save_pretrained`, safetensors, plus a
`preprocessor_config.json`) under tests/golden/<name>/, with fixed inputs
and their outputs in `golden.npz`:

  pcm (3, samples) int16, lengths (3,)
                                 three utterances (tones in noise) as
                                 16-bit PCM, x = pcm / 32768, of `lengths`
                                 valid samples each (zeros after)
  hidden_states, last_hidden_state   HF on input_values = x[:2] (unpadded;
                                 `output_hidden_states` stacked as
                                 (layers + 1, batch, frames, hidden))
  padded_hidden_states, padded_last_hidden_state
                                 HF on all three with attention_mask (3,
                                 samples) = 1 on the first lengths[i] samples
  single_hidden_states_<i>       HF on utterance i alone, unpadded
                                 (layers + 1, 1, frames_i, hidden)

and, in wav2vec2_tiny_group only, the feature extractor's normalisation:

  raw_offset, raw_gain (3,)      raw_i = raw_offset[i] + raw_gain[i] * x_i
                                 (float32), un-normalised audio
  extractor_input_values, extractor_attention_mask
                                 Wav2Vec2FeatureExtractor(do_normalize=True)
                                 on the three raw_i (padding='longest',
                                 return_attention_mask=True)

Every parameter is randomised, the norms, the positional convolution's
weight-norm g and v, WavLM's gate constants and relative-position embedding
too (HF initialises some of those to ones or zeros, which would hide a bug
in how they are used). Attention runs in HF's eager implementation.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import torch
import transformers

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
SEED = 0
SAMPLES = 8000  # 0.5 s at 16 kHz.
PADDED_LENGTHS = (SAMPLES, 5003, 2345)

# Small but complete: 7 conv layers with the real kernels and strides (so
# frame counts are the real ones, 24 for 0.5 s), channel counts that differ
# from layer to layer (a transposed kernel fails), 2 transformer layers.
COMMON = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=48, conv_dim=(8, 12, 8, 12, 8, 12, 16),
    conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
    attn_implementation='eager')

MODELS = {
    # wav2vec2-base-like: GroupNorm on the first conv, post-norm encoder,
    # even positional kernel (one frame removed).
    'wav2vec2_tiny_group': (transformers.Wav2Vec2Config, transformers.
                            Wav2Vec2Model, dict(
                                feat_extract_norm='group',
                                do_stable_layer_norm=False, conv_bias=False,
                                num_conv_pos_embeddings=8,
                                num_conv_pos_embedding_groups=4),
                            False),
    # large-lv60 / XLS-R-like: LayerNorm after every conv, conv bias,
    # pre-norm ("stable layer norm") encoder.
    'wav2vec2_tiny_layer_stable': (transformers.Wav2Vec2Config,
                                   transformers.Wav2Vec2Model, dict(
                                       feat_extract_norm='layer',
                                       do_stable_layer_norm=True,
                                       conv_bias=True,
                                       num_conv_pos_embeddings=6,
                                       num_conv_pos_embedding_groups=2),
                                   True),
    # HuBERT-base-like, without the feature projection's LayerNorm and with
    # an odd positional kernel (nothing removed).
    'hubert_tiny': (transformers.HubertConfig, transformers.HubertModel, dict(
        feat_extract_norm='group', do_stable_layer_norm=False,
        conv_bias=False, feat_proj_layer_norm=False,
        num_conv_pos_embeddings=5, num_conv_pos_embedding_groups=4), False),
    # WavLM-base-like; few buckets and a short max distance so that the
    # 24 frames reach the logarithmic buckets and the clamp.
    'wavlm_tiny': (transformers.WavLMConfig, transformers.WavLMModel, dict(
        feat_extract_norm='group', do_stable_layer_norm=False,
        conv_bias=False, num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=4, num_buckets=16,
        max_bucket_distance=12), False),
    # WavLM-large-like.
    'wavlm_tiny_layer_stable': (transformers.WavLMConfig,
                                transformers.WavLMModel, dict(
                                    feat_extract_norm='layer',
                                    do_stable_layer_norm=True,
                                    conv_bias=True,
                                    num_conv_pos_embeddings=6,
                                    num_conv_pos_embedding_groups=2,
                                    num_buckets=20, max_bucket_distance=16),
                                True),
}


def _randomise(model: torch.nn.Module, rng: np.random.Generator) -> None:
  with torch.no_grad():
    for name, p in model.named_parameters():
      lower = name.lower()
      if ('norm' in lower and name.endswith('weight')) or (
          'gru_rel_pos_const' in name):
        value = 1.0 + 0.2 * rng.standard_normal(p.shape)
      elif 'original0' in name or name.endswith('weight_g'):
        value = 1.0 + 0.3 * rng.standard_normal(p.shape)  # Weight-norm g.
      elif 'rel_attn_embed' in name:
        value = rng.standard_normal(p.shape)  # A bias that matters.
      elif 'feature_extractor' in name and name.endswith('conv.weight'):
        value = 0.3 * rng.standard_normal(p.shape)
      else:
        value = 0.2 * rng.standard_normal(p.shape)
      p.copy_(torch.from_numpy(value.astype(np.float32)))


def _waveforms(rng: np.random.Generator) -> np.ndarray:
  """Three tones in noise with different pitches and levels, int16 PCM,
  zero past PADDED_LENGTHS."""
  t = np.arange(SAMPLES) / 16000
  rows = []
  for i, n in enumerate(PADDED_LENGTHS):
    f0 = 120 + 70 * i
    wav = (0.5 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(
        2 * np.pi * 3.1 * f0 * t) + 0.3 * rng.standard_normal(t.size))
    wav = (1 + 0.5 * i) * wav / 4
    wav[n:] = 0.0
    rows.append(np.round(np.clip(wav, -1, 1 - 2**-15) * 32768))
  return np.stack(rows).astype(np.int16)


def _hidden(out, prefix: str = '') -> dict[str, np.ndarray]:
  return {
      prefix + 'hidden_states': np.stack(
          [h.numpy() for h in out.hidden_states]),
      prefix + 'last_hidden_state': out.last_hidden_state.numpy(),
  }


def _fresh(directory: str) -> str:
  if os.path.isdir(directory):
    shutil.rmtree(directory)
  os.makedirs(directory)
  return directory


def make(name: str, rng: np.random.Generator) -> None:
  config_cls, model_cls, extra, do_normalize = MODELS[name]
  out_dir = _fresh(os.path.join(HERE, name))
  config = config_cls(**COMMON, **extra)
  model = model_cls(config).eval()
  _randomise(model, rng)
  model.save_pretrained(out_dir, safe_serialization=True)
  extractor = transformers.Wav2Vec2FeatureExtractor(
      do_normalize=do_normalize,
      return_attention_mask=config.feat_extract_norm == 'layer')
  extractor.save_pretrained(out_dir)

  pcm = _waveforms(rng)
  lengths = np.array(PADDED_LENGTHS, np.int64)
  padded = pcm.astype(np.float32) / 32768
  x = padded[:2]
  mask = (np.arange(SAMPLES)[None, :] < lengths[:, None]).astype(np.int64)
  golden = {'pcm': pcm, 'lengths': lengths}
  with torch.no_grad():
    golden.update(_hidden(model(torch.from_numpy(x),
                                output_hidden_states=True)))
    golden.update(_hidden(model(torch.from_numpy(padded),
                                attention_mask=torch.from_numpy(mask),
                                output_hidden_states=True), 'padded_'))
    for i, n in enumerate(PADDED_LENGTHS):
      one = model(torch.from_numpy(padded[i:i + 1, :n]),
                  output_hidden_states=True)
      golden[f'single_hidden_states_{i}'] = np.stack(
          [h.numpy() for h in one.hidden_states])

  if name == 'wav2vec2_tiny_group':
    # The feature extractor's normalisation on un-normalised, padded audio.
    offset = np.array([0.05, 0.25, -0.4], np.float32)
    gain = np.array([0.3, 1.3, 2.3], np.float32)
    raw = [offset[i] + gain[i] * padded[i, :n]
           for i, n in enumerate(PADDED_LENGTHS)]
    features = transformers.Wav2Vec2FeatureExtractor(
        do_normalize=True, return_attention_mask=True)(
            raw, padding='longest', sampling_rate=16000, return_tensors='np')
    golden.update(raw_offset=offset, raw_gain=gain,
                  extractor_input_values=features['input_values'],
                  extractor_attention_mask=features['attention_mask'])
  np.savez_compressed(os.path.join(out_dir, 'golden.npz'), **golden)


def main() -> None:
  torch.manual_seed(SEED)
  rng = np.random.default_rng(SEED)
  for name in MODELS:
    make(name, rng)
  sizes = {name: sum(os.path.getsize(os.path.join(HERE, name, f))
                     for f in os.listdir(os.path.join(HERE, name)))
           for name in MODELS}
  print(json.dumps({k: f'{v / 1024:.0f} KiB' for k, v in sizes.items()}))
  print(f'wrote {HERE} with transformers {transformers.__version__}, torch '
        f'{torch.__version__}')


if __name__ == '__main__':
  main()
