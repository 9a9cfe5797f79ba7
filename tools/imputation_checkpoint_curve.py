"""ETTh imputation error against training steps: re-impute a medium run's test cells with the EMA weights of its
intermediate trainer checkpoints (issue 17: is the distance to the paper's Table 4 a matter of budget?).

The medium `timebridge_imputation` run deletes its trainer checkpoint once the model is saved, so the checkpoints
must be copied aside while it trains (any copy of `cache/etth-TimeBridge-all.ckpt.pt` taken after a checkpoint
step will do; the file name does not matter, the step is read from the file). For every checkpoint this script loads
the run's saved model, replaces its network weights by the checkpoint's EMA weights (the weights `fit` keeps), and
imputes the run's own test windows and masks (published split, 256 test windows, geometric masks with seed
1000 + draw, as the notebook draws them) with the run's sampler settings (20 Heun steps, median of 5 draws, seed =
draw), scored in original units as the run scores them; test windows, draws and sampler steps are read from the
run's `settings.json`. The checkpoint at the run's last step should reproduce the run's cached imputations exactly
(`matches_run`, when the cache holds them; bit-exact only with the run's thread count, since sampling on a CPU splits
each batch into one chunk per thread); `run_cells` holds the run's own MSE of each cached cell to compare with.

Usage, from the repository root (export TSBL_DATA_DIR=/work/shared/data):

    python tools/imputation_checkpoint_curve.py --run runs/imputation_etth_paper_d192 --ckpts runs/etth_d192_ckpts \\
        --out nbs/experiments/measurements/etth_gap/steps_d192.json [--reps 0,1] [--steps 1000,3000,5000]

Resumable: each (step, ratio, draw) cell is written to the output file as soon as it is scored and skipped on a
re-run of the same command.
"""
import argparse, json, os, time
from pathlib import Path
import numpy as np, torch
from tsbridge_lambda.core import atomic_write
from tsbridge_lambda.data import load_dataset, geometric_mask
from tsbridge_lambda.experiments import subsample, _jsonable
from tsbridge_lambda.metrics import imputation_scores
from tsbridge_lambda.timebridge import TimeBridge
from tsbridge_lambda.train import Trainer

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--run', required=True, help='folder of a finished `timebridge_imputation` run on ETTh with split paper')
p.add_argument('--ckpts', required=True, help='folder of copies of its trainer checkpoint (*.pt)')
p.add_argument('--out', required=True, help='JSON file to write (resumed if it exists)')
p.add_argument('--reps', default='0,1', help='mask draws (the run scores 0 and 1)')
p.add_argument('--steps', default=None, help='only these checkpoint steps (comma-separated; default all)')
p.add_argument('--ratios', default='0.25,0.5,0.75', help='missing ratios (the run scores 0.25, 0.5, 0.75)')
p.add_argument('--include-final', action='store_true', help="also impute with the saved model's own weights (step = the run's steps): a check that "
               "this script reproduces the run's cached imputations (`matches_run`)")
p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s)')
a = p.parse_args()
if a.threads: torch.set_num_threads(a.threads)

run, out = Path(a.run), Path(a.out)
settings = json.loads((run / 'cache' / 'settings.json').read_text())
if settings.get('_protocol', {}).get('split') != 'paper':
    raise SystemExit(f"{run} was not run with split='paper'; this script rebuilds the published split only.")
model_file = run / 'cache' / 'etth-TimeBridge-all.model.pt'
if not model_file.exists(): raise SystemExit(f"{model_file} is missing: let the run finish training first.")

ckpts = {}
for f in sorted(Path(a.ckpts).glob('*.pt')):
    state = Trainer.read_checkpoint(f); ckpts.setdefault(int(state['step']), state['ema'])   # keep the EMA weights only
want = None if a.steps is None else {int(s) for s in a.steps.split(',')}
ckpts = {k: v for k, v in sorted(ckpts.items()) if want is None or k in want}
if a.include_final: ckpts.setdefault(int(settings['steps']), None)   # None: the saved model's weights
if not ckpts: raise SystemExit(f"No checkpoint found in {a.ckpts} (steps asked: {a.steps}).")
reps = [int(r) for r in a.reps.split(',')]

w = load_dataset('etth', seq_len=48, split=None)                   # as the experiment's split='paper'
perm = np.random.default_rng(123).permutation(len(w.X)); cut = int(np.ceil(0.9 * len(w.X)))
X_te = subsample(w.X[np.sort(perm[cut:])], settings['max_test'], settings['_protocol']['seeds'][0])
tb = TimeBridge.load(model_file, device=settings.get('device') or 'cpu')   # as the run reloads it (its sampling draws follow the device)
final = {k: v.clone() for k, v in tb.net_.state_dict().items()}
res = json.loads(out.read_text()) if out.exists() else {'run': str(run), 'model_file': str(model_file), 'cells': []}
done = {(c['step'], c['ratio'], c['rep']) for c in res['cells']}

def save():
    with atomic_write(out, 'w') as h: json.dump(_jsonable(res), h, indent=1)

def observed(ratio, rep):
    "The run's mask draw `rep` at `ratio` (True: observed), with every channel of every window observed at least once."
    obs = geometric_mask(X_te.shape, ratio, 3., 1000 + rep); obs[:, 0, :] |= ~obs.any(axis=1)
    return obs

cached_file = lambda ratio, rep: run / 'cache' / f'etth-{ratio}-rep{rep}-TimeBridge.npy'   # the run's own imputation of a cell

for step, ema in ckpts.items():
    ema = final if ema is None else ema
    tb.net_.load_state_dict(ema); tb.model_ = tb.net_.eval()
    same_as_final = all(torch.equal(ema[k].cpu(), final[k].cpu()) for k in final)
    for ratio in [float(r) for r in a.ratios.split(',')]:
        for rep in reps:
            if (step, ratio, rep) in done: continue
            obs = observed(ratio, rep)
            X_obs = np.where(obs, X_te, np.nan)
            t = time.time()
            pred = tb.impute(X_obs, n_samples=settings['impute_samples'], seed=rep, steps=settings['sample_steps'], disable=True).median
            sc = imputation_scores(X_te, pred, obs, scaler=w.scaler)
            cached = cached_file(ratio, rep)
            match = bool(np.array_equal(np.load(cached), pred)) if (same_as_final and cached.exists()) else None
            res['cells'].append(dict(step=step, ratio=ratio, rep=rep, mse=sc['mse'], mae=sc['mae'], same_weights_as_saved_model=same_as_final,
                                     matches_run=match, seconds=round(time.time() - t, 1), load=round(os.getloadavg()[0], 2)))
            print(res['cells'][-1], flush=True); save()

# the run's own scores of its cached imputations (the saved model's), beside which the step-`steps` cells are read
res['run_cells'] = []
for ratio in [float(r) for r in a.ratios.split(',')]:
    for rep in reps:
        cached = cached_file(ratio, rep)
        if not cached.exists(): continue
        res['run_cells'].append(dict(step=int(settings['steps']), ratio=ratio, rep=rep,
                                     run_mse=imputation_scores(X_te, np.load(cached), observed(ratio, rep), scaler=w.scaler)['mse']))
by = {}
for c in res['cells']: by.setdefault((c['step'], c['ratio']), []).append(c['mse'])
res['summary'] = [dict(step=s, ratio=r, mse_mean=float(np.mean(v)), draws=len(v)) for (s, r), v in sorted(by.items())]
save()
for row in res['summary']: print(row)
