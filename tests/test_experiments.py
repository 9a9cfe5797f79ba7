"""The experiment notebooks (nbs/experiments): one `parameters` cell each, skipped by nbdev_test, shipped in the
wheel byte for byte, `tsbl run` end to end on a tiny override, and `report` on fake runs."""
import json, math, shutil, subprocess, sys, zipfile
from pathlib import Path

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
            'timebridge_efficiency', 'timebridge_length64'} <= set(ex.list_experiments())


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
