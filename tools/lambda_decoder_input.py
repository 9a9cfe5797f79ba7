"""Pilot for issue 18: does LAMBDA help when the aligned latents are the decoder's only view of the noisy target?

`tools/lambda_latent_variance.py` measured that the Diffusion-TS decoder of `ConditionalDenoiser` hardly reads the
encoder's latents Z (it starts from the input embedding of x_t): replacing Z by its batch mean per position changes the
denoising error by 4 % at most, with or without alignment. `decoder_input='latent'` starts the decoder from Z instead.
This script trains, on Lorenz windows, the pair without alignment and with LAMBDA for each decoder input and each seed,
all in one run (one job, one machine), and compares LAMBDA with `none` seed by seed (`experiments.paired_comparison`,
95 % t-interval) within each decoder input. `--grad-shares 0.1,0.5,1` trains LAMBDA once per gradient share (the
adaptive λ's target ratio of alignment to denoising gradient norm on the encoders; 0.1 is the default) against the same
`none` pairs.

Usage, from the repository root:

    python tools/lambda_decoder_input.py [--preset quick] [--steps N] [--seeds 0,1,2] [--inputs embedding,latent]
                                         [--grad-shares 0.1] [--out-dir runs/lambda_decoder_input] [--out FILE]

  Each fit's scores are written to OUT_DIR/<preset>-<steps>steps-<decoder input>-<align>[-gs<share>]-seed<k>.json (atomic;
  the share is named when it is not 0.1) as soon as they exist and are read back on a re-run; the summary goes to
  nbs/experiments/measurements/lambda_decoder_input.json, or lambda_grad_share.json with other shares (--out).

Protocol (the `14_paired` notebook's Lorenz check): 1000 trajectories, windows of 64, split by trajectory
(`load_dataset('lorenz', n_trajectories=1000, seq_len=64)`), the `PairedDiffusion` preset's network and steps, MSE of
the mean of 8 DDIM samples (50 evaluations, seed 0) on the [-1, 1] scale of each modality's scaler, and the content
ratio of `lambda_latent_variance.py` (denoising MSE with Z replaced by its batch mean per position over the MSE with Z)
at steps 10, 50 and 90 % of the chain.
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path
import numpy as np

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--preset', default='quick')
    ap.add_argument('--steps', type=int, default=None, help="optimiser steps (default: the preset's)")
    ap.add_argument('--seeds', default='0,1,2')
    ap.add_argument('--inputs', default='embedding,latent')
    ap.add_argument('--grad-shares', default='0.1', help="LAMBDA's grad_share values, each trained against the same `none` pairs")
    ap.add_argument('--out-dir', default='runs/lambda_decoder_input')
    ap.add_argument('--out', default=None, help='summary file (default: measurements/lambda_decoder_input.json, or lambda_grad_share.json '
                                                  'when --grad-shares is not 0.1 alone)')
    a = ap.parse_args(argv)
    from tsbridge_lambda.paired import PairedDiffusion
    from tsbridge_lambda.data import load_dataset
    from tsbridge_lambda.experiments import paired_comparison, _jsonable
    from tsbridge_lambda.core import atomic_write
    sys.path.insert(0, str(Path(__file__).parent))
    from lambda_latent_variance import denoising_mse
    seeds, inputs, shares = [int(s) for s in a.seeds.split(',')], a.inputs.split(','), [float(g) for g in a.grad_shares.split(',')]
    if len(set(seeds)) != len(seeds) or len(set(shares)) != len(shares) or any(g <= 0 for g in shares):
        raise SystemExit(f'--seeds and --grad-shares must not repeat, and shares must be positive: got {a.seeds!r}, {a.grad_shares!r}')
    arms = [('none', None)] + [('lambda', g) for g in shares]
    if len(set(inputs)) != len(inputs): raise SystemExit(f'--inputs must not repeat: got {a.inputs!r}')
    a.out = a.out or f"nbs/experiments/measurements/{'lambda_decoder_input' if shares == [0.1] else 'lambda_grad_share'}.json"
    lq = load_dataset('lorenz', n_trajectories=1000, seq_len=64)
    tr, te = lq.train, lq.test
    out_dir = Path(a.out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    cells = {}
    for inp in inputs:
        for seed in seeds:
            for align, g in arms:
                gs = '' if g in (None, 0.1) else f'-gs{g:g}'
                f = out_dir / f"{a.preset}-{a.steps or 'default'}steps-{inp}-{align}{gs}-seed{seed}.json"   # a rerun reuses only the same settings
                if f.exists():                                   # cells of the first pilot were written before grad_share was recorded
                    cells[inp, align, g, seed] = {'grad_share': g, **json.loads(f.read_text())}; continue
                t0 = time.time()
                kw = {} if g is None else dict(grad_share=g)
                m = PairedDiffusion(align, preset=a.preset, seed=seed, steps=a.steps, decoder_input=inp, **kw).fit(tr.X, tr.Y, disable=True)
                fit_s = time.time() - t0
                yh = m.predict_y(te.X, n_samples=8, nfe=50, seed=0, disable=True).mean
                xh = m.predict_x(te.Y, n_samples=8, nfe=50, seed=0, disable=True).mean
                mse = lambda p, r, sc: float(np.mean((sc.transform(p) - sc.transform(r)) ** 2))
                n = m.config['n_steps']
                ratio = {f'{mod} step {i}': denoising_mse(m, D, C, mod, i, True) / denoising_mse(m, D, C, mod, i, False)
                         for mod, D, C in (('x', te.X, te.Y), ('y', te.Y, te.X)) for i in (n // 10, n // 2, 9 * n // 10)}
                h = m.fit_history().iloc[-100:].mean()
                r = dict(decoder_input=inp, align=align, grad_share=g, seed=seed, mse_x_given_y=mse(xh, te.X, m.x_scaler), mse_y_given_x=mse(yh, te.Y, m.y_scaler),
                         lambda_end=m.lambda_, content_ratio=ratio, var_x=float(h.get('var_x', np.nan)), var_y=float(h.get('var_y', np.nan)),
                         acc=float(h.get('acc', np.nan)), fit_seconds=round(fit_s, 1), seconds=round(time.time() - t0, 1),
                         load_average=os.getloadavg()[0], steps=m.config['steps'])
                with atomic_write(f, 'w') as h_: h_.write(json.dumps(_jsonable(r), indent=1))
                cells[inp, align, g, seed] = r
                print(f"{inp:9s} {align:6s}{gs:6s} seed {seed}: MSE X|Y {r['mse_x_given_y']:.5f}  Y|X {r['mse_y_given_x']:.5f}  "
                      f"fit {fit_s:.0f} s, load {r['load_average']:.2f}", flush=True)
    summary = dict(command='python tools/lambda_decoder_input.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
                   preset=a.preset, seeds=seeds, train_windows=len(tr.X), test_windows=len(te.X), cells=list(cells.values()), comparisons={})
    for inp in inputs:
        for g in shares:
            for key in ('mse_x_given_y', 'mse_y_given_x'):
                lam = [cells[inp, 'lambda', g, s][key] for s in seeds]
                none = [cells[inp, 'none', None, s][key] for s in seeds]
                c = paired_comparison(lam, none)
                name = f'{inp} {key}' if g == 0.1 else f'{inp} grad_share {g:g} {key}'   # the default share keeps the first pilot's names
                summary['comparisons'][name] = dict(grad_share=g, lambda_mean=float(np.mean(lam)), none_mean=float(np.mean(none)), **c)
                print(f"{name}: LAMBDA {np.mean(lam):.5f}  none {np.mean(none):.5f}  difference {c['mean']:+.5f} ± {c['half_width']:.5f}  {c['verdict']}")
    with atomic_write(a.out, 'w') as f: f.write(json.dumps(_jsonable(summary), indent=1))
    print(f'written {a.out}')

if __name__ == '__main__':
    main()
