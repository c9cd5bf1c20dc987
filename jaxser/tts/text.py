"""Characters -> ids: Tacotron 2's character input (no phonemes).

Text is lower-cased and its whitespace runs become one space; every other
character must be in `VOCABULARY` (ASCII letters, space and common
punctuation; numbers are not expanded into words). Id 0 is padding, id 1 the
end-of-sentence mark appended to every sentence.
"""

from __future__ import annotations

import numpy as np

PAD, EOS = 0, 1
CHARACTERS = " abcdefghijklmnopqrstuvwxyz'.,!?-:;\"()"
# id of each character; 0 and 1 are padding and end of sentence.
_IDS = {c: i + 2 for i, c in enumerate(CHARACTERS)}
VOCAB_SIZE = len(CHARACTERS) + 2


def normalize(text: str) -> str:
  """Lower case, whitespace runs as one space, no leading/trailing space."""
  return ' '.join(text.lower().split())


def unknown_characters(text: str) -> list[str]:
  """The characters of normalize(text) outside the vocabulary, in order."""
  return sorted({c for c in normalize(text) if c not in _IDS})


def encode(text: str, where: str = 'text') -> np.ndarray:
  """int32 ids of normalize(text) followed by EOS.

  Raises:
    ValueError: (one line, naming `where`) empty text or a character outside
      the vocabulary.
  """
  norm = normalize(text)
  if not norm:
    raise ValueError(f'{where}: empty text')
  bad = unknown_characters(norm)
  if bad:
    raise ValueError(
        f'{where}: character(s) {"".join(bad)!r} not in the vocabulary '
        f'(letters, space and {CHARACTERS[27:]!r}; spell numbers out)')
  return np.array([_IDS[c] for c in norm] + [EOS], np.int32)


def decode(ids) -> str:
  """The text of ids (padding and EOS dropped)."""
  chars = {i: c for c, i in _IDS.items()}
  return ''.join(chars.get(int(i), '') for i in ids)
