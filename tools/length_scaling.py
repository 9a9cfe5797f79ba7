"""Cost of TimeBridge as series grow: training ms per optimiser step, sampling ms per window and peak memory at window
lengths L = 24, 64, 256, 1024, through the public API, with a check that nothing goes NaN (issue 20, item 6).

Diffusion-TS users report failures past L = 512. This script fits and samples `TimeBridge(prior='gp', preset='sines')`
on generated sines windows of each length L, exactly as a user calls it (`.fit(X, steps=...)`, `.sample(n, ...)`), keeps
everything but L fixed, and reports how each cost grows with L (the exponent between successive lengths: 1 is linear).

Usage, from the repository root (export TSBL_DATA_DIR=/work/shared/data; the sines windows are generated, no file is read):

    python tools/length_scaling.py [--out DIR] [--lengths 24,64,256,1024] [options]

  The full run (defaults: 3 untimed + 10 timed steps of batch 64, 64 windows sampled with the default 40-step sampler,
  2 torch threads, 1024 training windows per length):
    nice -n 10 python tools/length_scaling.py --out runs/length_scaling > runs/length_scaling.log 2>&1
  A smoke test (its timings mean little):
    nice -n 19 python tools/length_scaling.py --out /tmp/ls_smoke --lengths 24,64 --steps 2 --warmup-steps 1 --windows 4 \\
        --sample-steps 3 --threads 1
  Only the summary (JSON, PNG and the table) from the results already in OUT:
    python tools/length_scaling.py --out runs/length_scaling --summary-only

  Each length runs in its own child process (this script with --child L), one after the other, so that the peak
  resident memory (getrusage(RUSAGE_SELF).ru_maxrss in the child) belongs to that length alone, and so that a crash, an
  out-of-memory kill or a --timeout at one length is recorded (status 'error', 'killed', 'failed' or 'timeout' in its
  file) and the next length still runs. Results: OUT/length-<L>.json, written atomically as each length finishes. A
  re-run of the same command skips lengths whose file says status 'ok' and reruns the others (--keep-failed: skip those
  too). Each file carries the protocol (steps, batch, windows, threads, sampler, ...); a finished file of another protocol
  stops the run (use another OUT). At the end (or with --summary-only) OUT/length_scaling.json and OUT/length_scaling.png
  are rebuilt from the files and a table is printed.

What it does, per length L (in the child process):
  1. Builds the training windows with `load_dataset('sines', n_samples=--n-windows, seq_len=L, seed=0).train` (5
     channels; the sines benchmark's generator at length L).
  2. `TimeBridge(prior='gp', preset='sines', batch_size=--batch-size, accumulate=--accumulate, seed=0, threads=None)`:
     the sines preset's network (1 encoder and 2 decoder layers, d_model 64, 4 heads) unchanged for every L; only the
     training batch is changed from the preset's 2 x 128 to --batch-size x --accumulate (default 64 x 1) so that long
     windows fit in memory; threads=None keeps the --threads torch threads for the whole fit (the default, 'auto',
     follows the free cores and would change the thread count with the machine's load mid-measurement). device=None:
     CUDA when present, else CPU (--device to force one).
  3. `.fit(X, steps=--warmup-steps + --steps, disable=True, callback=...)`: the callback stamps the time after every
     optimiser step. ms_per_step is (end of the last step - end of the last warm-up step) / --steps; the per-step times
     are kept too. `setup_s` (fit start to the end of the first step, less one median step) is the scaler, the GP prior
     fit (its length-scale MLE and Cholesky factors), the network build and the trainer's start.
  4. An untimed 2-window, 2-step `.sample` (thread pool and allocator warm-up), then the timed
     `.sample(--windows, seed=0, batch_size=--sample-batch-size, steps=--sample-steps, disable=True)`; ms_per_window is
     its wall time / --windows, and ms_per_window_per_nfe divides by the sampler's network evaluations (3 steps - 1 with
     churn in (0, 1): 119 at the default 40 steps).
  5. Records: the number of network parameters, torch threads, load averages (os.getloadavg) before and after, peak RSS
     after the imports and the data (baseline), after fit and at the end (MB; ru_maxrss only grows, so the final value is
     the peak over fit and sampling), the CUDA device name and peak allocated CUDA memory for fit and for sampling when
     on CUDA, and finite checks: every training loss in `model.history_`, the EMA weights, the prior's Cholesky factors
     and every sample (`all_finite` is their conjunction).
  Summary: per length the three costs, the growth exponent between successive finished lengths
  (log(cost_b / cost_a) / log(L_b / L_a)) and a least-squares slope over all finished lengths; the PNG shows the three
  costs against L on log-log axes with slope-1 (linear) and slope-2 reference lines through the first point.

Caveats:
  * Not everything is linear in L by construction. The GP prior's Cholesky factorisation is O(L^3), done once at fit
    (its length-scale MLE factors an L x L matrix for each of 88 grid points and solves for every training window:
    O(88 (L^3 + N C L^2))), then each prior draw is an O(L^2) matrix-vector product per channel. The sines network has
    parts quadratic in L: self- and cross-attention over time (L x L scores per head; on CPU the explicit kernel is used
    only up to L ~ 100, PyTorch's scaled-dot-product attention above) and the decoder's linear map along time
    (`AlongTime`, an L x 2L weight per decoder layer, so the parameter count also grows as L^2). Small L is dominated by
    fixed per-call overhead, so the exponent at 24 -> 64 is typically well below 1; read the exponents at the large L.
  * Sampling 64 windows runs them as one batch: `parallel_batches` cuts a sampler batch into per-thread chunks only from
    2 x 64 windows up, so with the defaults the intra-op threads do the parallel work. ms per window falls with larger
    batches (issue 20: 45.9 ms per window at 512 windows, L = 24, 2 threads); compare lengths, not absolute figures.
  * Peak RSS includes the Python process, torch and the data (about 0.3-0.5 GB); `peak_above_baseline_mb` is the part
    the fit and sampling added. With --n-windows 1024 the training windows themselves are small (1024 x L x 5 floats).
  * Timings are only comparable within one run on one machine; this machine is shared and its speed varies by up to 3x
    (issue 20). Each result records the load average before and after; rerun a length whose load was high (delete its
    file). Quality of the samples is not measured (few training steps): only that they are finite.

CPU cost (rough; extrapolated from the smoke test above, run at nice 19 on 1 thread while a training job kept both cores
of this 2-core machine busy, load about 2 - 2.5, so about 10 GFLOP/s effective; an idle run on 2 threads is perhaps 2-3x faster):
  * Smoke test: 2 timed steps of 64 windows took 234 ms per step at L = 24 and 967 ms at L = 64 (the two steps there
    1385 and 548 ms: noise of the load); each child spends about 10 - 15 s on imports, data and the GP fit at these L.
  * Forward cost per window of the sines network is about 12 MFLOP at L = 24, 35 at 64, 250 at 256 and 1700 at 1024 (the
    quadratic attention and AlongTime terms dominate from L ~ 256), so with the defaults: training (13 steps of 64) about
    5 s, 10 s, 1 min and 7 min, sampling (64 windows x 119 NFE) about 10 s, 30 s, 3 min and 20 min, and the GP length-
    scale MLE about 1 min at L = 1024 (88 factorisations and solves of 5120 rows). The default full run: about 35 - 40
    minutes on this busy machine, most of it L = 1024. Memory at L = 1024 (batch 64) is an estimate only: 2 - 4 GB if
    PyTorch's CPU attention uses its flash kernel in backward, up to about 10 GB if it falls back to the math kernel
    (64 x 4 heads x 1024^2 scores per attention). Use --timeout to cap a length.
"""
from __future__ import annotations
import argparse, datetime, json, math, os, signal, subprocess, sys, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LENGTHS = '24,64,256,1024'

def log(*a):
    print(time.strftime('%H:%M:%S'), *a, flush=True)

def _load():
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, 'getloadavg') else None

def write_json(path:Path, obj):
    "Strict JSON (experiments._jsonable: NaN and inf as None, tuples as lists, numpy scalars as numbers), written atomically."
    from tsbridge_lambda.core import atomic_write
    from tsbridge_lambda.experiments import _jsonable
    with atomic_write(path, 'w') as f: json.dump(_jsonable(obj), f, indent=1)

def ints(text): return [int(v) for v in text.split(',') if v.strip()]

def _maxrss_mb(ru_maxrss:int) -> float:
    "ru_maxrss in MB (Linux reports kilobytes, macOS bytes)."
    return round(ru_maxrss / (2**20 if sys.platform == 'darwin' else 2**10), 1)

def _peak_rss_mb() -> float:
    import resource
    return _maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

def expected_nfe(n, churn) -> int:
    "Network evaluations per window of sample_heun on an n-step grid (see tools/nfe_curve.py)."
    if churn == 1: return n
    return (3 * n - 1) if churn > 0 else (2 * n - 1)

def protocol_of(args) -> dict:
    "What must agree for results of different lengths (and runs) to be compared."
    return dict(model='TimeBridge', prior='gp', preset='sines', dataset='sines', n_windows=args.n_windows, data_seed=0,
                warmup_steps=args.warmup_steps, steps=args.steps, batch_size=args.batch_size, accumulate=args.accumulate,
                windows=args.windows, sample_batch_size=args.sample_batch_size or args.windows, sample_steps=args.sample_steps,
                churn=args.churn, threads=args.threads, device=args.device)

def result_path(out:Path, L:int) -> Path: return out / f'length-{L}.json'

# -- the child: one length -------------------------------------------------------------------------------------------------
def measure(args, L:int) -> dict:
    "Fit and sample TimeBridge on sines windows of length L; return the record (raises on errors, see run_child)."
    rec = dict(length=L, status='running', phase='import', protocol=protocol_of(args), pid=os.getpid(),
               started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'), load_before=_load())
    measure.rec = rec                                              # what run_child writes if anything below raises
    import numpy as np, torch
    from tsbridge_lambda.data import load_dataset
    from tsbridge_lambda.timebridge import TimeBridge
    torch.set_num_threads(args.threads)
    rec.update(threads=torch.get_num_threads(), torch=torch.__version__, cuda_device=None)
    if torch.cuda.is_available(): rec['cuda_device'] = torch.cuda.get_device_name()

    rec['phase'] = 'data'
    X = np.asarray(load_dataset('sines', n_samples=args.n_windows, seq_len=L, seed=0).train, dtype=np.float32)
    if len(X) < args.batch_size * args.accumulate:
        raise ValueError(f"--n-windows {len(X)} is fewer than one step's windows ({args.batch_size} x {args.accumulate}).")
    rec.update(data_shape=list(X.shape), rss_baseline_mb=_peak_rss_mb())

    rec['phase'] = 'fit'
    model = TimeBridge(prior='gp', preset='sines', batch_size=args.batch_size, accumulate=args.accumulate, seed=0,
                       device=args.device, threads=None)
    rec['device'] = str(model.device)
    cuda = model.device.type == 'cuda'
    if cuda: torch.cuda.reset_peak_memory_stats()
    stamps, total = [], args.warmup_steps + args.steps
    def stamp(info): stamps.append(time.perf_counter())
    t0 = time.perf_counter()
    model.fit(X, steps=total, disable=True, callback=stamp)
    fit_s = time.perf_counter() - t0
    if len(stamps) != total: raise RuntimeError(f"fit ran {len(stamps)} steps, expected {total}.")
    step_ms = [1e3 * (b - a) for a, b in zip(stamps[:-1], stamps[1:])]      # step k+1's time, k = 1..total-1
    timed = step_ms[args.warmup_steps - 1:]                                  # the last --steps steps
    first_s = stamps[0] - t0
    hist = [float(v) for v in model.history_]
    ema_finite = all(bool(torch.isfinite(p).all()) for p in model.model_.parameters())
    chol = getattr(model.prior_, 'chol', None)
    rec.update(fit_seconds=round(fit_s, 3), ms_per_step=1e3 * (stamps[-1] - stamps[args.warmup_steps - 1]) / args.steps,
               step_ms=[round(v, 2) for v in timed], median_step_ms=float(np.median(timed)),
               first_step_seconds=round(first_s, 3), setup_seconds=round(first_s - float(np.median(timed)) / 1e3, 3),
               windows_per_step=args.batch_size * args.accumulate,
               n_params=int(sum(p.numel() for p in model.model_.parameters())),
               gp_length_scale=getattr(model.prior_, 'length_scale', None),
               losses_finite=bool(hist) and all(math.isfinite(v) for v in hist), loss_first=hist[0] if hist else None,
               loss_last=hist[-1] if hist else None, n_losses=len(hist), ema_weights_finite=ema_finite,
               prior_chol_finite=None if chol is None else bool(torch.isfinite(chol).all()),
               thread_log=getattr(getattr(model, 'trainer_', None), 'thread_log', []), threads_after_fit=torch.get_num_threads(),
               peak_rss_after_fit_mb=_peak_rss_mb())
    if cuda: rec['cuda_peak_fit_mb'] = round(torch.cuda.max_memory_allocated() / 2**20, 1); torch.cuda.reset_peak_memory_stats()
    log(f"  L={L}: fit {fit_s:.1f} s ({first_s:.1f} s to the end of step 1), {rec['ms_per_step']:.1f} ms per step of "
        f"{rec['windows_per_step']} windows, {rec['n_params']} parameters, losses finite {rec['losses_finite']}, "
        f"peak RSS {rec['peak_rss_after_fit_mb']:.0f} MB")

    rec['phase'] = 'sample'
    sbs = args.sample_batch_size or args.windows
    kw = dict(steps=args.sample_steps) | ({} if args.churn is None else dict(churn=args.churn))
    model.sample(2, seed=1, batch_size=2, disable=True, steps=2)             # untimed warm-up
    t0 = time.perf_counter()
    S = model.sample(args.windows, seed=0, batch_size=sbs, disable=True, **kw)
    sample_s = time.perf_counter() - t0
    churn = model.config['churn'] if args.churn is None else args.churn
    nfe = expected_nfe(args.sample_steps, churn)
    rec.update(sample_seconds=round(sample_s, 3), ms_per_window=1e3 * sample_s / args.windows, nfe=nfe, churn_used=churn,
               ms_per_window_per_nfe=1e3 * sample_s / (args.windows * nfe), samples_shape=list(S.shape),
               samples_finite=bool(np.isfinite(S).all()), samples_min=float(np.nanmin(S)) if np.isfinite(S).any() else None,
               samples_max=float(np.nanmax(S)) if np.isfinite(S).any() else None)
    if cuda: rec['cuda_peak_sample_mb'] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    rec['peak_rss_mb'] = _peak_rss_mb()
    rec['peak_above_baseline_mb'] = round(rec['peak_rss_mb'] - rec['rss_baseline_mb'], 1)
    rec['all_finite'] = bool(rec['losses_finite'] and ema_finite and rec['prior_chol_finite'] is not False and rec['samples_finite'])
    rec.update(status='ok', phase='done', load_after=_load(),
               finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    log(f"  L={L}: sampled {args.windows} windows in {sample_s:.2f} s ({rec['ms_per_window']:.1f} ms per window, {nfe} NFE), "
        f"samples finite {rec['samples_finite']}, peak RSS {rec['peak_rss_mb']:.0f} MB, load {rec['load_after']}")
    return rec

def run_child(args, L:int, out:Path) -> int:
    "Entry point of the child process: measure, write OUT/length-L.json (status 'ok', or 'error' with the traceback)."
    try:
        rec = measure(args, L)
    except BaseException as e:                                     # MemoryError, RuntimeError (CUDA OOM), KeyboardInterrupt, ...
        rec = dict(getattr(measure, 'rec', None) or dict(length=L, protocol=protocol_of(args)))
        rec.update(status='error', error=f"{type(e).__name__}: {e}"[:2000], traceback=traceback.format_exc()[-6000:],
                   load_after=_load(), finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
        try: rec['peak_rss_mb'] = _peak_rss_mb()
        except Exception: pass
        write_json(result_path(out, L), rec)
        log(f"  L={L}: {rec['error']} (in phase {rec.get('phase')})")
        return 1
    write_json(result_path(out, L), rec)
    return 0

# -- the parent: one child per length --------------------------------------------------------------------------------------
def child_command(args, L:int, out:Path) -> list:
    cmd = [sys.executable, str(Path(__file__).resolve()), '--child', str(L), '--out', str(out),
           '--n-windows', str(args.n_windows), '--warmup-steps', str(args.warmup_steps), '--steps', str(args.steps),
           '--batch-size', str(args.batch_size), '--accumulate', str(args.accumulate), '--windows', str(args.windows),
           '--sample-steps', str(args.sample_steps), '--threads', str(args.threads)]
    if args.sample_batch_size: cmd += ['--sample-batch-size', str(args.sample_batch_size)]
    if args.churn is not None: cmd += ['--churn', str(args.churn)]
    if args.device: cmd += ['--device', args.device]
    return cmd

def run_length(args, L:int, out:Path) -> dict:
    "Run one length in a child process; when it dies without writing its result, record how it died."
    path = result_path(out, L)
    old = json.loads(path.read_text()) if path.exists() else None
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    p = subprocess.Popen(child_command(args, L, out), cwd=ROOT, env=env)
    status, usage, timed_out = None, None, False
    while status is None:                                          # wait4: the child's own rusage (peak RSS even if killed)
        pid, st, ru = os.wait4(p.pid, 0 if not args.timeout else os.WNOHANG)
        if pid == p.pid: status, usage = st, ru; break
        if args.timeout and time.perf_counter() - t0 > args.timeout and not timed_out:
            log(f"  L={L}: over --timeout {args.timeout} s, killing the child (pid {p.pid})")
            p.kill(); timed_out = True
        time.sleep(0.5)
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc
    wall = time.perf_counter() - t0
    rec = json.loads(path.read_text()) if path.exists() else None
    if rec is None or rec == old or rec.get('status') not in ('ok', 'error'):       # the child wrote nothing new
        sig = -rc if rc < 0 else None
        rec = dict(length=L, protocol=protocol_of(args), status='timeout' if timed_out else ('killed' if sig else 'failed'),
                   returncode=rc, signal=signal.Signals(sig).name if sig else None,
                   error=('killed at --timeout' if timed_out else
                          f"child killed by {signal.Signals(sig).name}" + (' (SIGKILL: most likely the out-of-memory killer)' if sig == 9 else '')
                          if sig else f"child exited with {rc} without writing a result"),
                   load_after=_load(), finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
        log(f"  L={L}: {rec['error']}")
    rec.update(child_wall_seconds=round(wall, 2), child_maxrss_mb=_maxrss_mb(usage.ru_maxrss) if usage else None,
               child_cpu_seconds=round(usage.ru_utime + usage.ru_stime, 2) if usage else None, returncode=rc)
    write_json(path, rec)
    return rec

# -- summary ---------------------------------------------------------------------------------------------------------------
COSTS = (('ms_per_step', 'training, ms per optimiser step'), ('ms_per_window', 'sampling, ms per window'),
         ('peak_rss_mb', 'peak resident memory, MB'))

def _exponent(La, a, Lb, b):
    if not all(isinstance(v, (int, float)) and v > 0 for v in (a, b)) or La == Lb: return None
    return math.log(b / a) / math.log(Lb / La)

def _slope(Ls, ys):
    import numpy as np
    pts = [(L, y) for L, y in zip(Ls, ys) if isinstance(y, (int, float)) and y > 0]
    if len(pts) < 2: return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])

def summarize(out:Path) -> dict:
    recs = sorted((json.loads(f.read_text()) for f in out.glob('length-*.json')), key=lambda r: r['length'])
    if not recs: raise SystemExit(f"No results in {out} (length-<L>.json); run without --summary-only first.")
    protocols = {json.dumps(r.get('protocol'), sort_keys=True) for r in recs}
    if len(protocols) > 1: log(f"warning: {out} holds results of {len(protocols)} different protocols; the exponents compare unlike runs")
    ok = [r for r in recs if r.get('status') == 'ok']
    growth = {}
    for key, _ in COSTS + (('peak_above_baseline_mb', ''), ('ms_per_window_per_nfe', '')):
        steps = [dict(from_length=a['length'], to_length=b['length'], exponent=_exponent(a['length'], a.get(key), b['length'], b.get(key)))
                 for a, b in zip(ok[:-1], ok[1:])]
        growth[key] = dict(successive=steps, least_squares_slope=_slope([r['length'] for r in ok], [r.get(key) for r in ok]))
    rows = [{k: r.get(k) for k in ('length', 'status', 'error', 'device', 'cuda_device', 'threads', 'n_params', 'ms_per_step',
                                   'median_step_ms', 'setup_seconds', 'ms_per_window', 'ms_per_window_per_nfe', 'nfe',
                                   'peak_rss_mb', 'rss_baseline_mb', 'peak_above_baseline_mb', 'cuda_peak_fit_mb',
                                   'cuda_peak_sample_mb', 'all_finite', 'losses_finite', 'samples_finite', 'gp_length_scale',
                                   'load_before', 'load_after', 'child_wall_seconds')} for r in recs]
    summary = dict(purpose="TimeBridge cost against window length L through the public API (issue 20, item 6)",
                   protocol=json.loads(sorted(protocols)[0]) if len(protocols) == 1 else [json.loads(p) for p in sorted(protocols)],
                   rows=rows, growth=growth, lengths_ok=[r['length'] for r in ok],
                   lengths_failed=[r['length'] for r in recs if r.get('status') != 'ok'],
                   nonfinite_lengths=[r['length'] for r in ok if not r.get('all_finite')],
                   written=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'))
    write_json(out / 'length_scaling.json', summary)
    plot(ok, recs, out / 'length_scaling.png', summary['protocol'])
    log(f"{len(recs)} lengths ({len(ok)} ok) -> {out / 'length_scaling.json'}, {out / 'length_scaling.png'}")
    exps = {k: {s['to_length']: s['exponent'] for s in growth[k]['successive']} for k in growth}
    fmt = lambda v, spec: ('-' if v is None else format(v, spec))
    print(f"{'L':>6} {'status':>7} {'params':>9} {'ms/step':>9} {'exp':>5} {'ms/window':>10} {'exp':>5} {'peak MB':>8} {'exp':>5} "
          f"{'+MB':>7} {'exp':>5} {'finite':>6} {'load before/after':>18}")
    for r in recs:
        L = r['length']
        lb, la = (r.get('load_before') or [None])[0], (r.get('load_after') or [None])[0]
        print(f"{L:>6} {r.get('status', '?'):>7} {fmt(r.get('n_params'), 'd'):>9} {fmt(r.get('ms_per_step'), '.1f'):>9} "
              f"{fmt(exps['ms_per_step'].get(L), '.2f'):>5} {fmt(r.get('ms_per_window'), '.2f'):>10} {fmt(exps['ms_per_window'].get(L), '.2f'):>5} "
              f"{fmt(r.get('peak_rss_mb') or r.get('child_maxrss_mb'), '.0f'):>8} {fmt(exps['peak_rss_mb'].get(L), '.2f'):>5} "
              f"{fmt(r.get('peak_above_baseline_mb'), '.0f'):>7} {fmt(exps['peak_above_baseline_mb'].get(L), '.2f'):>5} "
              f"{fmt(r.get('all_finite'), ''):>6} {fmt(lb, '.2f'):>8} / {fmt(la, '.2f'):<7}")
        if r.get('status') != 'ok': print(f"{'':>6} {r.get('error', '')}"[:200])
    print("exp: growth exponent from the previous finished length (1 = linear); +MB: peak RSS above the baseline after imports and data; "
          "least-squares slopes over all finished lengths: " +
          ', '.join(f"{k} {fmt(growth[k]['least_squares_slope'], '.2f')}" for k in ('ms_per_step', 'ms_per_window', 'peak_rss_mb', 'peak_above_baseline_mb')))
    if summary['nonfinite_lengths']: print(f"NaN or inf at L = {summary['nonfinite_lengths']} (see all_finite and its parts in the length files)")
    return summary

def plot(ok, recs, path:Path, protocol):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from tsbridge_lambda.core import atomic_write
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), dpi=110)
    Ls = [r['length'] for r in ok]
    for ax, (key, label) in zip(axes, COSTS):
        pts = [(r['length'], r[key]) for r in ok if isinstance(r.get(key), (int, float)) and r[key] > 0]
        if pts:
            ax.plot(*zip(*pts), 'o-', label='measured')
            L0, y0 = pts[0]
            xs = [min(Ls), max(Ls)]
            ax.plot(xs, [y0 * (x / L0) for x in xs], 'k:', lw=1, label='slope 1 (linear)')
            ax.plot(xs, [y0 * (x / L0)**2 for x in xs], color='0.6', ls='--', lw=1, label='slope 2')
            if key == 'peak_rss_mb':
                extra = [(r['length'], r['peak_above_baseline_mb']) for r in ok if (r.get('peak_above_baseline_mb') or 0) > 0]
                if extra: ax.plot(*zip(*extra), 's-', color='tab:orange', ms=4, label='above baseline')
        for r in recs:
            if r.get('status') != 'ok': ax.axvline(r['length'], color='tab:red', lw=1, alpha=0.6)
        ax.set_xscale('log'); ax.set_yscale('log')
        ax.set_xlabel('window length L'); ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, which='both')
        if ax.get_legend_handles_labels()[0]: ax.legend(fontsize=7)
    p = protocol if isinstance(protocol, dict) else {}
    failed = [r['length'] for r in recs if r.get('status') != 'ok']
    fig.suptitle(f"TimeBridge (gp, sines network): {p.get('steps')} timed steps of {p.get('batch_size')} x {p.get('accumulate')} windows, "
                 f"{p.get('windows')} windows sampled at {p.get('sample_steps')} steps, {p.get('threads')} threads"
                 + (f"; failed at L = {failed} (red)" if failed else ''), fontsize=9)
    fig.tight_layout()
    with atomic_write(path) as f: fig.savefig(f, format='png')
    plt.close(fig)

# -- main ------------------------------------------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=str(ROOT / 'runs/length_scaling'), help='run folder (length-<L>.json, summary JSON and PNG)')
    p.add_argument('--lengths', default=DEFAULT_LENGTHS, help=f'window lengths L, comma-separated (default {DEFAULT_LENGTHS})')
    p.add_argument('--n-windows', type=int, default=1024, help='generated sines training windows per length (default 1024)')
    p.add_argument('--warmup-steps', type=int, default=3, help='untimed optimiser steps first (>= 1; default 3)')
    p.add_argument('--steps', type=int, default=10, help='timed optimiser steps (default 10)')
    p.add_argument('--batch-size', type=int, default=64, help='windows per micro-batch (default 64; the sines preset trains 2 x 128)')
    p.add_argument('--accumulate', type=int, default=1, help='micro-batches per optimiser step (default 1)')
    p.add_argument('--windows', type=int, default=64, help='windows sampled (timed) per length (default 64)')
    p.add_argument('--sample-batch-size', type=int, default=None, help='windows per sampler batch (default: --windows, one batch)')
    p.add_argument('--sample-steps', type=int, default=40, help="sampler steps (default 40: TimeBridge's sampler, 119 NFE)")
    p.add_argument('--churn', type=float, default=None, help="sampler churn (default: the model's, 0.33)")
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads in each child (default 2)')
    p.add_argument('--device', default=None, help="'cpu' or 'cuda' (default: CUDA when present, else CPU)")
    p.add_argument('--timeout', type=float, default=None, help='seconds after which a length is killed and recorded as timeout')
    p.add_argument('--keep-failed', action='store_true', help='on a re-run, skip lengths that failed before instead of retrying them')
    p.add_argument('--summary-only', action='store_true', help='rebuild the summary JSON, PNG and table from the files in OUT')
    p.add_argument('--child', type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.child is not None: return run_child(args, args.child, out)
    if args.summary_only: summarize(out); return 0
    if args.warmup_steps < 1 or args.steps < 1: raise SystemExit('--warmup-steps and --steps must be at least 1 (the first step includes the setup).')
    if min(args.windows, args.batch_size, args.accumulate, args.sample_steps, args.threads, args.n_windows) < 1:
        raise SystemExit('--windows, --batch-size, --accumulate, --sample-steps, --threads and --n-windows must be positive.')
    if args.n_windows < args.batch_size * args.accumulate:
        raise SystemExit(f"--n-windows {args.n_windows} is fewer than one optimiser step's windows ({args.batch_size} x {args.accumulate}).")
    lengths = list(dict.fromkeys(ints(args.lengths)))
    if not lengths or min(lengths) < 3: raise SystemExit(f"--lengths must be window lengths >= 3, got {args.lengths!r}.")
    protocol = protocol_of(args)
    out.mkdir(parents=True, exist_ok=True)
    for L in lengths:                                              # refuse before running anything
        f = result_path(out, L)
        if f.exists():
            old = json.loads(f.read_text())
            if old.get('status') == 'ok' and old.get('protocol') != protocol:
                diff = {k: (old['protocol'].get(k), protocol.get(k)) for k in protocol if old['protocol'].get(k) != protocol.get(k)}
                raise SystemExit(f"{f} holds a result of another protocol (was, now): {diff}; use another --out.")
    log(f"lengths {lengths} -> {out}; {args.warmup_steps} + {args.steps} steps of {args.batch_size} x {args.accumulate} windows, "
        f"{args.windows} windows sampled at {args.sample_steps} steps, {args.threads} threads, {args.n_windows} training windows; load {_load()}")
    for i, L in enumerate(lengths, 1):
        f = result_path(out, L)
        if f.exists():
            old = json.loads(f.read_text())
            if old.get('status') == 'ok' or (args.keep_failed and old.get('protocol') == protocol):
                log(f"[{i}/{len(lengths)}] L={L}: {old.get('status')} in an earlier run, skipped"); continue
            log(f"[{i}/{len(lengths)}] L={L}: {old.get('status')} in an earlier run ({old.get('error')}), retrying")
        log(f"[{i}/{len(lengths)}] L={L}: starting (load {_load()})")
        rec = run_length(args, L, out)
        log(f"[{i}/{len(lengths)}] L={L}: {rec['status']} in {rec['child_wall_seconds']:.1f} s, child peak RSS {rec['child_maxrss_mb']} MB")
    summarize(out)
    return 0

if __name__ == '__main__':
    sys.exit(main())
