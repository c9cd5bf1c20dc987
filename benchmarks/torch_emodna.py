"""A straightforward PyTorch Emo-DNA train step, to benchmark jaxser against.

  python benchmarks/torch_emodna.py [--steps 50] [--warmup 5]
      [--batch_size 64] [--device cpu|cuda] [--compile] [--threads N]
      [--no_pack]

prints one JSON line with the keys of `python -m jaxser.bench` where they mean
the same thing (samples_per_s, step_ms_median, batch_size_per_domain,
input_shape, devices, device_kind) plus torch_version, compile, threads and
pack.

torch is NOT a dependency of jaxser; install it next to it to run this file:

  pip install torch==2.13.0                      # CPU wheel
  # For --device cuda: a CUDA build of torch 2.13.0 from PyTorch's own
  # wheel index (pick the cuXXX of your driver).

The same network, losses and optimiser as `jaxser.methods.emodna` with
`configs/emodna.py`, written the way a typical PyTorch implementation would
be (nn.Module, nn.LSTM(bidirectional=True, batch_first=True), eager mode):

  backbone   3 x [Conv1d 64 k3 'same' -> BN -> ReLU -> Dropout .1 -> MaxPool 2]
  E_e (TCN)  5 residual blocks, dilations 1, 2, 4, 8, 16, each
             2 x [causal Conv1d 64 k2 -> BN -> ReLU -> Dropout .1] + input,
             ReLU; masked mean over time; Linear 128 -> E
  E_c        BiLSTM 64 per direction (packed by the true lengths, as flax's
             nn.Bidirectional with seq_lengths); masked mean -> C (128)
  g          Linear 128 -> ReLU -> Linear 128 -> L2-normalise, for E and C
  heads      Linear num_classes on E, Linear 2 on C
  loss       CE(emotion, source) + CE(corpus, both) + MK-MMD(E^S, E^T)
             (unbiased, 5 Gaussian kernels, bandwidths a * mean squared
             distance, a in 1/8..2) + 0.1 SupCon(z_e, tau 0.01, source +
             confident target) + prototype decoupling (tau 0.01); the EMA
             threshold (momentum 0.999) is updated before selecting the
             confident pseudo-labels.
  optimiser  torch.optim.RAdam(lr=1e-3)

Parameter counts match jaxser's EmoDNANet exactly: flax's LSTM cell has one
bias per gate where nn.LSTM has two (bias_ih + bias_hh, which only ever act
as their sum), so bias_hh is frozen at zero here and the trainable counts
agree (224,838 for 4 classes). Initialisers are PyTorch's defaults, not
flax's; that does not change the work a step does.

Timing follows jaxser.bench: random data created on the device beforehand,
`--warmup` untimed steps (for --compile: after the compiling first step),
then `--steps` timed steps, each ended by a device synchronisation (the loss
is read back, as a training loop that logs it would). --compile wraps the
forward + losses and the optimiser step in torch.compile (graph breaks at
pack_padded_sequence / nn.LSTM, which stay in eager mode).

On a CPU shared with other busy processes, PyTorch's OpenMP threads can slow
down by an order of magnitude (each of the ~1000 ops a step waits for every
thread); compare at `--threads 1` against `taskset -c 0 python -m
jaxser.bench ...` there as well.
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


# Emo-DNA hyper-parameters (configs/emodna.py).
TAU_P = 0.01
TAU_S = 0.01
ALPHA = 0.1
EMA_MOMENTUM = 0.999
MMD_SCALES = (1 / 8, 1 / 4, 1 / 2, 1.0, 2.0)
LEARNING_RATE = 1e-3


################################################################################
# Network.
################################################################################


def time_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
  """(batch, frames) float mask of the frames below each length."""
  t = torch.arange(frames, device=lengths.device)
  return (t[None, :] < lengths[:, None]).float()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
  """Mean over dim 1 of (batch, time, dims), counting frames where mask = 1."""
  total = torch.einsum('btd,bt->bd', x, mask)
  return total / mask.sum(dim=1, keepdim=True).clamp_min(1.0)


class Backbone(nn.Module):
  """3 x [Conv1d k3 same -> BN -> ReLU -> Dropout -> MaxPool 2]; (B, C, T)."""

  def __init__(self, in_dim=40, features=64, num_blocks=3, dropout=0.1):
    super().__init__()
    layers = []
    for i in range(num_blocks):
      layers += [nn.Conv1d(in_dim if i == 0 else features, features, 3,
                           padding=1),
                 nn.BatchNorm1d(features), nn.ReLU(), nn.Dropout(dropout),
                 nn.MaxPool1d(2)]
    self.net = nn.Sequential(*layers)
    self.num_blocks = num_blocks

  def out_lengths(self, lengths):
    for _ in range(self.num_blocks):
      lengths = (lengths // 2).clamp_min(1)
    return lengths

  def forward(self, x, lengths):
    return self.net(x), self.out_lengths(lengths)


class TemporalBlock(nn.Module):
  """2 x [causal dilated Conv1d k2 -> BN -> ReLU -> Dropout] + input, ReLU."""

  def __init__(self, features=64, kernel_size=2, dilation=1, dropout=0.1):
    super().__init__()
    pad = (kernel_size - 1) * dilation
    layers = []
    for _ in range(2):
      layers += [nn.ConstantPad1d((pad, 0), 0.0),  # causal: left padding only
                 nn.Conv1d(features, features, kernel_size,
                           dilation=dilation),
                 nn.BatchNorm1d(features), nn.ReLU(), nn.Dropout(dropout)]
    self.net = nn.Sequential(*layers)

  def forward(self, x):
    return F.relu(x + self.net(x))


class TCNEncoder(nn.Module):
  """Residual TCN blocks, masked mean over time, Linear -> E."""

  def __init__(self, features=64, dilations=(1, 2, 4, 8, 16), dropout=0.1,
               out_dim=128):
    super().__init__()
    self.blocks = nn.Sequential(*[
        TemporalBlock(features, 2, d, dropout) for d in dilations])
    self.fc = nn.Linear(features, out_dim)

  def forward(self, x, lengths):                     # x: (B, C, T)
    y = self.blocks(x).transpose(1, 2)                 # (B, T, C)
    return self.fc(masked_mean(y, time_mask(lengths, y.shape[1])))


class BiLSTMEncoder(nn.Module):
  """Bidirectional LSTM over the true lengths, masked mean -> C."""

  def __init__(self, in_dim=64, hidden=64, pack=True):
    super().__init__()
    self.lstm = nn.LSTM(in_dim, hidden, batch_first=True, bidirectional=True)
    # flax's LSTM cell has one bias per gate; nn.LSTM's two (ih + hh) only
    # ever act as their sum, so keep bias_hh at 0 and untrained: the same
    # function class and the same number of trainable parameters.
    for name, p in self.lstm.named_parameters():
      if name.startswith('bias_hh'):
        nn.init.zeros_(p)
        p.requires_grad_(False)
    self.pack = pack

  def forward(self, x, lengths, lengths_cpu=None):   # x: (B, C, T)
    x = x.transpose(1, 2)                              # (B, T, C)
    frames = x.shape[1]
    if self.pack:
      if lengths_cpu is None:
        lengths_cpu = lengths.cpu()
      packed = nn.utils.rnn.pack_padded_sequence(
          x, lengths_cpu, batch_first=True, enforce_sorted=False)
      y, _ = self.lstm(packed)
      y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True,
                                              total_length=frames)
    else:  # Same result when every sequence is full length.
      y, _ = self.lstm(x)
    return masked_mean(y, time_mask(lengths, frames))


class ProjectionHead(nn.Module):
  """g: Linear -> ReLU -> Linear -> L2-normalise."""

  def __init__(self, in_dim=128, hidden=128, out_dim=128):
    super().__init__()
    self.fc1 = nn.Linear(in_dim, hidden)
    self.fc2 = nn.Linear(hidden, out_dim)

  def forward(self, x):
    return F.normalize(self.fc2(F.relu(self.fc1(x))), dim=-1, eps=1e-12)


class EmoDNANet(nn.Module):
  """Backbone, TCN emotion encoder, BiLSTM corpus encoder, projection head,
  emotion and corpus classifiers (jaxser.methods.emodna.EmoDNANet)."""

  def __init__(self, num_classes=4, in_dim=40, dropout=0.1, lstm_hidden=64,
               projection_dim=128, pack=True):
    super().__init__()
    self.backbone = Backbone(in_dim, dropout=dropout)
    self.emotion_encoder = TCNEncoder(dropout=dropout)
    self.corpus_encoder = BiLSTMEncoder(64, lstm_hidden, pack=pack)
    self.projection = ProjectionHead(128, projection_dim, projection_dim)
    self.emotion_head = nn.Linear(128, num_classes)
    self.corpus_head = nn.Linear(2 * lstm_hidden, 2)

  def forward(self, x, lengths, lengths_cpu=None):   # x: (B, T, D)
    h, h_len = self.backbone(x.transpose(1, 2), lengths)
    if lengths_cpu is not None:
      lengths_cpu = self.backbone.out_lengths(lengths_cpu)
    e = self.emotion_encoder(h, h_len)
    c = self.corpus_encoder(h, h_len, lengths_cpu)
    return dict(emotion_logits=self.emotion_head(e),
                corpus_logits=self.corpus_head(c), e=e,
                z_e=self.projection(e), z_c=self.projection(c))


def num_trainable_params(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters() if p.requires_grad)


################################################################################
# Losses (jaxser.losses).
################################################################################


def mk_mmd(x, y, scales=MMD_SCALES):
  """Unbiased MK-MMD^2 with kernels mean_a exp(-D / (2 a mean(D)))."""
  n, m = x.shape[0], y.shape[0]
  z = torch.cat([x, y])
  z = z - z.mean(dim=0, keepdim=True)
  sq = (z * z).sum(dim=1)
  d = (sq[:, None] + sq[None, :] - 2.0 * z @ z.T).clamp_min(0.0)
  d = d * (1.0 - torch.eye(n + m, device=z.device))  # exact 0 diagonal
  m_bar = d.mean().detach().clamp_min(torch.finfo(d.dtype).tiny)
  k = sum(torch.exp(-d / (2.0 * a * m_bar)) for a in scales) / len(scales)
  kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
  sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
  syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
  return sxx + syy - 2.0 * kxy.mean()


def supervised_contrastive(z, labels, mask, temperature=TAU_S):
  """SupCon L^out over the rows with mask = 1; z already L2-normalised."""
  n = z.shape[0]
  valid = mask.bool()
  logits = z @ z.T / temperature
  not_self = ~torch.eye(n, dtype=torch.bool, device=z.device)
  in_denom = not_self & valid[None, :]
  positive = in_denom & (labels[:, None] == labels[None, :])
  filled = logits.masked_fill(~in_denom, -1e9)
  row_max = filled.max(dim=1, keepdim=True).values.detach()
  exp = torch.exp(filled - row_max) * in_denom
  denom = exp.sum(dim=1, keepdim=True)
  log_denom = row_max + torch.log(torch.where(denom > 0, denom,
                                              torch.ones_like(denom)))
  log_prob = torch.where(positive, logits - log_denom,
                         torch.zeros_like(logits))
  num_pos = positive.sum(dim=1).float()
  loss_i = -log_prob.sum(dim=1) / num_pos.clamp_min(1.0)
  anchor = (valid & (num_pos > 0)).float()
  return (anchor * loss_i).sum() / anchor.sum().clamp_min(1.0)


def prototype_decoupling(e_s, c_s, e_t, c_t, temperature=TAU_P):
  """Emo-DNA eq. 5 on L2-normalised prototypes (softplus form)."""
  e_s, c_s, e_t, c_t = (F.normalize(p, dim=0) for p in (e_s, c_s, e_t, c_t))

  def one_way(e_m, e_n, c_n):
    return F.softplus(((e_m * c_n).sum() - (e_m * e_n).sum()) / temperature)

  return 0.5 * (one_way(e_s, e_t, c_t) + one_way(e_t, e_s, c_s))


def emodna_loss(model, x, lengths, labels_s, tau, lengths_cpu=None):
  """Emo-DNA's total loss; returns (loss, new tau). x: source then target."""
  n_s = labels_s.shape[0]
  out = model(x, lengths, lengths_cpu)
  loss_emotion = F.cross_entropy(out['emotion_logits'][:n_s], labels_s)
  corpus_label = torch.cat([
      torch.zeros(n_s, dtype=torch.long, device=x.device),
      torch.ones(x.shape[0] - n_s, dtype=torch.long, device=x.device)])
  loss_corpus = F.cross_entropy(out['corpus_logits'], corpus_label)

  z_e, z_c = out['z_e'], out['z_c']
  loss_decouple = prototype_decoupling(z_e[:n_s].mean(0), z_c[:n_s].mean(0),
                                       z_e[n_s:].mean(0), z_c[n_s:].mean(0))

  with torch.no_grad():
    probs_t = F.softmax(out['emotion_logits'][n_s:], dim=-1)
    conf, pseudo = probs_t.max(dim=-1)
    tau = EMA_MOMENTUM * tau + (1.0 - EMA_MOMENTUM) * conf.mean()
    confident = (conf >= tau).float()

  loss_scl = supervised_contrastive(
      z_e, torch.cat([labels_s, pseudo]),
      torch.cat([torch.ones(n_s, device=x.device), confident]))
  loss_mmd = mk_mmd(out['e'][:n_s], out['e'][n_s:])
  loss = (loss_emotion + loss_corpus + loss_mmd + ALPHA * loss_scl +
          loss_decouple)
  return loss, tau


################################################################################
# Train step and benchmark.
################################################################################


class Trainer:
  """Model, RAdam and the EMA threshold; `step(batch)` is one train step."""

  def __init__(self, num_classes=4, in_dim=40, device='cpu',
               use_compile=False, pack=True):
    self.device = torch.device(device)
    self.model = EmoDNANet(num_classes, in_dim, pack=pack).to(self.device)
    self.model.train()
    self.opt = torch.optim.RAdam(
        [p for p in self.model.parameters() if p.requires_grad],
        lr=LEARNING_RATE)
    self.tau = torch.tensor(1.0 / num_classes, device=self.device)
    self.loss_fn = emodna_loss
    self.opt_step = self.opt.step
    if use_compile:
      self.loss_fn = torch.compile(emodna_loss)
      self.opt_step = torch.compile(self.opt.step)

  def step(self, batch):
    self.opt.zero_grad(set_to_none=True)
    loss, self.tau = self.loss_fn(self.model, batch['x'], batch['length'],
                                  batch['label'], self.tau,
                                  batch.get('length_cpu'))
    loss.backward()
    self.opt_step()
    return loss.detach()


def random_batch(batch_size=64, frames=300, dims=40, num_classes=4,
                 device='cpu', seed=0):
  """Source + target batch of random features, on the device."""
  g = torch.Generator().manual_seed(seed)
  n = 2 * batch_size
  length = torch.full((n,), frames, dtype=torch.long)
  return {
      'x': torch.randn(n, frames, dims, generator=g).to(device),
      'length': length.to(device),
      'length_cpu': length,  # as a DataLoader hands lengths for packing
      'label': torch.randint(0, num_classes, (batch_size,),
                             generator=g).to(device)}


def _sync(device):
  if device.type == 'cuda':
    torch.cuda.synchronize(device)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--steps', type=int, default=50, help='Timed steps.')
  ap.add_argument('--warmup', type=int, default=5,
                  help='Untimed steps (after the first, compiling, one).')
  ap.add_argument('--batch_size', type=int, default=64,
                  help='Examples per domain (source and target each).')
  ap.add_argument('--frames', type=int, default=300)
  ap.add_argument('--dims', type=int, default=40)
  ap.add_argument('--num_classes', type=int, default=4)
  ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
  ap.add_argument('--compile', action='store_true',
                  help='torch.compile the loss and the optimiser step.')
  ap.add_argument('--threads', type=int, default=0,
                  help='torch.set_num_threads (0: PyTorch default).')
  ap.add_argument('--no_pack', action='store_true',
                  help='Run the LSTM on the padded batch (no '
                  'pack_padded_sequence; the same result here, where every '
                  'sequence is full length).')
  ap.add_argument('--seed', type=int, default=0)
  args = ap.parse_args()

  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  device = torch.device(args.device)
  trainer = Trainer(args.num_classes, args.dims, device, args.compile,
                    pack=not args.no_pack)
  batch = random_batch(args.batch_size, args.frames, args.dims,
                       args.num_classes, device, args.seed)

  t = time.perf_counter()
  loss = trainer.step(batch)   # compiles with --compile
  float(loss)
  first_step_s = time.perf_counter() - t
  for _ in range(args.warmup):
    loss = trainer.step(batch)
  float(loss)
  _sync(device)

  times = []
  t_start = time.perf_counter()
  for _ in range(args.steps):
    t = time.perf_counter()
    loss = trainer.step(batch)
    _sync(device)
    times.append(time.perf_counter() - t)
  total = time.perf_counter() - t_start
  loss = float(loss)

  print(json.dumps({
      'method': 'emodna',
      'samples_per_s': 2 * args.batch_size * args.steps / total,
      'step_ms_median': 1000 * statistics.median(times),
      'batch_size_per_domain': args.batch_size,
      'input_shape': [args.frames, args.dims],
      'devices': 1,
      'device_kind': (torch.cuda.get_device_name(device)
                      if device.type == 'cuda'
                      else platform.processor() or 'cpu'),
      'torch_version': torch.__version__,
      'compile': args.compile,
      'pack': not args.no_pack,
      'threads': torch.get_num_threads(),
      'num_params': num_trainable_params(trainer.model),
      'first_step_s': first_step_s,
      'final_loss': loss,
  }))


if __name__ == '__main__':
  main()
