"""Golden files (tests/data, written by tools/make_golden.py before issue 19's refactor): saved models and a checkpoint of that
format still load and reproduce their recorded outputs with fixed seeds; LAMBDA's configuration fingerprints do not move."""
import json, shutil, sys
from pathlib import Path
import numpy as np, pytest, torch
from tsbridge_lambda.timebridge import TimeBridge, GaussianDiffusion
from tsbridge_lambda.paired import PairedDiffusion, translate_series, _resume_settings
from tsbridge_lambda.train import Trainer
from tsbridge_lambda.experiments import LAMBDA_PRESETS, ALIGN_NAMES, ABLATIONS, make_paired, config_key

DATA = Path(__file__).parent / 'data'
sys.path.insert(0, str(Path(__file__).parents[1] / 'tools'))
import make_golden as mg                                               # the recipes of the data the files were made from


@pytest.fixture(scope='module')
def golden():
    with np.load(DATA / 'golden.npz') as z: arrays = dict(z)
    return arrays, json.loads((DATA / 'golden.json').read_text())


@pytest.fixture(autouse=True)
def one_thread():
    "Recorded and reproduced on one CPU thread: other thread counts change float sums in the last bits (up to 1e-5 in units)."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def close(got, want): np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def same_file_format(est, path, tmp_path):
    "Saving a loaded model writes the keys, format, kind and config it was read from."
    old = torch.load(path, weights_only=True)
    new = torch.load(est.save(tmp_path / path.name), weights_only=True)
    assert sorted(new) == sorted(old) and new['format'] == old['format'] and new['kind'] == old['kind']
    assert new['config'] == old['config'] and sorted(new['weights']) == sorted(old['weights'])


def test_timebridge_file(golden, tmp_path):
    a, _ = golden
    tb = TimeBridge.load(DATA / 'timebridge.pt', device='cpu')
    close(tb.sample(6, seed=1, steps=4, disable=True), a['timebridge.sample'])
    same_file_format(tb, DATA / 'timebridge.pt', tmp_path)


@pytest.mark.parametrize('name,cls,kw', [('timebridge_impute', TimeBridge, dict(seed=2, steps=4)),
                                         ('gaussian_diffusion', GaussianDiffusion, dict(seed=3, nfe=5))])
def test_imputation_files(golden, tmp_path, name, cls, kw):
    a, _ = golden
    m = cls.load(DATA / f'{name}.pt', device='cpu')
    r = m.impute(mg.gappy(mg.sines()), n_samples=3, return_samples=True, disable=True, **kw)
    for k, v in r._asdict().items(): close(v, a[f'{name}.{k}'])
    same_file_format(m, DATA / f'{name}.pt', tmp_path)


def test_paired_file(golden, tmp_path):
    a, meta = golden
    P = mg.lorenz()
    m = PairedDiffusion.load(DATA / 'paired.pt', device='cpu')
    assert m.columns_ == (list(P.x_columns), list(P.y_columns)) and _resume_settings(m.config) == meta['paired.resume_settings']
    for name, r in (('paired.predict_y', m.predict_y(P.X[:4], n_samples=2, nfe=5, seed=4, return_samples=True, disable=True)),
                    ('paired.predict_x', m.predict_x(P.Y[:4], n_samples=2, seed=5, return_samples=True, disable=True)),
                    ('paired.translate', translate_series(m, np.concatenate([P.X[0], P.X[1, :12]]), 'y', n_samples=2, nfe=5, seed=6, disable=True))):
        for k, v in r._asdict().items():
            if v is None: assert f'{name}.{k}' not in a
            else: close(v, a[f'{name}.{k}'])
    close(m.encode(P.Y[:4], 'y', seed=7), a['paired.encode'])
    h = m.fit_history()
    close(h[meta['paired.part_names']].to_numpy(np.float64), a['paired.parts'])
    same_file_format(m, DATA / 'paired.pt', tmp_path)


def test_checkpoint_file(golden, tmp_path):
    "The checkpoint reads, holds the fingerprint of its data, and a resumed fit continues the recorded loss trajectory."
    a, meta = golden
    state = Trainer.read_checkpoint(DATA / 'timebridge.ckpt.pt')
    assert state['step'] == 10 and state['extra']['data_sha256'] == meta['checkpoint.data_sha256']
    ck = tmp_path / 'ck.pt'; shutil.copy(DATA / 'timebridge.ckpt.pt', ck)
    tb = TimeBridge(checkpoint_every=10, **mg.TINY).fit(mg.sines(), steps=14, checkpoint=ck, resume=True, disable=True)
    close(np.asarray(tb.history_), a['checkpoint.history'])
    with pytest.raises(ValueError, match='different data'):            # the fingerprint of other data does not match
        TimeBridge(checkpoint_every=10, **mg.TINY).fit(mg.sines()[::-1], steps=14, checkpoint=ck, resume=True, disable=True)


# experiments.config_key of LAMBDA's models (seed 0 unless named): a run resumes only models whose key it finds, so any
# change of a PairedDiffusion config key or value retrains every cached LAMBDA run (runs/lambda_dynamics_medium_* among them)
CONFIG_KEYS = {
    ('quick', 'none', 0, ''): '0daf11e79e',
    ('quick', 'lambda', 0, ''): '3407615615',
    ('quick', 'simclr', 0, ''): '850c0654e6',
    ('quick', 'barlow', 0, ''): 'c0aaa92bf6',
    ('quick', 'vicreg', 0, ''): 'ac6958165a',
    ('quick', 'mse', 0, ''): '0b53791262',
    ('quick', 'w/o L_con', 0, ''): '59cab16190',
    ('quick', 'w/o L_cov', 0, ''): '12ca4ebe5d',
    ('quick', 'lambda', 1, ''): 'f4a876776b',
    ('quick', 'lambda', 0, 'latent'): '337cf8e91c',
    ('medium', 'none', 0, ''): '22ffab985e',
    ('medium', 'lambda', 0, ''): '130c53525b',
    ('medium', 'simclr', 0, ''): 'f6a1973828',
    ('medium', 'barlow', 0, ''): '5389d82b11',
    ('medium', 'vicreg', 0, ''): '1cd7b8d0b3',
    ('medium', 'mse', 0, ''): 'df3a035148',
    ('medium', 'w/o L_con', 0, ''): '88354c9331',
    ('medium', 'w/o L_cov', 0, ''): 'a6a3fc6c8d',
    ('medium', 'lambda', 1, ''): '64ffd08b38',
    ('medium', 'lambda', 0, 'latent'): 'aa1f76ec82',
    ('paper', 'none', 0, ''): '3ed4eb161a',
    ('paper', 'lambda', 0, ''): '53278a6377',
    ('paper', 'simclr', 0, ''): '3b00a78152',
    ('paper', 'barlow', 0, ''): '634443833c',
    ('paper', 'vicreg', 0, ''): 'bc34284ba0',
    ('paper', 'mse', 0, ''): '38a937e2cc',
    ('paper', 'w/o L_con', 0, ''): '15a692bcaf',
    ('paper', 'w/o L_cov', 0, ''): 'b91b5bc611',
    ('paper', 'lambda', 1, ''): 'ea50055a0f',
    ('paper', 'lambda', 0, 'latent'): 'e542d1761d',
}


def test_lambda_config_keys():
    got = {}
    for p in LAMBDA_PRESETS:
        s = dict(LAMBDA_PRESETS[p], preset=p)
        for method in list(ALIGN_NAMES) + [m for m in ABLATIONS if m != 'LAMBDA']:
            cfg = ABLATIONS.get(method, {'align': method})
            got[(p, method, 0, '')] = config_key('k', make_paired(s=s, seed=0, **cfg))[2:]
        got[(p, 'lambda', 1, '')] = config_key('k', make_paired('lambda', s, seed=1))[2:]
        got[(p, 'lambda', 0, 'latent')] = config_key('k', make_paired('lambda', dict(s, decoder_input='latent'), seed=0))[2:]
    assert got == CONFIG_KEYS


def test_files_of_another_kind_are_refused():
    "One reader (core.read_model_file) behind every loader: a file of another kind names the class or command that reads it."
    from tsbridge_lambda.cli import _load_model
    for call, msg in ((lambda: TimeBridge.load(DATA / 'paired.pt'), 'matching class: PairedDiffusion.load'),
                      (lambda: GaussianDiffusion.load(DATA / 'timebridge.pt'), 'matching class: TimeBridge.load'),
                      (lambda: PairedDiffusion.load(DATA / 'gaussian_diffusion.pt'), 'matching class: GaussianDiffusion.load'),
                      (lambda: _load_model(DATA / 'paired.pt'), 'tsbl translate'),
                      (lambda: _load_model(DATA / 'timebridge.ckpt.pt'), 'holds a trainer checkpoint'),
                      (lambda: Trainer.read_checkpoint(DATA / 'paired.pt'), 'holds a PairedDiffusion model, not a trainer checkpoint')):
        with pytest.raises(ValueError, match=msg): call()
    with pytest.raises(FileNotFoundError, match='No model file'): PairedDiffusion.load(DATA / 'nope.pt')


def test_data_fingerprint_equals_the_old_expressions():
    "core.data_fingerprint replaced the estimators' inline hashes (issue 19, C2): equal to each of them on their inputs."
    import hashlib
    from tsbridge_lambda.core import data_fingerprint, check_series
    X = check_series(mg.sines()[::2])                                   # float32, as `core.data_fingerprint` hashes it in `fit`
    assert data_fingerprint(X) == hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest()
    P = mg.lorenz()
    Xp, Yp = check_series(P.X), check_series(P.Y)                       # as `PairedDiffusion.fit` hashes the pairs
    h = hashlib.sha256()
    for a in (Xp, Yp): h.update(np.ascontiguousarray(a, np.float32).tobytes())
    assert data_fingerprint(Xp, Yp) == h.hexdigest()
    cfg = b'{"a": 1}'                                                   # experiments.model_file: seeded with the config
    h = hashlib.sha256(cfg)
    for a in (P.X, P.Y): h.update(np.ascontiguousarray(a, np.float32).tobytes())
    assert data_fingerprint(P.X, P.Y, h=hashlib.sha256(cfg))[:12] == h.hexdigest()[:12]
    raw = np.arange(6.).reshape(1, 2, 3)                                # experiments.Recorder.fit: the raw bytes
    assert data_fingerprint(raw, dtype=None) == hashlib.sha256(np.ascontiguousarray(raw).tobytes()).hexdigest()


def test_results_behave_like_their_point_estimate(golden):
    "Issue 19: np.asarray of an Imputation / Translation is its float32 median / mean; unpacking, _replace and positional construction still work."
    from tsbridge_lambda.conditional import Imputation
    from tsbridge_lambda.paired import Translation
    P = mg.lorenz()
    m = PairedDiffusion.load(DATA / 'paired.pt', device='cpu')
    r = m.predict_y(P.X[:4], n_samples=2, nfe=5, seed=4, disable=True)
    a = np.asarray(r)
    assert isinstance(r, Translation) and a.dtype == np.float32 and np.array_equal(a, r.mean.astype(np.float32))
    mean, lower, upper, samples = r
    assert mean is r.mean and samples is None and np.asarray(r, dtype=np.float64).dtype == np.float64
    imp = TimeBridge.load(DATA / 'timebridge_impute.pt', device='cpu')
    res = imp.impute(mg.gappy(mg.sines()), n_samples=3, seed=2, steps=4, disable=True)
    assert isinstance(res, Imputation) and np.array_equal(np.asarray(res), res.median.astype(np.float32))
    median, lo, hi, _ = res
    assert median is res.median and np.array_equal(np.asarray(res._replace(median=hi)), hi.astype(np.float32))
    assert np.array_equal(np.asarray(Imputation(lo, lo, hi, None)), lo.astype(np.float32))
