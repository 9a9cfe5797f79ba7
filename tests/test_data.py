"""Tests of tsbridge_lambda.data: leakage-free splits, train-only scaling, masks, CSV input, checksums, loader shapes."""
import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsbridge_lambda import data as D
from tsbridge_lambda import sources as S
from tsbridge_lambda.data import (ChecksumError, MinMaxScaler, PairedData, Remote, Windows, data_file, from_array, from_csv,
                                  geometric_mask, load_dataset, random_mask, split_series, trend, windows)

DATA = Path(os.environ.get('TSBL_DATA_DIR') or Path(__file__).resolve().parents[1].parent / 'shared' / 'data')
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f'shared data not found at {DATA} (set TSBL_DATA_DIR)')
needs_dm_control = pytest.mark.skipif(importlib.util.find_spec('dm_control') is None, reason='dm_control (optional extra) not installed')


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    "No local data folder, an empty cache in tmp_path, and FILES restored afterwards."
    monkeypatch.delenv('TSBL_DATA_DIR', raising=False)
    monkeypatch.setenv('TSBL_CACHE', str(tmp_path / 'cache'))
    monkeypatch.setattr(S, 'FILES', dict(S.FILES))
    return tmp_path / 'cache'


def _steps(ds, part):
    "Set of (group, step) pairs covered by the windows of one split."
    m = ds.meta[ds.meta['split'] == part]
    L = ds.X.shape[1]
    return {(g, s + j) for g, s in zip(m['group'], m['start']) for j in range(L)}


# ---------------------------------------------------------------- windows and splits

def test_windows_cover_the_series():
    x = np.arange(50.)[:, None]
    w = windows(x, 24, stride=5)
    assert w.shape == (6, 24, 1)
    assert (w[:, 0, 0] == np.arange(0, 26, 5)).all() and (np.diff(w[..., 0], axis=1) == 1).all()


@pytest.mark.parametrize('split', [(0.8, 0.2), (0.7, 0.15, 0.15), (0.5, 0.25, 0.25)])
@pytest.mark.parametrize('stride', [1, 3])
def test_single_series_split_shares_no_step(split, stride):
    ds = from_array(np.random.default_rng(0).normal(size=(500, 3)), seq_len=24, stride=stride, split=split)
    parts = [k for k in ('train', 'val', 'test') if (ds.meta.split == k).any()]
    assert len(parts) == len(split)
    for i, a in enumerate(parts):
        for b in parts[i + 1:]:
            sa, sb = _steps(ds, a), _steps(ds, b)
            assert not sa & sb
            assert min(t for _, t in sb) - max(t for _, t in sa) > 24         # a gap of L steps between parts


def test_split_series_gap_and_errors():
    p = split_series(1000, (0.8, 0.1, 0.1), gap=24, min_len=24)
    assert p['val'][0] - p['train'][1] == 24 and p['test'][0] - p['val'][1] == 24 and p['test'][1] == 1000
    with pytest.raises(ValueError, match='sum to 1'): split_series(100, (0.5, 0.6))
    with pytest.raises(ValueError, match="steps for 'test'"): split_series(60, (0.9, 0.1), gap=24, min_len=24)


@needs_data
@pytest.mark.parametrize('name', ['stocks', 'etth', 'energy'])
def test_real_series_split_shares_no_step(name):
    ds = load_dataset(name, split=(0.8, 0.1, 0.1), data_dir=DATA)
    tr, va, te = (_steps(ds, k) for k in ('train', 'val', 'test'))
    assert tr and va and te and not (tr & va or tr & te or va & te)


@needs_data
def test_fmri_subject_split_and_protocol():
    ds = load_dataset('fmri', split=(0.8, 0.1, 0.1), data_dir=DATA)
    subj = {k: set(ds.meta.subject[ds.meta.split == k]) for k in ('train', 'val', 'test')}
    assert [len(v) for v in subj.values()] == [40, 5, 5] and not (subj['train'] & subj['test'])
    assert (ds.meta.start <= 200 - 24).all()                                   # windows stay inside a subject
    pr = load_dataset('fmri', data_dir=DATA)
    assert pr.X.shape == (9977, 24, 50) and len(pr.test) == 0                  # the published protocol


@pytest.mark.parametrize('loader, kw', [('lorenz', dict(n_trajectories=30, traj_len=256, seq_len=64, stride=16)),
                                        ('pendulum', dict(n_trajectories=30, traj_len=256, seq_len=64, stride=16))])
def test_simulations_split_by_trajectory(loader, kw):
    pd_ = load_dataset(loader, **kw)
    assert isinstance(pd_, PairedData) and len(pd_) == 30 * 13
    assert pd_.meta.groupby('trajectory').split.nunique().max() == 1
    assert set(pd_.meta.split) == {'train', 'val', 'test'}


@needs_data
def test_gait_split_by_subject_and_labels():
    g = load_dataset('gait', data_dir=DATA)
    assert g.X.shape == (220, 128, 6) and g.Y.shape == (220, 128, 6)
    assert g.meta.groupby('subject').split.nunique().max() == 1
    assert g.meta.groupby('subject').speed.nunique().to_dict() == {s: 4 for s in D.GAIT_SUBJECTS}
    assert [len(g.part(k).meta.subject.unique()) for k in ('train', 'val', 'test')] == [8, 1, 1]
    held = load_dataset('gait', subjects=D.GAIT_SUBJECTS[:3], split={'test': ['subject02']}, data_dir=DATA)
    assert held.test.meta.subject.unique().tolist() == ['subject02']
    with pytest.raises(ValueError, match='split by whole subject'): load_dataset('gait', split='protocol', data_dir=DATA)


# ---------------------------------------------------------------- scaling

def test_scaler_sees_only_training_data():
    x = np.random.default_rng(0).uniform(0, 1, size=(400, 2))
    x[300:] *= 1000                                                            # the test stretch is far larger
    ds = from_array(x, seq_len=10, split=(0.7, 0.3))
    train_rows = x[:ds.meta.query("split == 'train'").start.max() + 10]
    np.testing.assert_allclose(ds.scaler.data_max_, train_rows.max(0), rtol=1e-6)
    np.testing.assert_allclose(ds.scaler.data_min_, train_rows.min(0), rtol=1e-6)
    assert ds.scaled('train').max() <= 1 + 1e-6 and ds.scaled('test').max() > 100


@needs_data
def test_scaler_of_real_split_fitted_on_train_windows():
    ds = load_dataset('etth', split=(0.8, 0.2), data_dir=DATA)
    np.testing.assert_allclose(ds.scaler.data_max_, ds.train.max((0, 1)), rtol=1e-6)
    assert (ds.scaler.data_max_ != ds.X.max((0, 1))).any() or (ds.scaler.data_min_ != ds.X.min((0, 1))).any()


def test_paired_scalers_fit_train_pairs_only():
    p = load_dataset('lorenz', n_trajectories=50, seq_len=32)
    np.testing.assert_allclose(p.x_scaler.data_max_, p.train.X.max((0, 1)), rtol=1e-6)
    np.testing.assert_allclose(p.y_scaler.data_min_, p.train.Y.min((0, 1)), rtol=1e-6)


def test_scaler_round_trip_constant_channel_and_nan():
    x = np.stack([np.linspace(-3, 5, 40), np.full(40, 2.5), np.linspace(0, 1, 40)], -1)
    x[7, 2] = np.nan
    s = MinMaxScaler().fit(x)
    z = s.transform(x)
    assert np.isfinite(z[:, 1]).all() and (z[:, 1] == 0).all() and np.isnan(z[7, 2])
    np.testing.assert_allclose(s.inverse_transform(z), x, rtol=0, atol=1e-12)
    assert np.nanmin(z[:, 0]) == -1 and np.nanmax(z[:, 0]) == 1


# ---------------------------------------------------------------- masks

@pytest.mark.parametrize('ratio', [0.7, 0.8, 0.9])
def test_random_mask_ratio_and_seed(ratio):
    m = random_mask((100, 100, 14), ratio, generator=3)
    assert abs((~m).mean() - ratio) < 0.01
    assert (m == random_mask((100, 100, 14), ratio, generator=3)).all()
    assert (m != random_mask((100, 100, 14), ratio, generator=4)).any()


def _complete_runs(v):
    "Lengths of the runs of True in a 1-d bool array, leaving out runs cut by either end."
    d = np.diff(np.r_[0, v.astype(int), 0])
    a, b = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return (b - a)[(a > 0) & (b < len(v))]


@pytest.mark.parametrize('ratio', [0.25, 0.5, 0.75])
def test_geometric_mask_ratio_runs_and_seed(ratio):
    m = geometric_mask((300, 48, 7), ratio, mean_missing_run=3, generator=5)
    assert abs((~m).mean() - ratio) < 0.02
    assert (m == geometric_mask((300, 48, 7), ratio, generator=5)).all()
    assert (m != geometric_mask((300, 48, 7), ratio, generator=6)).any()
    missing = ~geometric_mask((10, 2000, 2), ratio, generator=7)
    runs = np.concatenate([_complete_runs(missing[i, :, k]) for i in range(10) for k in range(2)])
    assert abs(runs.mean() - 3) < 0.25                                         # mean missing run of 3


def test_geometric_mask_rejects_impossible_ratio():
    with pytest.raises(ValueError, match='too high'): geometric_mask((2, 10, 1), 0.8, mean_missing_run=3)


# ---------------------------------------------------------------- CSV input

def test_csv_with_nans_keeps_them_as_missing(tmp_path):
    df = pd.DataFrame({'a': np.arange(40.), 'b': np.sin(np.arange(40.))})
    df.loc[[3, 17], 'b'] = np.nan
    df.to_csv(tmp_path / 'x.csv', index=False)
    ds = from_csv(tmp_path / 'x.csv', seq_len=10)
    assert ds.X.shape == (31, 10, 2) and np.isnan(ds.X).sum() == (~ds.mask).sum() > 0
    assert np.isfinite(ds.scaler.data_min_).all()


def test_csv_time_column(tmp_path):
    t = pd.date_range('2020-01-01', periods=30, freq='h')
    pd.DataFrame({'when': t, 'v': np.arange(30.)}).to_csv(tmp_path / 'x.csv', index=False)
    ds = from_csv(tmp_path / 'x.csv', seq_len=10, time_column='when')
    assert ds.columns == ['v'] and ds.meta.time.iloc[0] == t[0]
    pd.DataFrame({'when': t[::-1], 'v': np.arange(30.)}).to_csv(tmp_path / 'y.csv', index=False)
    with pytest.raises(ValueError, match='does not strictly increase'): from_csv(tmp_path / 'y.csv', seq_len=10, time_column='when')


def test_csv_non_numeric_column_is_refused(tmp_path):
    pd.DataFrame({'v': np.arange(30.), 'label': ['x'] * 30}).to_csv(tmp_path / 'x.csv', index=False)
    with pytest.raises(ValueError, match="Column 'label'.*not numeric"): from_csv(tmp_path / 'x.csv', seq_len=10)
    assert from_csv(tmp_path / 'x.csv', seq_len=10, columns=['v']).X.shape == (21, 10, 1)


def test_csv_too_few_rows_and_empty_column(tmp_path):
    pd.DataFrame({'v': np.arange(5.)}).to_csv(tmp_path / 'x.csv', index=False)
    with pytest.raises(ValueError, match='5 rows, fewer than one window'): from_csv(tmp_path / 'x.csv', seq_len=24)
    pd.DataFrame({'v': np.arange(30.), 'w': [np.nan] * 30}).to_csv(tmp_path / 'y.csv', index=False)
    with pytest.raises(ValueError, match='hold no value'): from_csv(tmp_path / 'y.csv', seq_len=10)


# ---------------------------------------------------------------- sources and checksums

@needs_data
def test_local_copy_with_wrong_checksum_is_refused(tmp_path):
    (tmp_path / 'stocks').mkdir()
    good = (DATA / 'stocks' / 'stock_data.csv').read_bytes()
    (tmp_path / 'stocks' / 'stock_data.csv').write_bytes(good[:-10] + b'0000000000')
    with pytest.raises(ChecksumError, match='Checksum mismatch for stocks/stock_data.csv'):
        load_dataset('stocks', data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match='is not in'): load_dataset('etth', data_dir=tmp_path)


@needs_data
def test_download_verifies_then_caches(isolated_cache):
    name = 'stocks/stock_data.csv'
    S.FILES[name] = Remote((DATA / name).as_uri(), S.FILES[name].sha256)
    ds = load_dataset('stocks')
    assert ds.X.shape == (3662, 24, 6) and (isolated_cache / name).read_bytes() == (DATA / name).read_bytes()
    S.FILES[name] = Remote('file:///nowhere/stock_data.csv', S.FILES[name].sha256)
    assert load_dataset('stocks').X.shape == (3662, 24, 6)                      # served from the cache now


@needs_data
def test_download_with_wrong_checksum_writes_nothing(isolated_cache, tmp_path):
    bad = tmp_path / 'ETTh1.csv'
    bad.write_bytes((DATA / 'etth' / 'ETTh1.csv').read_bytes().replace(b'5.827', b'5.828', 1))
    S.FILES['etth/ETTh1.csv'] = Remote(bad.as_uri(), S.FILES['etth/ETTh1.csv'].sha256)
    with pytest.raises(ChecksumError): load_dataset('etth')
    assert not (isolated_cache / 'etth').exists() or not any((isolated_cache / 'etth').iterdir())


def test_offline_download_error_is_clear(isolated_cache):
    S.FILES['etth/ETTh1.csv'] = Remote('file:///nowhere/ETTh1.csv', S.FILES['etth/ETTh1.csv'].sha256)
    with pytest.raises(ConnectionError, match='TSBL_DATA_DIR'): load_dataset('etth')
    with pytest.raises(FileNotFoundError, match='download=False'): load_dataset('etth', download=False)


def test_fetch_is_the_only_network_access(isolated_cache, monkeypatch):
    content = b'Open,High,Low,Close,Adj_Close,Volume\n' + b'1,2,3,4,5,6\n' * 30
    name = 'stocks/stock_data.csv'
    S.FILES[name] = Remote('https://example.invalid/stock_data.csv', S._sha256(content))
    seen = []
    monkeypatch.setattr(S, '_fetch', lambda url, timeout=60.: seen.append(url) or content)
    assert data_file(name) == content and seen == ['https://example.invalid/stock_data.csv']


@needs_data
def test_netsim_rebuild_from_permuted_subject_files(isolated_cache, tmp_path):
    rows = gzip.decompress((DATA / 'fmri_netsim_sim4' / 'sim4_ts.txt.gz').read_bytes()).splitlines(keepends=True)
    for s in range(50): (tmp_path / f'sub{s + 1:02d}_ts.txt').write_bytes(b''.join(rows[s::50]))
    name = 'fmri_netsim_sim4/sim4_ts.txt'
    S.FILES[name] = Remote(f'file://{tmp_path}/sub{{subject:02d}}_ts.txt', S.FILES[name].sha256)
    assert load_dataset('fmri', seq_len=200, stride=200).X.shape == (50, 200, 50)
    assert (isolated_cache / name).is_file()


# ---------------------------------------------------------------- loaders and shapes

@needs_data
@pytest.mark.parametrize('name, shape', [('stocks', (3662, 24, 6)), ('etth', (17397, 24, 7)),
                                         ('energy', (19712, 24, 28)), ('fmri', (9977, 24, 50))])
def test_real_loader_shapes(name, shape):
    ds = load_dataset(name, data_dir=DATA)
    assert isinstance(ds, Windows) and ds.X.shape == shape and len(ds.columns) == shape[2]
    assert ds.info['split'] == 'protocol' and len(ds.train) == shape[0] and np.isfinite(ds.X).all()


def test_sines_shape_range_and_seed():
    ds = load_dataset('sines')
    assert ds.X.shape == (10000, 24, 5) and 0 <= ds.X.min() and ds.X.max() <= 1
    assert (load_dataset('sines', n_samples=5, seed=3).X == load_dataset('sines', n_samples=5, seed=3).X).all()


@needs_dm_control
def test_mujoco_shape_and_seed():
    a = load_dataset('mujoco', n_samples=20, disable=True)
    assert a.X.shape == (20, 24, 14) and (a.X == load_dataset('mujoco', n_samples=20, disable=True).X).all()
    assert load_dataset('mujoco', n_samples=3, seq_len=100, disable=True).X.shape == (3, 100, 14)


def test_simulation_defaults_shapes():
    assert load_dataset('lorenz', n_trajectories=10).X.shape == (10, 128, 1)
    p = load_dataset('pendulum', regime='chaotic', n_trajectories=10)
    assert (p.X.shape, p.Y.shape) == ((10, 128, 2), (10, 128, 2))


@needs_data
def test_gait_moments_only_at_5_m_s():
    g = load_dataset('gait', modalities=('angles', 'moments'), data_dir=DATA)
    assert g.X.shape == (19, 128, 6) and g.meta.speed.unique().tolist() == [5.0]
    with pytest.raises(ValueError, match='5 m/s only'): load_dataset('gait', modalities=('grf', 'moments'), speeds=[2], data_dir=DATA)


def test_load_dataset_errors():
    with pytest.raises(ValueError, match='Unknown dataset'): load_dataset('sine')
    with pytest.raises(TypeError, match="does not take"): load_dataset('sines', window=24)


# ---------------------------------------------------------------- trends

def test_trend_kinds():
    j = np.arange(48.)
    x = np.stack([1 + 0.5 * j, 1e-3 * (j - 24)**3], -1)[None]
    np.testing.assert_allclose(trend(x, 'linear')[..., 0], x[..., 0], atol=1e-9)
    np.testing.assert_allclose(trend(x, 'poly'), x, atol=1e-9)
    assert trend(np.ones((3, 24, 2)), 'butter').shape == (3, 24, 2)
    with pytest.raises(ValueError, match='longer than 15'): trend(np.ones((1, 10, 1)), 'butter')
