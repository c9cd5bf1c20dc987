"""GST-Tacotron 2 with the emotion predictor on the style-token weights (Cai et
al., ICASSP 2021, section 3.2): emotional TTS from an emotion-unlabelled TTS
corpus and the soft labels jaxser's MMD-SER gives it.

  # 1. the SER model, and the TTS corpus labelled by it (top-50 per class):
  python -m jaxser.main --config=configs/mmd_ser.py --workdir=/tmp/ser \
      --config.data.source=iemocap --config.data.target=ljspeech \
      --config.data.paths.ljspeech=/data/LJSpeech-1.1 ...
  python -m jaxser.label --workdir=/tmp/ser --corpus=ljspeech \
      --root=/data/LJSpeech-1.1 --out=/tmp/labels
  # 2. the TTS model (our-4cls; our-2d: --config.tts.variant=our-2d with
  #    --config.tts.arousal_labels / valence_labels; base-4cls: no labels):
  python -m jaxser.main --config=configs/gst_tacotron.py --workdir=/tmp/tts \
      --config.data.paths.ljspeech=/data/LJSpeech-1.1 \
      --config.tts.labels=/tmp/labels
  # 3. speech:
  python -m jaxser.synthesize --workdir=/tmp/tts --emotion=happy \
      --text="The birch canoe slid on the smooth planks." --out=happy.wav

The TTS corpus is `config.data.target`: `ljspeech` (a metadata.csv folder)
or `folder` with a text column in its labels.csv; `config.data.source` is
not read.
"""

import ml_collections

from jaxser import config as config_lib
from jaxser.data.corpora import ljspeech  # noqa: F401  (registers the corpus)


def get_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.method = 'gst_tacotron'
  c.data.target = 'ljspeech'
  # Batch 32, 150k steps (section 4.2).
  c.train.batch_size = 32
  c.train.steps = 150_000
  c.train.log_every = 50
  c.train.checkpoint_every = 2000
  c.train.eval_batch_size = 32

  t = c.tts = ml_collections.ConfigDict()
  t.variant = 'our-4cls'  # our-4cls | our-2d | base-4cls.
  # jaxser.label output folders (soft_labels.csv): emotion4 for the 4-class
  # variants, arousal and valence runs for our-2d.
  t.labels = ''
  t.arousal_labels = ''
  t.valence_labels = ''
  t.max_seconds = 14.0  # The paper's filters.
  t.max_chars = 100
  t.val_fraction = 0.02  # Held out for the results' losses.
  t.emotion_weight = 1.0  # Weight of the emotion CE (the paper: 1).
  # Adam with the Noam warm-up (section 4.2).
  t.learning_rate = 2e-3
  t.warmup_steps = 4000
  t.decay_power = -0.5
  t.adam_b1 = 0.9
  t.adam_b2 = 0.999
  t.adam_eps = 1e-6
  t.grad_clip = 1.0
  # Synthesis (jaxser.synthesize): attention softmax temperature 2.0
  # (section 4.2), stop threshold, maximum decoder steps, top-K.
  t.temperature = 2.0
  t.stop_threshold = 0.5
  t.max_decoder_steps = 1000
  t.top_k = 50
  t.audio = ml_collections.ConfigDict(dict(
      n_fft=1024, win_ms=50.0, hop_ms=12.5, n_mels=80, fmin=0.0, fmax=8000.0,
      min_db=-100.0, ref_db=20.0, power=1.5, griffin_lim_iters=60))
  # Tacotron 2 / GST sizes (jaxser/tts/tacotron.py); outputs_per_step r = 1
  # as Tacotron 2 (2 or 3 train faster).
  t.model = ml_collections.ConfigDict(dict(
      outputs_per_step=1, embed_dim=512, encoder_convs=3, encoder_kernel=5,
      encoder_lstm=256, dropout=0.5, prenet=(256, 256), attention_rnn=1024,
      decoder_rnn=1024, attention_dim=128, location_filters=32,
      location_kernel=31, postnet_convs=5, postnet_channels=512,
      postnet_kernel=5, cbhg_bank=8, cbhg_channels=128, cbhg_projections=256,
      cbhg_highway=4, cbhg_gru=128,
      reference_filters=(32, 32, 64, 64, 128, 128), reference_gru=128,
      num_tokens=10, token_dim=256, token_heads=4))
  return c
