"Mixed precision (bfloat16 autocast) and torch.compile with fallback: what they change, what they leave alone, bad settings."
import warnings
from unittest import mock
import numpy as np, pytest, torch
from torch import nn
from tsbridge_lambda.core import autocast, check_precision, Compiled
from tsbridge_lambda.train import Trainer
from tsbridge_lambda.timebridge import TimeBridge, GaussianDiffusion
from tsbridge_lambda.paired import PairedDiffusion
from tsbridge_lambda.cli import main

@pytest.fixture(scope='module')
def windows():
    t, rng = np.linspace(0, 4 * np.pi, 16), np.random.default_rng(0)
    return np.sin(t[None, :, None] * rng.uniform(0.5, 1.5, (64, 1, 2)) + rng.uniform(0, 6, (64, 1, 2))).astype(np.float32)

@pytest.fixture(scope='module')
def tb(windows):
    return TimeBridge(prior='gaussian', preset='tiny', steps=30, batch_size=16, warmup=5).fit(windows, disable=True)

def test_autocast_contexts():
    lin = nn.Linear(4, 4)
    with autocast('cpu', 'bf16'): assert lin(torch.randn(2, 4)).dtype == torch.bfloat16
    assert lin(torch.randn(2, 4)).dtype == torch.float32                     # nothing leaks out of the context
    with autocast('cpu', 'fp32'): assert lin(torch.randn(2, 4)).dtype == torch.float32
    for bad in ('fp16', 'half', 'bfloat16', None):
        with pytest.raises(ValueError, match='precision must be one of'): check_precision(bad)

def test_trainer_bf16_runs_the_forward_in_bfloat16_and_keeps_float32_state():
    seen = []
    data = torch.randn(64, 5)
    def loss_fn(model, batch, g):
        out = model(batch[:, :4]); seen.append(out.dtype)
        return (out[:, 0] - batch[:, 4])**2
    torch.manual_seed(0)
    tr = Trainer(nn.Linear(4, 1), loss_fn, data, batch_size=16, warmup=2, precision='bf16', device='cpu').fit(20, disable=True)
    assert set(seen) == {torch.bfloat16}
    assert tr.model.weight.dtype == torch.float32 and all(np.isfinite(tr.history))
    assert all(v.dtype == torch.float32 for s in tr.opt.state.values() for v in s.values() if v.is_floating_point() and v.ndim)
    with pytest.raises(ValueError, match="use 'bf16'"): Trainer(nn.Linear(4, 1), loss_fn, data, precision='fp16')

def test_fp32_default_is_unchanged_by_the_wrappers(tb):
    a = tb.sample(40, seed=0, disable=True)
    tb.precision = 'bf16'; b = tb.sample(40, seed=0, disable=True); tb.precision = 'fp32'
    assert np.array_equal(tb.sample(40, seed=0, disable=True), a)           # back to fp32: bit for bit
    assert np.isfinite(b).all() and not np.array_equal(a, b)                # bf16 really ran, and only moved the samples
    sa, sb = tb.scaler.transform(a), tb.scaler.transform(b)
    other = tb.scaler.transform(tb.sample(40, seed=1, disable=True))
    assert np.median(np.abs(sb - sa)) < 0.5 * np.median(np.abs(other - sa))

def test_compile_falls_back_with_one_warning_and_identical_samples(tb):
    ref = tb.sample(30, seed=2, disable=True)
    tb.compile, tb._compiled = True, None
    try:
        with mock.patch.object(torch, 'compile', side_effect=RuntimeError('Inductor needs a C++ compiler')), \
             warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            out = tb.sample(30, seed=2, disable=True)
            out2 = tb.sample(30, seed=2, disable=True)
        assert np.array_equal(out, ref) and np.array_equal(out2, ref)
        assert [str(x.message) for x in w if 'torch.compile failed' in str(x.message)] != []
        assert sum('torch.compile failed' in str(x.message) for x in w) == 1   # once, not once per network call
    finally: tb.compile = False

def test_compile_failing_at_the_first_call_falls_back_and_splits_again(tb):
    ref = tb.sample(30, seed=2, disable=True)
    def lazy_compile(m, **kw):
        def run(*a, **k): raise RuntimeError('BackendCompilerFailed: inductor')
        return run
    tb.compile, tb._compiled = True, None                 # a fresh attempt (an earlier test left a failed one)
    try:
        with mock.patch.object(torch, 'compile', side_effect=lazy_compile), warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            assert np.array_equal(tb.sample(30, seed=2, disable=True), ref)
        assert sum('BackendCompilerFailed' in str(x.message) for x in w) == 1 and tb._compiled.error is not None
        calls = []
        with mock.patch('tsbridge_lambda.estimator.parallel_batches', side_effect=lambda fn, workers=None: calls.append(workers) or fn):
            tb._sampling_net()
        assert calls == [None]                           # the plain network is split across cores again
    finally: tb.compile, tb._compiled = False, None
    with pytest.raises(TypeError, match='compile must be True or False'): TimeBridge(preset='tiny', compile='yes')

def test_compiled_passes_through_a_working_compile_and_real_errors():
    lin = nn.Linear(3, 2)
    calls = []
    def fake_compile(m, **kw):
        calls.append(kw)
        return lambda *a, **k: m(*a, **k) * 1                               # a "compiled" module that works
    with mock.patch.object(torch, 'compile', side_effect=fake_compile):
        c = Compiled(lin, mode='reduce-overhead'); x = torch.randn(4, 3)
        assert torch.equal(c(x), lin(x)) and c.error is None and calls == [{'mode': 'reduce-overhead'}]
        with warnings.catch_warnings():
            warnings.simplefilter('error')                                   # no "compile failed" warning for a bad input
            with pytest.raises(RuntimeError, match='shapes cannot be multiplied'): c(torch.randn(4, 5))
        assert c.error is None and torch.equal(c(x), lin(x)) and len(calls) == 1   # still compiled, compiled once

def test_precision_is_not_saved_and_load_takes_it(tb, tmp_path):
    tb.precision = 'bf16'
    try: tb.save(tmp_path / 'm.pt')
    finally: tb.precision = 'fp32'
    back = TimeBridge.load(tmp_path / 'm.pt')
    assert back.precision == 'fp32' and not back.compile and 'precision' not in back.config
    back16 = TimeBridge.load(tmp_path / 'm.pt', precision='bf16', compile=True)
    assert back16.precision == 'bf16' and back16.compile
    with pytest.raises(ValueError, match='precision must be one of'): TimeBridge.load(tmp_path / 'm.pt', precision='fp8')
    with pytest.raises(ValueError, match="use 'bf16'"): GaussianDiffusion(preset='tiny', precision='fp16')

def test_gaussian_and_paired_sample_in_bf16(windows):
    gd = GaussianDiffusion(preset='tiny', steps=10, batch_size=16, warmup=2, n_steps=20, precision='bf16').fit(windows, disable=True)
    assert gd.trainer_.precision == 'bf16' and np.isfinite(gd.sample(8, seed=0, nfe=5, disable=True)).all()
    X, Y = windows[:, :, :1], windows[:, :, 1:] ** 2
    pair = PairedDiffusion('lambda', preset='tiny', steps=10, batch_size=16, warmup=2, precision='bf16').fit(X, Y, disable=True)
    assert pair.trainer_.precision == 'bf16'
    y16 = pair.predict_y(X[:4], nfe=5, seed=0, disable=True).mean
    pair.precision = 'fp32'; y32 = pair.predict_y(X[:4], nfe=5, seed=0, disable=True).mean
    assert np.isfinite(y16).all() and y16.shape == y32.shape == (4, 16, 1)
    # bf16 ran, and only nudged the result: a typical entry moves little (the max is no measure here: after 10 steps the tiny
    # pair's translations sit at the clamp of the target range, and a nudge can carry one entry from one end to the other)
    assert not np.array_equal(y16, y32) and np.median(np.abs(y16 - y32)) < 0.1 * np.ptp(y32)
    with pytest.raises(ValueError, match="use 'bf16'"): PairedDiffusion(precision='fp16')

def test_cli_precision_flags(tb, tmp_path, capsys):
    tb.save(tmp_path / 'm.pt')
    seen = {}
    real_load = TimeBridge.load.__func__
    def spy(cls, path, device=None, precision='fp32', compile=False):
        seen.update(precision=precision, compile=compile); return real_load(cls, path, device, precision, compile)
    with mock.patch.object(TimeBridge, 'load', classmethod(spy)), mock.patch.object(torch, 'compile', side_effect=RuntimeError('off')), \
         warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert main(['sample', str(tmp_path / 'm.pt'), '--n', '4', '--out', str(tmp_path / 'c.npy'), '--precision', 'bf16', '--compile', '--quiet']) == 0
    assert seen == {'precision': 'bf16', 'compile': True}
    assert main(['sample', str(tmp_path / 'm.pt'), '--n', '4', '--out', str(tmp_path / 's.npy'), '--precision', 'bf16', '--quiet']) == 0
    assert np.load(tmp_path / 's.npy').shape == (4, 16, 2)
    with pytest.raises(SystemExit) as e: main(['sample', str(tmp_path / 'm.pt'), '--n', '4', '--out', str(tmp_path / 't.npy'), '--precision', 'fp16'])
    assert e.value.code == 2 and 'fp16' in capsys.readouterr().err
