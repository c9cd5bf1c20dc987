"""Reading audio files as 16 kHz mono float32, and checking they are usable.

`load` reads any container libsndfile reads (WAV, AIFF, FLAC, OGG/Vorbis,
MP3, CAF, W64, ...) at any sample rate and channel count, downmixes to mono
and resamples to 16 kHz. libsndfile identifies the format from the file's
content, not its name, so a file whose extension lies (AIFF or FLAC named
.wav) still reads; no other decoder is needed for what corpora ship in.

A file that cannot be used raises `AudioError`, whose message is the reason
the feature cache lists for it:
  missing / empty file (0 bytes) / unreadable (not audio libsndfile knows, or
    cut inside its header) / no audio samples (a header and nothing else);
  truncated: the file holds less audio than its header declares (a WAV whose
    data chunk runs past the end of the file) or its decoder fails part-way
    (a cut FLAC or OGG). If at least `TRUNCATED_KEEP` of the declared length
    is readable the readable part is used (a little lost at the end, as a
    header slightly off, does not change an utterance) and a warning logged;
    otherwise the file is skipped;
  (from `check`) empty, non-finite samples, too short (< `MIN_SECONDS` s),
    all silent (peak below `SILENCE_PEAK`).
Long files are read block by block and only their first `max_seconds`
(default `MAX_SECONDS`) are used, with a warning logged: features use a fixed
number of frames anyway, and memory stays bounded whatever the file's length.
"""

from __future__ import annotations

import logging
import math
import os
import struct

import numpy as np
import soundfile as sf

from jaxser.data.corpus import SAMPLE_RATE

MIN_SECONDS = 0.1
MAX_SECONDS = 60.0
TRUNCATED_KEEP = 0.9
# -80 dBFS: digital silence, or a few least significant bits of 16-bit noise.
SILENCE_PEAK = 1e-4
# Blocks are small so that a stream failing part-way loses at most one.
_BLOCK_SECONDS = 1


class AudioError(ValueError):
  """A file cannot be used; the message says why."""


def resample(wav: np.ndarray, rate: int,
             target: int = SAMPLE_RATE) -> np.ndarray:
  """Polyphase resampling of a 1-D signal from `rate` to `target` Hz."""
  if rate == target:
    return wav
  from scipy import signal  # pylint: disable=g-import-not-at-top
  g = math.gcd(int(rate), int(target))
  return signal.resample_poly(wav, target // g,
                              int(rate) // g).astype(np.float32)


def _declared_wav_frames(path: str) -> int | None:
  """Frames a PCM / float RIFF WAV header declares, None if not such a file.

  libsndfile silently shortens a WAV whose data chunk runs past the end of
  the file, so truncation is found by reading the header itself.
  """
  with open(path, 'rb') as f:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b'RIFF' or head[8:] != b'WAVE':
      return None
    block_align = None
    while True:
      chunk = f.read(8)
      if len(chunk) < 8:
        return None
      cid, size = chunk[:4], struct.unpack('<I', chunk[4:])[0]
      if cid == b'fmt ':
        fmt = f.read(size + (size & 1))
        if len(fmt) < 14:
          return None
        tag, = struct.unpack('<H', fmt[:2])
        block_align, = struct.unpack('<H', fmt[12:14])
        # Only for PCM, float and extensible does the size fix the frames.
        if tag not in (1, 3, 0xFFFE) or not block_align:
          return None
      elif cid == b'data':
        # Streaming writers leave the size 0 or 0xFFFFFFFF: unknown.
        if block_align is None or size in (0, 0xFFFFFFFF):
          return None
        return size // block_align
      else:
        f.seek(size + (size & 1), os.SEEK_CUR)


def load(path: str, max_seconds: float | None = MAX_SECONDS) -> np.ndarray:
  """Reads an audio file as 16 kHz mono float32 (see the module docstring).

  Args:
    path: the file.
    max_seconds: only the first `max_seconds` are read; None reads it all.

  Returns:
    The waveform, 1-D float32 at SAMPLE_RATE.

  Raises:
    AudioError: the file cannot be used; the message says why.
  """
  try:
    size = os.path.getsize(path)
  except OSError as e:
    raise AudioError(f'missing: {e.strerror}') from e
  if not size:
    raise AudioError('empty file (0 bytes)')
  try:
    f = sf.SoundFile(path)
  except Exception as e:  # libsndfile raises several types; its text says why.
    raise AudioError(f'unreadable: {e}') from e
  with f:
    rate = f.samplerate
    header = (_declared_wav_frames(path) if f.format in ('WAV', 'WAVEX')
              else None)
    declared = max(f.frames, header or 0)
    cap = math.inf if max_seconds is None else int(max_seconds * rate)
    blocks, n, error = [], 0, None
    while n < cap:
      try:
        x = f.read(int(min(_BLOCK_SECONDS * rate, cap - n)), dtype='float32',
                   always_2d=True)
      except Exception as e:  # pylint: disable=broad-except
        error = e  # A decoder failing part-way: a cut or corrupt stream.
        break
      if not len(x):
        break
      blocks.append(x.mean(axis=1))  # Downmixing each block bounds memory.
      n += len(x)
  cause = f' ({error})' if error else ''
  expected = min(declared, cap)
  # A WAV header declaring more than is there, or a decoder failing, means a
  # cut file; a compressed stream merely ending before libsndfile's estimate
  # of its length is complete.
  if n < expected and (header or error):
    if n < TRUNCATED_KEEP * expected:
      raise AudioError(f'truncated: {n / rate:.2f} s of the '
                       f'{declared / rate:.2f} s its header declares are '
                       f'readable{cause}')
    logging.warning('%s: truncated, using the %.2f s of %.2f s readable%s',
                    path, n / rate, declared / rate, cause)
  if not n:
    raise AudioError(f'no audio samples{cause}')
  if n == cap and declared > cap:
    logging.warning('%s: %.1f s long, using its first %.1f s', path,
                    declared / rate, max_seconds)
  return resample(np.concatenate(blocks), rate)


def check(wav: np.ndarray) -> None:
  """Raises AudioError if `wav` (16 kHz mono) cannot be used, saying why."""
  if wav.size == 0:
    raise AudioError('empty')
  if not np.all(np.isfinite(wav)):
    raise AudioError('non-finite samples')
  if wav.size < MIN_SECONDS * SAMPLE_RATE:
    raise AudioError(f'too short ({wav.size / SAMPLE_RATE:.3f} s < '
                     f'{MIN_SECONDS} s)')
  if np.max(np.abs(wav)) < SILENCE_PEAK:
    raise AudioError('all silent')
