"""Emotional text-to-speech: the GST-Tacotron 2 half of MMD-SER (Cai et al.,
ICASSP 2021, section 3.2), trained on a TTS corpus with jaxser's soft labels.

  text       the character vocabulary and text -> ids.
  audio      spectrograms (mel, linear), their normalisation, Griffin-Lim.
  tacotron   Tacotron 2 + mel -> linear post-net + reference encoder + GST +
             emotion predictor (flax linen).
  losses     the training losses and the Noam learning-rate schedule.
  data       a TTS corpus (audio + text, soft labels) as padded array sets.

The method is `jaxser.methods.gst_tacotron`, the CLI `jaxser.synthesize`.
"""
