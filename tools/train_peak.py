"""How much of this CPU's matrix-product peak one TimeBridge training step reaches (issue 20, item 2), and where the
step's time goes.

Usage, from the repository root (export TSBL_DATA_DIR=/work/shared/data), on an otherwise idle machine:

    python tools/train_peak.py [THREADS]        # default 2

1. The peak: float32 square products of 512, 1024 and 2048 rows at THREADS threads, the best of 5 each, in GFLOP/s;
   the highest is the machine's measured peak.
2. The step: `TimeBridge(prior='gp', preset='sines')` fitted for 20 steps on `load_dataset('sines', seed=0)`, then
   its trainer's `train_step` (2 micro-batches of 128 windows, as the public `fit` runs them): the floating-point work
   of one step counted by `torch.utils.flop_counter.FlopCounterMode` (matrix products, convolutions, attention; the
   elementwise work is not counted), the median time of 40 steps, and the ratio of the two to the peak.
3. torch.profiler's table of 5 steps by self CPU time.
"""
import os, sys, time
import numpy as np, torch
from torch.utils.flop_counter import FlopCounterMode
from torch.profiler import profile, ProfilerActivity
from tsbridge_lambda.data import load_dataset
from tsbridge_lambda.timebridge import TimeBridge

def matmul_peak() -> dict:
    out = {}
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n); a @ b
        ts = []
        for _ in range(5):
            t0 = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t0)
        out[n] = 2 * n ** 3 / min(ts) / 1e9
    return out

def main(threads:int=2):
    torch.set_num_threads(threads)
    peak = matmul_peak()
    print('matmul GFLOP/s', {k: round(v, 1) for k, v in peak.items()}, f'load {os.getloadavg()[0]:.2f}')
    P = max(peak.values())
    m = TimeBridge(prior='gp', preset='sines')
    m.fit(load_dataset('sines', seed=0).X, steps=20, disable=True)
    tr = m.trainer_
    with FlopCounterMode(display=False) as fc: tr.train_step()
    flops, ts = fc.get_total_flops(), []
    for _ in range(40):
        t0 = time.perf_counter(); tr.train_step(); ts.append(time.perf_counter() - t0)
    s = float(np.median(ts))
    print(f'train step (2 x 128 windows): {flops / 1e9:.2f} GFLOP counted (matmul/conv/attention), {s * 1000:.0f} ms median -> '
          f'{flops / s / 1e9:.1f} GFLOP/s = {100 * flops / s / 1e9 / P:.0f} % of the measured peak {P:.0f}; load {os.getloadavg()[0]:.2f}')
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5): tr.train_step()
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=25))

if __name__ == '__main__': main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
