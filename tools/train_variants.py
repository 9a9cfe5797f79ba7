"""Milliseconds per optimiser step of the public `TimeBridge(prior='gp', preset='sines').fit` under a training variant
(issue 20, item 2): plain, with the network compiled (`--compile`), with other micro-batch sizes (`batch_size=64
accumulate=4`: the same 256 windows per step), or data parallel over processes (run it under torchrun).

Usage, from the repository root (export TSBL_DATA_DIR=/work/shared/data), on an otherwise idle machine:

    python tools/train_variants.py 60                                   # 2 x 128 windows per step, torch's threads
    python tools/train_variants.py 60 batch_size=64 accumulate=4        # 4 x 64: same windows per step
    python tools/train_variants.py 120 --compile                        # the network under torch.compile (Inductor)
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 tools/train_variants.py 60   # 2 processes x 1 thread

It fits the sines preset on `load_dataset('sines', seed=0)` for the given number of steps, times every step with the
fit's callback and prints the median and mean over the steps after the 10th (20th with --compile: compiling happens
in the first step, whose time is printed apart). Only the network's calls inside the loss are compiled (the prior
draws and the loss stay eager), through `core.Compiled`, which falls back to the plain network with a warning if
compiling fails.
"""
import os, sys, time
import numpy as np, torch
from tsbridge_lambda.core import Compiled
from tsbridge_lambda.data import load_dataset
from tsbridge_lambda.timebridge import TimeBridge

def main(argv):
    compile_ = '--compile' in argv
    args = [a for a in argv if a != '--compile']
    steps = int(args[0]) if args else 60
    kw = {k: int(v) for k, v in (a.split('=') for a in args[1:])}
    if compile_:
        plain = TimeBridge._loss_fn
        def _loss_fn(self):
            fn, cache = plain(self), {}
            def loss_fn(model, batch, generator):
                if id(model) not in cache: cache[id(model)] = Compiled(model)
                return fn(cache[id(model)], batch, generator)
            return loss_fn
        TimeBridge._loss_fn = _loss_fn
    X = load_dataset('sines', seed=0).X
    m, times = TimeBridge(prior='gp', preset='sines', **kw), []
    t0 = time.perf_counter()
    m.fit(X, steps=steps, disable=True, callback=lambda d: times.append(time.perf_counter()))
    skip = 20 if compile_ else 10
    dt = np.diff(times[skip:])
    if int(os.environ.get('RANK', 0)) == 0:
        print(f"world {os.environ.get('WORLD_SIZE', 1)} x {torch.get_num_threads()} threads, compile {compile_}, {kw or 'preset batch'}: "
              f"first step {times[0] - t0:.1f} s, then {np.median(dt) * 1000:.0f} ms/step median, {dt.mean() * 1000:.0f} mean over "
              f"{len(dt)}; load {os.getloadavg()[0]:.2f}", flush=True)

if __name__ == '__main__': main(sys.argv[1:])
