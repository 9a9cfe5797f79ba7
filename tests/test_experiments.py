"""The experiment notebooks (nbs/experiments): one `parameters` cell each, skipped by nbdev_test, shipped in the
wheel byte for byte, `tsbl run` end to end on a tiny override, and `report` on fake runs."""
import json, math, re, shutil, subprocess, sys, zipfile
from pathlib import Path

import numpy as np
import pytest

from tsbridge_lambda import experiments as ex
from tsbridge_lambda.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / 'nbs' / 'experiments'
NOTEBOOKS = sorted(EXP.glob('*.ipynb'))
RUNNABLE = [p for p in NOTEBOOKS if p.stem != 'results']
COMMON = {'preset', 'steps', 'batch', 'seeds', 'device', 'out', 'overrides'}


def test_there_are_experiment_notebooks():
    assert ex.experiments_dir() == EXP
    assert {'timebridge_unconditional', 'timebridge_trend', 'timebridge_imputation', 'timebridge_ablations',
            'timebridge_efficiency', 'timebridge_length64', 'lambda_gait', 'lambda_dynamics', 'lambda_probes',
            'lambda_ablation'} <= set(ex.list_experiments())


@pytest.mark.parametrize('nb', RUNNABLE, ids=lambda p: p.stem)
def test_one_parameters_cell_with_the_common_parameters(nb):
    cells = json.loads(nb.read_text())['cells']
    tagged = [c for c in cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
    assert len(tagged) == 1, f'{nb.name}: {len(tagged)} cells tagged parameters'
    assert COMMON <= set(ex.notebook_parameters(nb)), set(ex.notebook_parameters(nb))
    assert 'datasets' in ex.notebook_parameters(nb)
    code = ''.join(''.join(c['source']) for c in cells if c['cell_type'] == 'code')
    assert 'rec.finish()' in code and 'default_exp' not in code and '#| export' not in code   # same ending, exports nothing


def test_notebook_parameters_rejects_two_tagged_cells(tmp_path):
    nb = json.loads(NOTEBOOKS[0].read_text())
    cell = next(c for c in nb['cells'] if 'parameters' in c.get('metadata', {}).get('tags', []))
    nb['cells'].append(cell)
    (tmp_path / 'x.ipynb').write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="2 cells tagged 'parameters'"): ex.notebook_parameters(tmp_path / 'x.ipynb')


def test_nbdev_test_skips_the_experiments():
    from nbdev.test import _keep_file, test_nb
    assert (EXP / '.notest').exists()
    assert not any(_keep_file(p, '.notest') for p in NOTEBOOKS)          # nbdev_test's own filter drops them
    for nb in NOTEBOOKS:                                                    # and each one says skip_exec itself
        ok, seconds = test_nb(nb)
        assert ok and seconds == 0, nb.name


def test_report_from_fake_results(tmp_path):
    rows = [dict(table='1', dataset='etth', method='TimeBridge-GP', metric='context_fid', mean=0.5, half_width=0.1),
            dict(table='1', dataset='etth', method='Linear interpolation', metric='context_fid', mean=2., half_width=float('nan'))]
    for i in range(2):
        d = tmp_path / f'run{i}'; d.mkdir()
        (d / 'results.json').write_text(json.dumps(dict(experiment=f'exp{i}', paper='timebridge', params={}, rows=rows,
                                                        settings={'preset': 'quick', 'steps': 3}, wall_seconds=1.5, machine={})))
    df = ex.collect(tmp_path)
    assert len(df) == 4 and set(df.experiment) == {'exp0', 'exp1'}
    gp = df[df.method == 'TimeBridge-GP'].iloc[0]
    assert (gp.ours, gp.published, gp.published_hw) == (0.5, 0.067, 0.007)
    assert math.isnan(df[df.method == 'Linear interpolation'].published.iloc[0])
    text = ex.report([tmp_path], out=tmp_path / 'report.md')
    assert text == (tmp_path / 'report.md').read_text()
    assert '| etth | TimeBridge-GP | 0.5000 ± 0.1000 | 0.0670 ± 0.0070 |' in text
    assert text.count('### TimeBridge Table 1') == 2 and 'wall time 1.5 s' in text
    (tmp_path / 'run1' / 'results.json').write_text('{"rows": []}')
    with pytest.raises(ValueError, match="needs 'experiment' and 'rows'"): ex.collect(tmp_path)
    with pytest.raises(FileNotFoundError): ex.report([tmp_path / 'nothing'])


def test_wheel_ships_the_notebooks(tmp_path):
    # built from a fresh copy of what setup.py reads, so no stale build/ folder of the checkout can hide a difference
    src = tmp_path / 'src'
    shutil.copytree(ROOT / 'tsbridge_lambda', src / 'tsbridge_lambda', ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copytree(EXP, src / 'nbs' / 'experiments', ignore=shutil.ignore_patterns('results', '.*'))
    for f in ('setup.py', 'settings.ini', 'README.md', 'LICENSE', 'MANIFEST.in'): shutil.copy(ROOT / f, src / f)
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path), str(src)],
                   check=True, capture_output=True)
    whl, = tmp_path.glob('tsbridge_lambda-*.whl')
    z = zipfile.ZipFile(whl)
    shipped = {Path(n).name: z.read(n) for n in z.namelist() if n.startswith(f'tsbridge_lambda/{ex.PACKAGED_DIR}/')}
    assert shipped == {p.name: p.read_bytes() for p in NOTEBOOKS}, 'the wheel must carry nbs/experiments/*.ipynb unchanged'
    # installed without the source checkout, the module finds the packaged copies
    site = tmp_path / 'site'; z.extractall(site)
    code = 'import sys; sys.path.insert(0, sys.argv[1]); from tsbridge_lambda import experiments as e; print(e.experiments_dir())'
    out = subprocess.run([sys.executable, '-c', code, str(site)], check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert out.strip() == str(site / 'tsbridge_lambda' / ex.PACKAGED_DIR)


TINY = "{repeats: 1, n_eval: 48, max_train: 64, fid_iters: 3, disc_iters: 3, pred_iters: 3, sample_steps: 2}"


def test_tsbl_run_end_to_end(tmp_path, capsys):
    "The smallest table with a tiny override through papermill (about 20 s, most of it the kernel's start)."
    pytest.importorskip('papermill')
    out = tmp_path / 'trend'
    assert main(['run', 'timebridge_trend', '-p', 'datasets', '[etth]', '-p', 'trends', '[linear]', '-p', 'steps', '3',
                 '-p', 'overrides', TINY, '--out', str(out)]) == 0
    res = json.loads((out / 'results.json').read_text())
    assert res['settings']['steps'] == 3 and res['settings']['repeats'] == 1 and res['params']['datasets'] == ['etth']
    assert {(r['method'], r['metric']) for r in res['rows']} == {(m, k) for m in ('Trend baseline', 'TimeBridge')
                                                                 for k in ('context_fid', 'correlational', 'discriminative', 'predictive')}
    assert (out / 'results.md').exists() and (out / 'etth_linear.png').stat().st_size > 1000
    assert (out / 'timebridge_trend.ipynb').exists()                       # the executed copy, for provenance
    assert 'Table 2' in capsys.readouterr().out
    assert main(['report', str(out)]) == 0 and '0.0028 ± 0.0003' in capsys.readouterr().out   # the paper's figure beside ours


def test_tsbl_run_rejects_unknown_names_and_parameters(capsys):
    with pytest.raises(ValueError, match='Unknown experiment'): main(['run', 'table99'])
    with pytest.raises(ValueError, match='has no parameters'): main(['run', 'timebridge_trend', '-p', 'epochs', '3'])
    assert main(['run', '--list']) == 0 and 'timebridge_unconditional' in capsys.readouterr().out


def test_lambda_presets_and_published_tables():
    q = ex.settings('quick', paper='lambda', steps=7)
    assert q['steps'] == 7 and q['net'] == 'tiny' and ex.settings('paper', paper='lambda')['net'] == 'paper'
    with pytest.raises(TypeError, match='Unknown settings'): ex.settings('quick', paper='lambda', sample_steps=3)
    with pytest.raises(ValueError, match="paper must be"): ex.settings('quick', paper='diffusion')
    lam = {k: v for k, v in ex.PUBLISHED.items() if k[0] == 'lambda'}
    assert len(lam) == 6 * 2 * 3 + 6 * 2 + 5 * 2 + 2 * 3                  # Tables 1, 2, 3, 4 as printed
    assert lam['lambda', '1', 'angles-grf Y given X', 'LAMBDA', 'fid'] == (5.8, 3.6)
    assert lam['lambda', '2', 'lorenz Y given X', 'LAMBDA', 'mse'][0] == 0.004
    assert lam['lambda', '4', 'angles-moments X given Y', 'w/o L_cov', 'mse'] == (0.17, 0.03)


def test_lambda_translation_rows_tiny(tmp_path):
    "The loop of LAMBDA's Tables 1, 2, 4 on a tiny Lorenz pair: one row per (direction, variant, metric), the paper beside it."
    s = ex.settings('quick', paper='lambda', steps=3, n_trajectories=20, seq_len=16, max_test=3, n_samples=2, nfe=3, pred_iters=2)
    rec = ex.Recorder('lambda_tiny', 'lambda', {}, s, out=tmp_path)
    data, shown = ex.translation_rows(rec, '2', 'lorenz', {'w/o align': {'align': 'none'}, 'LAMBDA': {'align': 'lambda'}}, s, seeds=(0, 1), metrics=('mse',))
    main = [r for r in rec.rows if r['table'] == '2']
    assert len(main) == 4 and all(r['seeds'] == 2 and math.isfinite(r['half_width']) for r in main)
    paired = [r for r in rec.rows if r['table'] == '2 paired']                # LAMBDA minus w/o align, seed by seed
    assert len(paired) == 2 and all(r['method'] == 'LAMBDA − w/o align' and r['verdict'] in ('better', 'worse', 'indistinguishable') for r in paired)
    assert all(len(r['values']['LAMBDA']) == len(r['values']['w/o align']) == 2 for r in paired)    # the per-seed scores, kept for audit
    assert np.mean(paired[0]['values']['LAMBDA']) - np.mean(paired[0]['values']['w/o align']) == pytest.approx(paired[0]['mean'])
    mse = lambda m, d: [r['mean'] for r in main if r['method'] == m and r['dataset'] == d][0]
    assert paired[0]['mean'] == pytest.approx(mse('LAMBDA', paired[0]['dataset']) - mse('w/o align', paired[0]['dataset']))
    diag = {(r['method'], r['metric']) for r in rec.rows if r['table'] == '2 diagnostics'}
    assert {('LAMBDA', 'lambda'), ('LAMBDA', 'var_x'), ('w/o align', 'var_y'), ('w/o align', 'acc'), ('LAMBDA', 'pos_acc')} <= diag and ('w/o align', 'lambda') not in diag
    keys = sorted(f.name for f in (tmp_path / 'cache').glob('lorenz-*-seed*.json') if not f.name.endswith('.array.json'))
    assert len(keys) == 4 and all(re.fullmatch(r'lorenz-(w_o_align|LAMBDA)-seed[01]-[0-9a-f]{10}\.json', k) for k in keys), keys   # config fingerprint in the key
    assert not list((tmp_path / 'cache').glob('*.ckpt.pt'))                  # checkpoints go once a model is finished
    kept = ex.model_file(tmp_path / 'cache', 'lorenz', ex.make_paired('lambda', s, seed=1), data)   # each fitted pair kept for other runs
    assert kept.is_file() and len(list((tmp_path / 'cache').glob('lorenz-*.model.pt'))) == 4
    assert ex.model_file(tmp_path / 'cache', 'lorenz', ex.make_paired('lambda', s, seed=2), data) != kept    # another seed: another file
    from tsbridge_lambda.paired import PairedDiffusion
    m = PairedDiffusion.load(kept)
    assert m.config['seed'] == 1 and m.config['align'] == 'lambda' and np.isfinite(m.encode(data.test.X[:2])).all()
    real, fake = shown['y|x', 'LAMBDA']
    assert real.shape == fake.shape == (3, 16, 2)                          # Y = (y, z) of 3 test windows
    rec.figure(ex.trajectories_figure(data, shown, 'lorenz'), 'lorenz.png')
    res = rec.finish()
    df = ex.collect(tmp_path)
    assert df.loc[(df.dataset == 'lorenz Y given X') & (df.method == 'LAMBDA') & (df.metric == 'mse'), 'published'].item() == 0.004
    md = ex.run_markdown(res)
    assert 'Partial run' not in md and 'Partial run' in ex.run_markdown({**res, 'complete': False})
    assert '| lorenz X given Y | LAMBDA |' in md and (tmp_path / 'lorenz.png').stat().st_size > 1000
    assert '### LAMBDA Table 2 paired' in md and 'verdict (95 %)' in md and '| lorenz X given Y | LAMBDA − w/o align |' in md
    assert (tmp_path / 'lorenz_training.png').stat().st_size > 1000
    from unittest import mock                                              # a second run in the folder reads every model back
    rec2 = ex.Recorder('lambda_tiny', 'lambda', {}, s, out=tmp_path)
    from tsbridge_lambda.paired import PairedDiffusion
    with mock.patch.object(PairedDiffusion, 'fit', side_effect=AssertionError('retrained a finished model')):
        _, shown2 = ex.translation_rows(rec2, '2', 'lorenz', {'w/o align': {'align': 'none'}, 'LAMBDA': {'align': 'lambda'}}, s, seeds=(0, 1), metrics=('mse',))
    assert [(r['dataset'], r['method'], r['metric'], r['mean']) for r in rec2.rows] == [(r['dataset'], r['method'], r['metric'], r['mean']) for r in rec.rows]
    assert np.array_equal(shown2['y|x', 'LAMBDA'][1], fake)


def test_translation_scores_train_the_fid_encoder_once_per_seed_and_direction():
    from unittest import mock
    from tsbridge_lambda.paired import Translation
    from tsbridge_lambda.metrics import paired_fid
    from tsbridge_lambda.ts2vec import TS2Vec
    rng = np.random.default_rng(0)
    real = np.cumsum(rng.standard_normal((40, 24, 2)), 1) * 3 + 5
    fakes = [real + rng.standard_normal(real.shape) * k for k in (0.5, 2.)]
    s = {'fid_iters': 10, 'device': 'cpu'}
    fit, cache = TS2Vec.fit, {}
    with mock.patch.object(TS2Vec, 'fit', autospec=True, side_effect=fit) as spy:
        scores = [ex.translation_scores(None, real, Translation(f, f, f, f[None]), 'x|y', s, ('fid',), seed=0, encoders=cache)['fid']
                  for f in fakes]
    assert spy.call_count == 1 and list(cache) == [(0, 'x|y')]                  # two methods, one encoder
    assert scores == [paired_fid(real, f, n_iters=10, seed=0, device='cpu', disable=True) for f in fakes]   # as if each trained its own
    assert scores[0] < scores[1]


def test_medium_preset_has_every_setting_of_the_others():
    assert set(ex.PRESETS['medium']) == set(ex.PRESETS['quick']) == set(ex.PRESETS['paper'])
    s = ex.PRESETS['medium']
    assert s['steps'] == 5000 and s['backbone'] is None and s['batch_size'] is None      # the dataset's network and batch


def test_imputation_run_tiny_with_baselines(tmp_path):
    "Issue 17: TimeBridge, linear interpolation and a PyPOTS baseline on the same masks, on both scales (etth only, tiny)."
    pytest.importorskip('papermill')
    from tsbridge_lambda.conditional import pypots_available
    params = dict(datasets=['etth'], ratios=[0.5], steps=5, baseline_steps=2, baselines=['SAITS'],
                  overrides={'max_train': 32, 'max_test': 4, 'repeats': 2, 'impute_samples': 2, 'sample_steps': 5},
                  baseline_sizes={'SAITS': {'n_layers': 1, 'd_model': 16, 'n_heads': 2, 'd_k': 8, 'd_v': 8, 'd_ffn': 16}})
    res = ex.run('timebridge_imputation', params, out=tmp_path / 'imp')
    methods = {'TimeBridge', 'Linear interpolation'} | ({'SAITS'} if pypots_available() else set())
    assert {(r['dataset'], r['method'], r['metric']) for r in res['rows']} == {('etth/50%', m, k) for m in methods
                                                                               for k in ('mse', 'mae', 'mse_01', 'mae_01')}
    assert any('SAITS' in n for n in res['notes']) and (tmp_path / 'imp' / 'etth_imputation.png').exists()
    if not pypots_available(): return
    cache = tmp_path / 'imp' / 'cache'                                     # a baseline keeps no checkpoint: once trained it imputes all its cells,
    (cache / 'etth-0.5-rep0-SAITS.npy').unlink(); (cache / 'etth-0.5-rep0-SAITS.array.json').unlink()   # so a lost cell costs one retraining
    kept = {f.name: f.stat().st_mtime_ns for f in cache.iterdir()}
    again = ex.run('timebridge_imputation', params, out=tmp_path / 'imp')
    now = {f.name: f.stat().st_mtime_ns for f in cache.iterdir()}
    assert (cache / 'etth-0.5-rep0-SAITS.npy').exists() and all(now[k] == v for k, v in kept.items() if k != 'settings.json')
    assert any(re.search(r'SAITS for ratio all trained in .* epochs = \d+ steps of 32 windows, 2 asked', n) for n in again['notes'])


def test_imputation_run_resumes_without_recomputing(tmp_path):
    "A finished imputation run re-run in its folder reads every model and imputation back: same table, no cache file rewritten."
    pytest.importorskip('papermill')
    params = dict(datasets=['etth'], ratios=[0.25, 0.5], steps=5, baselines=[],
                  overrides={'max_train': 32, 'max_test': 4, 'repeats': 2, 'impute_samples': 2, 'sample_steps': 5, 'checkpoint_every': 2})
    first = ex.run('timebridge_imputation', params, out=tmp_path / 'imp')
    cache = tmp_path / 'imp' / 'cache'
    kept = {f.name: f.stat().st_mtime_ns for f in cache.iterdir()}
    assert sum(f.endswith('.npy') for f in kept) == 4 and 'etth-TimeBridge-all.model.pt' in kept     # 2 ratios x 2 mask draws
    again = ex.run('timebridge_imputation', params, out=tmp_path / 'imp')
    assert {f.name: f.stat().st_mtime_ns for f in cache.iterdir()} == kept
    rows = lambda res: sorted((r['dataset'], r['method'], r['metric'], r['mean']) for r in res['rows'])
    assert rows(again) == rows(first)


def test_results_name_the_code_of_every_cached_part(tmp_path):
    "A resumed run can hold parts computed by earlier code: each cached record carries its commit and results.json lists them all."
    rec = ex.Recorder('provenance', 'timebridge', {}, ex.settings('quick'), out=tmp_path)
    assert rec.cached('a', lambda: 1)['commit'] == rec.commit == ex.git_commit()
    (rec.cache / 'b.json').write_text(json.dumps({'value': 2, 'seconds': 0.1, 'load_average': 1.0, 'finished': 'then'}))   # written before commits were stamped
    assert rec.cached('b', lambda: 3)['value'] == 2
    res = rec.finish()
    assert res['machine']['git_commit'] == rec.commit and 'unrecorded' in res['code_commits']
    assert 'cached parts from commits' in ex.run_markdown(res)


def test_a_resumed_run_must_match_the_protocol(tmp_path):
    "Parameters beyond the preset (e.g. the split) are part of what a run folder's cache was made with."
    s = ex.settings('quick')
    ex.Recorder('proto', 'timebridge', {}, s, out=tmp_path, protocol={'split': 'chronological'}).cached('x', lambda: 1)
    with pytest.raises(ValueError, match="_protocol"):
        ex.Recorder('proto', 'timebridge', {}, s, out=tmp_path, protocol={'split': 'paper'})
    f = tmp_path / 'cache' / 'settings.json'                               # a cache written before protocols were recorded
    f.write_text(json.dumps({k: v for k, v in json.loads(f.read_text()).items() if k != '_protocol'}))
    ex.Recorder('proto', 'timebridge', {}, s, out=tmp_path, protocol={'split': 'paper'})   # adopts this run's protocol
    assert json.loads(f.read_text())['_protocol'] == {'split': 'paper'}
    with pytest.raises(ValueError, match="_protocol"):
        ex.Recorder('proto', 'timebridge', {}, s, out=tmp_path, protocol={'split': 'chronological'})


def test_experiments_reexports_the_tables_modules():
    "The notebooks' `from tsbridge_lambda.experiments import *` gives every name of the LAMBDA and TimeBridge table modules."
    from tsbridge_lambda import experiments_lambda as EL, experiments_timebridge as ET
    for M in (EL, ET):
        assert set(M.__all__) <= set(ex.__all__) and all(getattr(ex, n) is getattr(M, n) for n in M.__all__)


def test_samples_figure_spreads_windows_over_the_set():
    "The panels show n windows spread over each set, not the first n (which, for a stride-1 series, overlap)."
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    real = np.arange(100, dtype=float)[:, None, None] * np.ones((1, 24, 2))         # window i is the constant i
    fig = ex.samples_figure(real, {'m': real[:5]}, n=20)
    shown = sorted(line.get_ydata()[0] for line in fig.axes[0].lines)
    assert len(shown) == 20 and shown[0] == 0 and shown[-1] == 99                   # first and last windows both drawn
    assert len(fig.axes[1].lines) == 5                                              # a set smaller than n: all of it
    plt.close(fig)
