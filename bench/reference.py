"""PyTorch / scikit-learn timing peer for `sparse-playground bench`.

Runs the same training and inference steps as the Rust engine, in plain PyTorch (float32, CPU)
and scikit-learn, and prints ONE JSON object to stdout (all logging goes to stderr):

  {"torch": ver, "sklearn": ver, "threads": T, "size": {"name", "N", "M", "K", "n", "lam"},
   "results": {name: {"steps_per_sec", "secs_per_step", "reps"}, ...}}

Usage: python bench/reference.py --size paper|large --threads T [--min-secs S]
                                 [--preset-steps STEPS] [--only NAME,NAME]
                                 [--sklearn-dtype float64|float32]

Sizes: paper = N=16 latents, M=8 data dim, K=3 active, n=1024; large = N=1024, M=256, K=16,
n=4096. Data: codes S (n x N) with half-normal magnitudes on a uniform random K-support,
dictionary D (N atoms in R^M, Gaussian, unit-norm rows), X = S @ D; train and test sets of n.

Loss everywhere: mean over n*M of (x_hat - x)^2 + lam * mean over n*N of |s|, lam = 0.01.
Adam with PyTorch defaults (lr 1e-3 training, 3e-3 code inference). A learned dictionary D
(N x M parameter, N(0,1) init) is re-projected to unit-norm atoms (rows) in place at the start
of every forward pass, outside the autograd graph (a hard re-projection, as in the paper's code
and our engine), x_hat = s @ D.

Timed items. Each is warmed up (3 steps; 1 for sklearn), then repeated until --min-secs have
passed (a warm-up step that takes max(--min-secs, 10 s) or more is itself the measurement, with
reps = 1); one "step" is one full-batch zero_grad + forward + backward + optimizer.step over all
n training samples unless said otherwise:
  sae_train       s = relu(x @ W_e^T), W_e N x M (nn.Linear, no bias, default init); Adam on W_e, D.
  topk_sae_train  as sae_train, but only the K largest pre-activations per sample are kept
                  (torch.topk + scatter into zeros), then relu.
  mlp32_train     s = relu(W2 relu(W1 x)), hidden width 32, nn.Linear without bias; same decoder.
  mlp256_train    the same with hidden width 256.
  sc_train        sparse coding: per-sample codes s = exp(u), u (n x N) initialised to -10; Adam
                  on u and D jointly.
  ito_step        code inference: true D (unit-norm, frozen, no grad); u = -10 for the n test
                  samples is created once before warm-up; one step = one Adam step (lr 3e-3) on
                  the same loss w.r.t. u only (i.e. one iteration of the 10,000-step ITO loop).
  sae_infer       SAE full forward (codes and reconstruction x_hat, including the dictionary
                  normalisation) on the n test samples under torch.no_grad().
  sklearn_omp     sklearn.decomposition.sparse_encode(X_test, D, algorithm='omp',
                  n_nonzero_coefs=K, n_jobs=None); one step = encoding all n test samples.
  sklearn_lasso   sparse_encode(..., algorithm='lasso_cd', alpha=lam*M/(2N), positive=True,
                  max_iter=1000) (see lasso_alpha for the derivation).
  sklearn_lasso_lars  the same problem with algorithm='lasso_lars', positive=True.
  preset_unknown_zd   (paper size only) the whole unknown-Z&D experiment for one seed, as the
                  CLI preset runs it: SAE, SAE+ITO, MLP(h=32), MLP(h=256), sparse coding, each
                  trained separately (SAE+ITO trains its own SAE, as the engine does) for
                  --preset-steps full-batch steps; evaluated at step 0, every 1000 steps and at
                  the last step: code MCC on the test set (SAE/MLP: encoder forward; SC and
                  SAE+ITO: 10,000 Adam steps at lr 3e-3 from u = -10 with the current dictionary
                  frozen) and dictionary MCC. One "step" = the whole preset; "wall_secs" is
                  its total time.
sklearn items get float64 arrays by default (--sklearn-dtype): sparse_encode's lasso_cd has a
hard-coded tol=1e-8 that float32 cannot reach, so in float32 most samples run to max_iter and
the timing measures rounding noise. ConvergenceWarnings are counted on the warm-up call, logged
to stderr, and silenced while timing.
"""
import argparse
import json
import os
import sys
import time
import warnings

SIZES = {
    "paper": dict(N=16, M=8, K=3, n=1024),
    "large": dict(N=1024, M=256, K=16, n=4096),
    # SAE steps on real activations (bench --real): the shipped sample's width at 16x
    # expansion, and the paper's LLM dictionary, both on batches of 4,096 tokens.
    "sample16x": dict(N=9216, M=576, K=32, n=4096),
    "llm": dict(N=16896, M=768, K=32, n=4096),
}
LAM = 0.01
TRAIN_LR = 1e-3
ITO_LR = 3e-3
ITO_STEPS = 10_000
LOG_EVERY = 1000
SLOW_STEP_SECS = 10.0
ITEMS = ["sae_train", "topk_sae_train", "mlp32_train", "mlp256_train", "sc_train", "ito_step",
         "sae_infer", "sklearn_omp", "sklearn_lasso", "sklearn_lasso_lars", "preset_unknown_zd"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--min-secs", type=float, default=1.0)
    p.add_argument("--preset-steps", type=int, default=20_000)
    p.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(ITEMS))
    p.add_argument("--sklearn-dtype", choices=["float64", "float32"], default="float64")
    a = p.parse_args()
    a.only = [s for s in a.only.split(",") if s]
    unknown = set(a.only) - set(ITEMS)
    if unknown:
        p.error(f"unknown item(s): {', '.join(sorted(unknown))}")
    return a


# Thread counts must be in the environment before numpy / torch load their OpenMP and BLAS.
ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from sklearn.decomposition import sparse_encode  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(ARGS.threads)


def log(*msg):
    print(*msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data
def make_data(N, M, K, n, seed=0):
    """Train/test signals and codes (float32 tensors) and the true unit-norm dictionary (N x M)."""
    g = np.random.default_rng(seed)
    codes = np.abs(g.standard_normal((2 * n, N)))
    support = np.argsort(g.random((2 * n, N)), axis=1)[:, :K]  # K distinct indices per sample
    mask = np.zeros((2 * n, N))
    np.put_along_axis(mask, support, 1.0, axis=1)
    codes *= mask
    D = g.standard_normal((N, M))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = codes @ D
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return t(X[:n]), t(X[n:]), t(codes[:n]), t(codes[n:]), t(D)


# ---------------------------------------------------------------- models
def unit_atoms(D):
    """Hard re-projection: rescale the parameter's atoms in place, outside the graph."""
    with torch.no_grad():
        D.div_(D.norm(dim=1, keepdim=True))
    return D


def loss_fn(x_hat, x, s):
    return (x_hat - x).pow(2).mean() + LAM * s.abs().mean()


class Amortised(nn.Module):
    """SAE (hidden=None), TopK SAE (topk=k) or MLP encoder, with a learned unit-norm decoder."""

    def __init__(self, N, M, hidden=None, topk=None):
        super().__init__()
        if hidden is None:
            self.enc = nn.Linear(M, N, bias=False)
        else:
            self.enc = nn.Sequential(nn.Linear(M, hidden, bias=False), nn.ReLU(),
                                     nn.Linear(hidden, N, bias=False))
        self.D = nn.Parameter(torch.randn(N, M))
        self.topk = topk

    def encode(self, x):
        pre = self.enc(x)
        if self.topk is not None:
            vals, idx = pre.topk(self.topk, dim=1)
            pre = torch.zeros_like(pre).scatter(1, idx, vals)
        return torch.relu(pre)

    def dictionary(self):
        return unit_atoms(self.D)

    def forward(self, x):
        s = self.encode(x)
        return s @ self.dictionary(), s


class SparseCoding(nn.Module):
    """Per-sample codes s = exp(u), u initialised to -10, and a learned unit-norm dictionary."""

    def __init__(self, n, N, M):
        super().__init__()
        self.u = nn.Parameter(torch.full((n, N), -10.0))
        self.D = nn.Parameter(torch.randn(N, M))

    def dictionary(self):
        return unit_atoms(self.D)

    def forward(self, x):
        s = self.u.exp()
        return s @ self.dictionary(), s


def train_step_fn(model, x, lr=TRAIN_LR):
    """A closure doing one full-batch Adam step on all of model's parameters."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step():
        opt.zero_grad()
        x_hat, s = model(x)
        loss_fn(x_hat, x, s).backward()
        opt.step()

    return step


def ito_step_fn(D_unit, x):
    """(step, u): step() does one Adam step on the log-codes u (fresh, -10) of the samples x,
    with the unit-norm dictionary D_unit frozen (no grad)."""
    D_unit = D_unit.detach()
    u = torch.full((x.shape[0], D_unit.shape[0]), -10.0, requires_grad=True)
    opt = torch.optim.Adam([u], lr=ITO_LR)

    def step():
        opt.zero_grad()
        s = u.exp()
        loss_fn(s @ D_unit, x, s).backward()
        opt.step()

    return step, u


def infer_codes(D_unit, x, steps=ITO_STEPS):
    step, u = ito_step_fn(D_unit, x)
    with torch.enable_grad():  # callers may be inside torch.no_grad()
        for _ in range(steps):
            step()
    return u.detach().exp()


def lasso_alpha(N, M):
    # sparse_encode(lasso_cd / lasso_lars) fits Lasso(alpha=alpha/M) to each sample x (M
    # "observations" of the regression, N regressors = atoms), i.e. per sample it minimises
    #     1/(2M) ||x - s D||^2 + (alpha/M) ||s||_1   ==   (1/(2M)) (||x - s D||^2 + 2 alpha ||s||_1).
    # Our loss, per sample:  (1/M) ||x - s D||^2 + (lam/N) ||s||_1
    #                     == (1/M) (||x - s D||^2 + (lam M / N) ||s||_1).
    # Same minimiser iff 2 alpha = lam M / N, so alpha = lam * M / (2 N).
    return LAM * M / (2 * N)


# ---------------------------------------------------------------- metrics
def mcc(a, b):
    """Mean Hungarian-matched |Pearson| between the columns of a (T x p) and b (T x q).

    A (numerically) constant column correlates 0 (same relative floor as the engine)."""
    def standardise(m):
        m = np.asarray(m, dtype=np.float64)
        c = m - m.mean(axis=0)
        norm = np.sqrt((c * c).sum(axis=0))
        floor = 1e-7 * np.maximum(np.abs(m).max(axis=0), 1e-30) * np.sqrt(m.shape[0])
        dead = (norm <= floor) | (norm == 0)
        return np.where(dead, 0.0, c / np.where(dead, 1.0, norm))

    corr = np.abs(standardise(a).T @ standardise(b))
    rows, cols = linear_sum_assignment(corr, maximize=True)
    return float(corr[rows, cols].mean())


# ---------------------------------------------------------------- timing
def time_steps(step, min_secs, warmup=3):
    for _ in range(warmup):
        t0 = time.perf_counter()
        step()
        once = time.perf_counter() - t0
        if once >= max(min_secs, SLOW_STEP_SECS):  # a step this slow is its own measurement
            return {"steps_per_sec": 1.0 / once, "secs_per_step": once, "reps": 1}
    reps, t0 = 0, time.perf_counter()
    while True:
        step()
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_secs:
            return {"steps_per_sec": reps / elapsed, "secs_per_step": elapsed / reps, "reps": reps}


def run_preset(steps, N, M, K, n, seed=0):
    """The unknown-Z&D experiment for one seed; returns {method: (code MCC, dict MCC)}."""
    x_tr, x_te, _, s_te, D_true = make_data(N, M, K, n, seed)
    s_te, D_true = s_te.numpy(), D_true.numpy()
    methods = {
        "SAE": lambda: Amortised(N, M),
        "SAE+ITO": lambda: Amortised(N, M),
        "MLP(h=32)": lambda: Amortised(N, M, hidden=32),
        "MLP(h=256)": lambda: Amortised(N, M, hidden=256),
        "SC": lambda: SparseCoding(n, N, M),
    }
    final = {}
    for name, build in methods.items():
        torch.manual_seed(seed + 1)  # SAE and SAE+ITO start from (and train to) the same SAE
        model = build()
        step = train_step_fn(model, x_tr)
        t0 = time.perf_counter()
        for t in range(steps + 1):
            if t % LOG_EVERY == 0 or t == steps:  # evaluate at 0, every LOG_EVERY, and the end
                with torch.no_grad():
                    D_unit = model.dictionary().detach()
                    amortised = name not in ("SAE+ITO", "SC")
                    codes = model.encode(x_te) if amortised else infer_codes(D_unit, x_te)
                final[name] = (mcc(s_te, codes.numpy()), mcc(D_true.T, D_unit.numpy().T))
            if t < steps:
                step()
        log(f"  {name:11s} code MCC {final[name][0]:.3f}  dict MCC {final[name][1]:.3f}"
            f"  ({time.perf_counter() - t0:.1f} s)")
    return final


# ---------------------------------------------------------------- main
def main():
    size = SIZES[ARGS.size]
    N, M, K, n = size["N"], size["M"], size["K"], size["n"]
    items = ARGS.only or [i for i in ITEMS if i != "preset_unknown_zd" or ARGS.size == "paper"]
    torch.manual_seed(0)
    x_tr, x_te, _, _, D_true = make_data(N, M, K, n)
    X_te_np, D_np = (t.numpy().astype(ARGS.sklearn_dtype) for t in (x_te, D_true))
    log(f"reference.py: torch {torch.__version__}, sklearn {sklearn.__version__}, "
        f"threads {ARGS.threads}, size {ARGS.size} {size}")

    builders = {
        "sae_train": lambda: train_step_fn(Amortised(N, M), x_tr),
        "topk_sae_train": lambda: train_step_fn(Amortised(N, M, topk=K), x_tr),
        "mlp32_train": lambda: train_step_fn(Amortised(N, M, hidden=32), x_tr),
        "mlp256_train": lambda: train_step_fn(Amortised(N, M, hidden=256), x_tr),
        "sc_train": lambda: train_step_fn(SparseCoding(n, N, M), x_tr),
        "ito_step": lambda: ito_step_fn(D_true, x_te)[0],
    }
    sae = Amortised(N, M)

    def sae_infer():
        with torch.no_grad():
            sae(x_te)

    def sk(**kw):
        calls = [0]

        def step():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always" if calls[0] == 0 else "ignore", ConvergenceWarning)
                sparse_encode(X_te_np, D_np, n_jobs=None, **kw)
            if calls[0] == 0 and caught:
                log(f"  {kw['algorithm']}: {len(caught)} warning(s) on the first call, e.g. "
                    f"{str(caught[0].message)[:90]!r}")
            calls[0] += 1

        return step

    builders["sae_infer"] = lambda: sae_infer
    builders["sklearn_omp"] = lambda: sk(algorithm="omp", n_nonzero_coefs=K)
    builders["sklearn_lasso"] = lambda: sk(algorithm="lasso_cd", alpha=lasso_alpha(N, M),
                                           positive=True, max_iter=1000)
    builders["sklearn_lasso_lars"] = lambda: sk(algorithm="lasso_lars", alpha=lasso_alpha(N, M),
                                                positive=True)

    results = {}
    for name in items:
        if name == "preset_unknown_zd":
            if ARGS.size != "paper":
                log("skipping preset_unknown_zd: paper size only")
                continue
            log(f"preset_unknown_zd: {ARGS.preset_steps} steps per method")
            t0 = time.perf_counter()
            run_preset(ARGS.preset_steps, N, M, K, n)
            wall = time.perf_counter() - t0
            results[name] = {"steps_per_sec": 1.0 / wall, "secs_per_step": wall, "reps": 1,
                             "wall_secs": wall}
        else:
            warmup = 1 if name.startswith("sklearn") else 3
            results[name] = time_steps(builders[name](), ARGS.min_secs, warmup)
        r = results[name]
        log(f"{name:20s} {r['steps_per_sec']:12.3f} steps/s  ({r['reps']} reps)")

    print(json.dumps({"torch": torch.__version__, "sklearn": sklearn.__version__,
                      "threads": ARGS.threads, "size": {"name": ARGS.size, **size, "lam": LAM},
                      "results": results}))


if __name__ == "__main__":
    main()
