"""Re-impute a finished `timebridge_imputation` run's TimeBridge cells without the x_0 clamp (issue 17).

Until commit f1205d2 TimeBridge clamped its x_0 estimate to the scaled training range [-1, 1] during imputation too
(`clip_denoised=1`). Under the chronological split the test period can leave that range: on Energy 12-50 % of the test
temperatures lie above the training maximum, and the clamp held every imputation of them at it. Imputation now
defaults to no clamp. This script measures what the clamp cost in a run that was made with it: the same trained
model (read from the run's cache), the same test windows, masks, sampler settings and seeds as the run, imputed once
with the clamp off, scored beside the run's own (clamped) imputations and linear interpolation.

Usage, from the repository root (export TSBL_DATA_DIR=/work/shared/data):

    python tools/imputation_unclamped.py --run runs/imputation_medium --datasets energy,etth [--out FILE]

  Each (dataset, ratio, draw) cell is written to OUT_DIR/cells/ as soon as it is scored (atomic) and skipped on a
  re-run; the summary (default nbs/experiments/measurements/imputation_unclamped.json) is rebuilt from the cells.

Protocol: the run's settings.json (preset, split, max_test, impute_samples, sample_steps, repeats) and the notebook's
own definitions (windows, masks: geometric mean run 3 for ETTh / Energy, random for MuJoCo, seed 1000 + draw, a channel
with nothing observed gets its first step observed; impute seed = draw). The clamped imputations are the run's cached
arrays, checked to match the protocol by their shape.
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path
import numpy as np

SETUP = {'mujoco': ('random', 100, [0.7, 0.8, 0.9]), 'etth': ('geometric', 48, [0.25, 0.5, 0.75]),
         'energy': ('geometric', 48, [0.25, 0.5, 0.75])}
NOISE_COLUMNS = ['rv1', 'rv2']

def windows(ds, L, s, split):
    "The notebook's test windows and dataset (its scaler) for one dataset."
    from tsbridge_lambda.data import load_dataset
    from tsbridge_lambda.experiments import subsample
    if ds == 'mujoco':
        w = load_dataset('mujoco', seq_len=L, split=(0.8, 0.2), n_samples=min(s['n_generated'], s['max_train'] or s['n_generated']), seed=0, disable=True)
        X_te = w.part('test')
    elif split == 'paper':
        w = load_dataset(ds, seq_len=L, split=None)
        perm = np.random.default_rng(123).permutation(len(w.X)); cut = int(np.ceil(0.9 * len(w.X)))
        X_te = w.X[np.sort(perm[cut:])]
    else:
        w = load_dataset(ds, seq_len=L, split=(0.8, 0.2)); X_te = w.part('test')
    return subsample(X_te, s['max_test'], 0), w

def masks(kind, shape, ratio, seed):
    from tsbridge_lambda.data import random_mask, geometric_mask
    obs = random_mask(shape, ratio, seed) if kind == 'random' else geometric_mask(shape, ratio, 3., seed)
    obs[:, 0, :] |= ~obs.any(axis=1)
    return obs

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--run', default='runs/imputation_medium', help='folder of a finished timebridge_imputation run')
    p.add_argument('--datasets', default='energy,etth', help='comma-separated: energy, etth, mujoco')
    p.add_argument('--out', default='nbs/experiments/measurements/imputation_unclamped.json', help='summary JSON')
    a = p.parse_args(argv)
    from tsbridge_lambda.core import atomic_write
    from tsbridge_lambda.timebridge import TimeBridge
    from tsbridge_lambda.conditional import linear_interpolation
    from tsbridge_lambda.metrics import imputation_scores
    run = Path(a.run); cache = run / 'cache'
    st = json.loads((cache / 'settings.json').read_text())
    split = st.get('_protocol', {}).get('split', 'chronological')
    cells_dir = run / 'unclamped'; cells_dir.mkdir(exist_ok=True)
    for ds in [d for d in a.datasets.split(',') if d]:
        kind, L, ratios = SETUP[ds]
        X_te, w = windows(ds, L, st, split)
        keep = [i for i, c in enumerate(w.columns) if c not in NOISE_COLUMNS] if ds == 'energy' else None
        model = None
        for r in ratios:
            for rep in range(st['repeats']):
                f = cells_dir / f'{ds}-{r}-rep{rep}.json'
                if f.exists(): print('kept', f.name); continue
                if model is None:
                    model = TimeBridge.load(cache / f'{ds}-TimeBridge-all.model.pt')
                    clamp_in_run = model.config['clip_denoised']; model.config['clip_denoised'] = None
                obs = masks(kind, X_te.shape, r, 1000 + rep); X_obs = np.where(obs, X_te, np.nan)
                clamped = np.load(cache / f'{ds}-{r}-rep{rep}-TimeBridge.npy')
                if clamped.shape != X_te.shape: raise SystemExit(f'{ds} {r} draw {rep}: cached imputations {clamped.shape} do not match the test windows {X_te.shape}.')
                t0 = time.time(); load0 = os.getloadavg()[0]
                free = model.impute(X_obs, n_samples=st['impute_samples'], seed=rep, steps=st['sample_steps'], disable=True).median
                secs = time.time() - t0
                rec = dict(dataset=ds, ratio=r, draw=rep, windows=len(X_te), clamp_in_run=clamp_in_run, seconds=round(secs, 1),
                           load=[round(load0, 2), round(os.getloadavg()[0], 2)], observed_exact=bool(np.array_equal(free[obs], X_te[obs])),
                           above_training_max=float(np.mean(X_te[~obs] > np.broadcast_to(w.scaler.data_max_, X_te.shape)[~obs])), scores={})
                for name, P in [('TimeBridge, clamped (the run)', clamped), ('TimeBridge, no clamp', free), ('Linear interpolation', linear_interpolation(X_obs))]:
                    for lab, ch in [('all', None)] + ([('w/o rv', keep)] if keep else []):
                        sc = imputation_scores(X_te, P, obs, scaler=w.scaler, channels=ch)
                        rec['scores'][f'{name} | {lab}'] = {k: float(sc[k]) for k in ('mse', 'mae', 'mse_01', 'mae_01')}
                with atomic_write(f) as fh: fh.write(json.dumps(rec, indent=1).encode())
                s = rec['scores']
                print(f"{ds} {r:.0%} draw {rep}: MSE [0,1] clamped {s['TimeBridge, clamped (the run) | all']['mse_01']:.5f}, "
                      f"no clamp {s['TimeBridge, no clamp | all']['mse_01']:.5f}, interp {s['Linear interpolation | all']['mse_01']:.5f} "
                      f"({secs:.0f} s, load {rec['load']})", flush=True)
    cells = [json.loads(f.read_text()) for f in sorted(cells_dir.glob('*.json'))]
    summary = {}
    for c in cells:
        for k, v in c['scores'].items():
            for m, x in v.items(): summary.setdefault(f"{c['dataset']}/{c['ratio']:.0%} | {k} | {m}", []).append(x)
    out = dict(run=str(run), split=split, protocol={k: st[k] for k in ('max_test', 'impute_samples', 'sample_steps', 'repeats')},
               means={k: float(np.mean(v)) for k, v in sorted(summary.items())}, cells=cells)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(a.out) as fh: fh.write(json.dumps(out, indent=1).encode())
    print('wrote', a.out)

if __name__ == '__main__': main()
