"""ETTh imputation: how much of the paper's Table 4 a memoriser can reach under the published split.

A nearest-training-window imputer (no model: for each test window, the training window closest on the test
window's observed entries, on the [0, 1] scale, lends its values to the missing entries) is scored on the
same 256 test windows and geometric masks as `timebridge_imputation` (windows of 48, masks of mean length 3,
mask draws 1000 + rep), in original units, under three training sets:
- `chronological`: this project's split (first 80 % of the series for training, test after a gap);
- `paper`: the split of the paper's ETTh runs (`--proportion 0.9` in the published `run/03_Imputation_Etth-final.ipynb`),
  as `split='paper'` reproduces it: stride-1 windows shuffled with seed 123, 90 % train / 10 % test, so a test
  window's neighbours shifted by one step are in training with probability 0.9 each;
- `paper, as shipped`: the training set of the README's infill command, which leaves `--proportion` at `main.py`'s
  default 1.0 (`build_dataloader_train_cond` then takes every window, the test ones included).
It also counts the fraction of the test windows' time steps that some training window contains.
Usage, from the repository root: python tools/etth_imputation_leak.py out.json [reps, default 0,1]"""
import json, os, sys, time
import numpy as np
from tsbridge_lambda.data import load_dataset, geometric_mask
from tsbridge_lambda.conditional import linear_interpolation
from tsbridge_lambda.experiments import subsample
from tsbridge_lambda.metrics import imputation_scores

out = sys.argv[1]
reps = [int(r) for r in (sys.argv[2] if len(sys.argv) > 2 else '0,1').split(',')]
L = 48

def nearest_window(X_tr, X_obs, lo, hi, k=1, chunk=64):
    "Fill the NaN entries of X_obs with the mean of the k training windows nearest on the observed entries ([0, 1] scale)."
    A = ((X_tr - lo) / (hi - lo)).reshape(len(X_tr), -1)
    sq = A ** 2
    out = X_obs.copy()
    for i in range(0, len(X_obs), chunk):
        o = ~np.isnan(X_obs[i:i + chunk]).reshape(-1, A.shape[1])
        q = np.where(o, ((np.nan_to_num(X_obs[i:i + chunk]) - lo) / (hi - lo)).reshape(-1, A.shape[1]), 0.)
        d = (o * q ** 2).sum(1, keepdims=True) - 2 * q @ A.T + o.astype(float) @ sq.T   # squared distance on observed entries
        idx = np.argsort(d, axis=1)[:, :k]
        fill = X_tr[idx].mean(1)
        out[i:i + chunk] = np.where(np.isnan(X_obs[i:i + chunk]), fill, X_obs[i:i + chunk])
    return out

w = load_dataset('etth', seq_len=L, split=None)                  # every stride-1 window; scaler on the whole series
starts = np.arange(len(w.X))
perm = np.random.default_rng(123).permutation(len(w.X)); cut = int(np.ceil(0.9 * len(w.X)))
te_idx = subsample(np.sort(perm[cut:]), 256, 0)                    # the experiment's 256 test windows (split='paper')
wc = load_dataset('etth', seq_len=L, split=(0.8, 0.2))
X_te_c = subsample(wc.part('test'), 256, 0)                         # the experiment's 256 test windows (chronological)
setups = {'chronological': (wc.part('train'), X_te_c, wc.scaler, None),
          'paper': (w.X[np.sort(perm[:cut])], w.X[te_idx], w.scaler, np.sort(perm[:cut])),
          'paper, as shipped': (w.X, w.X[te_idx], w.scaler, starts)}
rows = []
for name, (X_tr, X_te, scaler, tr_starts) in setups.items():
    lo, hi = X_tr.reshape(-1, X_tr.shape[-1]).min(0), X_tr.reshape(-1, X_tr.shape[-1]).max(0)
    covered = None
    if tr_starts is not None:                                      # time steps of the series that some training window holds
        cov = np.zeros(len(w.X) + L - 1, bool)
        for s0 in tr_starts: cov[s0:s0 + L] = True
        covered = float(np.mean([cov[s0:s0 + L].mean() for s0 in te_idx]))
    for ratio in (0.25, 0.5, 0.75):
        for rep in reps:
            obs = geometric_mask(X_te.shape, ratio, 3., 1000 + rep); obs[:, 0, :] |= ~obs.any(axis=1)
            X_obs = np.where(obs, X_te, np.nan)
            for method, f in (('nearest training window', lambda: nearest_window(X_tr, X_obs, lo, hi)),
                              ('mean of 5 nearest', lambda: nearest_window(X_tr, X_obs, lo, hi, k=5)),
                              ('linear interpolation', lambda: linear_interpolation(X_obs))):
                t = time.time(); pred = f()
                sc = imputation_scores(X_te, pred, obs, scaler=scaler)
                rows.append(dict(split=name, n_train=len(X_tr), test_steps_in_training=covered, ratio=ratio, rep=rep, method=method,
                                 mse=sc['mse'], mae=sc['mae'], mse_01=sc['mse_01'], seconds=round(time.time() - t, 2), load=os.getloadavg()[0]))
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
json.dump(rows, open(out, 'w'), indent=1)
