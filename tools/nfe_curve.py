"""Quality against network evaluations (NFE) for TimeBridge's hybrid Heun sampler: which Karras time grid (rho), step
count and churn reach the 119-NFE sines Context-FID (within 10 %, 3 seeds) at 60 NFE or fewer (issue 20, item 4).

TimeBridge samples with `sample_heun` on `karras_times(40, rho=7)` and churn 0.33: 3 network evaluations per step
(one for the reverse-SDE part, two for the Heun step), 2 on the last step, so 3 * 40 - 1 = 119 NFE. With churn 0 the
sampler is the plain Heun ODE solver (2 n - 1 NFE). This script samples a trained model on a grid of
(steps n, churn, rho) settings, counts the evaluations it actually makes, scores every sample set with Context-FID
exactly as the paper-preset Table 1 run scored its samples, and draws the curve.

Usage, from the repository root (export TSBL_DATA_DIR=/work/shared/data):

    python tools/nfe_curve.py [--model PATH] [--out DIR] [--settings 40x0.33x7,20x0.33x7] [options]

  The full run (the default grid: steps 10 15 20 25 30 40 x churn 0 0.33 x rho 3 5 7, 36 settings; 3 sampling seeds;
  10000 windows each, as many as the real sines training windows; Context-FID with the paper preset's 5 repeats):
    nice -n 10 python tools/nfe_curve.py --out runs/nfe_curve --check 16 > runs/nfe_curve.log 2>&1
  A smoke test (16 windows, two settings, the tiny metric preset; its scores mean nothing):
    nice -n 19 python tools/nfe_curve.py --out /tmp/nfe_smoke --n 16 --settings 40x0.33x7,10x0x3 --metrics-preset tiny \\
        --threads 1 --check 16 --check-score
  Only the summary (JSON and PNG) from the results already in OUT:
    python tools/nfe_curve.py --out runs/nfe_curve --summary-only

  Settings are written STEPSxCHURNxRHO. --steps, --churns and --rhos span the grid; --settings picks a subset (or
  settings outside the grid). Re-running the same command continues where it stopped: each (setting, seed) result is
  written atomically to OUT/results/<setting>-seed<k>.json as soon as it is scored and skipped on a re-run; samples of
  a setting that were drawn but not yet scored wait in OUT/samples/ (deleted once scored, unless --keep-samples). OUT
  remembers its protocol (model file and its sha256, data, windows, batch size, metric settings) in OUT/protocol.json
  and refuses to continue under another one (use another OUT). Order: seed-major (every setting for seed 0, then seed
  1, ...), within a seed the 119-NFE reference first and then by increasing NFE, so a partial run already has a whole
  curve for the first seed.

What it does:
  1. Loads the model (TimeBridge.load; default: the paper-preset sines model of runs/paper_table1) and the real windows
     exactly as that run built them: tsbridge_lambda.experiments.train_windows('sines', settings('paper'), seed=0), a
     BenchmarkArray carrying metric_scale = SINES_BOUNDS, so that Context-FID maps both sets with the sines' fixed bounds.
  2. Samples each setting through the public call, model.sample(n, seed=seed, batch_size=--batch-size (default 512, as
     experiments.generate), steps=n, churn=churn, rho=rho): rho, the Karras grid's warping, is a TimeBridge sampler
     setting (default sample_rho = 7). --check K verifies, before anything else, that the counting wrapper changes
     nothing (its samples at 40x0.33x7 equal a plain model.sample(K, seed=..., batch_size=K//2) bit for bit) and that
     the counted NFE is 119; at 40x0.33x7, seed 0, 10000 windows and batch 512 the samples are also compared with the
     Table 1 run's cached ones (table1_samples_max_abs_diff in the result; equal only with the thread count of that run,
     2, since the per-core chunks follow the threads).
  3. Counts NFE by wrapping the denoiser: one call = one batched network evaluation, counted per sampled batch (all
     batches of a setting must agree; the result keeps the list).
  4. Scores Context-FID against the real windows with the path of experiments.score(X, {name: fake}, s, seed) under the
     chosen metric preset (default paper: all windows, TS2Vec for 600 iterations on 10000 windows, 5 repeats), with
     evaluation seed = sampling seed. experiments.score trains one TS2Vec encoder per repeat on the real windows only;
     those encoders are the same for every sample set of a seed, so this script fits them once per (seed, repeat) and
     reuses them (and the real windows' embeddings) for all settings: the same numbers at a fraction of the cost.
     --check-score compares that against a literal experiments.score call on the first result (values must be equal);
     --literal-score uses experiments.score for every result instead (slow: 5 encoder fits per result).
  5. Writes OUT/nfe_curve.json and OUT/nfe_curve.png: per setting the measured NFE, Context-FID mean over seeds (each
     seed's mean over its repeats) with the 95 % t-interval over seeds, the pooled interval over all repeats of all seeds
     (as Table 1 pools), and the ratio to the 119-NFE reference (40x0.33x7) paired by seed (same encoders) with its
     interval over seeds; `reaches` marks settings with NFE <= 60 and mean ratio <= 1.10. The PNG has one line per
     (churn, rho) against measured NFE, the reference as a line with its +-10 % band, and 60 NFE marked.

Caveats:
  * The 10 % criterion is below the metric's own noise: at the paper preset the 119-NFE sines Context-FID is 0.0073 with
    a repeat-to-repeat spread of about 15 % (Table 1 run: 0.0058 - 0.0088 over 5 encoders). The paired ratio (same
    encoders and evaluation seed for every setting of a seed) removes the encoder part of that noise; still read
    `reaches` together with the ratio's interval, and rerun a borderline setting with more seeds (--seeds).
  * "3 seeds" here are sampling (and evaluation) seeds of one trained model (training seed 0); variation over training
    seeds is not covered.
  * Only the Karras grid family (t_min 1e-4, t_max T - 1e-4, warping rho) and the hybrid Heun sampler are explored; other
    solvers (DPM-Solver-style multistep, an Euler last step, other t_min) are not. The curve shows where this family
    stops, not where every solver does.
  * NFE is per sampled window (all windows of a batch share each call); churn = 1 would be n NFE (pure SDE), not in the
    default grid.
  * Bit-exactness with model.sample holds for the same thread count and batch size (parallel_batches splits each batch
    per thread); across machines or thread counts only float tolerance.
  * Timings (ms per window per NFE, in each result) are only comparable within one run on one machine; this machine is
    shared and its speed varies up to 3x (issue 20).

CPU cost (rough; the machine was busy with a training job, load about 2 on 2 cores, when this was measured):
  * Smoke test here (nice 19, 1 thread): 16 windows in batches of 8 or 16 took 2.1 - 2.2 ms per window per NFE (wall;
    dominated by per-call overhead at such batches), 128 windows in one batch of 128 took 1.1 ms. Issue 20 measured
    45.9 ms per window at 119 NFE for batches of 512 on 2 threads, i.e. 0.39 ms per window per NFE: the figure to plan
    the full run with on this machine.
  * The default grid is 688 NFE per rho (churn 0.33: 29 44 59 74 89 119; churn 0: 19 29 39 49 59 79) x 3 rho = 2064 NFE
    per seed; 3 seeds x 10000 windows x 2064 NFE = 6.2e7 window-NFE: about 6.7 hours at 0.39 ms, up to about 19 hours
    at the 1.1 ms of one busy thread. The 119-NFE reference alone is 3 x 10000 x 119 = 3.6e6 window-NFE (about 25
    minutes at 0.39 ms); one seed of the whole grid (--seeds 0) is a third of the total.
  * Scoring with shared encoders: 3 seeds x 5 repeats TS2Vec fits on 10000 real windows (600 iterations; the Table 1
    run took 180 s for 5 repeats of Context-FID, fit and encoding included) plus 5 encodings of 10000 windows per
    result (108 results): under an hour in all. --literal-score would instead refit 5 encoders for each of the 108
    results (about 5 hours more).
"""
from __future__ import annotations
import argparse, datetime, hashlib, json, os, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / 'runs/paper_table1/cache/sines-TimeBridge-GP-seed0.model.pt'
DEFAULT_TABLE1_SAMPLES = ROOT / 'runs/paper_table1/cache/sines-TimeBridge-GP-seed0.samples.npy'
REFERENCE = (40, 0.33, 7.)            # TimeBridge's sampler: 40 steps, churn 0.33, Karras rho 7 (119 NFE)
TOLERANCE = 0.10                      # "Context-FID within 10 %"
MAX_NFE = 60

def log(*a):
    print(time.strftime('%H:%M:%S'), *a, flush=True)

# -- settings ------------------------------------------------------------------------------------------------------------
def setting_key(n, churn, rho) -> str: return f"{int(n)}x{float(churn):g}x{float(rho):g}"

def parse_setting(text:str) -> tuple:
    "'40x0.33x7' -> (40, 0.33, 7.0)."
    parts = text.strip().lower().split('x')
    if len(parts) != 3: raise SystemExit(f"A setting is STEPSxCHURNxRHO, e.g. 40x0.33x7; got {text!r}.")
    try: n, churn, rho = int(parts[0]), float(parts[1]), float(parts[2])
    except ValueError: raise SystemExit(f"A setting is STEPSxCHURNxRHO with a whole number of steps, e.g. 40x0.33x7; got {text!r}.")
    if n < 1 or not 0 <= churn <= 1 or rho <= 0: raise SystemExit(f"Need steps >= 1, churn in [0, 1] and rho > 0; got {text!r}.")
    return n, churn, rho

def expected_nfe(n, churn) -> int:
    "Evaluations of sample_heun on an n-step grid ending at 0: SDE part (churn > 0), Heun step (churn < 1), no correction on the last step."
    if churn == 1: return n
    return (3 * n - 1) if churn > 0 else (2 * n - 1)

def floats(text): return [float(v) for v in text.split(',') if v.strip()]
def ints(text): return [int(v) for v in text.split(',') if v.strip()]

# -- sampling: TimeBridge.sample(..., rho=) with a counted denoiser ------------------------------------------------------
def sample_setting(model, n:int, seed:int, steps:int, churn:float, rho:float, batch_size:int=512, progress=None):
    "(windows (n, L, C) in data units, NFE per batch, seconds): model.sample(n, seed, batch_size, steps=, churn=, rho=), calls counted."
    if model.config['task'] != 'unconditional': raise SystemExit(f"The model was trained for task={model.config['task']!r}; this curve needs an unconditional model.")
    calls, t0 = [], time.perf_counter()
    make_denoiser, sample_batch = model._denoiser, model._sample_scaled       # bound methods; wrapped on this instance only
    def denoiser(net):
        D = make_denoiser(net)
        def counted(*a, **kw):
            calls[-1] += 1                                                   # one call = one batched network evaluation
            return D(*a, **kw)
        return counted
    def batch(b, *a, **kw):
        calls.append(0)
        out = sample_batch(b, *a, **kw)
        if progress: progress(min(len(calls) * batch_size, n), n, time.perf_counter() - t0)
        return out
    model._denoiser, model._sample_scaled = denoiser, batch
    try: X = model.sample(n, seed=seed, batch_size=batch_size, disable=True, steps=steps, churn=churn, rho=rho)
    finally: del model._denoiser, model._sample_scaled                         # back to the class's methods
    return X, calls, time.perf_counter() - t0

def exactness_check(model, k:int, seed:int, out_dir:Path) -> dict:
    "The counted sampler at 40x0.33x7 against a plain model.sample on k windows in two batches."
    import numpy as np
    bs = max(1, k // 2)
    n, churn, rho = REFERENCE
    t0 = time.perf_counter()
    ref = model.sample(k, seed=seed, batch_size=bs, disable=True, steps=n, churn=churn)
    t_ref = time.perf_counter() - t0
    mine, nfe, t_mine = sample_setting(model, k, seed, n, churn, rho, bs)
    diff = float(np.abs(mine.astype(np.float64) - ref).max())
    rec = dict(windows=k, batch_size=bs, seed=seed, setting=setting_key(*REFERENCE), nfe_per_batch=nfe,
               nfe_expected=expected_nfe(n, churn), bit_exact=bool(np.array_equal(mine, ref)), max_abs_diff=diff,
               allclose=bool(np.allclose(mine, ref, rtol=1e-5, atol=1e-6)), seconds_model_sample=round(t_ref, 2),
               seconds_this_sampler=round(t_mine, 2), threads=_threads())
    write_json(out_dir / 'check.json', rec)
    log(f"check: {k} windows at {setting_key(*REFERENCE)}, seed {seed}, batches of {bs}: bit-exact {rec['bit_exact']}, "
        f"max |diff| {diff:.3g}, NFE per batch {nfe} (expected {rec['nfe_expected']}); model.sample {t_ref:.2f} s, this {t_mine:.2f} s")
    if not rec['allclose'] or any(v != rec['nfe_expected'] for v in nfe):
        raise SystemExit(f"The exactness check failed ({out_dir / 'check.json'}): the counting wrapper changed the samples "
                         "or the NFE is not 3 n - 1; compare sample_setting with TimeBridge.sample / _sample_scaled / _denoiser.")
    return rec

# -- scoring: experiments.score's Context-FID with the encoders of a seed shared by all sample sets ----------------------
class Scorer:
    "Context-FID values per repeat, as experiments.score(real, {name: fake}, s, metrics=('context_fid',), seed) gives them."
    def __init__(self, X, s:dict, literal:bool=False):
        self.X, self.s, self.literal, self.cache = X, s, literal, {}

    def _kwargs(self):
        "experiments.score's metric_kwargs for Context-FID."
        return {'n_iters': self.s['fid_iters']} if self.s['fid_iters'] else {}

    def _encoders(self, seed):
        "evaluate()'s per-repeat TS2Vec encoders for evaluation seed `seed` (fitted on the real windows only) and the real embeddings."
        if seed in self.cache: return self.cache[seed]
        from tsbridge_lambda.experiments import subsample
        from tsbridge_lambda.metrics import _pair, _maybe_scale, _scale_of, _fit_kwargs, repeat_seed, METRICS
        from tsbridge_lambda.ts2vec import TS2Vec
        from tsbridge_lambda.core import get_device
        self.cache.clear()                                                   # seed-major order: one seed's encoders at a time
        real = subsample(self.X, self.s['n_eval'], seed)                     # experiments.score
        scale = _scale_of(real, 'auto')                                      # evaluate: the windows' metric_scale
        real_raw = _pair(real, real[:1])[0]
        real_s = _maybe_scale(real_raw, real_raw[:1], scale)[0]
        device = get_device(self.s['device'])
        encs = []
        for r in range(self.s['repeats']):
            t0 = time.perf_counter()
            enc = TS2Vec(device=device).fit(real_s, seed=repeat_seed(seed, r, list(METRICS).index('context_fid')), disable=True,
                                            **_fit_kwargs(self._kwargs()))
            encs.append((enc, enc.encode(real_s)))
            log(f"  encoder {r + 1}/{self.s['repeats']} for evaluation seed {seed} fitted on {len(real_s)} real windows in {time.perf_counter() - t0:.1f} s")
        self.cache[seed] = dict(real=real, real_raw=real_raw, scale=scale, encoders=encs)
        return self.cache[seed]

    def shared(self, fake, seed) -> list:
        from tsbridge_lambda.experiments import subsample
        from tsbridge_lambda.metrics import _pair, _maybe_scale, embedding_fid
        e = self._encoders(seed)
        f = subsample(fake, self.s['n_eval'], seed + 1)                      # experiments.score
        fake_s = _maybe_scale(e['real_raw'], _pair(e['real'], f)[1], e['scale'])[1]
        return [float(embedding_fid(emb_real, enc.encode(fake_s))) for enc, emb_real in e['encoders']]   # = context_fid(..., encoder=enc)

    def literal_score(self, fake, seed) -> list:
        from tsbridge_lambda.experiments import score
        df = score(self.X, {'fake': fake}, self.s, metrics=('context_fid',), seed=seed)
        return [float(v) for v in df.loc[('fake', 'context_fid'), 'values']]

    def __call__(self, fake, seed) -> list:
        return self.literal_score(fake, seed) if self.literal else self.shared(fake, seed)

# -- files -----------------------------------------------------------------------------------------------------------------
def write_json(path:Path, obj):
    "Strict JSON (experiments._jsonable: NaN and inf as None, tuples as lists, numpy scalars as numbers), written atomically."
    from tsbridge_lambda.core import atomic_write
    from tsbridge_lambda.experiments import _jsonable
    with atomic_write(path, 'w') as f: json.dump(_jsonable(obj), f, indent=1)

def save_npy(path:Path, x):
    import numpy as np
    from tsbridge_lambda.core import atomic_write
    with atomic_write(path) as f: np.save(f, x, allow_pickle=False)

def sha256(path:Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''): h.update(block)
    return h.hexdigest()

def _threads():
    import torch
    return torch.get_num_threads()

def _load():
    return round(os.getloadavg()[0], 2) if hasattr(os, 'getloadavg') else None

# -- summary ---------------------------------------------------------------------------------------------------------------
def summarize(out:Path, protocol:dict) -> dict:
    import numpy as np
    from tsbridge_lambda.metrics import t_interval
    results = []
    for f in sorted((out / 'results').glob('*.json')):
        r = json.loads(f.read_text())
        if r.get('protocol') == protocol: results.append(r)
    by = {}
    for r in results: by.setdefault(r['setting'], {})[r['seed']] = r
    ref_key = setting_key(*REFERENCE)
    ref = by.get(ref_key, {})
    seed_mean = lambda r: float(np.mean(r['values']))
    rows = []
    for key, per_seed in by.items():
        seeds = sorted(per_seed)
        means = [seed_mean(per_seed[k]) for k in seeds]
        mean, hw = t_interval(means)
        pooled, pooled_hw = t_interval([v for k in seeds for v in per_seed[k]['values']])
        nfes = sorted({v for k in seeds for v in per_seed[k]['nfe_per_batch']})
        paired = [seed_mean(per_seed[k]) / seed_mean(ref[k]) for k in seeds if k in ref]
        ratio, ratio_hw = t_interval(paired) if paired else (float('nan'), float('nan'))
        r0 = per_seed[seeds[0]]
        row = dict(setting=key, steps=r0['steps'], churn=r0['churn'], rho=r0['rho'], nfe=nfes[0] if len(nfes) == 1 else nfes,
                   seeds=seeds, context_fid=mean, half_width_over_seeds=hw, seed_means=means, pooled_mean=pooled,
                   pooled_half_width=pooled_hw, ratio_to_reference=ratio, ratio_half_width=ratio_hw, ratio_seeds=len(paired),
                   ms_per_window_per_nfe=float(np.median([per_seed[k]['ms_per_window_per_nfe'] for k in seeds])))
        row['reaches'] = bool(isinstance(row['nfe'], int) and row['nfe'] <= MAX_NFE and paired and ratio <= 1 + TOLERANCE)
        rows.append(row)
    rows.sort(key=lambda r: (r['churn'], r['rho'], r['steps']))
    reference = next((r for r in rows if r['setting'] == ref_key), None)
    best = sorted((r for r in rows if r['reaches']), key=lambda r: (r['nfe'], r['ratio_to_reference']))
    summary = dict(purpose="Context-FID against measured NFE for the hybrid Heun sampler on Karras grids (issue 20, item 4)",
                   protocol=protocol, reference_setting=ref_key, reference=reference, tolerance=TOLERANCE, max_nfe=MAX_NFE,
                   reached=[r['setting'] for r in best], rows=rows,
                   written=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    write_json(out / 'nfe_curve.json', summary)
    plot(rows, reference, out / 'nfe_curve.png', protocol)
    log(f"{len(results)} results, {len(rows)} settings -> {out / 'nfe_curve.json'}, {out / 'nfe_curve.png'}")
    print(f"{'setting':>12} {'NFE':>5} {'seeds':>5} {'Context-FID':>22} {'ratio to 119-NFE':>20} {'ms/win/NFE':>10}  reaches")
    for r in sorted(rows, key=lambda r: (r['nfe'] if isinstance(r['nfe'], int) else max(r['nfe']), r['setting'])):
        print(f"{r['setting']:>12} {str(r['nfe']):>5} {len(r['seeds']):>5} {r['context_fid']:>11.5f} ± {r['half_width_over_seeds']:<8.5f} "
              f"{r['ratio_to_reference']:>9.3f} ± {r['ratio_half_width']:<8.3f} {r['ms_per_window_per_nfe']:>10.3f}  {'yes' if r['reaches'] else ''}")
    return summary

def plot(rows, reference, path:Path, protocol:dict):
    import numpy as np
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    lines = sorted({(r['churn'], r['rho']) for r in rows})
    for churn, rho in lines:
        rs = sorted((r for r in rows if (r['churn'], r['rho']) == (churn, rho) and isinstance(r['nfe'], int)), key=lambda r: r['nfe'])
        if not rs: continue
        x, y = [r['nfe'] for r in rs], [r['context_fid'] for r in rs]
        err = [0 if not np.isfinite(r['half_width_over_seeds']) else r['half_width_over_seeds'] for r in rs]
        ax.errorbar(x, y, yerr=err, marker='o' if churn > 0 else 's', ls='-' if churn > 0 else '--', capsize=3, ms=4,
                    label=f"churn {churn:g}, rho {rho:g}")
    if reference is not None:
        m = reference['context_fid']
        ax.axhline(m, color='k', lw=1, label=f"{reference['setting']} ({reference['nfe']} NFE)")
        ax.axhspan(m * (1 - TOLERANCE), m * (1 + TOLERANCE), color='k', alpha=0.1, label=f"±{TOLERANCE:.0%}")
    ax.axvline(MAX_NFE, color='tab:red', lw=1, ls=':', label=f"{MAX_NFE} NFE")
    ax.set_xlabel('network evaluations per window (measured)')
    ax.set_ylabel('Context-FID (mean over seeds, 95 % t-interval)')
    ax.set_yscale('log')
    ax.set_title(f"{protocol['dataset']}: {Path(protocol['model']).name}, {protocol['n_windows']} windows, "
                 f"{protocol['metrics_preset']} metrics ({protocol['repeats']} repeats)", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc='upper right')
    ax.grid(alpha=0.3, which='both')
    fig.tight_layout()
    from tsbridge_lambda.core import atomic_write
    with atomic_write(path) as f: fig.savefig(f, format='png')
    plt.close(fig)

# -- main ------------------------------------------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default=str(DEFAULT_MODEL), help='a TimeBridge model file (default: the paper-preset sines model of runs/paper_table1)')
    p.add_argument('--dataset', default='sines', help="the real windows: experiments.train_windows(DATASET, settings('paper'), seed=--data-seed)")
    p.add_argument('--data-seed', type=int, default=0, help='seed of the generated data (the model was trained on seed 0)')
    p.add_argument('--out', default=str(ROOT / 'runs/nfe_curve'), help='run folder (results, samples waiting to be scored, summary)')
    p.add_argument('--n', type=int, default=None, help='windows sampled per setting and seed (default: as many as the real windows, 10000 for sines)')
    p.add_argument('--seeds', default='0,1,2', help='sampling seeds (each also the evaluation seed of its scores)')
    p.add_argument('--steps', default='10,15,20,25,30,40', help='grid: sampler steps')
    p.add_argument('--churns', default='0,0.33', help='grid: churn values')
    p.add_argument('--rhos', default='3,5,7', help='grid: Karras warping rho')
    p.add_argument('--settings', default=None, help='run only these settings, STEPSxCHURNxRHO, comma-separated (e.g. 40x0.33x7,20x0.33x7)')
    p.add_argument('--batch-size', type=int, default=512, help='windows per sampler batch (512 as experiments.generate; it sets the random stream)')
    p.add_argument('--metrics-preset', default='paper', help='metric settings from experiments.PRESETS (paper as Table 1; tiny: smoke tests)')
    p.add_argument('--repeats', type=int, default=None, help="Context-FID repeats per seed (default: the preset's, paper 5)")
    p.add_argument('--fid-iters', type=int, default=None, help="TS2Vec iterations (default: the preset's; paper: 200 / 600 by size)")
    p.add_argument('--n-eval', type=int, default=None, help="real and generated windows scored (default: the preset's; paper: all)")
    p.add_argument('--device', default=None, help="where the model samples and TS2Vec trains (default: the metric preset's; paper: CUDA when present)")
    p.add_argument('--threads', type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument('--check', type=int, default=0, metavar='K', help='first check on K windows that 40x0.33x7 equals model.sample (0: skip)')
    p.add_argument('--check-score', action='store_true', help='on the first result also run experiments.score literally and require equal values')
    p.add_argument('--literal-score', action='store_true', help='score every result with experiments.score (fits its encoders each time: slow)')
    p.add_argument('--keep-samples', action='store_true', help='keep OUT/samples/<setting>-seed<k>.npy after scoring')
    p.add_argument('--table1-samples', default=str(DEFAULT_TABLE1_SAMPLES), help='cached Table 1 samples compared with 40x0.33x7 seed 0 when shapes agree')
    p.add_argument('--summary-only', action='store_true', help='write the JSON and PNG from the results in OUT, sample nothing')
    args = p.parse_args(argv)

    import numpy as np, torch
    from tsbridge_lambda.experiments import settings, train_windows, PRESETS, git_commit, _jsonable
    from tsbridge_lambda.timebridge import TimeBridge
    if args.threads: torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    if args.metrics_preset not in PRESETS: raise SystemExit(f"--metrics-preset must be one of {list(PRESETS)}, got {args.metrics_preset!r}.")
    s = settings(args.metrics_preset, repeats=args.repeats, fid_iters=args.fid_iters, n_eval=args.n_eval, device=args.device)
    torch.set_num_threads(threads)                                # a preset naming torch_threads (tiny, quick) sets them: put ours back
    out, model_path = Path(args.out), Path(args.model)
    if not model_path.is_file(): raise SystemExit(f"No model file at {model_path}; train it with the paper_table1 run or pass --model.")
    X = train_windows(args.dataset, settings('paper'), seed=args.data_seed)
    torch.set_num_threads(threads)
    n = args.n or len(X)
    seeds = ints(args.seeds)
    protocol = dict(model=str(model_path.resolve().relative_to(ROOT) if model_path.resolve().is_relative_to(ROOT) else model_path.resolve()),
                    model_sha256=sha256(model_path), dataset=args.dataset, data_seed=args.data_seed, n_real=len(X),
                    metric_scale=_jsonable(getattr(X, 'metric_scale', True)),
                    n_windows=n, batch_size=args.batch_size, metrics_preset=args.metrics_preset, repeats=s['repeats'],
                    fid_iters=s['fid_iters'], n_eval=s['n_eval'], metric='context_fid')
    pf = out / 'protocol.json'
    if pf.exists():
        old = json.loads(pf.read_text())
        if old != protocol:
            diff = {k: (old.get(k), protocol.get(k)) for k in set(old) | set(protocol) if old.get(k) != protocol.get(k)}
            raise SystemExit(f"{out} holds results of another protocol (was, now): {diff}; use another --out.")
    else: write_json(pf, protocol)
    if args.summary_only:
        summarize(out, protocol); return

    if args.settings: grid = [parse_setting(t) for t in args.settings.split(',') if t.strip()]
    else: grid = [(k, c, r) for k in ints(args.steps) for c in floats(args.churns) for r in floats(args.rhos)]
    grid = list(dict.fromkeys(grid))
    grid.sort(key=lambda g: (g != REFERENCE, expected_nfe(g[0], g[1]), g))
    jobs = [(g, seed) for seed in seeds for g in grid]
    model = TimeBridge.load(model_path, device=s['device'])
    log(f"model {protocol['model']} (sha256 {protocol['model_sha256'][:12]}), device {model.device}, {threads} threads; "
        f"real windows {X.shape}, metric_scale {protocol['metric_scale']}; {len(grid)} settings x {len(seeds)} seeds = {len(jobs)} results "
        f"of {n} windows; metrics {args.metrics_preset} (repeats {s['repeats']}, fid_iters {s['fid_iters']}, n_eval {s['n_eval']}); "
        f"total {sum(expected_nfe(g[0], g[1]) for g, _ in jobs) * n:.3g} window-NFE")
    if args.check: exactness_check(model, args.check, seeds[0], out)
    scorer = Scorer(X, s, literal=args.literal_score)
    check_score = args.check_score
    for j, ((steps, churn, rho), seed) in enumerate(jobs, 1):
        key = setting_key(steps, churn, rho)
        rf, sf = out / 'results' / f'{key}-seed{seed}.json', out / 'samples' / f'{key}-seed{seed}.npy'
        mf = sf.with_suffix('.json')
        if rf.exists():
            r = json.loads(rf.read_text())
            if r.get('protocol') == protocol:
                log(f"[{j}/{len(jobs)}] {key} seed {seed}: done ({np.mean(r['values']):.5f}, {r['nfe_per_batch'][0]} NFE), skipped"); continue
        if sf.exists() and mf.exists():
            fake, meta = np.load(sf, allow_pickle=False), json.loads(mf.read_text())
            log(f"[{j}/{len(jobs)}] {key} seed {seed}: samples from an earlier run ({sf}), scoring")
        else:
            log(f"[{j}/{len(jobs)}] {key} seed {seed}: sampling {n} windows, {expected_nfe(steps, churn)} NFE expected (load {_load()})")
            last = [0.]
            def progress(done, total, sec):
                if sec - last[0] >= 60 or done == total:
                    last[0] = sec
                    log(f"  {done}/{total} windows, {sec:.0f} s, about {sec / done * (total - done):.0f} s left")
            fake, nfe, sec = sample_setting(model, n, seed, steps, churn, rho, args.batch_size, progress)
            meta = dict(nfe_per_batch=nfe, sample_seconds=round(sec, 2), threads=threads, load_average=_load())
            if len(set(nfe)) != 1: raise SystemExit(f"{key}: batches made different numbers of evaluations {nfe}; the sampler is not a fixed-grid one.")
            if nfe[0] != expected_nfe(steps, churn): log(f"  note: measured {nfe[0]} NFE, the formula says {expected_nfe(steps, churn)}")
            save_npy(sf, fake); write_json(mf, meta)
        if not np.isfinite(fake).all(): raise SystemExit(f"{key} seed {seed}: samples hold NaN or inf.")
        extra = {}
        tf = Path(args.table1_samples)
        if (steps, churn, rho) == REFERENCE and seed == 0 and tf.is_file():
            t1 = np.load(tf, allow_pickle=False)
            if t1.shape == fake.shape and args.batch_size == 512:
                extra['table1_samples_max_abs_diff'] = float(np.abs(t1.astype(np.float64) - fake).max())
                log(f"  against the Table 1 run's cached samples: max |diff| {extra['table1_samples_max_abs_diff']:.3g} ({threads} threads here)")
        t0 = time.perf_counter()
        values = scorer(fake, seed)
        score_sec = time.perf_counter() - t0
        if check_score and not args.literal_score:
            t1_ = time.perf_counter()
            lit = scorer.literal_score(fake, seed)
            extra['literal_score_values'] = lit
            extra['literal_score_equal'] = bool(lit == values)
            extra['literal_score_max_rel_diff'] = float(max(abs(a - b) / abs(b) for a, b in zip(values, lit)))
            log(f"  check-score: shared encoders {values} vs experiments.score {lit}: equal {extra['literal_score_equal']} "
                f"({time.perf_counter() - t1_:.1f} s)")
            if extra['literal_score_max_rel_diff'] > 1e-6:
                raise SystemExit("The shared-encoder Context-FID differs from experiments.score; run with --literal-score.")
            check_score = False
        nfe_k = meta['nfe_per_batch'][0]
        rec = dict(setting=key, steps=steps, churn=churn, rho=rho, seed=seed, eval_seed=seed, n_windows=int(len(fake)),
                   nfe_per_batch=meta['nfe_per_batch'], nfe_expected=expected_nfe(steps, churn), values=values,
                   mean=float(np.mean(values)), sample_seconds=meta['sample_seconds'],
                   ms_per_window_per_nfe=1e3 * meta['sample_seconds'] / (len(fake) * nfe_k), score_seconds=round(score_sec, 2),
                   scorer='experiments.score' if args.literal_score else 'shared encoders', threads=meta['threads'],
                   load_average=meta['load_average'], protocol=protocol, commit=git_commit(),
                   finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'), **extra)
        write_json(rf, rec)
        if not args.keep_samples:
            sf.unlink(missing_ok=True); mf.unlink(missing_ok=True)
        log(f"  {key} seed {seed}: {nfe_k} NFE, Context-FID {rec['mean']:.5f} (repeats {['%.5f' % v for v in values]}); "
            f"sampled in {meta['sample_seconds']:.1f} s ({rec['ms_per_window_per_nfe']:.3f} ms per window per NFE), scored in {score_sec:.1f} s")
    summarize(out, protocol)

if __name__ == '__main__':
    main()
