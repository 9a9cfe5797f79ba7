"""TimeBridge-GP at the paper preset: is a discriminative score's gap to the paper in the metric or in the samples?

Scores the samples of a finished Table 1 run (`tsbl run timebridge_unconditional -p preset paper -p datasets "[sines, stocks]"
-p methods "[TimeBridge-GP]" --out runs/paper_table1`) with this project's discriminative metric and with the published
TimeBridge code's own (TensorFlow 1 graph code, driven from a local checkout, not copied), on the same [0, 1]-scaled arrays
(the dataset's published metric scale: sines' fixed bounds, else the real windows' min-max), together with the floor of each
metric: real windows against real windows. For a generated dataset (sines, mujoco) the floor compares the training windows with an
independent draw of as many (data seed 1), the size the samples are scored at; for a recorded one (stocks) there is no
second draw, so one half of the real windows is scored against the other half. Five repeats each (REPS to change).
Usage, from the repository root (DATASET: a dataset of the run, e.g. sines, stocks or etth; the environment variable RUN: the run
folder, default runs/paper_table1, e.g. RUN=runs/paper_etth):
  python tools/discriminative_gap.py export DATASET             # this project's environment: writes runs/DATASET_gap/*.npy
  python tools/discriminative_gap.py ours DATASET               # this project's metric
  TF_USE_LEGACY_KERAS=1 python tools/discriminative_gap.py published DATASET PATH   # an environment with tensorflow-cpu,
                                                                # tf_keras, scikit-learn, seaborn, tqdm; PATH: the published code's checkout
Other samples of the same dataset (e.g. the published model trained here, tools/published_generation_run.py's
OUT/samples.npy, same units as the run's): SAMPLES=FILE names the samples, GAP=DIR the folder for the arrays and scores
(default runs/DATASET_gap), e.g.
  SAMPLES=runs/published_mujoco/samples.npy GAP=runs/mujoco_gap_published python tools/discriminative_gap.py export mujoco
  GAP=runs/mujoco_gap_published python tools/discriminative_gap.py ours mujoco
"""
import json, os, sys
import numpy as np

RUN, REPS = os.environ.get('RUN', 'runs/paper_table1'), int(os.environ.get('REPS', 5))
GENERATED = ('sines', 'mujoco')                                              # datasets with an independent second draw

def out_dir(dataset): return os.environ.get('GAP') or f'runs/{dataset}_gap'

def _draw(dataset, seed):
    from tsbridge_lambda.experiments import train_windows, settings
    return train_windows(dataset, settings('paper'), seed=seed)

def export(dataset):
    if os.environ.get('SAMPLES') and not os.environ.get('GAP'):               # would overwrite the run's own arrays
        sys.exit('SAMPLES names other samples: give them their own folder with GAP=DIR (the default holds the run\'s arrays).')
    if dataset in GENERATED:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(2) as pool:                                  # a simulated dataset's two draws side by side
            draws = [pool.submit(_draw, dataset, k) for k in (0, 1)]
            real, other = draws[0].result(), draws[1].result()                # real: the windows the run trained on and scored against
    else: real, other = _draw(dataset, 0), None
    fake = np.load(os.environ.get('SAMPLES') or f'{RUN}/cache/{dataset}-TimeBridge-GP-seed0.samples.npy')
    if fake.shape[1:] != real.shape[1:]: sys.exit(f'The samples have windows of shape {fake.shape[1:]}, the real ones {real.shape[1:]}: not the same dataset.')
    scale = getattr(real, 'metric_scale', True)                               # the published metric's scale for this dataset
    lo, hi = (real.min(axis=(0, 1)), real.max(axis=(0, 1))) if scale is True else scale
    to01 = lambda x: (np.asarray(x) - lo) / (hi - lo)
    os.makedirs(out_dir(dataset), exist_ok=True)
    np.save(f'{out_dir(dataset)}/real01.npy', to01(real)); np.save(f'{out_dir(dataset)}/fake01.npy', to01(fake))
    if other is not None: np.save(f'{out_dir(dataset)}/real01_b.npy', to01(other))
    print(real.shape, fake.shape, 'scale', 'min-max of the real windows' if scale is True else scale)

def score(dataset, name, fn):
    d = out_dir(dataset)
    real, fake = np.load(f'{d}/real01.npy'), np.load(f'{d}/fake01.npy')
    other = np.load(f'{d}/real01_b.npy') if os.path.exists(f'{d}/real01_b.npy') else None
    floor = 'real_vs_independent_real' if other is not None else 'real_half_vs_real_half'
    out = {'ours_vs_real': [], floor: []}
    for r in range(REPS):
        out['ours_vs_real'].append(float(fn(real, fake, r)))
        if other is not None: out[floor].append(float(fn(real, other, r)))
        else:
            perm = np.random.default_rng(r).permutation(len(real)); h = len(real) // 2
            out[floor].append(float(fn(real[perm[:h]], real[perm[h:]], r)))
        print(r, out['ours_vs_real'][-1], out[floor][-1], flush=True)
    out['load'] = os.getloadavg()[0]
    json.dump(out, open(f'{d}/{name}_disc.json', 'w'), indent=1)
    print({k: (round(float(np.mean(v)), 4), round(float(np.std(v)), 4)) for k, v in out.items() if k != 'load'})

def ours(dataset):
    import torch
    from tsbridge_lambda.metrics import discriminative_score
    torch.set_num_threads(1)
    score(dataset, 'ours', lambda a, b, r: discriminative_score(a, b, seed=r, scale=False, device='cpu', disable=True))

def published(dataset, path):
    sys.path.insert(0, path)
    import tensorflow as tf; tf.compat.v1.disable_eager_execution()         # the published metric is TF1 graph code
    from Utils.discriminative_metric import discriminative_score_metrics
    def fn(a, b, r):
        np.random.seed(r); return discriminative_score_metrics(a, b)[0]
    score(dataset, 'published', fn)

if __name__ == '__main__':
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == 'export': export(a[1])
    elif len(a) == 2 and a[0] == 'ours': ours(a[1])
    elif len(a) == 3 and a[0] == 'published': published(a[1], a[2])
    else: sys.exit(__doc__)
