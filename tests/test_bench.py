"Speed work changes no result (batch splitting across cores), and the benchmark suite's interface."
import json, io, contextlib
import numpy as np, pytest, torch
from tsbridge_lambda.backbone import make_backbone
from tsbridge_lambda.schedules import VPSchedule
from tsbridge_lambda.bridge import VPBridge
from tsbridge_lambda.samplers import sample_heun, sample_ddim, karras_times, parallel_batches
from tsbridge_lambda.core import make_generator
from tsbridge_lambda.timebridge import TimeBridge, GaussianDiffusion
from tsbridge_lambda.bench import run_bench, synthetic_windows, time_call, format_table, SECTIONS
from tsbridge_lambda.cli import main

def _heun(denoiser, x_T, seed=1, steps=6):
    bridge = VPBridge(VPSchedule(0.2, 10.))
    return sample_heun(denoiser, x_T, karras_times(steps), bridge, generator=torch.Generator().manual_seed(seed),
                       disable=True, clip_denoised=1.)

@pytest.mark.parametrize('workers', [2, 3])
def test_split_network_sampling_matches_unsplit(workers):
    net = make_backbone('tiny', 3, 24, seed=0, cond_channels=3).eval()
    den = lambda x, t, x_T: net(x, t, cond=x_T)
    x_T = torch.randn(100, 24, 3, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    plain, split = _heun(den, x_T), _heun(parallel_batches(den, workers=workers, min_chunk=16), x_T)
    assert torch.allclose(split, plain, atol=1e-5, rtol=0), (split - plain).abs().max()
    assert not torch.equal(plain, _heun(den, x_T, seed=2))          # the comparison can fail: another seed differs
    assert torch.get_num_threads() == threads                        # the caller's thread count is untouched

def test_split_keeps_inference_mode_and_chunks_rows():
    seen = []
    def fn(x, t, extra=None):
        seen.append((len(x), torch.is_inference_mode_enabled(), None if extra is None else len(extra)))
        return x * 2 + t[:, None, None]
    x, t = torch.randn(130, 4, 1), torch.arange(130.)
    with torch.inference_mode(): out = parallel_batches(fn, workers=2, min_chunk=64)(x, t, extra=torch.zeros(130, 2))
    assert torch.equal(out, x * 2 + t[:, None, None])               # rows stay in order
    assert sorted(seen) == [(65, True, 65), (65, True, 65)]
    seen.clear(); parallel_batches(fn, workers=2, min_chunk=64)(x[:100], t[:100])
    assert seen == [(100, False, None)]                              # too small to split: one call

def _reference_timebridge_sample(est, n, seed):
    "The unsplit path: the same prior draw and sampler on one thread of calls, by hand."
    g = make_generator(seed, est.device)
    x_T = est.prior_.sample(n, g, torch.float32, est.device)
    net, c = est.model_.eval(), est.config
    x = sample_heun(lambda x, t, x_T: net(x, t, cond=x_T), x_T, karras_times(c['sample_steps']), est.bridge, churn=c['churn'],
                    generator=g, disable=True, clip_denoised=c['clip_denoised'])
    return est.scaler.inverse_transform(x.numpy()).astype(np.float32)

@pytest.fixture
def two_threads():
    "Estimators split batches by torch's thread count (CI runs with OMP_NUM_THREADS=1)."
    before = torch.get_num_threads(); torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)

def test_estimators_sample_as_the_unsplit_path(two_threads):
    X = synthetic_windows(64, 24, 2, seed=0)
    tb = TimeBridge(preset='tiny', device='cpu', seed=0, sample_steps=4).fit(X, steps=3, disable=True)
    sizes = []
    hook = tb.model_.register_forward_hook(lambda m, a, out: sizes.append(len(out)))
    fast = tb.sample(130, seed=5, batch_size=130, disable=True)
    hook.remove()
    assert set(sizes) == {65}                                        # the batch was split in two
    np.testing.assert_allclose(fast, _reference_timebridge_sample(tb, 130, 5), atol=1e-4, rtol=0)
    gd = GaussianDiffusion(preset='tiny', device='cpu', seed=0, n_steps=50).fit(X, steps=3, disable=True)
    a = gd.sample(130, seed=5, batch_size=130, nfe=7, disable=True)
    from tsbridge_lambda.loss import ddpm_time
    g = make_generator(5); sch = gd.schedule
    noise = torch.randn((130, 24, 2), generator=g)
    ref = sample_ddim(lambda x, i: gd.model_(x, ddpm_time(i, sch.n_steps)), noise, sch, steps=7, generator=g, disable=True, clip_denoised=1.)
    np.testing.assert_allclose(a, gd.scaler.inverse_transform(ref.numpy()), atol=1e-4, rtol=0)

def test_time_call_and_bad_arguments():
    r = time_call(lambda: None, repeats=3, warmup=0)
    assert r['repeats'] == 3 and r['min'] <= r['median'] <= r['max']
    with pytest.raises(ValueError, match='Unknown sections'): run_bench(only=('speed',))
    with pytest.raises(ValueError, match='threads'): run_bench(only=('fwd_bwd',), threads=0)

def test_bench_cli_json_keys():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): rc = main(['bench', '--json', '--quick', '--only', 'fwd_bwd', 'lambda', '--device', 'cpu'])
    b = json.loads(buf.getvalue())
    assert rc == 0 and b['format'] == 'tsbridge_lambda.bench/1'
    fb = {'fwd_bwd.sines.backbone.ms', 'fwd_bwd.etth.backbone.ms'}
    lam = {'lambda.tiny.paired.s_per_step', 'lambda.tiny.paired.peak_mb', 'lambda.tiny.paired.rise_mb'}
    assert set(b['results']) == fb | lam, set(b['results'])          # every section asked for, LAMBDA's row included
    assert 'skipped' not in b
    assert all(len(k.split('.')) == 4 for k in b['results']) and {'fwd_bwd.sines.backbone', 'fwd_bwd.etth.backbone'} <= set(b['load'])
    assert {'torch', 'threads', 'device', 'cpus'} <= set(b['machine'])
    assert 'fwd_bwd' in format_table(b)

# -- tsbl bench --compare: the argument checks and the table, without a clone of the published code ---------------
import tsbridge_lambda.bench as B
import tsbridge_lambda.bench_compare as BC   # where the comparison lives; bench re-exports it

def _fake_checkout(root, config='model:\n  params:\n    seq_length: 24\n    feature_size: 5\n'):
    for f in B.PUBLISHED_FILES: (root / f).parent.mkdir(parents=True, exist_ok=True); (root / f).touch()
    (root / 'Config').mkdir(); (root / 'Config' / 'sines.yaml').write_text(config)
    return root

def test_compare_refuses_a_folder_that_is_not_a_checkout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'not a checkout of the published TimeBridge code: it has no main.py.*git clone'):
        B.compare_published(tmp_path)
    with pytest.raises(FileNotFoundError, match='is not a folder'): B.compare_published(tmp_path / 'nowhere')
    _fake_checkout(tmp_path)
    with pytest.raises(ValueError, match=r'no Config/etth.yaml; it has configs for: sines'): B.compare_published(tmp_path, 'etth')
    with pytest.raises(ValueError, match='steps must be a whole number'): B.compare_published(tmp_path, steps=0)
    with pytest.raises(FileNotFoundError, match='not a checkout'): main(['bench', '--compare', str(tmp_path / 'Config')])
    with pytest.raises(ValueError, match='--windows sets up --compare PATH'): main(['bench', '--windows', '8'])

def test_compare_names_the_packages_to_install(monkeypatch):
    assert B.missing_modules(['json', 'no_such_module_tsbl']) == ['no_such_module_tsbl']     # looked up in a fresh interpreter
    monkeypatch.setattr(BC, 'missing_modules', lambda mods, python=None: ['ema_pytorch', 'yaml', 'numba'])
    with pytest.raises(RuntimeError, match='needs ema-pytorch, pyyaml to train and sample.*pip install ema-pytorch pyyaml'):
        B.check_published_packages(stub_unused=True)
    monkeypatch.setattr(BC, 'missing_modules', lambda mods, python=None: ['statsmodels', 'numba'])
    with pytest.raises(RuntimeError, match='pip install statsmodels numba, or pass --stub-unused'): B.check_published_packages()
    assert B.check_published_packages(stub_unused=True) == ['statsmodels', 'numba']

def test_compare_table_from_fake_timings(tmp_path):
    _fake_checkout(tmp_path)
    seen = []
    def fake(side, spec):
        seen.append((side, spec['threads'], np.load(spec['data']).shape))
        wps, ms = (500., 50.) if side == 'published' else (1000., 20.)
        return {'train': {'windows_per_s': wps, 's_per_step': 0.5, 'steps': 2, 'warmup': 1, 'batch': 256, 'load': [1.5, 1.75]},
                'sample': {'ms_per_window': ms, 'n': 8, 'repeats': 1, 'nfe': 119.0, 'load': [1.75, 2.0]}}
    r = B.compare_published(tmp_path, steps=2, warmup=1, n=8, threads=1, device='cpu', n_train=32, run=fake)
    assert seen == [('published', 1, (32, 24, 5)), ('ours', 1, (32, 24, 5))]      # one after the other, same data and threads
    assert r['speedup'] == {'train': 2.0, 'sample': 2.5} and r['format'] == B.COMPARE_FORMAT
    table = B.format_compare(r)
    assert 'training windows/s' in table and '2.00x' in table and '2.50x' in table and '1.50-1.75' in table
    json.dumps(r)                                                                   # --json / --out can write it

def test_bench_reexports_the_comparison():
    assert set(BC.__all__) <= set(B.__all__) and all(getattr(B, n) is getattr(BC, n) for n in BC.__all__)
    assert B._stand_in is BC._stand_in                                          # tools/published_generation_run.py imports it from bench
