"""ETTh imputation on the published split: does the sampler setting explain the gap to the paper's Table 4?

Re-imputes the test windows of a finished `medium` run with the published split
(`tsbl run timebridge_imputation -p preset medium -p split paper -p datasets "[etth]" -p baselines "[]" --out runs/imputation_medium_papersplit`)
with other sampler settings, on the same windows and masks, and scores them in original units.
Usage, from the repository root: python tools/etth_imputation_gap.py 20x5,40x1 0,1 out.json
(variants as STEPSxDRAWS; 20x5 reads the run's own imputations from its cache; mask draws 0 and 1)."""
import json, os, sys, time
import numpy as np, torch
from tsbridge_lambda.data import load_dataset, geometric_mask
from tsbridge_lambda.experiments import subsample
from tsbridge_lambda.metrics import imputation_scores
from tsbridge_lambda.timebridge import TimeBridge
variants = [tuple(map(int, v.split('x'))) for v in sys.argv[1].split(',')]   # e.g. 20x5,40x1: (Heun steps, draws)
reps = [int(r) for r in sys.argv[2].split(',')]
out = sys.argv[3]
run = os.environ.get('RUN', 'runs/imputation_medium_papersplit')
model_file = f'{run}/cache/etth-TimeBridge-all.model.pt'
w = load_dataset('etth', seq_len=48, split=None)                   # as the experiment's split='paper'
perm = np.random.default_rng(123).permutation(len(w.X)); cut = int(np.ceil(0.9 * len(w.X)))
X_te = subsample(w.X[np.sort(perm[cut:])], 256, 0)
torch.set_num_threads(1)
tb = TimeBridge.load(model_file)
rows = []
for ratio in (0.25, 0.5, 0.75):
    for rep in reps:
        obs = geometric_mask(X_te.shape, ratio, 3., 1000 + rep); obs[:, 0, :] |= ~obs.any(axis=1)
        X_obs = np.where(obs, X_te, np.nan)
        cached = np.load(f'{run}/cache/etth-{ratio}-rep{rep}-TimeBridge.npy')   # the run's own (20 steps, median of 5)
        for steps, n in variants:
            t = time.time()
            pred = cached if (steps, n) == (20, 5) else tb.impute(X_obs, n_samples=n, seed=rep, steps=steps, disable=True).median
            sc = imputation_scores(X_te, pred, obs, scaler=w.scaler)
            rows.append(dict(ratio=ratio, rep=rep, steps=steps, n_samples=n, mse=sc['mse'], mae=sc['mae'], seconds=round(time.time() - t, 1), load=os.getloadavg()[0]))
            print(rows[-1], flush=True)
json.dump(rows, open(out, 'w'), indent=1)
