#!/usr/bin/env python3
"""Our own PyTorch eager reference of one UNAS step, for `bench/compare.py` (issue 16).

Written from the method (`shared/design/unas-spec.md` §1.1, §1.3, §1.5, §2.1, §2.4, §3, §5.1, §6.1) and
our Rust implementation (`src/train/search/`, `src/nas/{estimator,distribution,objective}.rs`,
`src/nas/space/darts/`, `src/train/from_scratch.rs`), not copied from the official code. It does the
work the official code (NVlabs/unas, `darts/train_search.py`, `darts/train_eval_cifar.py`) does per
step, in plain eager PyTorch:

* `search`: one architecture step (Adam on the 16 logit groups of the paired-input DARTS space, one
  architecture per example, the chosen estimator on the chosen objective, the 0.2 pair penalty) and one
  weight step (Adam, the official `+ 0·Σ params`, clip 5) on the same batch with the detached relaxed
  sample. The supernet's BN is affine=False, every forward is in train mode, and every mixed op skips
  op k when max_n w[n, k] < 0.05, decided by one host read per op (`.item()`), as the official
  `MixedOp.forward` does.
* `train`: one SGD step (momentum 0.9, wd 3e-4, clip 5) of a genotype's evaluation network (CIFAR stem,
  auxiliary head weight 0.4 after cell ⌊2L/3⌋, drop-path on every non-Identity branch).

Forward / backward passes per step (asserted by `selftest`; ours does the same number, see
`src/train/search/arch_step.rs`, `weight_step.rs`):

    search, per objective:   train  val  gengap   (supernet forwards of one batch)
      f(b) (no grad)          1      1    2       rebar, reinforce
      f(ζ) (differentiable)   1      1    2       rebar, gsm
      weight step             1      1    1       all
    => rebar + gengap: 5 forwards (2 without grad), 2 backward calls: S.backward() through the 2
       relaxed graphs, then the weight loss's backward. gsm + gengap: 3 forwards, 2 backward calls.
       reinforce: S.backward() reaches the logits only (log q(b)), so 1 graph of the net is traversed.
    train: 1 forward (main + auxiliary head), 1 backward call.

(Ours computes ℓ_tr before ℓ_va for the `val` objective too, an extra forward per sample kind; the
official `--val_arch_update` runs only the validation forward, and so does this reference.)

Data: random resident CIFAR-shaped tensors (3×32×32, 10 classes), one training and one validation
batch drawn once from the seed. Prints one JSON line on stdout (see `emit`). `selftest` checks that the
reference implements what it claims (estimator, op-skip, pass counts).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings

# the full wheel warns on import when numpy is absent; the reference does not use numpy
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

PRIMITIVES = [
    "skip_connect", "sep_conv_3x3", "max_pool_3x3", "dil_conv_3x3",
    "sep_conv_5x5", "avg_pool_3x3", "sep_conv_7x7",
]
STEPS = 4  # intermediate nodes per cell
OP_SKIP = 0.05  # official MixedOp: skip op k when max_n w[n, k] < 0.05
TAU = 0.4  # Gumbel-softmax temperature, constant
GEN_GAP_LAMBDA = 0.5
# `--precision bf16`: every network forward under torch.autocast(dtype=torch.bfloat16), logits back in
# fp32 (as `precision: bf16` in unas: src/autocast.rs); fp32 is the official code's and the default
PRECISION = "fp32"


def autocast(x):
    """The forward's autocast region for the tensors of x (a no-op region at fp32)."""
    return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=PRECISION == "bf16")


def out_of_autocast(logits):
    """Logits back in fp32 where bf16 autocast left them bf16 (as unas's `Amp::fp32`); else as they are
    (float64 in the parity check)."""
    return logits.float() if logits.dtype == torch.bfloat16 else logits
PAIR_PENALTY = 0.2
CLASSES = 10
IMAGE = (3, 32, 32)
# spec §1.5 (CIFAR search, global batch 128 → lr scaled ×2) and §6.1 (CIFAR evaluation)
LR_W, WD_W, LR_A, WD_A, CLIP = 6e-4, 3e-4, 2e-3, 1e-6, 5.0
LR_SGD, MOMENTUM, WD_SGD = 0.05, 0.9, 3e-4

# What the step did, for `selftest` and the pass-count comment above.
COUNT = {"forward": 0, "forward_no_grad": 0, "graphs_backpropagated": 0, "backward_calls": 0,
         "host_reads": 0}


def reset_counts():
    for k in COUNT:
        COUNT[k] = 0


def backward(loss):
    COUNT["backward_calls"] += 1
    loss.backward()


def count_forward(logits):
    """Counts a forward of the net, and (through a hook on its output) each backward through it."""
    COUNT["forward"] += 1
    if logits.requires_grad:
        def hook(grad):
            COUNT["graphs_backpropagated"] += 1
        logits.register_hook(hook)
    else:
        COUNT["forward_no_grad"] += 1
    return logits


# The uniform draws of a step handed over by `unas diagnose parity-torch` (a list, in unas's draw
# order); None: every draw is fresh from torch's generator.
REPLAY = None


def uniform(shape, like):
    """U ~ U[0, 1) of `shape` (like's dtype and device): the next replayed draw, else a fresh one."""
    if REPLAY is None:
        return torch.rand(shape, dtype=like.dtype, device=like.device)
    assert REPLAY, f"unas recorded fewer draws than this step makes (one of shape {tuple(shape)})"
    u = REPLAY.pop(0)
    assert tuple(u.shape) == tuple(shape), f"replayed draw of shape {tuple(u.shape)}, needed {tuple(shape)}"
    return u.to(dtype=like.dtype, device=like.device)


def host_max(w):
    """max_n w[n] read to the host: the official op-skip's per-op synchronisation."""
    COUNT["host_reads"] += 1
    return w.max().item()


# ------------------------------------------------------------------------------------------------
# Operations of the DARTS space (spec §5.1)

class ReluConvBn(nn.Module):
    """ReLU → 1×1 conv → BN."""

    def __init__(self, c_in, c_out, affine):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        return self.bn(self.conv(F.relu(x)))


class FactorizedReduce(nn.Module):
    """ReLU → two 1×1 stride-2 convs (the second on x shifted by a pixel) → concat → BN."""

    def __init__(self, c_in, c_out, affine):
        super().__init__()
        assert c_out % 2 == 0, f"a factorised reduction needs an even width, got {c_out}"
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], 1))


class SepConv(nn.Module):
    """ReLU → dw k×k (stride s) → 1×1 → BN → ReLU → dw k×k → 1×1 → BN."""

    def __init__(self, c, k, stride, affine):
        super().__init__()
        self.dw1 = nn.Conv2d(c, c, k, stride=stride, padding=k // 2, groups=c, bias=False)
        self.pw1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c, affine=affine)
        self.dw2 = nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False)
        self.pw2 = nn.Conv2d(c, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c, affine=affine)

    def forward(self, x):
        x = self.bn1(self.pw1(self.dw1(F.relu(x))))
        return self.bn2(self.pw2(self.dw2(F.relu(x))))


class DilConv(nn.Module):
    """ReLU → dw k×k, dilation 2, padding k−1 (stride s) → 1×1 → BN."""

    def __init__(self, c, k, stride, affine):
        super().__init__()
        self.dw = nn.Conv2d(c, c, k, stride=stride, padding=k - 1, dilation=2, groups=c, bias=False)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c, affine=affine)

    def forward(self, x):
        return self.bn(self.pw(self.dw(F.relu(x))))


def make_op(name, c, stride, affine):
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    if name.startswith("sep_conv_"):
        return SepConv(c, int(name[-1]), stride, affine)
    if name.startswith("dil_conv_"):
        return DilConv(c, int(name[-1]), stride, affine)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    raise ValueError(f"unknown op {name}")


def cifar_stem(c):
    return nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))


# ------------------------------------------------------------------------------------------------
# The search supernet (spec §1.1, §5.1)

class MixedOp(nn.Module):
    """Σ_k w[:, k]·op_k(x) over the K candidates of one edge, BN affine=False."""

    def __init__(self, c, stride, num_ops):
        super().__init__()
        self.ops = nn.ModuleList(make_op(p, c, stride, False) for p in PRIMITIVES[:num_ops])

    def forward(self, x, w, threshold):
        """w [N, K] (N = batch or 1). None when every op is skipped."""
        out = None
        for k, op in enumerate(self.ops):
            wk = w[:, k]
            # op-skip: the op contributes 0 and gets no gradient; one host read per op (official)
            if threshold > 0 and host_max(wk) < threshold:
                continue
            term = wk.view(-1, 1, 1, 1) * op(x)
            out = term if out is None else out + term
        return out


def edge_weights(inputs, ops):
    """W[n, j, k] = Σ_s inputs[s, n, j]·ops[s, n, k]: inputs [2, N, J], ops [2, N, K] → [N, J, K]."""
    return (inputs.unsqueeze(-1) * ops.unsqueeze(2)).sum(0)


class SearchCell(nn.Module):
    """The paired-input cell: node i sums a mixed op over every predecessor j < i+2."""

    def __init__(self, c_pp, c_p, c, reduction, reduction_prev, num_ops):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (FactorizedReduce(c_pp, c, False) if reduction_prev
                            else ReluConvBn(c_pp, c, False))
        self.preprocess1 = ReluConvBn(c_p, c, False)
        self.edges = nn.ModuleList(
            nn.ModuleList(MixedOp(c, 2 if reduction and j < 2 else 1, num_ops) for j in range(i + 2))
            for i in range(STEPS))

    def forward(self, s0, s1, inputs, ops, threshold):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i, edges in enumerate(self.edges):
            w = edge_weights(inputs[i], ops[i])
            terms = [t for j, e in enumerate(edges)
                     if (t := e(states[j], w[:, j], threshold)) is not None]
            if not terms:  # only with a degenerate sample: zeros of the node's shape
                with torch.no_grad():
                    terms = [torch.zeros_like(edges[0].ops[0](states[0]))]
            states.append(sum(terms[1:], terms[0]))
        return torch.cat(states[2:], 1)


class SearchNet(nn.Module):
    """CIFAR supernet: stem 3C, L cells (reductions at ⌊L/3⌋, ⌊2L/3⌋), pooling, linear."""

    def __init__(self, c, layers, num_ops=len(PRIMITIVES), classes=CLASSES, threshold=OP_SKIP):
        super().__init__()
        self.threshold = threshold
        self.stem = cifar_stem(3 * c)
        c_pp, c_p, c_cur, reduction_prev = 3 * c, 3 * c, c, False
        cells = []
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c_cur *= 2 if reduction else 1
            cells.append(SearchCell(c_pp, c_p, c_cur, reduction, reduction_prev, num_ops))
            reduction_prev = reduction
            c_pp, c_p = c_p, STEPS * c_cur
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_p, classes)

    def forward(self, x, sample, dense=False):
        """sample: {'normal'|'reduce': (inputs [4 × [2, N, i+2]], ops [4 × [2, N, K]])}; dense: every
        op of every edge runs (no op-skip: DARTS's mixture, the straight-through sample)."""
        threshold = 0.0 if dense else self.threshold
        with autocast(x):
            s0 = s1 = self.stem(x)
            for cell in self.cells:
                inputs, ops = sample["reduce" if cell.reduction else "normal"]
                s0, s1 = s1, cell(s0, s1, inputs, ops, threshold)
            logits = self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))
        return count_forward(out_of_autocast(logits))


# ------------------------------------------------------------------------------------------------
# The architecture distribution and its samplers (spec §1.1, §2.1)

class Draw:
    def __init__(self, relaxed, onehot, log_prob):
        self.relaxed, self.onehot, self.log_prob = relaxed, onehot, log_prob


def gsm_original(theta, tau):
    """g = −log(−log(U+1e-20)+1e-20), ζ = softmax((θ+g)/τ), b = one_hot(argmax)."""
    u = uniform(theta.shape, theta)
    logits = theta - torch.log(-torch.log(u + 1e-20) + 1e-20)
    zeta = F.softmax(logits / tau, -1)
    b = torch.zeros_like(logits).scatter_(-1, logits.argmax(-1, keepdim=True), 1.0)
    return zeta, b.detach()


def gsm_rebar(theta, tau, u=None):
    """ζ⋆ = ζ − ζ̃ + sg(ζ̃) (value ζ, gradient ∂ζ − ∂ζ̃), ζ̃ the conditional relaxation given b."""
    q = theta.exp()
    if u is None:
        u = uniform(theta.shape, theta)
    log_u = u.clamp(1e-3, 1 - 1e-3).log()
    z = theta - torch.log(-log_u)  # z = θ − log(−log u)
    zeta = F.softmax(z / tau, -1)
    k = z.argmax(-1, keepdim=True).detach()
    b = torch.zeros_like(z).scatter_(-1, k, 1.0).detach()
    with torch.no_grad():
        qd = q.detach()
        log_vk = log_u.gather(-1, k) / qd.gather(-1, k)  # log v_k = log u_k / q_k
        log_v = (log_u - qd * log_vk).scatter(-1, k, 0.0)  # log v = log u − q·log v_k
    g_tilde = -torch.log(-log_v / q - log_vk)  # g̃_i = −log(−log v_i / q_i − log v_k)
    zeta_tilde = F.softmax(g_tilde / tau, -1)
    return zeta - zeta_tilde + zeta_tilde.detach(), b


class Categoricals:
    """Independent categoricals: logit leaves [S, K] (or per-example [S, N, K]), ε = 0."""

    def __init__(self, logits, eps=0.0):
        self.logits, self.eps = logits, eps

    def log_q(self):
        """θ = log softmax(a), [S, 1, K] (shared) or [S, N, K] (per-example leaves); softened (ε > 0):
        ã = log(softmax(a) + ε), θ = ã − logsumexp(ã)."""
        out = []
        for a in self.logits:
            a = a.unsqueeze(1) if a.dim() == 2 else a
            if self.eps > 0:
                a_soft = (a.softmax(-1) + self.eps).log()
                out.append(a_soft - a_soft.logsumexp(-1, keepdim=True))
            else:
                out.append(a.log_softmax(-1))
        return out

    def sample(self, n, tau, sampler, u=None):
        relaxed, onehot = [], []
        thetas = self.log_q()
        for g, theta in enumerate(thetas):
            theta = theta.expand(theta.shape[0], n, theta.shape[2])
            if sampler == "rebar":
                zeta, b = gsm_rebar(theta, tau, None if u is None else u[g])
            else:
                zeta, b = gsm_original(theta, tau)
            relaxed.append(zeta)
            onehot.append(b)
        log_prob = sum((b * t).sum((0, 2)) for b, t in zip(onehot, thetas))  # log q(b) [N]
        return Draw(relaxed, onehot, log_prob)

    def probabilities(self, n):
        """q̃ = softmax(ã) expanded to [S, n, K]: DARTS's mixture."""
        return [t.exp().expand(t.shape[0], n, t.shape[2]) for t in self.log_q()]

    def entropy(self):
        """H(q) summed over selectors (logged only, as officially)."""
        return sum(-(t.exp() * t).sum((0, 2)).mean() for t in self.log_q())


class DartsAlphas(Categoricals):
    """Per cell type (normal, reduce), per node i: inputs [2, i+2] and ops [2, K]; zeros."""

    def __init__(self, num_ops, device):
        logits = []
        for _cell in ("normal", "reduce"):
            for i in range(STEPS):
                logits.append(torch.zeros(2, i + 2, device=device, requires_grad=True))
                logits.append(torch.zeros(2, num_ops, device=device, requires_grad=True))
        super().__init__(logits)

    @staticmethod
    def to_sample(xs):
        n = 2 * STEPS
        return {"normal": (xs[0:n:2], xs[1:n:2]), "reduce": (xs[n::2], xs[n + 1::2])}


def pair_penalty(sample, weight):
    """weight·P_n, P_n = Σ_cells Σ_nodes Σ_{j,k} in0_j op0_k in1_j op1_k = Σ (in0·in1)(op0·op1)."""
    p = 0
    for inputs, ops in sample.values():
        for inp, op in zip(inputs, ops):
            p = p + (inp[0] * inp[1]).sum(-1) * (op[0] * op[1]).sum(-1)
    return p * weight


# ------------------------------------------------------------------------------------------------
# The search objective and the estimators (spec §2.2–2.4, §3)

def per_example_ce(logits, y):
    return F.cross_entropy(logits, y, reduction="none")


def objective(net, objective_kind, xs, batch, val, log=None, dense=False):
    """f per example [N] of sample xs (group tensors [S, N, K]) on the training batch (and val); the
    means of the gap and of the pair penalty into `log` when given; `dense`: no op-skip."""
    sample = DartsAlphas.to_sample(xs)
    (x, y), (xv, yv) = batch, val
    if objective_kind == "train":
        f = per_example_ce(net(x, sample, dense), y)  # f = ℓ_tr
    elif objective_kind == "val":
        f = per_example_ce(net(xv, sample, dense), yv)  # f = ℓ_va (official --val_arch_update)
    else:
        l_tr = per_example_ce(net(x, sample, dense), y)
        l_va = per_example_ce(net(xv, sample, dense), yv)
        gap = (l_va - l_tr).abs()
        f = l_tr + GEN_GAP_LAMBDA * gap  # f = ℓ_tr + λ·|ℓ_va − ℓ_tr|
        if log is not None:
            log["gap"] = gap.detach().mean()
    pair = pair_penalty(sample, PAIR_PENALTY)
    if log is not None:
        log["pair"] = pair.detach().mean()
    return f + pair  # f + 0.2·P_n


# The estimators of the paper's ablation. The official code implements gsm (its `default`), reinforce
# and rebar; st_gsm, darts and relax are not in it (spec §2.6–2.8) and follow unas's definitions
# (`src/nas/estimator.rs`), written here again from their formulas.
ESTIMATORS = ("gsm", "st_gsm", "darts", "reinforce", "rebar", "relax")


def sampler_of(estimator):
    """`rebar` and `relax` force gsm_type = rebar (spec §2); the others draw with `original`."""
    return "rebar" if estimator in ("rebar", "relax") else "original"


def weight_sample(estimator, alphas, draw):
    """What the weight step trains on: (group tensors, dense). DARTS: its mixture softmax(a) (one for
    the batch, every op); the others: the relaxed sample, detached, with op-skip (official)."""
    if estimator == "darts":
        return [t.detach() for t in alphas.probabilities(1)], True
    return [t.detach() for t in draw.relaxed], False


def flatten_per_example(xs):
    """[S, N, K] per group → [N, Σ S·K]: RELAX's input, in the groups' order."""
    return torch.cat([x.permute(1, 0, 2).reshape(x.shape[1], -1) for x in xs], 1)


RELAX_HIDDEN, RELAX_LR = 64, 1e-3  # unas's RELAX_HIDDEN, RELAX_LR (not in the official code)


class RelaxCV(nn.Module):
    """RELAX's learned term r_φ(ζ) = Linear(H, 1)(tanh(Linear(D, H)(ζ))) (Grathwohl et al., 2018),
    PyTorch's default init, its own Adam (today's torch.optim.Adam, ε after the bias correction)."""

    def __init__(self, dim, hidden=RELAX_HIDDEN):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x))).squeeze(-1)  # r_φ(x) [N]


def relax_surrogate(draw, f, logits, cv, opt_cv):
    """RELAX: ĝ = [f(b) − f(ζ̃) − r_φ(ζ̃)]∇log q(b) + ∇f(ζ) − ∇f(ζ̃) + ∇r_φ(ζ) − ∇r_φ(ζ̃) (through ζ⋆),
    then one Adam step on φ down ∇_φ‖ĝ‖²; S has gradient ĝ (φ before its step) and value mean f(ζ)."""
    with torch.no_grad():
        f_d = f(draw.onehot)
    f_c = f(draw.relaxed)
    x = flatten_per_example(draw.relaxed)  # ζ⋆ [N, D]
    r, r_coef = cv(x), cv(x.detach())
    s_rebar = (draw.log_prob * (f_d - f_c).detach()).mean() + f_c.mean()
    s_phi = (-draw.log_prob * r_coef + r).mean()
    g_rebar = torch.autograd.grad(s_rebar, logits, retain_graph=True)
    g_phi = torch.autograd.grad(s_phi, logits, retain_graph=True, create_graph=True)
    g_hat = [a + b for a, b in zip(g_rebar, g_phi)]
    proxy = sum((g ** 2).sum() for g in g_hat)  # ‖ĝ‖²
    opt_cv.zero_grad()
    grads = torch.autograd.grad(proxy, list(cv.parameters()))
    for p, g in zip(cv.parameters(), grads):
        p.grad = g
    opt_cv.step()
    linear = sum((a * g.detach()).sum() for a, g in zip(logits, g_hat))
    s = f_c.mean().detach() + linear - linear.detach()  # value mean f(ζ), gradient ĝ
    return s, f_d.mean(), f_c.detach().mean()


def surrogate(estimator, draw, f, baseline, alphas=None, relax=None):
    """S whose gradient w.r.t. the logits is the estimator; returns (S, mean f(b), mean f(ζ)).
    f(xs, dense=False); `alphas` for darts, `relax` = (cv, its Adam) for relax."""
    if estimator == "gsm":  # S = mean f(ζ)
        f_c = f(draw.relaxed)
        return f_c.mean(), None, f_c.detach().mean()
    if estimator == "st_gsm":  # x = b − sg(ζ) + ζ, S = mean f(x), every op run
        x = [b - z.detach() + z for b, z in zip(draw.onehot, draw.relaxed)]
        f_st = f(x, dense=True)
        return f_st.mean(), f_st.detach().mean(), None
    if estimator == "darts":  # S = mean f(softmax(a)), every op run
        f_c = f(alphas.probabilities(draw.log_prob.shape[0]), dense=True)
        return f_c.mean(), None, f_c.detach().mean()
    if estimator == "relax":
        return relax_surrogate(draw, f, alphas.logits, *relax)
    if estimator == "reinforce":  # S = mean[log q(b)·sg(f(b) − β)] + β, then β ← 0.1β + 0.9 mean f(b)
        with torch.no_grad():
            f_d = f(draw.onehot)
        beta = baseline["value"]
        s = (draw.log_prob * (f_d - beta)).mean() + beta
        baseline["value"] = 0.1 * beta + 0.9 * f_d.mean().item()
        return s, f_d.mean(), None
    if estimator == "rebar":  # S = mean[log q(b)·sg(f(b) − f(ζ⋆))] + mean f(ζ⋆)
        with torch.no_grad():
            f_d = f(draw.onehot)
        f_c = f(draw.relaxed)
        s = (draw.log_prob * (f_d - f_c).detach()).mean() + f_c.mean()
        return s, f_d.mean(), f_c.detach().mean()
    raise ValueError(f"unknown estimator {estimator}")


class Adam11(torch.optim.Optimizer):
    """torch.optim.Adam of PyTorch 1.1, the official code's (`requirements.txt`): g ← g + wd·p,
    m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − lr·√(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε) (ε before the bias
    correction; today's Adam adds it after)."""

    def __init__(self, params, lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])  # g + wd·p
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = v.sqrt().add_(group["eps"])
                bias_correction1 = 1 - beta1 ** state["step"]
                bias_correction2 = 1 - beta2 ** state["step"]
                p.addcdiv_(m, denom, value=-group["lr"] * math.sqrt(bias_correction2) / bias_correction1)


class SearchState:
    """The supernet, its logits, the warm-up's Adam and the search's two (`adam`: the optimiser class;
    `Adam11` is the official code's, the benchmarks time today's torch.optim.Adam)."""

    def __init__(self, args, device, adam=torch.optim.Adam, classes=CLASSES, num_ops=len(PRIMITIVES)):
        self.net = SearchNet(args.channels, args.layers, num_ops=num_ops, classes=classes).to(device)
        self.alphas = DartsAlphas(num_ops, device)
        self.opt_warm = adam(self.net.parameters(), lr=LR_W, weight_decay=WD_W)
        self.opt_w = adam(self.net.parameters(), lr=LR_W, weight_decay=WD_W)
        self.opt_a = adam(self.alphas.logits, lr=LR_A, weight_decay=WD_A)
        self.estimator, self.objective = args.estimator, args.objective
        self.baseline = {"value": 0.0}
        self.relax = None
        if args.estimator == "relax":
            dim = sum(a.shape[0] * a.shape[-1] for a in self.alphas.logits)
            cv = RelaxCV(dim).to(device)
            self.relax = (cv, torch.optim.Adam(cv.parameters(), lr=RELAX_LR))


def weight_step(st, opt, x, y, draw):
    """Adam on the weights with the estimator's weight sample (the detached relaxed sample; DARTS: its
    mixture); + 0·Σ params gives every weight a gradient (official); clip 5. Returns the loss and the
    gradient norm before clipping."""
    opt.zero_grad()
    xs, dense = weight_sample(st.estimator, st.alphas, draw)
    logits = st.net(x, DartsAlphas.to_sample(xs), dense)
    params = list(st.net.parameters())
    loss = F.cross_entropy(logits, y) + 0 * sum(p.sum() for p in params)
    backward(loss)
    gnorm = nn.utils.clip_grad_norm_(params, CLIP)
    opt.step()
    return loss.detach(), gnorm


def warmup_step(st, batch):
    """One warm-up step (spec §1.4, official `train_init`): a relaxed sample per example from the frozen
    logits, drawn without gradient, and a weight step with the warm-up's own Adam."""
    x, y = batch
    with torch.no_grad():
        draw = st.alphas.sample(x.shape[0], TAU, sampler_of(st.estimator))
    loss, gnorm = weight_step(st, st.opt_warm, x, y, draw)
    return {"loss_w": loss, "grad_norm": gnorm}


def search_step(st, batch, val):
    """One architecture step then one weight step on the same batch (spec §1.3)."""
    x, y = batch
    draw = st.alphas.sample(x.shape[0], TAU, sampler_of(st.estimator))  # one architecture per example
    st.opt_a.zero_grad()
    logged = {}

    def f(xs, dense=False):
        # the gap and the pair penalty are logged from the pass that is not the one-hot b's, as unas
        # logs them
        return objective(st.net, st.objective, xs, batch, val,
                         None if xs is draw.onehot else logged, dense)

    s, f_d, f_c = surrogate(st.estimator, draw, f, st.baseline, st.alphas, st.relax)
    backward(s)  # ∇_logits S is the estimator (the net's weights get gradients too: discarded)
    st.opt_a.step()
    entropy = st.alphas.entropy().detach()  # logged only
    loss, gnorm = weight_step(st, st.opt_w, x, y, draw)
    return {"loss_w": loss, "f_b": f_d, "f_zeta": f_c, "entropy": entropy, "grad_norm": gnorm,
            "gap": logged.get("gap"), "pair": logged.get("pair")}


# ------------------------------------------------------------------------------------------------
# Evaluation network and the from-scratch training step (spec §5.1, §6.1)

# (inputs, ops) per node; 0 = c_{k-2}, 1 = c_{k-1}, 2.. = earlier nodes; concat = nodes 2..5
GENOTYPES = {
    "UNAS_CIFAR10": {
        "normal": [((0, 0), ("sep_conv_5x5", "skip_connect")), ((0, 1), ("skip_connect", "dil_conv_3x3")),
                   ((0, 1), ("sep_conv_3x3", "dil_conv_3x3")), ((1, 0), ("sep_conv_3x3", "dil_conv_3x3"))],
        "reduce": [((0, 0), ("sep_conv_3x3", "sep_conv_5x5")), ((1, 0), ("skip_connect", "sep_conv_3x3")),
                   ((1, 0), ("avg_pool_3x3", "skip_connect")), ((3, 1), ("sep_conv_5x5", "avg_pool_3x3"))],
    },
    "UNAS_CIFAR100": {
        "normal": [((0, 0), ("sep_conv_3x3", "dil_conv_3x3")), ((1, 0), ("dil_conv_3x3", "sep_conv_3x3")),
                   ((0, 1), ("skip_connect", "sep_conv_3x3")), ((1, 0), ("sep_conv_5x5", "sep_conv_3x3"))],
        "reduce": [((0, 0), ("sep_conv_7x7", "sep_conv_3x3")), ((1, 0), ("sep_conv_3x3", "sep_conv_5x5")),
                   ((1, 0), ("sep_conv_7x7", "dil_conv_3x3")), ((0, 3), ("dil_conv_3x3", "sep_conv_3x3"))],
    },
    "DARTS_V2": {
        "normal": [((0, 1), ("sep_conv_3x3", "sep_conv_3x3")), ((0, 1), ("sep_conv_3x3", "sep_conv_3x3")),
                   ((1, 0), ("sep_conv_3x3", "skip_connect")), ((0, 2), ("skip_connect", "dil_conv_3x3"))],
        "reduce": [((0, 1), ("max_pool_3x3", "max_pool_3x3")), ((2, 1), ("skip_connect", "max_pool_3x3")),
                   ((0, 2), ("max_pool_3x3", "skip_connect")), ((2, 1), ("skip_connect", "max_pool_3x3"))],
    },
}


def drop_path(x, p):
    """x · Bernoulli(1−p)[B,1,1,1] / (1−p)."""
    keep = 1.0 - p
    mask = (uniform((x.shape[0], 1, 1, 1), x) < keep).to(x.dtype)
    return x / keep * mask


class EvalCell(nn.Module):
    """Per node op0(states[in0]) + op1(states[in1]), own weights, BN affine, drop-path off Identity."""

    def __init__(self, genes, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.preprocess0 = (FactorizedReduce(c_pp, c, True) if reduction_prev
                            else ReluConvBn(c_pp, c, True))
        self.preprocess1 = ReluConvBn(c_p, c, True)
        self.inputs = [inp for inp, _ in genes]
        self.ops = nn.ModuleList(
            nn.ModuleList(make_op(name, c, 2 if reduction and i < 2 else 1, True)
                          for i, name in zip(inp, names)) for inp, names in genes)

    def forward(self, s0, s1, drop_prob):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for inp, ops in zip(self.inputs, self.ops):
            ys = []
            for i, op in zip(inp, ops):
                y = op(states[i])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    y = drop_path(y, drop_prob)
                ys.append(y)
            states.append(ys[0] + ys[1])
        return torch.cat(states[2:], 1)


class AuxiliaryHeadCifar(nn.Module):
    """ReLU, AvgPool 5 s3 (padding excluded), 1×1 → 128, BN, ReLU, 2×2 → 768, BN, ReLU, Linear."""

    def __init__(self, c, classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU())
        self.classifier = nn.Linear(768, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class EvalNet(nn.Module):
    def __init__(self, genotype, c, layers, auxiliary, classes=CLASSES):
        super().__init__()
        self.stem = cifar_stem(3 * c)
        self.aux_cell = 2 * layers // 3
        c_pp, c_p, c_cur, reduction_prev, c_aux = 3 * c, 3 * c, c, False, None
        cells = []
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c_cur *= 2 if reduction else 1
            genes = genotype["reduce" if reduction else "normal"]
            cells.append(EvalCell(genes, c_pp, c_p, c_cur, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, STEPS * c_cur
            c_aux = c_p if i == self.aux_cell else c_aux
        self.cells = nn.ModuleList(cells)
        self.auxiliary_head = AuxiliaryHeadCifar(c_aux, classes) if auxiliary else None
        self.classifier = nn.Linear(c_p, classes)

    def forward(self, x, drop_prob):
        aux = None
        with autocast(x):
            s0 = s1 = self.stem(x)
            for i, cell in enumerate(self.cells):
                s0, s1 = s1, cell(s0, s1, drop_prob)
                if i == self.aux_cell and self.training and self.auxiliary_head is not None:
                    aux = out_of_autocast(self.auxiliary_head(s1))
            logits = self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))
        return count_forward(out_of_autocast(logits)), aux


class TrainState:
    def __init__(self, args, device, classes=CLASSES):
        genotype = args.genotype if isinstance(args.genotype, dict) else GENOTYPES[args.genotype]
        self.net = EvalNet(genotype, args.channels, args.layers, args.aux_weight > 0,
                           classes=classes).to(device).train()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=LR_SGD, momentum=MOMENTUM,
                                   weight_decay=WD_SGD)
        self.aux_weight, self.drop_path = args.aux_weight, args.drop_path


def train_step(st, batch):
    """One SGD step: ℓ + w_aux·ℓ_aux, clip 5 (spec §6.1)."""
    x, y = batch
    st.opt.zero_grad()
    logits, aux = st.net(x, st.drop_path)
    loss = F.cross_entropy(logits, y)
    if aux is not None:
        loss = loss + st.aux_weight * F.cross_entropy(aux, y)  # ℓ + w_aux·ℓ_aux
    backward(loss)
    gnorm = nn.utils.clip_grad_norm_(st.net.parameters(), CLIP)
    st.opt.step()
    return {"loss": loss.detach(), "grad_norm": gnorm}


# ------------------------------------------------------------------------------------------------
# The ProxylessNAS space (spec §1.2, §2.5, §4, §5.2): the MBConv supernet at a width multiplier, its
# distribution (normal [15, 7] with mic_zero, reduce [6, 6]), one architecture per sub-batch (the
# official one per GPU, --same_alpha_minibatch), the latency term through the ridge surrogate, and the
# evaluation network of a genotype. Modules carry unas's variable names (`src/nas/space/proxyless/`).

PROXYLESS_STEM, PROXYLESS_FIRST, PROXYLESS_HEAD = 40, 24, 1728
PROXYLESS_STAGES = [(32, 4, 2), (56, 4, 2), (112, 4, 2), (128, 4, 1), (256, 4, 2), (432, 1, 1)]
STAGE_STARTS = (1, 5, 9, 13, 17, 21)  # blocks (1-based) that start a stage: no mic_zero
BLOCK_PRIMITIVES = ["mic_zero", "mic_3x3_e3", "mic_3x3_e6", "mic_5x5_e3", "mic_5x5_e6", "mic_7x7_e3",
                    "mic_7x7_e6"]
PROXYLESS_BN_EPS = 1e-3


def make_divisible(v, d=8):
    """The nearest multiple of 8, never below 8 nor more than 10% below v."""
    rounded = max(int(v + d / 2) // d * d, d)
    return rounded + d if rounded < 0.9 * v else rounded


def proxyless_skeleton(width):
    """(stem, first, head) widths and (C_in, C_out, stride) of the 21 blocks at `width`."""
    w = lambda c: make_divisible(c * width)  # noqa: E731
    blocks, c_in = [], w(PROXYLESS_FIRST)
    for c, repeats, stride in PROXYLESS_STAGES:
        for r in range(repeats):
            blocks.append((c_in, w(c), stride if r == 0 else 1))
            c_in = w(c)
    return (w(PROXYLESS_STEM), w(PROXYLESS_FIRST), w(PROXYLESS_HEAD)), blocks


def kernel_expand(name):
    """mic_{k}x{k}_e{e} → (k, e)."""
    k, e = name[len("mic_"):].split("_e")
    return int(k.split("x")[0]), int(e)


class ConvBn(nn.Module):
    """k×k conv (padding k//2, no bias) → BN (eps 1e-3)."""

    def __init__(self, c_in, c_out, k, stride=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=PROXYLESS_BN_EPS)

    def forward(self, x):
        return self.bn(self.conv(x))


class MBConv(nn.Module):
    """[1×1 expand, BN, ReLU6] (e > 1) → [dw k×k stride s, BN, ReLU6] → [1×1, BN]."""

    def __init__(self, c_in, c_out, k, e, stride):
        super().__init__()
        mid = c_in * e
        self.expand = ConvBn(c_in, mid, 1) if e > 1 else None
        self.depthwise = ConvBn(mid, mid, k, stride, mid)
        self.project = ConvBn(mid, c_out, 1)

    def forward(self, x):
        if self.expand is not None:
            x = F.relu6(self.expand(x))
        return self.project(F.relu6(self.depthwise(x)))


class ProxylessSkeleton(nn.Module):
    """Stem Conv3×3 s2 + BN + ReLU6, MBConv(k3, e1), the blocks (the subclass's), head Conv1×1 + BN +
    ReLU6, global average pool, Linear."""

    def build_skeleton(self, widths, last, classes):
        stem_c, first_c, head_c = widths
        self.stem = ConvBn(3, stem_c, 3, 2)
        self.first = MBConv(stem_c, first_c, 3, 1, 1)
        self.head = ConvBn(last, head_c, 1)
        self.classifier = nn.Linear(head_c, classes)

    def start(self, x):
        return self.first(F.relu6(self.stem(x)))

    def end(self, x):
        return self.classifier(F.adaptive_avg_pool2d(F.relu6(self.head(x)), 1).flatten(1))


class ProxylessSearchNet(ProxylessSkeleton):
    """Every candidate of every block; block(x) = Σ_k w[:, k]·op_k(x) (op_k includes the block's
    shortcut; mic_zero = identity, its dropout off here), op k skipped when max_n w[n, k] < op_skip;
    a one-hot sample of one architecture runs only the chosen op (·w_k = 1)."""

    def __init__(self, width, resolution, classes, op_skip):
        super().__init__()
        widths, skeleton = proxyless_skeleton(width)
        self.resolution, self.op_skip = resolution, op_skip
        self.blocks = nn.ModuleList()
        self.layout = []  # per block: (reduce, row, shortcut, candidate names, C_out, stride)
        rows = {False: 0, True: 0}
        for i, (c_in, c_out, stride) in enumerate(skeleton):
            reduce = (i + 1) in STAGE_STARTS
            names = BLOCK_PRIMITIVES[1:] if reduce else BLOCK_PRIMITIVES
            self.blocks.append(nn.ModuleDict(
                {n: MBConv(c_in, c_out, *kernel_expand(n), stride) for n in names if n != "mic_zero"}))
            self.layout.append((reduce, rows[reduce], c_in == c_out and stride == 1, names, c_out, stride))
            rows[reduce] += 1
        self.build_skeleton(widths, skeleton[-1][1], classes)

    def op(self, i, k, x):
        _, _, shortcut, names, _, _ = self.layout[i]
        if names[k] == "mic_zero":
            return x
        y = self.blocks[i][names[k]](x)
        return y + x if shortcut else y

    def forward(self, x, sample, kind):
        """sample: (normal [15, N, 7], reduce [6, N, 6]); kind: relaxed | onehot | dense."""
        normal, reduce = sample
        r = self.resolution
        if x.shape[2] > r:
            x = F.adaptive_avg_pool2d(x, r)
        elif x.shape[2] < r:
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
        x = self.start(x)
        one_arch = normal.shape[1] == 1
        thr = {"relaxed": self.op_skip, "onehot": sys.float_info.min, "dense": 0.0}[kind]
        for i in range(len(self.blocks)):
            is_reduce, row, _, names, c_out, stride = self.layout[i]
            w = (reduce if is_reduce else normal)[row]  # [N, K]
            if kind == "onehot" and one_arch:
                k = int(w[0].argmax())
                x = self.op(i, k, x) * w[0, k]
                continue
            w_max = w.detach().amax(0).tolist()  # one host read per block
            COUNT["host_reads"] += 1
            out = None
            for k in range(len(names)):
                if thr > 0 and w_max[k] < thr:
                    continue
                term = w[:, k].reshape(-1, 1, 1, 1) * self.op(i, k, x)
                out = term if out is None else out + term
            if out is None:  # every candidate skipped: zeros of the block's output
                side = (x.shape[2] - 1) // stride + 1
                out = x.new_zeros(x.shape[0], c_out, side, side)
            x = out
        return count_forward(self.end(x))


class ProxylessAlphas(Categoricals):
    """normal [15, 7], reduce [6, 6], zeros, softened by ε."""

    def __init__(self, eps, device):
        super().__init__([torch.zeros(15, 7, device=device, requires_grad=True),
                          torch.zeros(6, 6, device=device, requires_grad=True)], eps)


class ProxylessEvalNet(ProxylessSkeleton):
    """The genotype's network at width 1.0: block i = its MBConv (+ x where C_in = C_out, stride 1),
    mic_zero = the block skipped."""

    def __init__(self, blocks, classes):
        super().__init__()
        widths, skeleton = proxyless_skeleton(1.0)
        self.blocks = nn.ModuleDict()
        self.shortcut = []
        for i, (name, (c_in, c_out, stride)) in enumerate(zip(blocks, skeleton)):
            if name != "mic_zero":
                self.blocks[str(i)] = MBConv(c_in, c_out, *kernel_expand(name), stride)
            self.shortcut.append(c_in == c_out and stride == 1)
        self.build_skeleton(widths, skeleton[-1][1], classes)

    def forward(self, x):
        x = self.start(x)
        for i, shortcut in enumerate(self.shortcut):
            if str(i) in self.blocks:
                y = self.blocks[str(i)](x)
                x = y + x if shortcut else y
        return count_forward(self.end(x))


def split_parts(n, groups):
    """Sub-batch g covers [⌊g·n/G⌋, ⌊(g+1)·n/G⌋)."""
    return [(g * n // groups, (g + 1) * n // groups) for g in range(groups)]


def rows_of(xs, g):
    """Sub-batch g's architecture: row g of every group tensor [S, G, K] (a mixture, N = 1, as is)."""
    return [x if x.shape[1] == 1 else x[:, g:g + 1] for x in xs]


class ProxylessSearch:
    """The supernet, its logits, the optimisers (Adam11, the official code's) and the settings of a
    parity run (all from unas's meta, `m`)."""

    def __init__(self, m, device):
        self.m = m
        self.net = ProxylessSearchNet(m["width_multiplier"], m["resolution"], m["classes"],
                                      m["op_skip"]).to(device)
        self.alphas = ProxylessAlphas(m["soften_eps"], device)
        self.opt_warm = Adam11(self.net.parameters(), lr=0.0, weight_decay=m["wd_w"])
        self.opt_w = Adam11(self.net.parameters(), lr=0.0, weight_decay=m["wd_w"])
        self.opt_a = Adam11(self.alphas.logits, lr=0.0, weight_decay=m["wd_a"])
        self.estimator, self.groups = m["estimator"], m["sub_batches"]
        self.baseline = {"value": 0.0}
        self.relax = None
        if self.estimator == "relax":
            cv = RelaxCV(15 * 7 + 6 * 6).to(device)
            self.relax = (cv, torch.optim.Adam(cv.parameters(), lr=RELAX_LR))

    def kind_of(self, xs, draw, dense):
        return "dense" if dense else ("onehot" if xs is draw.onehot else "relaxed")

    def f(self, xs, kind, batch, val, log):
        """f per sub-batch [G]: the mean over its examples of ℓ_tr + λ|ℓ_va − ℓ_tr| (gen-gap), of ℓ_tr
        (train) or of ℓ_va (val), each sub-batch a forward pass with its own architecture."""
        (x, y), (xv, yv) = batch, val
        kind_obj, lam = self.m["objective"], self.m["lambda"]
        fs, gaps = [], []
        parts_v = split_parts(xv.shape[0], self.groups) if xv is not None else None
        for g, (a, b) in enumerate(split_parts(x.shape[0], self.groups)):
            rows = rows_of(xs, g)
            loss = lambda xx, yy: per_example_ce(self.net(xx, rows, kind), yy)  # noqa: E731
            if kind_obj == "train":
                fs.append(loss(x[a:b], y[a:b]).mean().reshape(1))
                continue
            c, d = parts_v[g]
            if kind_obj == "val":
                fs.append(loss(xv[c:d], yv[c:d]).mean().reshape(1))
                continue
            l_tr, l_va = loss(x[a:b], y[a:b]), loss(xv[c:d], yv[c:d])
            gap = (l_va - l_tr).abs()
            fs.append((l_tr + lam * gap).mean().reshape(1))  # f = ℓ_tr + λ·|ℓ_va − ℓ_tr|
            gaps.append(gap.mean().reshape(1))
        if log is not None and gaps:
            log["gap"] = torch.cat(gaps).detach().mean()
        return torch.cat(fs)

    def weight_step(self, opt, batch, draw):
        """Adam11 on the weights with the weight sample, ∇ of the mean of the sub-batch means (each
        sub-batch its own forward); every weight a gradient (the official + 0·Σ params); clip."""
        x, y = batch
        opt.zero_grad()
        xs, dense = weight_sample(self.estimator, self.alphas, draw)
        kind = "dense" if dense else "relaxed"
        losses = []
        for g, (a, b) in enumerate(split_parts(x.shape[0], self.groups)):
            l = F.cross_entropy(self.net(x[a:b], rows_of(xs, g), kind), y[a:b])
            backward(l / self.groups)  # ∇ (1/G)·Σ_g ℓ_g
            losses.append(l.detach().reshape(1))
        for p in self.net.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        gnorm = nn.utils.clip_grad_norm_(list(self.net.parameters()), self.m["clip"])
        opt.step()
        return torch.cat(losses).mean(), gnorm

    def warmup_step(self, batch):
        with torch.no_grad():
            draw = self.alphas.sample(self.groups, self.m["tau"], sampler_of(self.estimator))
        loss, gnorm = self.weight_step(self.opt_warm, batch, draw)
        return {"loss_w": loss, "grad_norm": gnorm}

    def latency_term(self, t):
        """S_lat of a second sample b′, ζ′⋆ (spec §2.5) with L(b′) = s(b′), the surrogate unas fitted:
        L_d = c·relu(s(b′) − T), and L_c = c·relu(s(ζ′⋆) − T) (rebar, relax) or the latency's own moving
        average (reinforce, β = 0 at the first step)."""
        lat = self.m["latency"]
        assert lat["ramp_steps"] == 0 and lat["measure"] == "surrogate", lat
        w, b0 = t["search/latency/weights"], t["search/latency/bias"]
        predict = lambda xs: flatten_per_example(xs) @ w + b0  # noqa: E731  s(x) = w·x + b₀
        second = self.alphas.sample(1, self.m["tau"], sampler_of(self.estimator))
        with torch.no_grad():
            ms = predict(second.onehot)
        l_d = (ms - lat["target_ms"]).relu() * lat["coeff"]  # c·relu(L(b′) − T)
        if self.estimator == "reinforce":
            return (second.log_prob * l_d).mean(), ms  # log q(b′)·sg(L_d − β) + β, β = 0
        l_c = (predict(second.relaxed) - lat["target_ms"]).relu() * lat["coeff"]
        return (second.log_prob * (l_d - l_c).detach() + l_c).mean(), ms

    def search_step(self, batch, val, t):
        draw = self.alphas.sample(self.groups, self.m["tau"], sampler_of(self.estimator))
        self.opt_a.zero_grad()
        logged = {}

        def f(xs, dense=False):
            kind = self.kind_of(xs, draw, dense)
            return self.f(xs, kind, batch, val, None if kind == "onehot" else logged)

        s, f_d, f_c = surrogate(self.estimator, draw, f, self.baseline, self.alphas, self.relax)
        ms = None
        if self.m["latency"] is not None:
            s_lat, ms = self.latency_term(t)
            s = s + s_lat  # S = S_acc + S_lat
        backward(s)
        self.opt_a.step()
        entropy = self.alphas.entropy().detach()
        loss, gnorm = self.weight_step(self.opt_w, batch, draw)
        return {"loss_w": loss, "f_b": f_d, "f_zeta": f_c, "entropy": entropy, "grad_norm": gnorm,
                "gap": logged.get("gap"), "latency_ms": ms}


def proxyless_parity_search(m, t):
    st = ProxylessSearch(m, torch.device("cpu"))
    out = two_steps(st, t, st.warmup_step, lambda b, v: st.search_step(b, v, t))
    losses = []
    for seed in range(FRESH_SEEDS):  # the warm-up step's loss of supernets initialised here
        torch.manual_seed(seed)
        fresh = ProxylessSearch(m, torch.device("cpu"))
        replay(t, "warm/noise/")
        with torch.no_grad():
            draw = fresh.alphas.sample(fresh.groups, m["tau"], sampler_of(fresh.estimator))
            xs, dense = weight_sample(fresh.estimator, fresh.alphas, draw)
            x, y = t["warm/x"], t["warm/y"]
            parts = split_parts(x.shape[0], fresh.groups)
            losses.append(torch.stack([
                F.cross_entropy(fresh.net(x[a:b], rows_of(xs, g), "dense" if dense else "relaxed"), y[a:b])
                for g, (a, b) in enumerate(parts)]).mean())
        consumed("fresh supernet")
    out["fresh/search_loss"] = torch.stack(losses).double()
    return out


def proxyless_parity_train(m, t):
    """One SGD step of the genotype's network on G slices of the batch (the official 8 GPUs): ∇ of
    the mean of the slices' label-smoothed losses, each slice its own forward and BN statistics, the
    running statistics those of slice 0 (DDP broadcasts rank 0's buffers)."""
    assert m["drop_path"] == 0 and m["aux_weight"] == 0, m
    net = ProxylessEvalNet(m["genotype"], m["classes"]).train()
    load_module(net, t, "train/init/w/")
    opt = torch.optim.SGD(net.parameters(), lr=0.0, momentum=m["momentum"], weight_decay=m["wd_sgd"])
    set_lr(opt, t["train/lr"])
    x, y, ls = t["train/x"], t["train/y"], m["label_smoothing"]
    groups = m["sub_batches"] if x.shape[0] >= m["sub_batches"] else 1
    replay(t, "train/noise/")
    opt.zero_grad()
    losses, after_first = [], None
    for g, (a, b) in enumerate(split_parts(x.shape[0], groups)):
        loss = F.cross_entropy(net(x[a:b]), y[a:b], label_smoothing=ls)
        backward(loss / groups)  # ∇ (1/G)·Σ_g ℓ_g
        losses.append(loss.detach().reshape(1))
        if g == 0:
            after_first = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    with torch.no_grad():
        for k, v in net.state_dict().items():
            if k in after_first:
                v.copy_(after_first[k])
    gnorm = nn.utils.clip_grad_norm_(net.parameters(), m["clip"])
    opt.step()
    consumed("training step")
    out = {"train/term/loss_train": torch.cat(losses).mean().double().reshape(1),
           "train/term/grad_norm_weights": gnorm.double().reshape(1)}
    out.update(module_grads(net, "train/grad/"))
    out.update(module_state(net, "train/w/"))
    losses = []
    for seed in range(FRESH_SEEDS):
        torch.manual_seed(seed)
        fresh = ProxylessEvalNet(m["genotype"], m["classes"]).train()
        with torch.no_grad():
            losses.append(torch.stack([F.cross_entropy(fresh(x[a:b]), y[a:b], label_smoothing=ls)
                                       for a, b in split_parts(x.shape[0], groups)]).mean())
    out["fresh/train_loss"] = torch.stack(losses).double()
    return out


# ------------------------------------------------------------------------------------------------
# Timing and output

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batch(b, device, gen):
    x = torch.randn(b, *IMAGE, generator=gen).to(device)
    y = torch.randint(CLASSES, (b,), generator=gen).to(device)
    return x, y


def run_steps(step, warmup, steps, device, verbose):
    """Runs warm-up steps, then `steps` timed ones (device-synchronised); ms per timed step."""
    times = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        out = step()
        sync(device)
        ms = (time.perf_counter() - t0) * 1000.0
        if i >= warmup:
            times.append(ms)
        if verbose:  # the reads happen after the timer stopped
            vals = " ".join(f"{k}={v.item():.4f}" for k, v in out.items() if v is not None)
            print(f"step {i} {'timed' if i >= warmup else 'warm-up'} {ms:.1f} ms {vals}",
                  file=sys.stderr, flush=True)
    return times


def emit(what, times, args, device):
    """The one JSON line on stdout (keys shared with `unas bench step`)."""
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    print(json.dumps({
        "impl": "reference",
        "what": what,
        "ms_per_step": [round(t, 3) for t in times],
        "images_per_s": statistics.median(args.batch * 1000.0 / t for t in times),
        "batch": args.batch,
        "threads": args.threads,
        "device": str(device),
        "torch": torch.__version__,
        "peak_gpu_mib": peak,
        "precision": args.precision,
    }), flush=True)


def bad_input(msg):
    print(f"reference.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def setup(args):
    global PRECISION
    PRECISION = args.precision
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        bad_input(f"--device {args.device}: {e} (use cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        bad_input(f"--device {args.device}, but this torch sees no CUDA device")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.cuda.reset_peak_memory_stats(device)
    gen = torch.Generator().manual_seed(args.seed)
    return device, gen


def cmd_search(args):
    device, gen = setup(args)
    st = SearchState(args, device)
    batch, val = random_batch(args.batch, device, gen), random_batch(args.batch, device, gen)
    times = run_steps(lambda: search_step(st, batch, val), args.warmup_steps, args.steps, device,
                      args.verbose)
    emit("search", times, args, device)


def cmd_train(args):
    device, gen = setup(args)
    st = TrainState(args, device)
    batch = random_batch(args.batch, device, gen)
    times = run_steps(lambda: train_step(st, batch), args.warmup_steps, args.steps, device,
                      args.verbose)
    emit("train", times, args, device)


# ------------------------------------------------------------------------------------------------
# parity: one warm-up, one search and one training step from unas's state, noise and batches
# (`unas diagnose parity-torch` writes the input, reads the output and compares; spec of the file
# format: safetensors, read and written here without numpy)

SAFETENSORS_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


def read_safetensors(path):
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        dtype = SAFETENSORS_DTYPES[h["dtype"]]
        flat = torch.frombuffer(bytearray(data[a:b]), dtype=dtype) if b > a else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(h["shape"]).clone()
    return out


def write_safetensors(path, tensors):
    names = {v: k for k, v in SAFETENSORS_DTYPES.items()}
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        blob = bytes(t.reshape(-1).view(torch.uint8).tolist())
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".partial", "wb") as fh:
        fh.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    os.replace(path + ".partial", path)


def load_module(module, tensors, prefix):
    """Every parameter and BN statistic of `module` from tensors[prefix + name]; both sets must agree."""
    given = {k[len(prefix):] for k in tensors if k.startswith(prefix)}
    state = {k: v for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(set(state) - given), sorted(given - set(state))
    assert not missing and not unexpected, f"{prefix}: missing {missing[:5]}, unexpected {unexpected[:5]}"
    with torch.no_grad():
        for k, v in state.items():
            assert tuple(v.shape) == tuple(tensors[prefix + k].shape), f"{prefix}{k}: shape"
            v.copy_(tensors[prefix + k])


def load_relax(cv, tensors, prefix):
    """φ from unas, whose layers keep W as [in, out] (r = x·W + b): nn.Linear's weight is its transpose."""
    with torch.no_grad():
        for name, p in cv.named_parameters():
            v = tensors[prefix + name]
            p.copy_(v.t() if name.endswith("weight") else v)


def relax_state(cv, prefix, of):
    """of(p) of every parameter of φ in unas's layout (weights transposed back to [in, out])."""
    return {prefix + name: (of(p).t() if name.endswith("weight") else of(p)).detach().clone()
            for name, p in cv.named_parameters()}


def module_state(module, prefix):
    return {prefix + k: v.detach().clone() for k, v in module.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def module_grads(module, prefix):
    return {prefix + k: p.grad.detach().clone() for k, p in module.named_parameters()}


def replay(tensors, prefix):
    """The recorded draws under `prefix` in order; every one must be consumed by the step."""
    global REPLAY
    REPLAY = [tensors[k] for k in sorted(k for k in tensors if k.startswith(prefix))]


def consumed(what):
    global REPLAY
    assert not REPLAY, f"{what}: unas recorded {len(REPLAY)} more draws than this step makes"
    REPLAY = None


def set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = float(lr.reshape(-1)[0])


def check_official(m):
    """The constants of this reference are the official values: a parity run at others is refused."""
    official = {"tau": TAU, "lambda": GEN_GAP_LAMBDA, "pair_penalty": PAIR_PENALTY, "op_skip": OP_SKIP,
                "wd_w": WD_W, "wd_a": WD_A, "clip": CLIP, "momentum": MOMENTUM, "wd_sgd": WD_SGD}
    bad = {k: (m[k], v) for k, v in official.items() if k in m and m[k] != v}
    if bad:
        bad_input(f"parity at settings other than the official ones (given, official): {bad}")


def parity_search(m, t):
    """The warm-up and the search step, in float64 when unas recorded them so (`dtype`)."""
    torch.set_default_dtype(torch.float64 if m.get("dtype") == "f64" else torch.float32)
    try:
        if m.get("space") == "proxyless":
            return proxyless_parity_search(m, t)
        return parity_search_steps(m, t)
    finally:
        torch.set_default_dtype(torch.float32)


def two_steps(st, t, warmup, search):
    """The warm-up step, then the search step from unas's weights after its warm-up, of state `st`
    (either space: .net, .alphas, .relax, .opt_warm/.opt_w/.opt_a) loaded from unas's initial state;
    every number both steps produce, under unas's keys."""
    load_module(st.net, t, "init/w/")
    with torch.no_grad():
        for i, a in enumerate(st.alphas.logits):
            a.copy_(t[f"init/alpha/{i:02}"])
    if st.relax is not None:
        load_relax(st.relax[0], t, "init/relax/")
    out = {}
    set_lr(st.opt_warm, t["warm/lr_w"])
    replay(t, "warm/noise/")
    r = warmup((t["warm/x"], t["warm/y"]))
    consumed("warm-up step")
    out["warm/term/loss_train"] = r["loss_w"].double().reshape(1)
    out["warm/term/grad_norm_weights"] = r["grad_norm"].double().reshape(1)
    out.update(module_grads(st.net, "warm/grad/"))
    out.update(module_state(st.net, "warm/w/"))
    # the search step from unas's state after its warm-up (what this step did is compared above):
    # each step from the same state, so a difference of one does not carry into the next
    load_module(st.net, t, "warm/w/")
    set_lr(st.opt_w, t["search/lr_w"])
    set_lr(st.opt_a, t["search/lr_a"])
    if st.relax is not None:
        set_lr(st.relax[1], t["search/relax/lr"])
    replay(t, "search/noise/")
    r = search((t["search/x"], t["search/y"]), (t["search/xv"], t["search/yv"]))
    consumed("search step")
    terms = {"loss_train": r["loss_w"], "f_discrete": r["f_b"], "f_relaxed": r["f_zeta"],
             "gen_gap": r["gap"], "pair_penalty": r.get("pair"), "entropy_nats": r["entropy"],
             "grad_norm_weights": r["grad_norm"], "latency_ms": r.get("latency_ms")}
    for k, v in terms.items():
        if v is not None:
            out[f"search/term/{k}"] = v.double().reshape(1)
    out.update(module_grads(st.net, "search/grad/"))
    out.update(module_state(st.net, "search/w/"))
    for i, a in enumerate(st.alphas.logits):
        out[f"search/alpha_grad/{i:02}"] = a.grad.detach().clone()
        out[f"search/alpha/{i:02}"] = a.detach().clone()
    if st.relax is not None:
        out.update(relax_state(st.relax[0], "search/relax/w/", lambda p: p))
        out.update(relax_state(st.relax[0], "search/relax/grad/", lambda p: p.grad))
    return out


def parity_search_steps(m, t):
    device = torch.device("cpu")
    args = argparse.Namespace(channels=m["channels"], layers=m["layers"], estimator=m["estimator"],
                              objective=m["objective"])
    st = SearchState(args, device, adam=Adam11, classes=m["classes"], num_ops=m["num_ops"])
    out = two_steps(st, t, lambda b: warmup_step(st, b), lambda b, v: search_step(st, b, v))
    out["fresh/search_loss"] = fresh_search_losses(m, t)
    return out


FRESH_SEEDS = 8


def fresh_search_losses(m, t):
    """The warm-up step's loss (the batch, the draws) of FRESH_SEEDS supernets this file initialises
    itself (PyTorch's defaults, seeds 0..): what unas's initial loss must lie among."""
    losses = []
    for seed in range(FRESH_SEEDS):
        torch.manual_seed(seed)
        net = SearchNet(m["channels"], m["layers"], num_ops=m["num_ops"], classes=m["classes"])
        alphas = DartsAlphas(m["num_ops"], torch.device("cpu"))
        replay(t, "warm/noise/")
        with torch.no_grad():
            draw = alphas.sample(t["warm/x"].shape[0], TAU, sampler_of(m["estimator"]))
            xs, dense = weight_sample(m["estimator"], alphas, draw)
            losses.append(F.cross_entropy(net(t["warm/x"], DartsAlphas.to_sample(xs), dense), t["warm/y"]))
        consumed("fresh supernet")
    return torch.stack(losses).double()


def fresh_train_losses(m, t, genotype):
    """The training step's loss (ℓ + w_aux·ℓ_aux on its batch and draws) of FRESH_SEEDS evaluation
    networks this file initialises itself."""
    losses = []
    for seed in range(FRESH_SEEDS):
        torch.manual_seed(seed)
        net = EvalNet(genotype, m["channels"], m["layers"], m["aux_weight"] > 0, classes=m["classes"]).train()
        replay(t, "train/noise/")
        with torch.no_grad():
            logits, aux = net(t["train/x"], m["drop_path"])
            loss = F.cross_entropy(logits, t["train/y"])
            if aux is not None:
                loss = loss + m["aux_weight"] * F.cross_entropy(aux, t["train/y"])
        consumed("fresh evaluation network")
        losses.append(loss)
    return torch.stack(losses).double()


def from_unas_genotype(g):
    """unas's genotype JSON ({normal: [{inputs, ops}], normal_concat, …}) in this file's format."""
    for cell in ("normal", "reduce"):
        assert g[f"{cell}_concat"] == [2, 3, 4, 5], "the reference concatenates nodes 2..5"
    return {cell: [(tuple(n["inputs"]), tuple(n["ops"])) for n in g[cell]] for cell in ("normal", "reduce")}


def parity_train(m, t):
    if m.get("space") == "proxyless":
        return proxyless_parity_train(m, t)
    genotype = from_unas_genotype(m["genotype"])
    args = argparse.Namespace(genotype=genotype, channels=m["channels"],
                              layers=m["layers"], aux_weight=m["aux_weight"], drop_path=m["drop_path"])
    st = TrainState(args, torch.device("cpu"), classes=m["classes"])
    load_module(st.net, t, "train/init/w/")
    set_lr(st.opt, t["train/lr"])
    replay(t, "train/noise/")
    r = train_step(st, (t["train/x"], t["train/y"]))
    consumed("training step")
    out = {"train/term/loss_train": r["loss"].double().reshape(1),
           "train/term/grad_norm_weights": r["grad_norm"].double().reshape(1)}
    out.update(module_grads(st.net, "train/grad/"))
    out.update(module_state(st.net, "train/w/"))
    out["fresh/train_loss"] = fresh_train_losses(m, t, genotype)
    return out


def cmd_parity(args):
    torch.set_num_threads(args.threads)
    with open(args.meta) as fh:
        meta = json.load(fh)
    for part in ("search", "train"):
        # the DARTS space runs at this file's constants; the ProxylessNAS space takes unas's settings
        if part in meta and meta[part].get("space") != "proxyless":
            check_official(meta[part])
    t = read_safetensors(args.input)
    out = {}
    if "search" in meta:
        out.update(parity_search(meta["search"], t))
    if "train" in meta:
        out.update(parity_train(meta["train"], t))
    write_safetensors(args.output, out)
    print(f"parity: {len(out)} tensors written to {args.output}")


# ------------------------------------------------------------------------------------------------
# selftest: the reference implements what it claims (run: python bench/reference.py selftest)

def toy_f(xs):
    """A nonlinear per-example objective of two selectors over 3 choices (x: [2, N, 3])."""
    x = xs[0]
    c0 = torch.tensor([1.0, -2.0, 0.5], dtype=x.dtype)
    c1 = torch.tensor([0.3, 1.5, -1.0], dtype=x.dtype)
    d = torch.tensor([2.0, 0.0, -1.0], dtype=x.dtype)
    return (x[0] @ c0) * (x[1] @ c1) + 3.0 * (x[0] @ d) ** 2


def exact_gradient(base):
    """∇_a E_q[f(b)] by enumerating the 9 outcomes."""
    a = base.clone().requires_grad_(True)
    q = a.softmax(-1)
    eye = torch.eye(3, dtype=a.dtype)
    e = 0
    for i in range(3):
        for j in range(3):
            b = torch.stack([eye[i], eye[j]]).unsqueeze(1)  # [2, 1, 3]
            e = e + q[0, i] * q[1, j] * toy_f([b])[0]
    (g,) = torch.autograd.grad(e, a)
    return g


def per_sample_gradients(estimator, base, n):
    """Each example's own estimate of ∇_a (per-example logit leaves): [n, 2, 3]."""
    a = base.unsqueeze(1).repeat(1, n, 1).requires_grad_(True)
    dist = Categoricals([a])
    draw = dist.sample(n, TAU, "rebar" if estimator == "rebar" else "original")
    s, _, _ = surrogate(estimator, draw, toy_f, {"value": 0.0})
    (g,) = torch.autograd.grad(s * n, a)  # S is a mean over n
    return g.permute(1, 0, 2), draw


def check_rebar_unbiased():
    torch.manual_seed(0)
    base = torch.tensor([[0.4, -0.3, 0.1], [-0.5, 0.2, 0.6]], dtype=torch.float64)
    exact = exact_gradient(base)
    n = 200_000
    for estimator, unbiased in [("rebar", True), ("reinforce", True), ("gsm", False)]:
        g, draw = per_sample_gradients(estimator, base, n)
        mean, se = g.mean(0), g.std(0) / n ** 0.5
        z = ((mean - exact).abs() / se).max().item()
        # the clamp of u to [1e-3, 1 − 1e-3] biases the sampler by ~1e-3: 2e-3 of slack
        ok = bool(((mean - exact).abs() <= 4 * se + 2e-3).all())
        print(f"  {estimator}: mean estimate vs closed form ∇E_q[f(b)]: max |Δ|/SE = {z:.2f}")
        assert ok == unbiased, f"{estimator}: unbiased={ok}, expected {unbiased} (max z {z:.2f})"
    freq = draw.onehot[0].mean(1)
    assert (freq - base.softmax(-1)).abs().max() < 0.01, "b is not drawn with q"


def check_op_skip():
    torch.manual_seed(0)
    op = MixedOp(4, 1, len(PRIMITIVES))
    ran = set()
    for k, m in enumerate(op.ops):
        m.register_forward_hook(lambda mod, inp, out, k=k: ran.add(k))
    w = torch.tensor([[0.05, 0.0499, 0.0, 0.0, 0.01, 0.3, 0.0],
                      [0.0, 0.0, 0.0, 0.5, 0.04, 0.0, 0.01],
                      [0.01, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0]])
    kept = {k for k in range(7) if w[:, k].max().item() >= OP_SKIP}
    assert kept == {0, 3, 5}
    x = torch.randn(3, 4, 8, 8, requires_grad=True)
    reset_counts()
    out = op(x, w, OP_SKIP)
    assert ran == kept, f"ran {sorted(ran)}, expected {sorted(kept)}"
    assert COUNT["host_reads"] == 7, COUNT
    manual = sum(w[:, k].view(-1, 1, 1, 1) * op.ops[k](x) for k in sorted(kept))
    assert torch.allclose(out, manual, atol=1e-6)
    out.sum().backward()
    for k, m in enumerate(op.ops):
        for p in m.parameters():
            assert (p.grad is not None) == (k in kept), f"op {PRIMITIVES[k]} gradient"
    ran.clear()
    op(x, w, 0.0)
    assert ran == set(range(7)), "threshold 0 must run every op"
    print("  op-skip: ran exactly the ops with max_n w ≥ 0.05, one host read per op, "
          "no gradient to the skipped ones")


def expected_counts(estimator, objective_kind, layers):
    """The pass-count table of the module docstring."""
    per_kind = 2 if objective_kind == "gengap" else 1
    has_d = estimator in ("rebar", "reinforce")
    has_c = estimator in ("rebar", "gsm")
    forwards = per_kind * (has_d + has_c) + 1
    return {"forward": forwards, "forward_no_grad": per_kind * has_d,
            "graphs_backpropagated": per_kind * has_c + 1, "backward_calls": 2,
            "host_reads": forwards * layers * 14 * len(PRIMITIVES)}  # 14 edges per cell


def check_pass_counts():
    device = torch.device("cpu")
    args = argparse.Namespace(channels=4, layers=3, estimator=None, objective=None)
    gen = torch.Generator().manual_seed(0)
    batch, val = random_batch(4, device, gen), random_batch(4, device, gen)
    for estimator in ("rebar", "gsm", "reinforce"):
        for objective_kind in ("train", "val", "gengap"):
            args.estimator, args.objective = estimator, objective_kind
            torch.manual_seed(0)
            st = SearchState(args, device)
            reset_counts()
            search_step(st, batch, val)
            want = expected_counts(estimator, objective_kind, args.layers)
            assert COUNT == want, f"{estimator}/{objective_kind}: {COUNT} != {want}"
    targs = argparse.Namespace(genotype="UNAS_CIFAR10", channels=4, layers=5, aux_weight=0.4,
                               drop_path=0.2)
    st = TrainState(targs, device)
    reset_counts()
    train_step(st, batch)
    want = {"forward": 1, "forward_no_grad": 0, "graphs_backpropagated": 1, "backward_calls": 1,
            "host_reads": 0}
    assert COUNT == want, f"train: {COUNT} != {want}"
    print("  pass counts: search (3 estimators × 3 objectives) and train match the docstring table; "
          "rebar + gengap = 5 forwards (2 without grad), 2 backward calls, 3 graphs")


def check_eval_net_size():
    net = EvalNet(GENOTYPES["UNAS_CIFAR10"], 36, 20, auxiliary=True)
    m = sum(p.numel() for n, p in net.named_parameters() if "auxiliary" not in n) / 1e6
    assert abs(m - 3.3308) < 5e-4, f"UNAS_CIFAR10 C=36 L=20: {m:.4f} M params, spec §7.4 says 3.3308"
    print(f"  eval net: UNAS_CIFAR10 C=36 L=20 has {m:.4f} M parameters without the auxiliary head "
          "(spec §7.4: 3.3308)")


def cmd_selftest(_args):
    torch.set_num_threads(1)
    checks = [check_rebar_unbiased, check_op_skip, check_pass_counts, check_eval_net_size]
    for check in checks:
        print(f"{check.__name__}:", flush=True)
        check()
    print(f"selftest: {len(checks)} checks passed")


# ------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)

    def common(sp, layers, channels, batch):
        sp.add_argument("--layers", type=int, default=layers)
        sp.add_argument("--channels", type=int, default=channels)
        sp.add_argument("--batch", type=int, default=batch)
        sp.add_argument("--warmup-steps", type=int, default=1, help="untimed steps first")
        sp.add_argument("--steps", type=int, default=3, help="timed steps")
        sp.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
        sp.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: the forwards under torch.autocast(dtype=torch.bfloat16)")
        sp.add_argument("--verbose", "-v", action="store_true",
                        help="per-step time and losses on stderr (read after the timer stops)")

    s = sub.add_parser("search", help="one UNAS search step in the DARTS space")
    common(s, 8, 16, 32)
    s.add_argument("--estimator", choices=ESTIMATORS, default="rebar")
    s.add_argument("--objective", choices=["train", "val", "gengap"], default="gengap")
    t = sub.add_parser("train", help="one from-scratch training step of a genotype")
    common(t, 20, 36, 128)
    t.add_argument("--genotype", choices=sorted(GENOTYPES), default="UNAS_CIFAR10")
    t.add_argument("--aux-weight", type=float, default=0.4, help="0 = no auxiliary head")
    t.add_argument("--drop-path", type=float, default=0.2, help="drop-path probability")
    sub.add_parser("selftest", help="check the estimator, the op-skip and the pass counts")
    q = sub.add_parser("parity", help="redo unas's recorded steps (unas diagnose parity-torch)")
    q.add_argument("--input", required=True, help="unas's state, batches and noise (safetensors)")
    q.add_argument("--meta", required=True, help="the shapes and settings (JSON)")
    q.add_argument("--output", required=True, help="this reference's numbers (safetensors)")
    q.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.what not in ("selftest", "parity") and (args.steps < 1 or args.batch < 1 or args.warmup_steps < 0
                                    or args.threads < 1):
        p.error("--steps, --batch and --threads must be ≥ 1, --warmup-steps ≥ 0")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    {"search": cmd_search, "train": cmd_train, "selftest": cmd_selftest,
     "parity": cmd_parity}[args.what](args)


if __name__ == "__main__":
    main()
