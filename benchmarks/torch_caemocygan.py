"""A straightforward PyTorch CAEmoCyGAN adversarial step, to benchmark jaxser
against.

  python benchmarks/torch_caemocygan.py [--steps 20] [--warmup 3]
      [--batch_size 256] [--sources 2] [--device cpu|cuda] [--compile]
      [--threads N]

prints one JSON line with the keys of `python -m jaxser.bench
--config=configs/caemocygan.py` where they mean the same thing (method,
phase, samples_per_s, step_ms_median, step_cpu_ms_median,
batch_size_per_domain, streams, input_shape, devices, device_kind) plus
torch_version, compile, threads, num_params, first_step_s and the last
step's losses.

torch is NOT a dependency of jaxser; install it next to it to run this file:

  pip install torch==2.13.0                      # CPU wheel
  # For --device cuda: a CUDA build of torch from the machine's wheels or
  # PyTorch's own wheel index (the cuXXX of your driver).

The same step as `jaxser.methods.cyclegan.CAEmoCyGAN._adversarial_step` with
`configs/caemocygan.py` (two sources S_0, S_1 and the target T, one batch of
`--batch_size` from each: 3 x 256 examples a step), written the usual
PyTorch way (nn.Module, eager mode, one optimiser per parameter group):

  Enc_S, Enc_T    [1582, 1000, 500, 256]  Linear -> BatchNorm1d -> ReLU on
                                          every layer (the code layer too);
                                          no Linear bias before a BN
  Dec_T, Dec_S_i  [256, 500, 1000, 1582]  Linear -> BN -> ReLU hidden, tanh
                                          output
  D_S_i, D_T      [1582, 1000, 500, 1]    Linear -> BN -> ReLU hidden, a logit
  attention       h_cat = (h_s_i || h_t_ref) (512) -> tanh(Linear 128) ->
                  v (Linear 128 -> 1, no bias) -> softmax over the sources;
                  h_fake = alpha . h_stack, T_fake = Dec_T(h_fake); the
                  reference h_t_ref = Enc_T(T) (eq. 7)
  F_s             [1582, 500, 100, 3] classifier, frozen (pre-trained in an
                  earlier phase), in eval mode (running BN statistics)

Generator update (generators Adam 2e-5 and attention Adam 2e-2, one loss,
eq. 17 with lambda = 10, 10, 1, 10), for each source i:

  fake_t = G_ST(S_i), rec_s = G_TS_i(fake_t), fake_s = G_TS_i(T),
  rec_t = G_ST(fake_s), same_s = G_TS_i(S_i);
  cycle    += MSE(rec_s, S_i) + MSE(rec_t, T)
  identity += MSE(same_s, S_i)
  GAN      += -mean softplus(D_S_i(fake_s))     (log form, minimax
                                                  generator: E log(1 - D))
  emotion  += CE(F_s(rec_s), y_i)
then identity += MSE(G_ST(T), T) and GAN += -mean softplus(D_T(T_fake)) with
the attention-fused T_fake. MSE is the per-element mean (jaxser.losses.gan).
The calls (and so the batch-norm running statistics they update) are in
jaxser's order; the discriminators' calls inside the generator loss use the
batch's statistics without updating their running ones (jaxser discards
them), and the discriminators get no gradient there (requires_grad off).

Discriminator update (Adam 2e-5), on the same fakes, detached: for D_S_0,
D_S_1, D_T, mean softplus(-D(real)) + mean softplus(D(fake)), real and fake
in separate calls (separate batch statistics), summed.

Initialisers are PyTorch's defaults, not flax's; that does not change the
work a step does. BatchNorm1d(momentum=0.1, eps=1e-5) is flax's
BatchNorm(momentum=0.9, epsilon=1e-5) (PyTorch's running variance is the
unbiased one; it is only read by F_s, whose running statistics are frozen).

Timing follows jaxser.bench: random data (features uniform in [-1, 1],
random labels) created on the device beforehand, `--warmup` untimed steps
(for --compile: after the compiling first step), then `--steps` timed steps,
each ended by a device synchronisation (the losses are read back, as a
training loop that logs them would). --compile wraps the generator loss, the
discriminator loss and the three optimiser steps in torch.compile.
samples_per_s counts the examples of all corpora (3 x batch_size) per step.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F


# configs/caemocygan.py, jaxser.methods.cyclegan.hparams() (Table 2).
DIM = 1582
ENCODER = (1000, 500, 256)
DISCRIMINATOR = (1000, 500)
CLASSIFIER = (500, 100)
ATTENTION_SIZE = 128
NUM_CLASSES = 3  # arousal3
LAMBDAS = (10.0, 10.0, 1.0, 10.0)  # cycle, identity, GAN, emotion.
LR_GENERATORS = 2e-5
LR_DISCRIMINATORS = 2e-5
LR_ATTENTION = 2e-2
ADAM_B1 = 0.9


################################################################################
# Networks (jaxser.models.cyclegan).
################################################################################


class FeedForward(nn.Module):
  """Linear layers of `features` output sizes: hidden layers Linear (no
  bias) -> BN -> ReLU; the last Linear (-> BN when the final activation is
  'relu') ->
  final activation. forward(x, update_stats=False) normalises training-mode
  batch norm with the batch's statistics without updating the running ones.
  """

  def __init__(self, in_dim, features, final_activation='none',
               batch_norm=True):
    super().__init__()
    self.linears = nn.ModuleList()
    self.norms = nn.ModuleList()
    prev = in_dim
    for i, width in enumerate(features):
      last = i == len(features) - 1
      bn = batch_norm and (not last or final_activation == 'relu')
      # No bias before a batch norm (its mean cancels it), as jaxser.
      self.linears.append(nn.Linear(prev, width, bias=not bn))
      self.norms.append(nn.BatchNorm1d(width) if bn else nn.Identity())
      prev = width
    self.final_activation = final_activation

  def forward(self, x, update_stats=True):
    n = len(self.linears)
    for i, (linear, norm) in enumerate(zip(self.linears, self.norms)):
      x = linear(x)
      if isinstance(norm, nn.BatchNorm1d):
        if update_stats or not self.training:
          x = norm(x)
        else:
          x = F.batch_norm(x, None, None, norm.weight, norm.bias, True, 0.0,
                           norm.eps)
      if i < n - 1:
        x = F.relu(x)
    if self.final_activation == 'relu':
      return F.relu(x)
    if self.final_activation == 'tanh':
      return torch.tanh(x)
    return x


class CorpusAttention(nn.Module):
  """Eqs. 8-12: alpha = softmax_i v^T tanh(W (h_s_i || h_t_ref) + b)."""

  def __init__(self, hidden=ENCODER[-1], attention_size=ATTENTION_SIZE):
    super().__init__()
    self.score = nn.Linear(2 * hidden, attention_size)
    self.v = nn.Linear(attention_size, 1, bias=False)

  def forward(self, h_sources, h_ref):
    """h_sources (B, C, H), h_ref (B, H) -> alpha (B, C)."""
    h_cat = torch.cat([h_sources, h_ref[:, None].expand_as(h_sources)], -1)
    energy = self.v(torch.tanh(self.score(h_cat)))[..., 0]
    return torch.softmax(energy, dim=-1)


class CAEmoCyGAN(nn.Module):
  """Every network of the adversarial phase."""

  def __init__(self, num_sources=2, dim=DIM, num_classes=NUM_CLASSES):
    super().__init__()
    dec = tuple(reversed(ENCODER[:-1])) + (dim,)
    self.enc_s = FeedForward(dim, ENCODER, 'relu')
    self.enc_t = FeedForward(dim, ENCODER, 'relu')
    self.dec_t = FeedForward(ENCODER[-1], dec, 'tanh')
    self.dec_s = nn.ModuleList([FeedForward(ENCODER[-1], dec, 'tanh')
                                for _ in range(num_sources)])
    self.d_s = nn.ModuleList([FeedForward(dim, DISCRIMINATOR + (1,))
                              for _ in range(num_sources)])
    self.d_t = FeedForward(dim, DISCRIMINATOR + (1,))
    self.attention = CorpusAttention()
    self.f_s = FeedForward(dim, CLASSIFIER + (num_classes,))
    self.f_s.requires_grad_(False)  # Trained in an earlier phase.

  def train(self, mode=True):
    super().train(mode)
    self.f_s.eval()  # Always its running statistics.
    return self

  def generators(self):
    return [self.enc_s, self.enc_t, self.dec_t, *self.dec_s]

  def discriminators(self):
    return [*self.d_s, self.d_t]

  def g_st(self, x):
    return self.dec_t(self.enc_s(x))

  def g_ts(self, i, x):
    return self.dec_s[i](self.enc_t(x))


def _params(modules):
  return [p for m in modules for p in m.parameters()]


def num_trainable_params(model: CAEmoCyGAN) -> int:
  return sum(p.numel() for p in _params(model.generators() +
                                        model.discriminators() +
                                        [model.attention]))


################################################################################
# Losses (jaxser.losses.gan, jaxser.methods.cyclegan).
################################################################################


def generator_loss(model: CAEmoCyGAN, xs, ys, xt):
  """Eq. 17's generator terms; (total, terms, fakes): fakes are (real,
  fake) pairs for D_S_0.., D_T (`model.discriminators()`'s order)."""
  l_cycle, l_ident, l_gan, l_emo = LAMBDAS
  cyc, ident, gan, emo, fakes = [], [], [], [], []
  for i, (x, y) in enumerate(zip(xs, ys)):
    fake_t = model.g_st(x)            # G_S->T(S_i)
    rec_s = model.g_ts(i, fake_t)     # G_T->S_i(G_S->T(S_i))
    fake_s = model.g_ts(i, xt)        # G_T->S_i(T)
    rec_t = model.g_st(fake_s)        # G_S->T(G_T->S_i(T))
    same_s = model.g_ts(i, x)         # G_T->S_i(S_i)
    cyc += [F.mse_loss(rec_s, x), F.mse_loss(rec_t, xt)]
    ident.append(F.mse_loss(same_s, x))
    d = model.d_s[i](fake_s, update_stats=False)
    gan.append(-F.softplus(d[:, 0]).mean())
    fakes.append((x, fake_s))
    emo.append(F.cross_entropy(model.f_s(rec_s), y))
  same_t = model.g_st(xt)             # G_S->T(T)
  ident.append(F.mse_loss(same_t, xt))
  # Corpus-aware fusion (eqs. 6-15).
  hs = [model.enc_s(x) for x in xs]
  h_ref = model.enc_t(xt)
  stack = torch.stack(hs, 1)
  alpha = model.attention(stack, h_ref)
  t_fake = model.dec_t((alpha[..., None] * stack).sum(1))
  fakes.append((xt, t_fake))
  d = model.d_t(t_fake, update_stats=False)
  gan.append(-F.softplus(d[:, 0]).mean())
  lc, li, lg, le = sum(cyc), sum(ident), sum(gan), sum(emo)
  total = l_cycle * lc + l_ident * li + l_gan * lg + l_emo * le
  return total, (lc, li, lg, le), fakes


def discriminator_loss(model: CAEmoCyGAN, fakes):
  """Sum over the discriminators of the log-form GAN loss on (real, fake)."""
  total = 0.0
  for disc, (real, fake) in zip(model.discriminators(), fakes):
    d_real = disc(real)
    d_fake = disc(fake.detach())
    total = (total + F.softplus(-d_real[:, 0]).mean()
             + F.softplus(d_fake[:, 0]).mean())
  return total


################################################################################
# Train step and benchmark.
################################################################################


class Trainer:
  """Networks and optimisers; `step(batch)` is one adversarial step: the
  generators (and attention) update, then the discriminators on the same
  fakes."""

  def __init__(self, num_sources=2, dim=DIM, num_classes=NUM_CLASSES,
               device='cpu', use_compile=False):
    self.device = torch.device(device)
    self.model = CAEmoCyGAN(num_sources, dim, num_classes).to(self.device)
    self.model.train()
    m = self.model
    self.opt_g = torch.optim.Adam(_params(m.generators()), lr=LR_GENERATORS,
                                  betas=(ADAM_B1, 0.999))
    self.opt_a = torch.optim.Adam(m.attention.parameters(), lr=LR_ATTENTION)
    self.opt_d = torch.optim.Adam(_params(m.discriminators()),
                                  lr=LR_DISCRIMINATORS,
                                  betas=(ADAM_B1, 0.999))
    self.g_loss, self.d_loss = generator_loss, discriminator_loss
    self.opt_steps = (self.opt_g.step, self.opt_a.step, self.opt_d.step)
    if use_compile:
      self.g_loss = torch.compile(generator_loss)
      self.d_loss = torch.compile(discriminator_loss)
      self.opt_steps = tuple(torch.compile(s) for s in self.opt_steps)

  def _set_d_grad(self, flag):
    for d in self.model.discriminators():
      d.requires_grad_(flag)

  def step(self, batch):
    xs, ys, xt = batch['xs'], batch['ys'], batch['xt']
    g_step, a_step, d_step = self.opt_steps
    # Generators and attention.
    self._set_d_grad(False)
    self.opt_g.zero_grad(set_to_none=True)
    self.opt_a.zero_grad(set_to_none=True)
    loss_g, terms, fakes = self.g_loss(self.model, xs, ys, xt)
    loss_g.backward()
    g_step()
    a_step()
    # Discriminators, on the same (detached) fakes.
    self._set_d_grad(True)
    self.opt_d.zero_grad(set_to_none=True)
    loss_d = self.d_loss(self.model, fakes)
    loss_d.backward()
    d_step()
    return {'loss_generators': loss_g.detach(),
            'loss_discriminators': loss_d.detach(),
            'loss_cycle': terms[0].detach(), 'loss_identity': terms[1].detach(),
            'loss_gan_g': terms[2].detach(), 'loss_emotion': terms[3].detach()}


def random_batch(batch_size=256, num_sources=2, dim=DIM,
                 num_classes=NUM_CLASSES, device='cpu', seed=0):
  """One batch per source corpus and one of the target, on the device:
  features uniform in [-1, 1], random labels."""
  g = torch.Generator().manual_seed(seed)
  def feats():
    return (2 * torch.rand(batch_size, dim, generator=g) - 1).to(device)
  return {'xs': [feats() for _ in range(num_sources)],
          'ys': [torch.randint(0, num_classes, (batch_size,),
                               generator=g).to(device)
                 for _ in range(num_sources)],
          'xt': feats()}


def _sync(device):
  if device.type == 'cuda':
    torch.cuda.synchronize(device)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--steps', type=int, default=20, help='Timed steps.')
  ap.add_argument('--warmup', type=int, default=3,
                  help='Untimed steps (after the first, compiling, one).')
  ap.add_argument('--batch_size', type=int, default=256,
                  help='Examples per corpus (each source and the target).')
  ap.add_argument('--sources', type=int, default=2)
  ap.add_argument('--dim', type=int, default=DIM)
  ap.add_argument('--num_classes', type=int, default=NUM_CLASSES)
  ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
  ap.add_argument('--compile', action='store_true',
                  help='torch.compile the losses and the optimiser steps.')
  ap.add_argument('--threads', type=int, default=0,
                  help='torch.set_num_threads (0: PyTorch default).')
  ap.add_argument('--seed', type=int, default=0)
  args = ap.parse_args()

  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  device = torch.device(args.device)
  trainer = Trainer(args.sources, args.dim, args.num_classes, device,
                    args.compile)
  batch = random_batch(args.batch_size, args.sources, args.dim,
                       args.num_classes, device, args.seed)

  t = time.perf_counter()
  out = trainer.step(batch)   # compiles with --compile
  float(out['loss_generators'])
  first_step_s = time.perf_counter() - t
  for _ in range(args.warmup):
    out = trainer.step(batch)
  float(out['loss_generators'])
  _sync(device)

  times, cpu_times = [], []
  t_start = time.perf_counter()
  for _ in range(args.steps):
    t, c = time.perf_counter(), time.process_time()
    out = trainer.step(batch)
    float(out['loss_generators'])
    _sync(device)
    times.append(time.perf_counter() - t)
    cpu_times.append(time.process_time() - c)
  total = time.perf_counter() - t_start
  streams = args.sources + 1

  print(json.dumps({
      'method': 'caemocygan',
      'phase': 'adversarial',
      'samples_per_s': streams * args.batch_size * args.steps / total,
      'step_ms_median': 1000 * statistics.median(times),
      'step_cpu_ms_median': 1000 * statistics.median(cpu_times),
      'batch_size_per_domain': args.batch_size,
      'streams': streams,
      'input_shape': [args.dim],
      'devices': 1,
      'device_kind': (torch.cuda.get_device_name(device)
                      if device.type == 'cuda'
                      else platform.processor() or 'cpu'),
      'torch_version': torch.__version__,
      'compile': args.compile,
      'threads': torch.get_num_threads(),
      'num_params': num_trainable_params(trainer.model),
      'first_step_s': first_step_s,
      **{k: float(v) for k, v in out.items()},
  }))


if __name__ == '__main__':
  main()
