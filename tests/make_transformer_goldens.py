"""Regenerates the golden files of tests/test_transformers.py (dev only).

Needs torch and transformers, which jaxser never depends on:

  pip install torch transformers
  python tests/make_transformer_goldens.py

Builds tiny random-initialised Hugging Face `ASTModel` and `BertModel`, saves
them in the Hugging Face layout (`save_pretrained`, safetensors) under
tests/golden/ast_tiny/ and tests/golden/bert_tiny/ (BERT with a tiny
word-piece vocabulary: vocab.txt and the tokenizer.json that transformers
writes from it), with fixed inputs and their outputs in `golden.npz`:
`hidden_states` stacked as (layers + 1, batch, tokens, hidden) in the order
of `output_hidden_states`, and `last_hidden_state`. Every parameter is
randomised, LayerNorms and the cls / distillation / position embeddings too
(HF initialises some of those to zeros or ones, which would hide a bug in how
they are used). The attention runs in HF's eager implementation.
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

# A tiny word-piece vocabulary: specials, whole words, suffixes and the
# letters so that unknown words split instead of becoming [UNK].
WORDS = ('the a an is i am happy sad angry you are not very today feel so '
         'what why how do don it he she we they was were be been good bad '
         'hello world play music voice speech emotion calm').split()
SUFFIXES = ['##s', '##ed', '##ing', '##ly', '##er', '##n', '##t']
PUNCT = list(".,!?'-")
LETTERS = [chr(c) for c in range(ord('a'), ord('z') + 1)]
VOCAB = list(dict.fromkeys(  # Without duplicates ('a', 'i'), in order.
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] + WORDS + SUFFIXES +
    PUNCT + LETTERS + ['##' + c for c in LETTERS]))

SENTENCES = [
    'I am very happy today!',
    "Why don't you feel calm?",
    'The SPEECH was Angry, not sad.',
    'Café music: zebras playing quickly',
    'hello',
    'they were playing good music and it was so very calm, how happy we '
    'were to hear the voice of the speech emotion world today',
]
MAX_LENGTH = 24


def _randomise(model: torch.nn.Module, rng: np.random.Generator) -> None:
  with torch.no_grad():
    for name, p in model.named_parameters():
      if 'layernorm' in name.lower() and name.endswith('weight'):
        value = 1.0 + 0.2 * rng.standard_normal(p.shape)
      else:
        value = 0.2 * rng.standard_normal(p.shape)
      p.copy_(torch.from_numpy(value.astype(np.float32)))


def _hidden(out) -> dict[str, np.ndarray]:
  return {
      'hidden_states': np.stack([h.numpy() for h in out.hidden_states]),
      'last_hidden_state': out.last_hidden_state.numpy(),
  }


def _fresh(directory: str) -> str:
  if os.path.isdir(directory):
    shutil.rmtree(directory)
  os.makedirs(directory)
  return directory


def make_ast(rng: np.random.Generator) -> None:
  out_dir = _fresh(os.path.join(HERE, 'ast_tiny'))
  # Frequency and time strides differ, so a swap of the two axes fails.
  config = transformers.ASTConfig(
      hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=64, max_length=64, num_mel_bins=128, patch_size=16,
      frequency_stride=10, time_stride=12, attn_implementation='eager')
  model = transformers.ASTModel(config).eval()
  _randomise(model, rng)
  model.save_pretrained(out_dir, safe_serialization=True)
  x = rng.standard_normal((2, 64, 128)).astype(np.float32)
  with torch.no_grad():
    out = model(torch.from_numpy(x), output_hidden_states=True)
  np.savez_compressed(os.path.join(out_dir, 'golden.npz'), input_values=x,
                      **_hidden(out))


def make_bert(rng: np.random.Generator) -> None:
  out_dir = _fresh(os.path.join(HERE, 'bert_tiny'))
  vocab_path = os.path.join(out_dir, 'vocab.txt')
  with open(vocab_path, 'w') as f:
    f.write('\n'.join(VOCAB) + '\n')
  tokenizer = transformers.BertTokenizer.from_pretrained(
      out_dir, do_lower_case=True)
  tokenizer.save_pretrained(out_dir)
  config = transformers.BertConfig(
      vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
      num_attention_heads=4, intermediate_size=64, max_position_embeddings=32,
      type_vocab_size=2, attn_implementation='eager')
  model = transformers.BertModel(config).eval()
  _randomise(model, rng)
  model.save_pretrained(out_dir, safe_serialization=True)

  per_sentence = [tokenizer(s)['input_ids'] for s in SENTENCES]
  batch = tokenizer(SENTENCES, padding='longest', truncation=True,
                    max_length=MAX_LENGTH, return_tensors='np')
  with open(os.path.join(out_dir, 'tokens.json'), 'w') as f:
    json.dump({'sentences': SENTENCES, 'ids': per_sentence,
               'max_length': MAX_LENGTH,
               'batch_input_ids': batch['input_ids'].tolist(),
               'batch_attention_mask': batch['attention_mask'].tolist()},
              f, ensure_ascii=False)

  ids = batch['input_ids'][:3].astype(np.int64)
  mask = batch['attention_mask'][:3].astype(np.int64)
  token_types = np.zeros_like(ids)
  token_types[0, 4:] = 1
  with torch.no_grad():
    out = model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                output_hidden_states=True)
    out_tt = model(torch.from_numpy(ids),
                   attention_mask=torch.from_numpy(mask),
                   token_type_ids=torch.from_numpy(token_types),
                   output_hidden_states=True)
  tt = {k + '_token_types': v for k, v in _hidden(out_tt).items()}
  np.savez_compressed(os.path.join(out_dir, 'golden.npz'), input_ids=ids,
                      attention_mask=mask, token_type_ids=token_types,
                      **_hidden(out), **tt)


def main() -> None:
  torch.manual_seed(SEED)
  rng = np.random.default_rng(SEED)
  make_ast(rng)
  make_bert(rng)
  total = sum(os.path.getsize(os.path.join(d, f))
              for d, _, fs in os.walk(HERE) for f in fs)
  print(f'wrote {HERE} ({total / 1024:.0f} KiB) with transformers '
        f'{transformers.__version__}, torch {torch.__version__}')


if __name__ == '__main__':
  main()
