"""Train the published TimeBridge code on one Table 1 dataset on this machine, sample from it, and score the samples
with this project's metrics, so that its numbers sit directly beside our own Table 1 row (issue 16).

Why: at the paper preset our TimeBridge-GP scores a discriminative 0.080 on stocks where the paper reports 0.049. If the
published model, trained here on the same windows and scored by the same metric code, also lands near 0.080, the gap is
this machine, the seed or the metric protocol; if it lands near 0.049, the gap is in our model or trainer.

Usage, from the repository root, with TSBL_DATA_DIR pointing at the data (e.g. export TSBL_DATA_DIR=/work/shared/data):

    python tools/published_generation_run.py CHECKOUT DATASET OUT [--steps N] [--threads 2] [--stub-unused] [options]

    CHECKOUT  the top folder of a copy of the published code (https://github.com/JinseongP/TimeBridge), the one that
              holds main.py; its files are imported from there, never copied into this repository
    DATASET   stocks, sines, etth or mujoco (energy and fmri also run where both sides have them; not tried)
    OUT       the run folder; re-running the same command continues where the last run stopped. OUT remembers the
              settings it was started with (OUT/settings.json); a re-run with other ones stops and names them.

  The full stocks run (the config's 10000 optimiser steps of 2 x 64 windows, 3662 windows sampled, paper metrics; rough
  wall time: 10000 steps at 0.25 s (idle machine, 2 threads) to 1.5 s (busy machine) each, minutes of sampling, about 7
  minutes of scoring; run it alone, see issue 16 on parallel jobs):
    nice -n 19 python tools/published_generation_run.py /tmp/tbpub stocks runs/published_stocks --threads 2 --stub-unused \\
        > runs/published_stocks.log 2>&1
  A smoke test (seconds of training, 16 windows, the tiny metric preset; its scores mean nothing):
    nice -n 19 python tools/published_generation_run.py /tmp/tbpub stocks /tmp/pub_smoke --steps 5 --save-cycle 2 \\
        --max-windows 16 --metrics-preset tiny --threads 1 --stub-unused

  --stub-unused puts empty stand-ins in place of gpytorch, torchaudio, statsmodels and numba, which the published code
  imports but this path (unconditional generation, GP prior, no image transform) never calls; any call raises. The other
  packages it needs (torch, numpy, pyyaml, einops, scipy, scikit-learn, tqdm, ema-pytorch) must be installed; a missing
  one stops the script with the pip command to run. Its requirements.txt pins ema-pytorch==0.2.1; another version only
  gets a warning.

What it does, in order (every stage is skipped when its output is already in OUT):
  1. Checks the checkout (tsbridge_lambda.bench.check_published_checkout / check_published_packages, the helpers of
     `tsbl bench --compare`) and reads the dataset's best hyperparameters (beta_min, beta_d, sigma_data, GP variance) from
     the checkout's own run/01_Unconditional_Generation.ipynb, the notebook the authors give for Table 1.
  2. Loads the real training windows exactly as our Table 1 rows do (tsbridge_lambda.experiments.train_windows with the
     paper preset: for stocks all 3662 windows of stock_data.csv, L = 24), maps them to [-1, 1] as the published data
     pipeline does (per-channel min-max; sines: the fixed bounds [-1, 1], i.e. the raw sine values, as their
     (sin + 1) / 2 followed by their neg_one_to_one gives) and feeds them to the published Trainer through a plain
     DataLoader (batch size and shuffling from the config). For CSV datasets (stocks, etth) it also builds the published
     CustomDataset from the same CSV file and checks that both sides hold the same windows (same raw windows, same count,
     same min-max scaler, same multiset of training windows): "data_check" in results.json. Sines are our generated
     windows (load_sines, seed 0: the ones our row trained on), not the published SineDataset's own random draws.
  3. Builds the published model (Models.bridge_diffusion.bridge_karras_diffusion.Diffusion_TS) from the checkout's
     Config/<name>.yaml with the settings main.py applies for unconditional generation (vp, sde sampler, GP prior with
     the rbf kernel, sigma_min 1e-4, sigma_max 1, D_matching, no image transform, lr 1e-5, seed 12345) and its Trainer
     on the CPU (main.py calls .cuda(), so main.py itself is not run), then trains --steps optimiser steps (default: the
     config's max_epochs; each step accumulates gradient_accumulate_every micro-batches, as their Trainer does).
     Progress (loss, learning rate, seconds per step, time left, load average) is printed every --log-every steps.
  4. Checkpoints every save_cycle steps (the config's, or --save-cycle) and at the end, atomically, into
     OUT/checkpoints_published/checkpoint-<milestone>.pt (milestone = steps done / save_cycle, rounded up; the last
     one of a full run is checkpoint-10.pt, the name main.py --milestone 10 loads): the published Trainer's own keys (step, model, ema, opt, prior;
     their Trainer.load reads it) plus the scheduler state, the random states and the seconds spent. A re-run loads the
     newest milestone with their Trainer.load and continues; a finished training is not repeated.
  5. Samples as many windows as there are real training windows (or --max-windows) with the EMA model's generate_mts,
     in chunks of 2001 as main.py does, each chunk seeded and kept in OUT/sample_parts until all are done; maps them back
     with their unnormalize_to_zero_to_one and the real windows' min-max to the data's original units and saves
     OUT/samples.npy (N, L, C), the same units as our runs' cache/<dataset>-TimeBridge-GP-seed0.samples.npy.
  6. Scores them against the real training windows with tsbridge_lambda.experiments.score, i.e.
     tsbridge_lambda.metrics.evaluate with the settings our Table 1 rows use (paper preset: 5 repeats, Context-FID with
     TS2Vec's default iterations, discriminative 2000 and predictive 5000 GRU iterations, all windows, evaluation seed
     0, each dataset's metric scale: [0, 1] by the real windows' min-max, sines by the fixed bounds), and writes
     OUT/results.json: scores (mean, 95% t half width, every repeat), the paper's figures and our row's (read from
     --ours when that file exists) beside them, the settings, the data check, seconds per stage, os.getloadavg() at each
     stage and the machine. --metrics-preset tiny (or quick) swaps in a cheap metric preset for smoke tests only.

What it measures: the published model and training procedure, trained on this machine's CPU on the same real windows as
our row, scored by the same metric code with the same settings. The only differences from our row are the model/trainer
implementation (theirs vs ours) and the random seeds.

Caveats:
  - One training seed. Our row is one seed too; a difference between the two of the order of the metric's half width
    proves nothing. Run a second OUT with --seed to see the spread between trainings.
  - A resumed training is not bit-identical to an uninterrupted one: the data loader starts a fresh shuffled epoch at
    the restart (the random states are restored, the position in the epoch is not). Statistically it is the same run.
  - The published sampler draws its noise from torch's global generator; chunks are seeded (--seed + 1 + chunk index),
    so a resumed sampling gives the same windows as an uninterrupted one on the same machine and torch version.
  - Runs on the CPU with this environment's torch (the checkout pins torch 2.0.1 for GPUs); numbers can differ in the
    last digits from a GPU run, not in kind.
  - Timings are wall-clock on a shared 2-core machine: read them with the load averages recorded beside them.
  - The published main.py samples (N // 2001 + 1) x 2001 windows and scores the first N; this script samples exactly N,
    in the same chunk size, which is the same distribution.
"""
import argparse, hashlib, io, json, math, os, random, re, sys, tempfile, time, types
from pathlib import Path

FORMAT = 'tsbridge_lambda.published-generation-run/1'
THEIR_NAME = {'stocks': 'stock'}   # our dataset name -> theirs (the notebook's DATA, main.py --data, Config/<name>.yaml)
NOTEBOOK = 'run/01_Unconditional_Generation.ipynb'   # where the published Table 1 settings (best_hyperparams) live
MAIN_DEFAULTS = dict(lr=1e-5, img_transform_type='delay', delay_embed_dim=32, delay_time_delay=1, stft_n_fft=256,
                     stft_hop_length=64)   # main.py's argparse defaults that the notebook does not override
METHOD = 'TimeBridge-GP'   # the Table 1 row the published run stands beside
CKPT = re.compile(r'checkpoint-(\d+)\.pt')


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog='python tools/published_generation_run.py', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='What it measures, how it resumes and its caveats: the docstring at the top of this file.')
    p.add_argument('checkout', help='top folder of a copy of the published TimeBridge code (the one holding main.py)')
    p.add_argument('dataset', help='stocks, sines, etth or mujoco (also energy, fmri: untried)')
    p.add_argument('out', help='run folder (created; re-running the same command continues)')
    p.add_argument('--steps', type=int, default=None, help="optimiser steps (default: the config's max_epochs)")
    p.add_argument('--save-cycle', type=int, default=None, help="optimiser steps between checkpoints (default: the config's save_cycle)")
    p.add_argument('--max-windows', type=int, default=None, help='sample at most this many windows (default: as many as real training windows)')
    p.add_argument('--sample-chunk', type=int, default=None, help="windows per sampler call (default: 2001, main.py's size_every)")
    p.add_argument('--metrics-preset', default='paper', help="metric settings from tsbridge_lambda.experiments.PRESETS (default: paper, as our rows; tiny: smoke tests)")
    p.add_argument('--threads', type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument('--stub-unused', action='store_true', help='stand in for gpytorch, torchaudio, statsmodels, numba if absent (imported, never called here)')
    p.add_argument('--seed', type=int, default=12345, help="training seed (default: main.py's 12345); chunk k of the sampler uses seed + 1 + k")
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'], help='where the published model runs (default: cpu; cuda is untested)')
    p.add_argument('--log-every', type=int, default=100, help='print progress every this many optimiser steps (default: 100)')
    p.add_argument('--ours', default='runs/paper_table1/results.json', help="our Table 1 run's results.json, shown beside (skipped when absent)")
    a = p.parse_args(argv)
    for name in ('steps', 'save_cycle', 'max_windows', 'sample_chunk', 'threads', 'log_every'):
        v = getattr(a, name)
        if v is not None and v < 1: p.error(f"--{name.replace('_', '-')} must be a positive whole number, got {v}.")
    return a


def log(*msg):
    print(time.strftime('%H:%M:%S'), *msg, flush=True)


def load1():
    try: return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError): return None


def read_json(path):
    try:
        with open(path) as f: return json.load(f)
    except FileNotFoundError: return None


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def notebook_hyperparams(root: Path, name: str) -> dict:
    "The dataset's (beta_min, beta_d, sigma_data, var) from the checkout's Table 1 notebook, as its loop passes them to main.py."
    nb = root / NOTEBOOK
    if not nb.is_file():
        raise FileNotFoundError(f"{root} has no {NOTEBOOK}, where the published code keeps the best hyperparameters of each dataset; "
                                "pass the top folder of a complete copy of https://github.com/JinseongP/TimeBridge.")
    src = ''.join(''.join(c.get('source', '')) for c in json.loads(nb.read_text()).get('cells', []))
    found = dict(re.findall(r"best_hyperparams\[['\"](\w+)['\"]\]\s*=\s*\(([^)]*)\)", src))
    if name not in found:
        raise ValueError(f"{nb} gives best hyperparameters for {sorted(found) or 'no dataset'}, not {name!r}.")
    vals = [float(v) for v in found[name].split(',') if v.strip()]
    if len(vals) != 4: raise ValueError(f"{nb}: best_hyperparams[{name!r}] is ({found[name]}), expected (BETA_MIN, BETA_MAX, SIGMA_DATA, VAR).")
    return dict(zip(('beta_min', 'beta_d', 'sigma_data', 'var'), vals))


def check_ema_pytorch(root: Path) -> dict:
    "The installed ema-pytorch against the checkout's pin: a clear error when missing, a warning when another version."
    from importlib import metadata
    pin = None
    req = root / 'requirements.txt'
    if req.is_file():
        m = re.search(r'^ema[-_]pytorch\s*==\s*([\w.]+)', req.read_text(), re.M | re.I)
        pin = m.group(1) if m else None
    try: have = metadata.version('ema-pytorch')
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"The published Trainer needs ema-pytorch, which {sys.executable} lacks: "
                           f"{sys.executable} -m pip install 'ema-pytorch{'==' + pin if pin else ''}' (the checkout's requirements.txt pin).") from None
    if pin and have != pin:
        log(f"warning: ema-pytorch {have} is installed; the checkout pins {pin} (its EMA and state_dict may differ).")
    return {'installed': have, 'pinned': pin}


def check_windows(config, real, lo, hi, dataset, tmp) -> dict:
    "Build the published CustomDataset from the same CSV and compare its windows with ours (informational; never stops the run)."
    from Utils.io_utils import instantiate_from_config
    from tsbridge_lambda.data import data_file, load_dataset
    import numpy as np
    tgt = config['dataloader']['train_dataset']
    source = load_dataset(dataset).info.get('source') if tgt['target'].endswith('CustomDataset') else None
    if source is None:
        return {'checked': False, 'why': f"the published loader is {tgt['target']}, which makes its own windows: nothing to compare; "
                                         "ours are the windows our row trained on (for sines: load_sines, seed 0)"}
    if not str(source).endswith('.csv'):
        return {'checked': False, 'why': f"ours reads {source}, not a CSV file the published CustomDataset could read"}
    params = dict(tgt['params'], data_root=io.BytesIO(data_file(source)), save2npy=False, output_dir=tmp, proportion=1.0, period='train')
    theirs = instantiate_from_config({'target': tgt['target'], 'params': params})
    L = real.shape[1]
    raw = np.lib.stride_tricks.sliding_window_view(theirs.rawdata, L, axis=0).transpose(0, 2, 1)
    rng = hi - lo
    out = {'checked': True, 'file': source, 'their_windows': int(len(theirs.samples)), 'our_windows': int(len(real)),
           'their_raw_windows': int(len(raw))}
    if raw.shape != real.shape or len(theirs.samples) != len(real):
        out.update(same=False, why=f"shapes differ: theirs {raw.shape} ({len(theirs.samples)} training windows), ours {real.shape}")
        return out
    ours11 = 2 * (np.asarray(real, np.float64) - lo) / rng - 1
    out['max_raw_diff_rel'] = float((np.abs(raw - real) / rng).max())                       # window i of theirs against window i of ours
    out['max_scaler_diff_rel'] = float(max((np.abs(theirs.scaler.data_min_ - lo) / rng).max(), (np.abs(theirs.scaler.data_max_ - hi) / rng).max()))
    # their training windows are a permutation of the raw windows: compare the multisets through sorted per-window means
    out['max_sorted_mean_diff'] = float(np.abs(np.sort(theirs.samples.mean(1), 0) - np.sort(ours11.mean(1), 0)).max())
    out['same'] = all(out[k] < 1e-5 for k in ('max_raw_diff_rel', 'max_scaler_diff_rel', 'max_sorted_mean_diff'))
    return out


def main(argv=None):
    args = parse_args(argv)
    if args.threads: os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = str(args.threads)
    if args.device == 'cpu': os.environ['CUDA_VISIBLE_DEVICES'] = ''   # their generate_mts picks CUDA whenever it sees one
    os.environ.setdefault('TQDM_DISABLE', '1')   # their Trainer's bar; this script prints its own progress lines
    sys.dont_write_bytecode = True               # no __pycache__ folders in the checkout
    t_start = time.perf_counter()

    from tsbridge_lambda.bench import check_published_checkout, check_published_packages, _stand_in, PUBLISHED_SETTINGS, PUBLISHED_FILES, machine_info
    from tsbridge_lambda.core import atomic_write
    from tsbridge_lambda.experiments import settings, train_windows, score, PRESETS, PUBLISHED
    import numpy as np, torch
    if args.threads: torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available(): raise SystemExit("--device cuda, but torch sees no CUDA device.")
    if args.metrics_preset not in PRESETS: raise SystemExit(f"--metrics-preset must be one of {list(PRESETS)}, got {args.metrics_preset!r}.")

    ds = args.dataset.lower()
    try:
        root = check_published_checkout(args.checkout, ds)
        their = THEIR_NAME.get(ds, ds)
        cfg_path = root / 'Config' / f'{their}.yaml'
        if not cfg_path.is_file(): cfg_path = root / 'Config' / f'{ds}.yaml'
        hyper = notebook_hyperparams(root, their)
        ema_version = check_ema_pytorch(root)
        stand_ins = check_published_packages(None, args.stub_unused)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}")
    for name in stand_ins: _stand_in(name)
    if stand_ins: log(f"stood in for (imported by the published code, never called here): {', '.join(stand_ins)}")
    sys.path.insert(0, str(root))
    from Utils.io_utils import load_yaml_config, instantiate_from_config, seed_everything
    from engine.solver import Trainer
    from Models.bridge_diffusion.model_utils import unnormalize_to_zero_to_one

    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    def put_json(path, obj):
        with atomic_write(path, 'w') as f: json.dump(obj, f, indent=1, default=str)
    loads = {'start': load1()}

    # --- the real windows, as our Table 1 rows train on and score against -------------------------------------------------
    real = train_windows(ds, settings('paper'), seed=0)
    N, L, C = real.shape
    scale = getattr(real, 'metric_scale', True)
    if scale is True: lo, hi = real.min(axis=(0, 1)).astype(np.float64), real.max(axis=(0, 1)).astype(np.float64)
    else: lo, hi = (np.broadcast_to(np.asarray(b, np.float64), (C,)).copy() for b in scale)
    x11 = (2 * (np.asarray(real, np.float64) - lo) / (hi - lo) - 1).astype(np.float32)   # the published data pipeline's [-1, 1]
    log(f"{ds}: {N} real training windows of L = {L}, C = {C}; metric scale {'min-max of the real windows' if scale is True else scale}")

    # --- the published config, with what main.py and the Table 1 notebook set ------------------------------------------------
    config = load_yaml_config(cfg_path)
    mp, solver = config['model']['params'], config['solver']
    if (mp.get('seq_length'), mp.get('feature_size')) != (L, C):
        raise SystemExit(f"error: {cfg_path} is for windows of L = {mp.get('seq_length')}, C = {mp.get('feature_size')}; our {ds} windows are L = {L}, C = {C}.")
    config['model']['target'] = 'Models.bridge_diffusion.bridge_karras_diffusion.Diffusion_TS'
    prior = dict(PUBLISHED_SETTINGS['prior'], var=hyper['var'])
    mp.update(PUBLISHED_SETTINGS['model'], beta_min=hyper['beta_min'], beta_d=hyper['beta_d'], sigma_data=hyper['sigma_data'],
              var=hyper['var'], bw=prior['bw'], **{k: v for k, v in MAIN_DEFAULTS.items() if k != 'lr'})
    lr, sp = MAIN_DEFAULTS['lr'], solver['scheduler']['params']
    ratio = lr / solver['base_lr']                                  # main.py: --lr replaces base_lr and rescales min_lr, warmup_lr
    solver.update(base_lr=lr); sp.update(min_lr=sp['min_lr'] * ratio, warmup_lr=sp['warmup_lr'] * ratio)
    steps, cycle = args.steps or solver['max_epochs'], args.save_cycle or solver['save_cycle']
    solver.update(max_epochs=steps, save_cycle=cycle, results_folder=str(out / 'checkpoints'))
    batch, accumulate = config['dataloader']['batch_size'], solver['gradient_accumulate_every']
    n = N if args.max_windows is None else min(N, args.max_windows)
    chunk = args.sample_chunk or PUBLISHED_SETTINGS['sample_chunk']
    config_shown = json.loads(json.dumps(config, default=str))

    fingerprint = dict(dataset=ds, their_name=their, config_file=cfg_path.name, config_sha1=sha1(cfg_path.read_bytes()),
                       checkout_sha1={f: sha1((root / f).read_bytes()) for f in PUBLISHED_FILES}, hyperparams=hyper,
                       steps=steps, save_cycle=cycle, batch_size=batch, gradient_accumulate_every=accumulate, lr=lr, seed=args.seed,
                       device=args.device, data_shape=[N, L, C], data_sha1=sha1(np.ascontiguousarray(real).tobytes()),
                       n_windows=n, sample_chunk=chunk)
    old = read_json(out / 'settings.json')
    if old is not None and old != fingerprint:
        diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        raise SystemExit(f"error: {out} holds a run with other settings ({', '.join(diff)}: {[old.get(k) for k in diff]} there, "
                         f"{[fingerprint.get(k) for k in diff]} now). Use another OUT folder, or delete {out} to start afresh.")
    if old is None: put_json(out / 'settings.json', fingerprint)
    log(f"published config {cfg_path}; notebook hyperparameters {hyper}; {steps} steps of {accumulate} x {batch} windows, "
        f"checkpoint every {cycle}; {n} windows to sample in chunks of {chunk}; out {out}")

    with tempfile.TemporaryDirectory() as tmp: data_check = check_windows(config, real, lo, hi, ds, tmp)
    log('data check:', json.dumps(data_check))
    if data_check.get('checked') and not data_check.get('same'): log('warning: the published loader would train on other windows than ours (see above).')

    samples_path, train_info = out / 'samples.npy', read_json(out / 'train.json')
    if not samples_path.exists():
        # --- model and Trainer, built as main.py builds them, on the CPU -----------------------------------------------------
        seed_everything(args.seed)
        model = instantiate_from_config(config['model']).to(args.device)
        class Windows(torch.utils.data.Dataset):                   # their CustomDataset's interface: samples, (window, index)
            samples = x11
            def __len__(self): return len(self.samples)
            def __getitem__(self, i): return torch.from_numpy(self.samples[i]), i
        shuffle = config['dataloader']['shuffle']
        loader = torch.utils.data.DataLoader(Windows(), batch_size=batch, shuffle=shuffle, drop_last=shuffle, num_workers=0,
                                             pin_memory=args.device == 'cuda')
        targs = types.SimpleNamespace(name='published', data=their, mode='generation', train=True, sample=0, pretrain_sampling=None, **prior)
        trainer = Trainer(config=config, args=targs, model=model, dataloader={'dataloader': loader, 'dataset': Windows()}, logger=None)
        ckdir = trainer.results_folder
        n_params = sum(p.numel() for p in model.parameters())

        # --- resume from the newest milestone ------------------------------------------------------------------------------
        state = {'seconds': 0., 'log': [], 'resumed_from': []}
        found = sorted(int(m.group(1)) for p in ckdir.glob('checkpoint-*.pt') if (m := CKPT.fullmatch(p.name)))
        if found:
            trainer.load(found[-1])                                  # their Trainer.load: model, step, opt, ema, prior
            extra = torch.load(ckdir / f'checkpoint-{found[-1]}.pt', map_location='cpu', weights_only=True)
            if 'sch' in extra: trainer.sch.load_state_dict(extra['sch'])
            if 'rng' in extra:
                r = extra['rng']; torch.set_rng_state(r['torch']); random.setstate(r['python'])
                np.random.set_state((r['numpy'][0], np.asarray(r['numpy'][1], np.uint32), *r['numpy'][2:]))
            state.update({k: extra[k] for k in ('seconds', 'log', 'resumed_from') if k in extra})
            state['resumed_from'] = list(state['resumed_from']) + [int(trainer.step)]
            log(f"resumed from {ckdir / f'checkpoint-{found[-1]}.pt'} at step {trainer.step} of {steps}")

        t_run, base = time.perf_counter(), state['seconds']
        def save(milestone, verbose=False):                          # their Trainer.save's keys, plus what a resume needs; atomic
            npst = np.random.get_state()
            data = {'step': trainer.step, 'model': trainer.model.state_dict(), 'ema': trainer.ema.state_dict(), 'opt': trainer.opt.state_dict(),
                    'prior': trainer.saved_prior, 'sch': {k: v for k, v in trainer.sch.state_dict().items() if k != 'step'},
                    'rng': {'torch': torch.get_rng_state(), 'python': random.getstate(),
                            'numpy': [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])]},
                    'seconds': base + time.perf_counter() - t_run, 'log': state['log'], 'resumed_from': state['resumed_from']}
            with atomic_write(ckdir / f'checkpoint-{milestone}.pt') as f: torch.save(data, f)
        trainer.save = save                                          # their loop saves milestone 10 through this too

        clock = {'t': time.perf_counter(), 'step': trainer.step}
        sch_step = trainer.sch.step
        def on_step(loss):                                           # their loop calls sch.step(total_loss) once per optimiser step
            sch_step(loss)
            k = trainer.step + 1                                     # the loop counts the step just after this call
            if k % args.log_every == 0 or k == steps:
                now = time.perf_counter(); per = (now - clock['t']) / max(1, k - clock['step'])
                clock.update(t=now, step=k)
                rec = {'step': k, 'loss': round(float(loss), 6), 'lr': trainer.opt.param_groups[0]['lr'], 's_per_step': round(per, 4), 'load': load1()}
                state['log'].append(rec)
                log(f"step {k}/{steps}  loss {rec['loss']:.5f}  lr {rec['lr']:.2e}  {per:.3f} s/step  "
                    f"~{per * (steps - k) / 60:.1f} min left  load {rec['load']}")
        trainer.sch.step = on_step

        if trainer.step < steps:
            loads['train_start'] = load1()
            log(f"training the published model ({n_params} parameters) from step {trainer.step} to {steps}, {torch.get_num_threads()} threads")
            while trainer.step < steps:
                stop = min(steps, (trainer.step // cycle + 1) * cycle)
                trainer.train_num_steps = stop - trainer.step         # their train() runs this many steps from trainer.step on
                trainer.train()
                save(math.ceil(trainer.step / cycle))
                log(f"checkpoint at step {trainer.step}: {ckdir / f'checkpoint-{math.ceil(trainer.step / cycle)}.pt'}")
            loads['train_end'] = load1()
        else: log(f"training already finished ({trainer.step} steps)")
        if train_info is None:
            secs = base + time.perf_counter() - t_run if trainer.step >= steps and 'train_start' in loads else state['seconds']
            per = [r['s_per_step'] for r in state['log']]
            train_info = {'steps': int(trainer.step), 'seconds': round(secs, 1), 'windows_per_step': batch * accumulate,
                          's_per_step_median': float(np.median(per)) if per else None, 'parameters': n_params,
                          'resumed_from': state['resumed_from'], 'loss_log': state['log'], 'threads': torch.get_num_threads(),
                          'loads': {k: v for k, v in loads.items() if k.startswith('train')}}
            put_json(out / 'train.json', train_info)

        # --- sampling, chunk by chunk ----------------------------------------------------------------------------------------
        parts, ema = out / 'sample_parts', trainer.ema.ema_model
        parts.mkdir(exist_ok=True)
        spans = [(i, a, min(n, a + chunk)) for i, a in enumerate(range(0, n, chunk))]
        for i, a, b in spans:
            if (parts / f'part-{i}.json').exists(): continue
            log(f"sampling windows {a}..{b - 1} of {n} (chunk {i + 1}/{len(spans)})")
            torch.manual_seed(args.seed + 1 + i)
            l0, t0 = load1(), time.perf_counter()
            with torch.no_grad(): x = ema.generate_mts(batch_size=b - a, prior_info=trainer.saved_prior)[0]
            x01 = unnormalize_to_zero_to_one(x.detach().cpu().numpy().astype(np.float64))   # their map back to [0, 1]
            with atomic_write(parts / f'part-{i}.npy') as f: np.save(f, (lo + x01 * (hi - lo)).astype(np.float32))
            dt = time.perf_counter() - t0
            put_json(parts / f'part-{i}.json', {'windows': b - a, 'seconds': dt, 'load': [l0, load1()]})
            log(f"chunk {i + 1}: {dt:.1f} s, {1e3 * dt / (b - a):.1f} ms per window")
        fake = np.concatenate([np.load(parts / f'part-{i}.npy') for i, _, _ in spans])
        info = [read_json(parts / f'part-{i}.json') for i, _, _ in spans]
        sample_info = {'windows': int(len(fake)), 'chunk': chunk, 'seconds': round(sum(p['seconds'] for p in info), 1),
                       'ms_per_window': 1e3 * sum(p['seconds'] for p in info) / len(fake), 'loads': [p['load'] for p in info],
                       'nfe_note': 'the published sampler: Heun, sampling_timesteps from the config, churn 0.33 (sde)'}
        put_json(out / 'sample.json', sample_info)
        with atomic_write(samples_path) as f: np.save(f, fake)
        for i, _, _ in spans:
            for suffix in ('npy', 'json'): (parts / f'part-{i}.{suffix}').unlink(missing_ok=True)
        parts.rmdir()
    else: log(f"samples already in {samples_path}")
    fake, sample_info = np.load(samples_path), read_json(out / 'sample.json')
    if train_info is None: train_info = read_json(out / 'train.json')
    if not np.isfinite(fake).all(): log(f"warning: {int((~np.isfinite(fake)).sum())} non-finite values among the samples")

    # --- scores, with the settings of our Table 1 rows ----------------------------------------------------------------------
    results_path = out / 'results.json'
    res = read_json(results_path)
    if res is None or res.get('metrics_preset') != args.metrics_preset:
        threads = torch.get_num_threads()
        s = settings(args.metrics_preset)                           # a preset naming torch_threads sets them: put ours back
        torch.set_num_threads(threads)
        if args.device == 'cpu': s['device'] = 'cpu'
        log(f"scoring {len(fake)} windows against {N} real ones with the {args.metrics_preset} metric settings "
            f"(repeats {s['repeats']}, disc_iters {s['disc_iters']}, pred_iters {s['pred_iters']}, fid_iters {s['fid_iters']}, n_eval {s['n_eval']})")
        l0, t0 = load1(), time.perf_counter()
        df = score(real, {'published': fake}, s, seed=0).reset_index()
        score_seconds = time.perf_counter() - t0
        scores = {r['metric']: {'mean': float(r['mean']), 'half_width': float(r['half_width']), 'std': float(r['std']),
                                'values': [float(v) for v in r['values']], 'seconds': float(r['seconds'])} for r in df.to_dict('records')}
        ours = {}
        ours_file = read_json(args.ours) if args.ours and os.path.exists(args.ours) else None
        for row in (ours_file or {}).get('rows', []):
            if row.get('table') == '1' and row.get('dataset') == ds and row.get('method') == METHOD:
                ours[row['metric']] = {'mean': row['mean'], 'half_width': row.get('half_width')}
        paper = {m: dict(zip(('mean', 'half_width'), PUBLISHED[k])) for m in scores
                 if (k := ('timebridge', '1', ds, METHOD, m)) in PUBLISHED}
        res = {'format': FORMAT, 'dataset': ds, 'what': f'the published TimeBridge code ({METHOD}, unconditional) trained here, scored with '
                                                        'tsbridge_lambda.experiments.score (metrics.evaluate)',
               'checkout': str(root), 'config_file': str(cfg_path), 'config': config_shown, 'settings': fingerprint,
               'metrics_preset': args.metrics_preset, 'metric_settings': {k: s[k] for k in ('repeats', 'fid_iters', 'disc_iters', 'pred_iters', 'n_eval', 'device')},
               'metric_scale': 'min-max of the real windows' if scale is True else list(scale), 'evaluation_seed': 0,
               'scores': scores, 'paper': paper, 'ours': ours, 'ours_file': args.ours if ours else None,
               'data_check': data_check, 'stand_ins': stand_ins, 'ema_pytorch': ema_version,
               'train': train_info, 'sample': sample_info,
               'seconds': {'train': (train_info or {}).get('seconds'), 'sample': sample_info['seconds'], 'score': round(score_seconds, 1),
                           'this_invocation': round(time.perf_counter() - t_start, 1)},
               'load_average': {'score': [l0, load1()], 'end': list(os.getloadavg()), **loads},
               'machine': machine_info(args.device), 'torch': torch.__version__, 'command': sys.argv,
               'finished': time.strftime('%Y-%m-%d %H:%M:%S')}
        put_json(results_path, res)
    else: log(f"scores already in {results_path} ({args.metrics_preset} metric settings)")

    log(f"{ds}, {METHOD}: the published code trained here ({(res.get('train') or {}).get('steps')} steps), {len(fake)} windows, "
        f"{res['metrics_preset']} metric settings")
    print(f"{'metric':16} {'published code here':>22} {'our row':>18} {'paper':>16}")
    fmt = lambda d: '-' if not d else f"{d['mean']:.4f} ± {d['half_width']:.4f}" if d.get('half_width') is not None else f"{d['mean']:.4f}"
    for m, v in res['scores'].items():
        print(f"{m:16} {fmt(v):>22} {fmt(res['ours'].get(m)):>18} {fmt(res['paper'].get(m)):>16}")
    print(f"results: {results_path}; samples: {samples_path}", flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
