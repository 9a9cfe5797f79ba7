"""Write the golden files of tests/test_golden.py: tiny fitted models, one trainer checkpoint and their recorded outputs.

The files pin what a refactor must not change: saved file formats (a file written today still loads), the numbers a loaded
model produces with a fixed seed (RNG consumption order), data fingerprints and the settings a checkpoint is resumed with.
Re-run only when a change of these is intended (then say so in the commit):

    python tools/make_golden.py [--out tests/data]
"""
import argparse, json
from pathlib import Path
import numpy as np
import torch

from tsbridge_lambda.timebridge import TimeBridge, GaussianDiffusion
from tsbridge_lambda.paired import PairedDiffusion, translate_series, _resume_settings
from tsbridge_lambda.data import load_dataset
from tsbridge_lambda.train import Trainer

TINY = dict(preset='tiny', batch_size=16, warmup=5, threads=None)   # threads=None: torch's thread count held (bit-identical resume)


def sines():
    "The training windows of every golden TimeBridge / GaussianDiffusion: (64, 24, 5) in units far from [-1, 1]."
    return (load_dataset('sines', n_samples=64, seed=0).X * 3 + 10).astype(np.float32)


def gappy(X):
    "Two series of 36 steps (longer than the window of 24: two windows) with a fixed pattern of NaN gaps."
    s = np.concatenate([X[:2], X[2:4, :12]], 1).astype(np.float64)
    hide = np.random.default_rng(0).random(s.shape) < 0.3
    return np.where(hide, np.nan, s)


def lorenz():
    "The paired windows of the golden PairedDiffusion."
    return load_dataset('lorenz', n_trajectories=60, seq_len=24).train


def main(out):
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0); torch.set_num_threads(1)                 # as tests/test_golden.py reproduces them
    X, arrays, meta = sines(), {}, {}
    G = gappy(X)

    tb = TimeBridge(prior='gp', steps=10, **TINY).fit(X, disable=True)
    tb.save(out / 'timebridge.pt')
    arrays['timebridge.sample'] = tb.sample(6, seed=1, steps=4, disable=True)

    tbi = TimeBridge(task='impute', steps=10, **TINY).fit(X, disable=True)
    tbi.save(out / 'timebridge_impute.pt')
    r = tbi.impute(G, n_samples=3, seed=2, steps=4, return_samples=True, disable=True)
    for k, v in r._asdict().items(): arrays[f'timebridge_impute.{k}'] = v

    gd = GaussianDiffusion(task='impute', n_steps=20, steps=10, **TINY).fit(X, disable=True)
    gd.save(out / 'gaussian_diffusion.pt')
    r = gd.impute(G, n_samples=3, seed=3, nfe=5, return_samples=True, disable=True)
    for k, v in r._asdict().items(): arrays[f'gaussian_diffusion.{k}'] = v

    ck = out / 'timebridge.ckpt.pt'                                   # a checkpoint at step 10 of a 14-step run
    ck.unlink(missing_ok=True)
    TimeBridge(checkpoint_every=10, **TINY).fit(X, steps=10, checkpoint=ck, disable=True)
    full = TimeBridge(checkpoint_every=10, **TINY).fit(X, steps=14, disable=True)
    arrays['checkpoint.history'] = np.asarray(full.history_, np.float64)
    meta['checkpoint.data_sha256'] = Trainer.read_checkpoint(ck)['extra']['data_sha256']

    P = lorenz()
    pd_ = PairedDiffusion('lambda', preset='tiny', steps=8, batch_size=16, warmup=4, threads=None).fit(P.X, P.Y, disable=True)
    pd_.columns_ = (list(P.x_columns), list(P.y_columns))
    pd_.save(out / 'paired.pt')
    for name, r in (('paired.predict_y', pd_.predict_y(P.X[:4], n_samples=2, nfe=5, seed=4, return_samples=True, disable=True)),
                    ('paired.predict_x', pd_.predict_x(P.Y[:4], n_samples=2, seed=5, return_samples=True, disable=True)),
                    ('paired.translate', translate_series(pd_, np.concatenate([P.X[0], P.X[1, :12]]), 'y', n_samples=2, nfe=5, seed=6, disable=True))):
        for k, v in r._asdict().items():
            if v is not None: arrays[f'{name}.{k}'] = v
    arrays['paired.encode'] = pd_.encode(P.Y[:4], 'y', seed=7)
    arrays['paired.parts'] = np.asarray([[p.get(k, np.nan) for k in sorted(pd_.parts_[0])] for p in pd_.parts_], np.float64)
    meta['paired.resume_settings'] = _resume_settings(pd_.config)
    meta['paired.part_names'] = sorted(pd_.parts_[0])

    np.savez_compressed(out / 'golden.npz', **arrays)
    (out / 'golden.json').write_text(json.dumps(meta, indent=1, sort_keys=True) + '\n')
    for f in sorted(out.iterdir()): print(f'{f.stat().st_size:>9,d}  {f}')


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default=str(Path(__file__).parents[1] / 'tests' / 'data'))
    main(p.parse_args().out)
