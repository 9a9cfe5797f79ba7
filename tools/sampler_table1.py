"""Table 1's four metrics for a trained model sampled with other sampler settings (steps x churn x rho).

The quality-NFE curve (tools/nfe_curve.py) scores Context-FID only. A setting that matches or beats the 119-NFE sampler there
may still be worse on the other Table 1 metrics; this script scores it on all four exactly as the Table 1 run scored its own
samples: `experiments.generate` (10000 windows, batch 512, sampling seed SEED) with the setting's steps, churn and rho, then
`experiments.score(X, {name: fake}, settings('paper'), seed=SEED)` on the same real windows (context_fid, correlational,
discriminative, predictive; 5 repeats). Each (setting, seed) is written atomically to OUT/<setting>-seed<k>.json and skipped
on a re-run.

Usage, from the repository root (export TSBL_DATA_DIR=/work/shared/data):
    python tools/sampler_table1.py --settings 20x0.5x3 [--seeds 0] [--model PATH] [--out runs/sampler_table1]
The reference setting 40x0.33x7 is TimeBridge's own sampler; its row for the default model is the Table 1 run's
(runs/paper_table1/cache/sines-TimeBridge-GP-seed0.scores.json), scored by the same call. That model comes from
    tsbl run timebridge_unconditional -p preset paper -p datasets "[sines]" -p methods "[TimeBridge-GP]" --out runs/paper_table1
"""
import argparse, hashlib, json, os, sys, time
from pathlib import Path
import numpy as np, torch

def parse(setting):
    try:
        steps, churn, rho = setting.split('x'); return int(steps), float(churn), float(rho)
    except ValueError: sys.exit(f"a setting is STEPSxCHURNxRHO such as 20x0.5x3, got {setting!r}")

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='runs/paper_table1/cache/sines-TimeBridge-GP-seed0.model.pt')
    p.add_argument('--dataset', default='sines')
    p.add_argument('--out', default='runs/sampler_table1')
    p.add_argument('--settings', required=True, help='comma-separated STEPSxCHURNxRHO')
    p.add_argument('--seeds', default='0', help='comma-separated sampling (= evaluation) seeds')
    a = p.parse_args(argv)
    from tsbridge_lambda.experiments import train_windows, settings, generate, score
    from tsbridge_lambda.timebridge import TimeBridge
    s = settings('paper')
    grid = {setting: parse(setting) for setting in a.settings.split(',')}      # a malformed setting stops before any work
    pending = []
    for setting in grid:
        for seed in map(int, a.seeds.split(',')):
            path = Path(a.out) / f'{setting}-seed{seed}.json'
            if path.exists(): print(f'{setting} seed {seed}: done, skipped')
            else: pending.append((setting, seed, path))
    if not pending: return                                                    # nothing to load or sample
    if not Path(a.model).exists(): sys.exit(f"no model at {a.model}: train it with the tsbl run command in this script's docstring")
    sha = hashlib.sha256(Path(a.model).read_bytes()).hexdigest()
    model = TimeBridge.load(a.model, device=s['device'])
    X = train_windows(a.dataset, s, seed=0)
    os.makedirs(a.out, exist_ok=True)
    for setting, seed, path in pending:
        steps, churn, rho = grid[setting]
        t0, load0 = time.time(), os.getloadavg()[0]
        fake = generate(model, len(X), s, seed=seed, steps=steps, churn=churn, rho=rho)
        t1 = time.time()
        df = score(X, {setting: fake}, s, seed=seed).reset_index()
        rec = dict(setting=setting, steps=steps, churn=churn, rho=rho, seed=seed, model=a.model, model_sha256=sha,
                   dataset=a.dataset, n_windows=len(fake), sample_seconds=round(t1 - t0, 1),
                   score_seconds=round(time.time() - t1, 1), load_average=[round(load0, 2), round(os.getloadavg()[0], 2)],
                   threads=torch.get_num_threads(),
                   scores={r['metric']: dict(mean=float(r['mean']), half_width=float(r['half_width']),
                                             values=[float(v) for v in r['values']]) for r in df.to_dict('records')})
        tmp = path.with_suffix('.tmp'); tmp.write_text(json.dumps(rec, indent=1)); os.replace(tmp, path)
        print(f"{setting} seed {seed}: " + ', '.join(f"{k} {v['mean']:.4f}" for k, v in rec['scores'].items()) +
              f" (sampled {rec['sample_seconds']} s, scored {rec['score_seconds']} s, load {rec['load_average']})", flush=True)

if __name__ == '__main__': main()
