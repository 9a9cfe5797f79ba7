"""Scale out and hold up: torchrun data parallel training equals one process, SIGKILL inside a checkpoint write and
SIGTERM leave resumable runs, and a table of bad inputs each fails with a clear message (and writes nothing)."""
import os, signal, subprocess, sys, threading, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from tsbridge_lambda.timebridge import TimeBridge, GaussianDiffusion
from tsbridge_lambda.train import Trainer
from tsbridge_lambda.data import from_array, from_csv, load_dataset, random_mask, MinMaxScaler, Windows, PairedData
from tsbridge_lambda.cli import main, load_windows

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(preset='tiny', batch_size=16, warmup=5, seed=0, device='cpu')


def _env():
    "Child processes import this checkout and use as many threads as this process (bitwise comparable arithmetic)."
    return {**os.environ, 'PYTHONPATH': f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            'OMP_NUM_THREADS': str(torch.get_num_threads())}


@pytest.fixture(scope='module')
def toy_csv(tmp_path_factory):
    t = np.arange(120)
    path = tmp_path_factory.mktemp('csv') / 'toy.csv'
    pd.DataFrame({'a': np.sin(t / 5), 'b': np.cos(t / 7) + t / 120}).to_csv(path, index=False)
    return path


def _without_key_biases(state:dict) -> dict:
    """Weights with the attention *key* biases zeroed. Softmax is invariant to a shift shared by all keys, so their
    gradient is exactly zero and only rounding noise reaches them; Adam divides that noise by its own size and moves
    them by ~lr per step, differently in two runs whose sums are ordered differently. They do not change the output."""
    out = {}
    for k, v in state.items():
        v = v.detach().clone().double()
        if k.endswith('qkv.bias'): d = len(v) // 3; v[d:2 * d] = 0      # (q, k, v)
        elif k.endswith('kv.bias'): d = len(v) // 2; v[:d] = 0          # (k, v) of cross attention
        out[k] = v
    return out


def test_torchrun_two_processes_match_one_process(toy_csv, tmp_path):
    steps = 10
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'tsbridge_lambda.cli',
           'fit', str(toy_csv), '--out', str(tmp_path / 'ddp.pt'), '--checkpoint', str(tmp_path / 'ck.pt'), '--preset', 'tiny',
           '--steps', str(steps), '--batch-size', '16', '--seed', '0', '--device', 'cpu', '--quiet']
    env = {**_env(), 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('fitted TimeBridge') == 1                        # only rank 0 reports
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ck.pt', 'ddp.pt']   # only rank 0 writes; no temporary file left
    X = load_windows(str(toy_csv), 24)
    one = TimeBridge(**{**TINY, 'warmup': 500}, threads=None).fit(X, steps=steps, disable=True)   # the CLI keeps the preset's warm-up
    ck = Trainer.read_checkpoint(tmp_path / 'ck.pt')
    np.testing.assert_allclose(ck['history'].numpy(), one.history_, rtol=1e-5)
    a, b = _without_key_biases(ck['model']), _without_key_biases(one.trainer_.model.state_dict())
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff < 1e-5, diff
    # Adam and norm clipping ignore a common scale of the gradients; the norm before clipping does not
    assert ck['grad_norm'] == pytest.approx(one.trainer_.grad_norm, rel=1e-5)
    m2 = [st['exp_avg'] for st in ck['optimizer']['state'].values()]
    m1 = [st['exp_avg'] for st in one.trainer_.opt.state_dict()['state'].values()]
    scale = max(float(m.abs().max()) for m in m1)
    mdiff = max(float((a - b).abs().max()) for a, b in zip(m1, m2))
    print(f"DDP vs one process: weights {diff:.2e}, Adam first moment {mdiff:.2e} (largest entry {scale:.2e}), grad norm {ck['grad_norm']:.6g} vs {one.trainer_.grad_norm:.6g}")
    assert mdiff < 1e-4 * scale, (mdiff, scale)
    saved = TimeBridge.load(tmp_path / 'ddp.pt')                            # the model file holds the EMA weights
    e, f = _without_key_biases(saved.model_.state_dict()), _without_key_biases(one.model_.state_dict())
    assert max(float((e[k] - f[k]).abs().max()) for k in e) < 1e-5


CHILD = r'''
import sys, time, numpy as np, torch
from tsbridge_lambda.timebridge import TimeBridge
from tsbridge_lambda.train import CHECKPOINT_FORMAT
X, ck, pause_at = np.load(sys.argv[1]), sys.argv[2], int(sys.argv[3])
save = torch.save
def slow_save(obj, f, *args, **kw):                 # write the checkpoint of step `pause_at`, then hang before the rename
    save(obj, f, *args, **kw)
    if isinstance(obj, dict) and obj.get('format') == CHECKPOINT_FORMAT and obj['step'] == pause_at:
        f.flush(); print('PAUSED', flush=True); time.sleep(120)
torch.save = slow_save
TimeBridge(preset='tiny', batch_size=8, warmup=5, seed=0, device='cpu', checkpoint_every=5, threads=None).fit(X, steps=20, checkpoint=ck, disable=True)
'''


def test_sigkill_inside_checkpoint_write_then_resume_is_exact(tmp_path):
    X = load_dataset('sines', n_samples=32, seed=1).X
    np.save(tmp_path / 'X.npy', X)
    (tmp_path / 'child.py').write_text(CHILD)
    run = tmp_path / 'run'; run.mkdir(); ck = run / 'ck.pt'
    p = subprocess.Popen([sys.executable, str(tmp_path / 'child.py'), str(tmp_path / 'X.npy'), str(ck), '10'],
                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == 'PAUSED', p.stderr.read()
        tmp = [q for q in run.iterdir() if q.name != 'ck.pt']
        assert len(tmp) == 1 and tmp[0].name.startswith('.ck.pt.') and tmp[0].stat().st_size > 0   # the write in progress
        p.send_signal(signal.SIGKILL)
    finally:
        p.kill(); p.wait(timeout=30); p.stdout.close(); p.stderr.close()
    assert Trainer.read_checkpoint(ck)['step'] == 5                       # the previous checkpoint, intact
    full = TimeBridge(preset='tiny', batch_size=8, warmup=5, seed=0, device='cpu', threads=None).fit(X, steps=20, disable=True)
    resumed = TimeBridge(preset='tiny', batch_size=8, warmup=5, seed=0, device='cpu', checkpoint_every=5, threads=None).fit(
        X, steps=20, checkpoint=ck, resume=True, disable=True)
    assert [q.name for q in run.iterdir()] == ['ck.pt']                   # the killed writer's temporary file is gone
    assert resumed.history_ == full.history_
    for (k, v), w in zip(resumed.trainer_.model.state_dict().items(), full.trainer_.model.state_dict().values()): assert torch.equal(v, w), k
    for v, w in zip(resumed.model_.state_dict().values(), full.model_.state_dict().values()): assert torch.equal(v, w)


def test_sigterm_saves_a_checkpoint_and_writes_no_model(toy_csv, tmp_path):
    "tsbl fit gets SIGTERM mid-training: it finishes the step, checkpoints, exits with 128 + 15, and the resumed run is exact."
    args = ['fit', str(toy_csv), '--preset', 'tiny', '--batch-size', '8', '--device', 'cpu', '--quiet', '--checkpoint', str(tmp_path / 'ck.pt')]
    original, threads = signal.getsignal(signal.SIGTERM), torch.get_num_threads()
    torch.set_num_threads(1)                         # one thread throughout: the runs compared bit for bit cannot differ in thread count
    try:
        def terminate_when_training():                                       # only once the trainer's handler is in place
            while signal.getsignal(signal.SIGTERM) is original: time.sleep(0.005)
            time.sleep(0.2); os.kill(os.getpid(), signal.SIGTERM)
        threading.Thread(target=terminate_when_training, daemon=True).start()
        assert main(args + ['--out', str(tmp_path / 'm.pt'), '--steps', '1000000']) == 128 + signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is original                  # handlers restored
        assert not (tmp_path / 'm.pt').exists() and [p.name for p in tmp_path.iterdir()] == ['ck.pt']
        k = Trainer.read_checkpoint(tmp_path / 'ck.pt')['step']
        assert k > 0
        assert main(args + ['--out', str(tmp_path / 'm.pt'), '--steps', str(k + 3), '--resume']) == 0
        X = load_windows(str(toy_csv), 24)
        full = TimeBridge(preset='tiny', batch_size=8, seed=0, device='cpu').fit(X, steps=k + 3, disable=True)
    finally: torch.set_num_threads(threads)
    assert TimeBridge.load(tmp_path / 'm.pt').history_ == full.history_


def test_impute_training_treats_nan_as_missing():
    X = load_dataset('sines', n_samples=32, seed=0).X.astype(np.float64)
    X[random_mask(X.shape, 0.3, 0) == False] = np.nan                   # noqa: E712
    est = TimeBridge(task='impute', **{**TINY, 'batch_size': 8}).fit(X, steps=5, disable=True)
    assert np.isfinite(est.history_).all()
    with pytest.raises(ValueError, match='NaN'): TimeBridge(**TINY).fit(X, steps=5)   # unconditional: refused


def test_constant_channel_trains_and_samples_finite():
    X = load_dataset('sines', n_samples=32, seed=0).X[..., :2].copy(); X[..., 1] = 7.
    out = TimeBridge(**{**TINY, 'batch_size': 8}).fit(X, steps=3, disable=True).sample(4, seed=0, steps=3, disable=True)
    assert np.isfinite(out).all()


# -- bad inputs ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def ctx(tmp_path_factory):
    d = tmp_path_factory.mktemp('bad')
    X = np.random.default_rng(0).normal(size=(16, 24, 2)).astype(np.float32)
    tb = TimeBridge(preset='tiny', steps=2, batch_size=8, device='cpu').fit(X, disable=True)
    imp = TimeBridge(task='impute', preset='tiny', steps=2, batch_size=8, device='cpu').fit(X, disable=True)
    gd = GaussianDiffusion(preset='tiny', steps=2, batch_size=8, n_steps=20, device='cpu').fit(X, disable=True)
    tb.save(d / 'tb.pt'); TimeBridge(preset='tiny', steps=2, batch_size=8, device='cpu').fit(X, checkpoint=d / 'ck.pt', disable=True)
    (d / 'text.csv').write_text('a,b\n' + '1,x\n' * 30)
    (d / 'short.csv').write_text('a,b\n1,2\n3,4\n')
    (d / 'junk.pt').write_bytes(b'not a torch file')
    torch.save({'format': 'tsbridge_lambda.model/0', 'kind': 'timebridge'}, d / 'old.pt')
    full = torch.load(d / 'ck.pt', weights_only=True); full['format'] = 'tsbridge_lambda.trainer/0'; torch.save(full, d / 'old_ck.pt')
    return dict(d=d, X=X, tb=tb, imp=imp, gd=gd)

def _meta(n): return pd.DataFrame({'split': ['train'] * n})

BAD = {   # name: (call, error type, part of the message)
    'NaN in training data':        (lambda c: TimeBridge(preset='tiny').fit(np.where(c['X'] > 1, np.nan, c['X'])), ValueError, 'NaN values; remove or fill'),
    'inf in training data':        (lambda c: TimeBridge(preset='tiny').fit(np.where(c['X'] > 1, np.inf, c['X'])), ValueError, 'infinite values'),
    'rank 2 instead of 3':         (lambda c: TimeBridge(preset='tiny').fit(c['X'][0]), ValueError, 'use x[None]'),
    'text array':                  (lambda c: TimeBridge(preset='tiny').fit(np.full((4, 24, 1), 'a')), TypeError, 'not numbers'),
    'single window':               (lambda c: TimeBridge(preset='tiny').fit(c['X'][:1]), ValueError, 'at least 2'),
    'impute: channel never seen':  (lambda c: TimeBridge(task='impute', preset='tiny').fit(np.concatenate([c['X'][..., :1], np.full_like(c['X'][..., :1], np.nan)], -1)), ValueError, 'no observed'),
    'baseline impute: NaN in X':   (lambda c: GaussianDiffusion(task='impute', preset='tiny').fit(np.where(c['X'] > 1, np.nan, c['X'])), ValueError, 'NaN values'),
    'steps 0':                     (lambda c: TimeBridge(preset='tiny').fit(c['X'], steps=0), ValueError, 'steps must be a positive'),
    'negative learning rate':      (lambda c: TimeBridge(preset='tiny', lr=-1.), ValueError, 'lr must be'),
    'seed not an int':             (lambda c: TimeBridge(preset='tiny', seed='a'), TypeError, 'seed must be'),
    'missing ratio 0':             (lambda c: TimeBridge(task='impute', preset='tiny', missing_ratio=0.), ValueError, 'missing_ratio'),
    'sample n not integral':       (lambda c: c['tb'].sample(2.5), ValueError, 'whole number'),
    'sample batch_size 0':         (lambda c: c['tb'].sample(3, batch_size=0), ValueError, 'batch_size must be'),
    'sample steps 0':              (lambda c: c['tb'].sample(3, steps=0), ValueError, 'steps must be'),
    'sample unknown setting':      (lambda c: c['tb'].sample(3, nfe=4), TypeError, 'takes steps'),
    'baseline nfe 0':              (lambda c: c['gd'].sample(3, nfe=0), ValueError, 'nfe must be'),
    'impute: everything hidden':   (lambda c: c['imp'].impute(np.full((1, 24, 2), np.nan)), ValueError, 'no observed value'),
    'impute: wrong channels':      (lambda c: c['imp'].impute(c['X'][:1, :, :1]), ValueError, '2 are expected'),
    'impute: shorter than window': (lambda c: c['imp'].impute(c['X'][:1, :10]), ValueError, 'shorter than the 24 steps'),
    'impute: quantiles reversed':  (lambda c: c['imp'].impute(c['X'][:1], quantiles=(0.9, 0.1)), ValueError, 'quantiles'),
    'random mask hides all':       (lambda c: random_mask((2, 3, 1), 1.0), ValueError, 'missing fraction'),
    'model file is junk':          (lambda c: TimeBridge.load(c['d'] / 'junk.pt'), ValueError, 'Could not read model file'),
    'model file of old version':   (lambda c: TimeBridge.load(c['d'] / 'old.pt'), ValueError, 'another version'),
    'model file missing':          (lambda c: TimeBridge.load(c['d'] / 'nope.pt'), FileNotFoundError, 'No model file'),
    'model of the other class':    (lambda c: GaussianDiffusion.load(c['d'] / 'tb.pt'), ValueError, 'matching class'),
    'checkpoint of old version':   (lambda c: TimeBridge(preset='tiny').fit(c['X'], checkpoint=c['d'] / 'old_ck.pt', resume=True), ValueError, 'another version'),
    'checkpoint is junk':          (lambda c: TimeBridge(preset='tiny').fit(c['X'], checkpoint=c['d'] / 'junk.pt', resume=True), ValueError, 'Could not read checkpoint'),
    'resume on other data':        (lambda c: TimeBridge(preset='tiny', steps=2, batch_size=8).fit(c['X'] + 1, checkpoint=c['d'] / 'ck.pt', resume=True), ValueError, 'different data'),
    'resume without checkpoint':   (lambda c: TimeBridge(preset='tiny').fit(c['X'], resume=True), ValueError, 'needs the checkpoint'),
    'CSV column of text':          (lambda c: from_csv(c['d'] / 'text.csv'), ValueError, "Column 'b'"),
    'CSV shorter than a window':   (lambda c: from_csv(c['d'] / 'short.csv'), ValueError, 'fewer than one window'),
    'array channel all NaN':       (lambda c: from_array(np.column_stack([np.ones(50), np.full(50, np.nan)])), ValueError, 'hold no value'),
    'array shorter than window':   (lambda c: from_array(np.ones((5, 2))), ValueError, 'fewer than one window'),
    'unknown dataset':             (lambda c: load_dataset('imagenet'), ValueError, 'Unknown dataset'),
    'Windows of wrong rank':       (lambda c: Windows(np.ones((4, 24)), _meta(4), MinMaxScaler(), ['a']), ValueError, 'shape (N, L, C)'),
    'unpaired X and Y':            (lambda c: PairedData(c['X'], c['X'][:, :12], _meta(16), None, None, [], []), ValueError, 'not paired'),
    'CLI: not data':               (lambda c: main(['fit', 'nosuchdata', '--out', str(c['d'] / 'x.pt')]), ValueError, 'neither a CSV file'),
    'CLI: sample from junk model': (lambda c: main(['sample', str(c['d'] / 'junk.pt'), '--n', '2', '--out', str(c['d'] / 's.npy')]), ValueError, 'Could not read model file'),
    'CLI: two model files':        (lambda c: main(['sample', str(c['d'] / 'tb.pt'), '--model', str(c['d'] / 'junk.pt'), '--n', '2', '--out', str(c['d'] / 's.npy')]), ValueError, 'Two model files'),
    'CLI: no model file':          (lambda c: main(['sample', '--n', '2', '--out', str(c['d'] / 's.npy')]), ValueError, 'pass --model MODEL'),
    'distributed without torchrun': (lambda c: Trainer(torch.nn.Linear(1, 1), None, torch.zeros(4, 1), distributed=True), ValueError, 'torchrun'),
}

@pytest.mark.parametrize('name', list(BAD))
def test_bad_input(ctx, name):
    call, exc, msg = BAD[name]
    before = sorted(p.name for p in ctx['d'].iterdir())
    with pytest.raises(exc, match=msg.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[')): call(ctx)
    assert sorted(p.name for p in ctx['d'].iterdir()) == before          # nothing written on failure


def test_cli_reports_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    "From a shell (argv from sys.argv) bad input is one line on stderr and exit status 2; from Python it raises."
    argv = ['fit', str(tmp_path / 'none.csv'), '--out', str(tmp_path / 'm.pt')]
    monkeypatch.setattr(sys, 'argv', ['tsbl'] + argv)
    assert main() == 2
    assert capsys.readouterr().err.strip() == f"tsbl fit: error: No such CSV file: {tmp_path / 'none.csv'}"
    with pytest.raises(FileNotFoundError): main(argv)
    assert list(tmp_path.iterdir()) == []


def test_cli_names_the_model_file_with_model_and_keeps_the_old_spellings(ctx, tmp_path):
    "`tsbl sample --model MODEL` as `tsbl impute` and `tsbl translate`; `tsbl sample MODEL` still works; `fit --model` is `--estimator`."
    from tsbridge_lambda.cli import _parser
    tb = str(ctx['d'] / 'tb.pt')
    assert main(['sample', '--model', tb, '--n', '3', '--out', str(tmp_path / 'a.npy'), '--quiet']) == 0
    assert main(['sample', tb, '--n', '3', '--out', str(tmp_path / 'b.npy'), '--quiet']) == 0
    assert main(['sample', tb, '--model', tb, '--n', '3', '--out', str(tmp_path / 'c.npy'), '--quiet']) == 0
    assert np.array_equal(np.load(tmp_path / 'a.npy'), np.load(tmp_path / 'b.npy'))
    assert np.array_equal(np.load(tmp_path / 'a.npy'), np.load(tmp_path / 'c.npy'))
    for flag in ('--estimator', '--model'):
        assert _parser().parse_args(['fit', 'sines', '--out', 'm.pt', flag, 'gaussian']).estimator == 'gaussian'


def test_ctrl_c_ends_a_command_with_one_line_and_exit_130(ctx, tmp_path, monkeypatch, capsys):
    "SIGINT while `tsbl sample` samples: no traceback but one line on stderr, exit status 130, and no output file."
    import tsbridge_lambda.samplers as S
    sampling, tvec = threading.Event(), S._tvec
    def spy(t, x): sampling.set(); return tvec(t, x)                   # the first denoiser call: sampling is under way
    monkeypatch.setattr(S, '_tvec', spy)
    def interrupt_when_sampling():
        if sampling.wait(120): os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt_when_sampling, daemon=True).start()
    out = tmp_path / 's.npy'
    old = signal.signal(signal.SIGINT, signal.default_int_handler)    # Python's Ctrl-C, as in a terminal: a shell's background
    try:                                                               # job (e.g. a CI runner) can start with SIGINT ignored
        assert main(['sample', '--model', str(ctx['d'] / 'tb.pt'), '--n', '20000', '--out', str(out), '--quiet']) == 130
    finally: signal.signal(signal.SIGINT, old)
    assert sampling.is_set()
    assert capsys.readouterr().err.splitlines() == ['tsbl sample: interrupted (Ctrl-C)']
    assert list(tmp_path.iterdir()) == []
