"""PyTorch CUDA timing peer for the GPU column of `sparse-playground bench --gpu --gpu-peer`.

Times, on one CUDA device, the training step that the engine's GPU column times, and prints ONE
JSON object to stdout (all logging goes to stderr):

  {"torch": ver, "device": name, "tf32": false,
   "results": [{"item", "stack" or "size", "mode", "us_per_problem_step" or "ms_per_step",
                "reps"}, ...]}

Usage: python3 bench/gpu_reference.py [--stacks 1,5,64,1024] [--min-secs S] [--device cuda]
                                      [--no-large]
(GPU_REFERENCE_DEVICE=cpu in the environment: the same steps on the CPU, to check the script.)

Items (float32 everywhere, TF32 off for products and convolutions, so that the comparison is
fp32 against the engine's fp32):
  sae_train, stack S   S independent paper-size SAEs (N=16 latents, M=8 dims, n=1024 samples)
                       advanced together: encoder W and dictionary D stored as S x N x M
                       tensors, codes relu(X W^T) by batched products, the dictionary's atoms
                       renormalised in place before each forward pass (outside autograd), loss
                       per member mean((S D - X)^2) + 0.01 mean|S|, summed over members (the
                       gradients stay per member), one Adam step (lr 1e-3) on W and D. Adam is
                       elementwise, so one optimiser over the stacked tensors is S optimisers.
                       Two modes: "eager" (one Python step per step), and "graph": the whole
                       step (renormalisation, forward, backward, Adam with capturable=True)
                       captured once as a CUDA graph and replayed, PyTorch's fastest way to run
                       a small step. Reported as microseconds per problem-step (step time / S).
  sae_train, large     one SAE at N=4096, M=512, n=8192 and at the paper's LLM dictionary
                       N=16896, M=768, n=4096, eager (these steps are long enough that launch
                       overhead does not matter); milliseconds per step.

Signals are standard normal (the timing does not depend on their values). Each item runs 3
warm-up steps, then repeats until --min-secs have passed, synchronising the device before the
clock is read.
"""

import argparse
import json
import os
import sys
import time

import torch

LAMBDA = 0.01
LR = 1e-3
PAPER = (16, 8, 1024)
LARGE = [("N=4096 M=512 n=8192", (4096, 512, 8192)), ("N=16896 M=768 n=4096", (16896, 768, 4096))]


def log(*msg):
    print(*msg, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stacks", default="1,5,64,1024")
    p.add_argument("--min-secs", type=float, default=1.0)
    # The environment's GPU_REFERENCE_DEVICE=cpu runs the same steps on the CPU: for checking
    # the script (and the bench's table) on a machine without CUDA, not for comparisons.
    p.add_argument("--device", default=os.environ.get("GPU_REFERENCE_DEVICE", "cuda"))
    p.add_argument("--no-large", action="store_true")
    return p.parse_args()


class StackedSae:
    """`stack` SAEs with `n_atoms` latents on `dim`-dimensional signals, as stacked tensors."""

    def __init__(self, stack, n_atoms, dim, device, capturable):
        g = torch.Generator(device="cpu").manual_seed(0)
        bound = 1.0 / dim**0.5
        w = (torch.rand(stack, n_atoms, dim, generator=g) * 2 - 1) * bound
        d = torch.randn(stack, n_atoms, dim, generator=g)
        self.w = w.to(device).requires_grad_()
        self.d = d.to(device).requires_grad_()
        self.opt = torch.optim.Adam([self.w, self.d], lr=LR, capturable=capturable)

    def step(self, x):
        with torch.no_grad():
            self.d.div_(self.d.norm(dim=-1, keepdim=True))
        codes = torch.relu(torch.bmm(x, self.w.transpose(1, 2)))
        x_hat = torch.bmm(codes, self.d)
        per_member = ((x_hat - x) ** 2).mean(dim=(1, 2)) + LAMBDA * codes.abs().mean(dim=(1, 2))
        loss = per_member.sum()
        self.opt.zero_grad(set_to_none=False)
        loss.backward()
        self.opt.step()


def timed(run, sync, min_secs):
    for _ in range(3):
        run()
    sync()
    reps = 0
    start = time.perf_counter()
    while True:
        run()
        reps += 1
        if reps % 8 == 0 or reps < 8:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= min_secs:
                return elapsed / reps, reps


def graph_step(model, x):
    """The whole step captured as a CUDA graph (PyTorch's recipe: warm up on a side stream)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            model.step(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model.step(x)
    return graph.replay


def main():
    args = parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        log(f"gpu_reference: torch {torch.__version__} sees no CUDA device")
        sys.exit(2)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    log(f"gpu_reference: torch {torch.__version__} on {name}")
    results = []
    n_atoms, dim, n = PAPER
    for stack in [int(s) for s in args.stacks.split(",") if s]:
        x = torch.randn(stack, n, dim, generator=torch.Generator().manual_seed(1)).to(device)
        modes = ["eager", "graph"] if cuda else ["eager"]
        for mode in modes:
            model = StackedSae(stack, n_atoms, dim, device, capturable=mode == "graph")
            run = graph_step(model, x) if mode == "graph" else (lambda m=model: m.step(x))
            secs, reps = timed(run, sync, args.min_secs)
            us = 1e6 * secs / stack
            log(f"  sae_train stack {stack} {mode}: {us:.3f} us per problem-step ({reps} reps)")
            results.append({"item": "sae_train", "stack": stack, "mode": mode,
                            "us_per_problem_step": us, "reps": reps})
    if not args.no_large:
        for label, (n_atoms, dim, n) in LARGE:
            x = torch.randn(1, n, dim, generator=torch.Generator().manual_seed(2)).to(device)
            model = StackedSae(1, n_atoms, dim, device, capturable=False)
            secs, reps = timed(lambda: model.step(x), sync, args.min_secs)
            log(f"  sae_train {label} eager: {1e3 * secs:.3f} ms per step ({reps} reps)")
            results.append({"item": "sae_train", "size": label, "mode": "eager",
                            "ms_per_step": 1e3 * secs, "reps": reps})
    print(json.dumps({"torch": torch.__version__, "device": name, "tf32": False,
                      "results": results}))


if __name__ == "__main__":
    main()
