"""Where the variance of LAMBDA's encoder latents goes (issue 18): shrinkage, or a move between components.

The fit history of `lambda_gait -p preset medium` shows the within-window latent variance of the aligned pair below
the unaligned pair's at the end of training (seed 0: 4 % and 14 %; over five seeds, 25 % and 47 % on average). The alignment terms are scale-free (InfoNCE on unit-norm window
means of latents centred per position; covariances scaled to unit trace), so that figure alone does not say whether the
latents collapsed (lost their temporal structure) or whether their variance moved from within windows to between
windows (what an InfoNCE on window means asks for) or simply shrank as a whole (which the decoder, reading the latents
through attention after a linear map, can undo).

This script reads two fitted pairs (one `align='lambda'`, one `align='none'`, same seed and data), encodes the test
windows of both modalities at several diffusion steps, and splits the variance of the latents Z (N, L, d), averaged
over the d dimensions, into three parts that add up to the total (population variances):

- position: the variance over positions l of the batch mean at l (what `center_positions` removes),
- between windows: the variance of the window means of the centred latents over sequences and windows,
- within windows: the mean variance of the centred latents inside each window (the fit history's `var_x`, `var_y`,
  up to the unbiased denominator).

Usage, from the repository root (export TSBL_DATA_DIR=/work/shared/data):

    python tools/lambda_latent_variance.py --cache runs/lambda_gait_medium/cache --pair angles-grf \
        [--settings nbs/experiments/results/lambda_gait_medium/results.json] [--out FILE]

  --cache: a `lambda_gait` run's cache folder; every seed with both an `align='lambda'` and an `align='none'` model file
  there is measured (or name two files with --lambda-model and --none-model). --settings: the run's results.json or
  settings.json (its window length, split).
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path
import numpy as np

def decompose(Z:np.ndarray, window:int) -> dict:
    "Total variance of Z (N, L, d) per dimension, averaged over d, and its position / between-window / within-window parts."
    N, L, d = Z.shape
    P = L // window
    Z = Z[:, :P * window].astype(np.float64)
    total = float(Z.reshape(-1, d).var(0).mean())
    m = Z.mean(0, keepdims=True)                                  # (1, L, d) batch mean per position
    pos = float(((m - Z.reshape(-1, d).mean(0)) ** 2).mean())
    W = (Z - m).reshape(N, P, window, d)
    wm = W.mean(2)                                                # (N, P, d) window means of the centred latents
    between = float((wm ** 2).mean())                             # centred: the mean over (n, p) at each l is 0
    within = float(((W - wm[:, :, None]) ** 2).mean())
    return dict(total=total, position=pos, between=between, within=within,
                within_share=within / total, between_share=between / total, position_share=pos / total)

def denoising_mse(m, D, C, mod:str, i:int, ablate:bool) -> float:
    "Mean squared error of the x_0 estimate of the test windows D (condition C) at step i, with or without the encoder content."
    import torch
    from tsbridge_lambda.core import make_generator
    from tsbridge_lambda.loss import ddpm_time
    den = m.model_.den_x if mod == 'x' else m.model_.den_y
    sx, sc = (m.x_scaler, m.y_scaler) if mod == 'x' else (m.y_scaler, m.x_scaler)
    x0, c = (torch.as_tensor(s.transform(a), dtype=torch.float32) for s, a in ((sx, D), (sc, C)))
    sch = m.schedule
    idx = torch.full((len(x0),), i, dtype=torch.long)
    xt = sch.q_sample(x0, idx, torch.randn(x0.shape, generator=make_generator(0, 'cpu')))
    xt, c, x0 = xt.to(m.device), c.to(m.device), x0.to(m.device)
    encode = den.encode
    def without_content(*a, **k):                                 # Z replaced by its batch mean at each position
        z, emb, temb = encode(*a, **k)
        return z.mean(0, keepdim=True).expand_as(z), emb, temb
    if ablate: den.encode = without_content                       # the model's own forward, whichever decoder_input it has
    try:
        with torch.no_grad(): out = den(xt, ddpm_time(idx, sch.n_steps).to(m.device), cond=c)
    finally:
        if ablate: del den.encode
    return float((out - x0).pow(2).mean())

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--cache', help="a lambda_gait run's cache folder: every seed with both models")
    ap.add_argument('--lambda-model'); ap.add_argument('--none-model')
    ap.add_argument('--pair', default='angles-grf')
    ap.add_argument('--settings', default='nbs/experiments/results/lambda_gait_medium/results.json')
    ap.add_argument('--steps', default='5,25,50,75,95', help='diffusion steps i at which to read the latents')
    ap.add_argument('--max-test', type=int, default=512, help='test windows used (drawn with seed 0)')
    ap.add_argument('--out', default='nbs/experiments/measurements/lambda_gait_latent_variance.json')
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from tsbridge_lambda.experiments import paired_data, subsample, _jsonable
    from tsbridge_lambda.core import atomic_write
    s = json.loads(Path(a.settings).read_text())
    s = s.get('settings', s)                                      # a results.json holds the settings under 'settings'
    data = paired_data(a.pair, s)
    X, Y = (subsample(v, a.max_test, seed=0) for v in (data.test.X, data.test.Y))
    steps = [int(x) for x in a.steps.split(',')]
    if a.cache:                                                   # {seed: {align: file}} from the configs stored in the files
        files = {}
        for f in sorted(Path(a.cache).glob(f'{a.pair}-*.model.pt')):
            c = torch.load(f, map_location='cpu', weights_only=True)['config']
            seen = files.setdefault(int(c['seed']), {})
            if c['align'] in seen: raise ValueError(f"Two {c['align']!r} models of seed {c['seed']} in {a.cache}: {seen[c['align']]} and {f}; name the pair with --lambda-model and --none-model.")
            seen[c['align']] = f
        pairs = {k: v for k, v in sorted(files.items()) if {'lambda', 'none'} <= set(v)}
    elif a.lambda_model and a.none_model: pairs = {None: {'lambda': a.lambda_model, 'none': a.none_model}}
    else: ap.error('give --cache, or both --lambda-model and --none-model')
    out = dict(pair=a.pair, test_windows=len(X), steps=steps, settings=a.settings, seeds={},
               command='python tools/lambda_latent_variance.py ' + ' '.join(argv if argv is not None else sys.argv[1:]))
    t0 = time.time()
    for seed, fs in pairs.items():
        out['seeds'][str(seed)] = measure(fs, X, Y, steps)
        show(out['seeds'][str(seed)], f'seed {seed}')
    keys = list(next(iter(out['seeds'].values()))['lambda_over_none'])
    out['median_over_seeds'] = {k: {p: float(np.median([v['lambda_over_none'][k][p] for v in out['seeds'].values()]))
                                    for p in ('total', 'position', 'between', 'within')} for k in keys}
    out['seconds'] = round(time.time() - t0, 1)
    out['load_average'] = os.getloadavg()[0]
    with atomic_write(a.out, 'w') as f: f.write(json.dumps(_jsonable(out), indent=1))
    print('median over seeds of LAMBDA / none:'); [print(f"  {k:12s} " + ' '.join(f"{p} {v:.3f}" for p, v in r.items())) for k, r in out['median_over_seeds'].items()]
    print(f"written {a.out} ({out['seconds']} s, load {out['load_average']:.2f})")

def measure(fs:dict, X, Y, steps) -> dict:
    "Variance parts and content ratios of both models of one seed."
    from tsbridge_lambda.paired import PairedDiffusion
    out = {'models': {}}
    for name in ('lambda', 'none'):
        m = PairedDiffusion.load(fs[name])
        w = m.config['window'] or max(2, X.shape[1] // 8)
        rows = {}
        for mod, D in (('x', X), ('y', Y)):
            for i in steps:
                Z = m.encode(D, modality=mod, step=i, pool=None, seed=0)
                rows[f'{mod} step {i}'] = decompose(Z, w)
                C = Y if mod == 'x' else X
                full, ablated = (denoising_mse(m, D, C, mod, i, ab) for ab in (False, True))
                rows[f'{mod} step {i}'].update(mse=full, mse_without_content=ablated, content_ratio=ablated / full)
        out['models'][name] = dict(file=str(fs[name]), align=m.config['align'], window=w, lambda_end=m.lambda_, parts=rows)
    for k in out['models']['lambda']['parts']:
        l, n = out['models']['lambda']['parts'][k], out['models']['none']['parts'][k]
        out.setdefault('lambda_over_none', {})[k] = {p: l[p] / n[p] for p in ('total', 'position', 'between', 'within')}
    return out

def show(out:dict, title:str):
    print(f"{title:14s} LAMBDA / none: {'total':>8s} {'pos':>6s} {'betw':>6s} {'within':>6s}   shares LAMBDA (pos/betw/within) | none    MSE without content / with: LAMBDA | none")
    for k in out['models']['lambda']['parts']:
        l, n, r = out['models']['lambda']['parts'][k], out['models']['none']['parts'][k], out['lambda_over_none'][k]
        print(f"{k:14s}                {r['total']:8.3f} {r['position']:6.3f} {r['between']:6.3f} {r['within']:6.3f}   "
              f"{l['position_share']:.2f}/{l['between_share']:.2f}/{l['within_share']:.2f} | {n['position_share']:.2f}/{n['between_share']:.2f}/{n['within_share']:.2f}   {l['content_ratio']:.2f} | {n['content_ratio']:.2f}")

if __name__ == '__main__':
    main()
