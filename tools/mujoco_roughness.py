"""TimeBridge-GP on MuJoCo at the paper preset: what makes its samples easy to tell from real windows (issue 16)?

The run (`tsbl run timebridge_unconditional -p preset paper -p datasets "[mujoco]" -p methods "[TimeBridge-GP]" --out
runs/paper_mujoco`) scores a discriminative 0.027 where the paper reports 0.006, and `tools/discriminative_gap.py export
mujoco` / `ours mujoco` put the metric's floor (10000 real windows against an independent draw of 10000) at 0.005. This
script measures one candidate cause: high-frequency jitter. The hopper's joint positions are integrals of its velocities,
so their second differences along time are tiny; a sampler that leaves noise of a fraction of a percent on them makes
every window rougher than any real one, which a GRU might pick up. It prints and saves (OUT/roughness.json):
  1. the mean |second difference| of each channel, in the metric's [0, 1] units (min-max of the real windows), for the
     training windows, an independent real draw (data seed 1), the run's samples and fresh samples of the run's model
     with 40 Heun steps (119 NFE, the run's sampler) and with 80 (239 NFE): if the jitter shrinks with more steps it is
     discretisation error, if not it comes from elsewhere (the network, the training);
  2. the discriminative score (this project's metric, the run's settings, 5 repeats) of real windows plus white noise
     sized to give the samples' roughness, against the real windows: how much of the gap jitter of that size explains.
Usage, from the repository root, after the run:
    TSBL_DATA_DIR=../shared/data python tools/mujoco_roughness.py [RUN] [OUT] [N]    # defaults runs/paper_mujoco runs/mujoco_gap 1000
    python tools/mujoco_roughness.py plot JSON PNG        # the per-channel bar chart of a saved roughness.json
    python tools/mujoco_roughness.py marginals DIR        # per-channel two-sample KS statistics, s.d. ratios and roughness of
                                                          # the arrays `discriminative_gap.py export mujoco` wrote to DIR (seconds)
    python tools/mujoco_roughness.py compare DIR_OURS DIR_PUBLISHED PNG   # bar charts of two `marginals` folders: ours and the
                                                          # published model's samples (SAMPLES=... GAP=... discriminative_gap.py);
                                                          # run `marginals` on both folders first (it writes the roughness)
About 6 minutes on 2 cores (N = 1000 windows per sampler setting); the chart is drawn at the end (OUT/roughness.png).
"""
import json, os, sys, time
import numpy as np

def rough(x): return np.abs(np.diff(x, 2, axis=1)).mean(axis=(0, 1))          # mean |2nd difference| per channel, (C,)
def channel_names(c): return [f'q{i}' for i in range(c // 2)] + [f'v{i}' for i in range(c // 2)]   # hopper: positions, velocities

def plot(path, png):
    "Bars of each channel's roughness for the real windows, the run's samples and the noisy real windows."
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    d = json.load(open(path)); r = d['roughness_mean_abs_second_difference_01']; c = len(d['channels'])
    fig, ax = plt.subplots(figsize=(8, 2.8)); w = 0.27
    for i, (label, v) in enumerate([('real (seed 0)', r['real (seed 0)']), ('TimeBridge-GP samples', r['run samples (40 Heun steps)']),
                                    ('real + white noise', d['noise_roughness_01'])]):
        ax.bar(np.arange(c) + (i - 1) * w, v, w, label=label)
    ax.set_xticks(range(c), channel_names(c))
    ax.set_ylabel('mean |2nd difference|\n([0, 1] units)'); ax.set_xlabel('hopper channel (q: joint position, v: velocity)')
    ax.set_title('MuJoCo: second differences along time, per channel'); ax.legend(fontsize=8, frameon=False)
    fig.tight_layout(); fig.savefig(png, dpi=110); print('wrote', png)

def marginals(d):
    "Each channel's values pooled over windows and time: KS statistic and s.d. ratio, samples and an independent real draw against the real windows."
    from scipy import stats
    real, fake, other = (np.load(f'{d}/{k}.npy') for k in ('real01', 'fake01', 'real01_b'))
    out = {k: [] for k in ('ks_samples', 'ks_independent_real', 'sd_ratio_samples', 'sd_ratio_independent_real')}
    for c in range(real.shape[-1]):
        r = real[..., c].ravel()
        for name, x in (('samples', fake), ('independent_real', other)):
            out[f'ks_{name}'].append(round(float(stats.ks_2samp(r, x[..., c].ravel()).statistic), 4))
            out[f'sd_ratio_{name}'].append(round(float(x[..., c].std() / r.std()), 4))
    for name, x in (('real', real), ('samples', fake), ('independent_real', other)):   # mean |2nd difference| per channel
        out[f'roughness_{name}'] = [round(float(v), 6) for v in rough(x)]
    for k, v in out.items(): print(f'{k:26s}', v)
    json.dump(out, open(f'{d}/marginals.json', 'w'), indent=1)

def side_by_side(ours, theirs, png):
    "Two panels per channel from two `marginals` folders: KS statistic against the real windows, and roughness / real roughness."
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    a, b = (json.load(open(f'{d}/marginals.json')) for d in (ours, theirs))
    c = len(a['ks_samples']); x = np.arange(c); w = 0.27
    rel = lambda d, k: np.array(d[f'roughness_{k}']) / np.array(d['roughness_real'])
    fig, axes = plt.subplots(2, 1, figsize=(8, 4.6), sharex=True)
    for i, (label, ks, r) in enumerate([('this project (trained here)', a['ks_samples'], rel(a, 'samples')),
                                        ('published code (trained here)', b['ks_samples'], rel(b, 'samples')),
                                        ('independent real draw', a['ks_independent_real'], rel(a, 'independent_real'))]):
        axes[0].bar(x + (i - 1) * w, ks, w, label=label); axes[1].bar(x + (i - 1) * w, r, w, label=label)
    axes[0].set_ylabel('KS statistic\nagainst real'); axes[0].legend(fontsize=8, frameon=False)
    axes[1].set_ylabel('roughness /\nreal roughness'); axes[1].axhline(1, color='0.5', lw=.7)
    axes[1].set_xticks(x, channel_names(c)); axes[1].set_xlabel('hopper channel (q: joint position, v: velocity)')
    axes[0].set_title('MuJoCo, TimeBridge-GP, paper preset: per-channel marginals and roughness', fontsize=10)
    fig.tight_layout(); fig.savefig(png, dpi=110); print('wrote', png)

if len(sys.argv) > 1 and sys.argv[1] in ('plot', 'marginals', 'compare'):
    if sys.argv[1] == 'plot' and len(sys.argv) == 4: plot(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == 'marginals' and len(sys.argv) == 3: marginals(sys.argv[2])
    elif sys.argv[1] == 'compare' and len(sys.argv) == 5: side_by_side(sys.argv[2], sys.argv[3], sys.argv[4])
    else: sys.exit(__doc__)
    sys.exit()
if len(sys.argv) > 4: sys.exit(__doc__)
import torch
from tsbridge_lambda.timebridge import TimeBridge
from tsbridge_lambda.experiments import train_windows, settings
from tsbridge_lambda.metrics import discriminative_score

args = sys.argv[1:] + [None] * 3
RUN, OUT, N = args[0] or 'runs/paper_mujoco', args[1] or 'runs/mujoco_gap', int(args[2] or 1000)


s = settings('paper')
real = np.asarray(train_windows('mujoco', s, seed=0)); other = np.asarray(train_windows('mujoco', s, seed=1))
lo, hi = real.min(axis=(0, 1)), real.max(axis=(0, 1))
to01 = lambda x: (np.asarray(x) - lo) / (hi - lo)
sets = {'real (seed 0)': to01(real), 'real (seed 1)': to01(other),
        'run samples (40 Heun steps)': to01(np.load(f'{RUN}/cache/mujoco-TimeBridge-GP-seed0.samples.npy'))}
model = TimeBridge.load(f'{RUN}/cache/mujoco-TimeBridge-GP-seed0.model.pt', device='cpu')
seconds = {}
for steps in (40, 80):
    t0 = time.time()
    sets[f'{N} fresh samples, {steps} Heun steps'] = to01(model.sample(N, seed=1, steps=steps, disable=True, batch_size=512))
    seconds[steps] = round(time.time() - t0, 1)
table = {k: rough(v) for k, v in sets.items()}
names = real.shape[-1] // 2
for k, v in table.items():
    print(f'{k:32s} positions {v[:names].mean():.5f}  velocities {v[names:].mean():.5f}')

# white noise on real windows sized to give the samples' mean |second difference| on each channel:
# for i.i.d. N(0, sd^2) noise e, diff2(x + e) ~ diff2(x) + N(0, 6 sd^2), so E|diff2| grows to about sqrt(r^2 + 6 sd^2 * 2/pi)
fake_r, real_r = table['run samples (40 Heun steps)'], table['real (seed 0)']
sd = np.sqrt(np.clip(fake_r**2 - real_r**2, 0, None) / (6 * 2 / np.pi))
noisy = sets['real (seed 1)'] + np.random.default_rng(0).normal(size=real.shape) * sd
print('noise s.d. per channel ([0, 1] units):', np.round(sd, 5), '-> roughness', np.round(rough(noisy), 5))
torch.set_num_threads(1)
disc = lambda a, b, r: float(discriminative_score(a, b, n_iters=s['disc_iters'], seed=r, scale=False, device='cpu', disable=True))
scores = {'real + noise vs real': [disc(sets['real (seed 0)'], noisy, r) for r in range(5)]}
print({k: (round(float(np.mean(v)), 4), round(float(np.std(v, ddof=1)), 4)) for k, v in scores.items()})
os.makedirs(OUT, exist_ok=True)
json.dump({'roughness_mean_abs_second_difference_01': {k: [round(float(x), 6) for x in v] for k, v in table.items()},
           'channels': [f'qpos {i}' for i in range(names)] + [f'qvel {i}' for i in range(names)],
           'noise_sd_01': [round(float(x), 6) for x in sd], 'noise_roughness_01': [round(float(x), 6) for x in rough(noisy)],
           'discriminative': scores, 'sample_seconds': seconds, 'load_average': os.getloadavg()[0]},
          open(f'{OUT}/roughness.json', 'w'), indent=1)
plot(f'{OUT}/roughness.json', f'{OUT}/roughness.png')
