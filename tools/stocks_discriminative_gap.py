"""Stocks, TimeBridge-GP at the paper preset: is the discriminative score's gap to the paper (0.080 against 0.049) in the metric?

Scores the samples of a finished Table 1 run (`tsbl run timebridge_unconditional -p preset paper -p datasets "[sines, stocks]"
-p methods "[TimeBridge-GP]" --out runs/paper_table1`) with this project's discriminative metric and with the published
TimeBridge code's own (TensorFlow 1 graph code, driven from a local checkout, not copied), on the same [0, 1]-scaled arrays,
together with the floor of each metric: one half of the real windows against the other half. Five repeats each.
Usage, from the repository root:
  python tools/stocks_discriminative_gap.py export                 # this project's environment: writes runs/stocks_gap/{real01,fake01}.npy
  python tools/stocks_discriminative_gap.py ours                   # this project's metric
  TF_USE_LEGACY_KERAS=1 python tools/stocks_discriminative_gap.py published PATH   # an environment with tensorflow-cpu, tf_keras,
                                                                    # scikit-learn, seaborn, tqdm; PATH: the published code's checkout
"""
import json, os, sys, time
import numpy as np

RUN, OUT = os.environ.get('RUN', 'runs/paper_table1'), 'runs/stocks_gap'

def export():
    from tsbridge_lambda.experiments import train_windows, settings
    real = train_windows('stocks', settings('paper'), seed=0)                # the windows the run trained on and scored against
    fake = np.load(f'{RUN}/cache/stocks-TimeBridge-GP-seed0.samples.npy')
    lo, hi = real.min(axis=(0, 1)), real.max(axis=(0, 1))                  # the metric protocol's [0, 1] scale, set by the real windows
    os.makedirs(OUT, exist_ok=True)
    np.save(f'{OUT}/real01.npy', (real - lo) / (hi - lo)); np.save(f'{OUT}/fake01.npy', (fake - lo) / (hi - lo))
    print(real.shape, fake.shape)

def score(name, fn, reps=5):
    real, fake = np.load(f'{OUT}/real01.npy'), np.load(f'{OUT}/fake01.npy')
    out = {'ours_vs_real': [], 'real_half_vs_real_half': []}
    for r in range(reps):
        perm = np.random.default_rng(r).permutation(len(real)); h = len(real) // 2
        out['ours_vs_real'].append(float(fn(real, fake, r)))
        out['real_half_vs_real_half'].append(float(fn(real[perm[:h]], real[perm[h:]], r)))
        print(r, out['ours_vs_real'][-1], out['real_half_vs_real_half'][-1], flush=True)
    out['load'] = os.getloadavg()[0]
    json.dump(out, open(f'{OUT}/{name}_disc.json', 'w'), indent=1)
    print({k: (round(float(np.mean(v)), 4), round(float(np.std(v)), 4)) for k, v in out.items() if k != 'load'})

def ours():
    import torch
    from tsbridge_lambda.metrics import discriminative_score
    torch.set_num_threads(1)
    score('ours', lambda a, b, r: discriminative_score(a, b, seed=r, scale=False, device='cpu', disable=True))

def published(path):
    sys.path.insert(0, path)
    import tensorflow as tf; tf.compat.v1.disable_eager_execution()         # the published metric is TF1 graph code
    from Utils.discriminative_metric import discriminative_score_metrics
    def fn(a, b, r):
        np.random.seed(r); return discriminative_score_metrics(a, b)[0]
    score('published', fn)

if __name__ == '__main__':
    cmd = sys.argv[1] if len(sys.argv) > 1 else ''
    if cmd == 'export': export()
    elif cmd == 'ours': ours()
    elif cmd == 'published' and len(sys.argv) > 2: published(sys.argv[2])
    else: sys.exit(__doc__)
