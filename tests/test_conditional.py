"""Conditional TimeBridge: exact observed entries (windows and long series), seamless stitching, trend conditioning."""
import numpy as np, pytest
from tsbridge_lambda.timebridge import TimeBridge
from tsbridge_lambda.conditional import linear_interpolation, window_positions
from tsbridge_lambda.data import load_dataset, random_mask
from tsbridge_lambda.priors import trend

TINY = dict(preset='tiny', batch_size=32, warmup=10)


@pytest.fixture(scope='module')
def sines():
    return load_dataset('sines', n_samples=256, seed=0).X.astype(np.float64) * 5 - 2


@pytest.fixture(scope='module')
def imputer(sines):
    return TimeBridge(task='impute', steps=40, missing_ratio=(0.2, 0.8), **TINY).fit(sines, disable=True)


def test_observed_entries_exact_on_windows(imputer, sines):
    x = sines[:6].copy(); obs = random_mask(x.shape, 0.5, generator=1)
    res = imputer.impute(np.where(obs, x, np.nan), n_samples=3, seed=0, steps=8, return_samples=True, disable=True)
    assert res.median.dtype == np.float64 and res.median.shape == x.shape
    assert np.array_equal(res.median[obs], x[obs]) and np.array_equal(res.lower[obs], x[obs])
    assert all(np.array_equal(s[obs], x[obs]) for s in res.samples)
    assert np.isfinite(res.median).all() and (res.lower <= res.median + 1e-9).all() and (res.median <= res.upper + 1e-9).all()


def test_observed_entries_exact_on_long_series_and_no_seams(imputer):
    t = np.arange(200.)
    smooth = np.stack([np.sin(t / 15 + k) for k in range(5)], 1) * 2.4 + 0.5       # inside the training range
    obs = random_mask(smooth[None].shape, 0.5, generator=2)[0]
    res = imputer.impute(np.where(obs, smooth, np.nan), n_samples=4, seed=1, steps=8, disable=True)
    assert res.median.shape == smooth.shape and np.array_equal(res.median[obs], smooth[obs])
    L = imputer.shape_[0]
    starts = window_positions(200, L, L // 2)
    seams = sorted({s + L // 2 for s in starts[1:]} | {s for s in starts[1:]})
    jumps = np.abs(np.diff(res.median, axis=0))                                 # jumps[i] = |x[i+1] - x[i]|
    seam_jumps = jumps[[s - 1 for s in seams if 0 < s < 200]]
    inner = np.delete(jumps, [s - 1 for s in seams if 0 < s < 200], axis=0)
    assert seam_jumps.max() <= inner.max()


def test_trend_samples_follow_the_condition(sines):
    tr = TimeBridge(task='trend', trend='linear', steps=60, **TINY).fit(sines, disable=True)
    un = TimeBridge(prior='gp', steps=60, **TINY).fit(sines, disable=True)
    cond = trend(sines[:8], 'linear')
    gen = tr.sample_from_trend(cond, n_per_trend=4, seed=0, steps=10, disable=True)      # (8, 4, L, C)
    assert gen.shape == (8, 4, 24, 5)
    free = un.sample(32, seed=0, steps=10, disable=True).reshape(8, 4, 24, 5)
    dist = lambda g: np.mean([np.abs(trend(g[:, k], 'linear') - cond).mean() for k in range(4)])
    assert dist(gen) < dist(free)


def test_errors(imputer, sines):
    with pytest.raises(ValueError, match='task=.impute'): TimeBridge(**TINY, steps=2).fit(sines, disable=True).impute(sines[:1])
    with pytest.raises(ValueError, match='no observed value'): imputer.impute(np.full((1, 24, 5), np.nan))
    with pytest.raises(ValueError, match='shorter than'): imputer.impute(np.zeros((10, 5)))
    with pytest.raises(ValueError, match='2 channels but 5'): imputer.impute(np.zeros((1, 30, 2)))
    with pytest.raises(ValueError, match='task must be'): TimeBridge(task='forecast')


def test_linear_interpolation_baseline():
    x = np.array([[[0.], [np.nan], [np.nan], [3.]]])
    np.testing.assert_array_equal(linear_interpolation(x)[0, :, 0], [0., 1., 2., 3.])


def test_gaussian_baselines_conditional(sines):
    "The DDPM baseline: replacement imputation keeps observed entries exactly; the trend condition is followed."
    from tsbridge_lambda.timebridge import GaussianDiffusion
    kw = dict(preset='tiny', n_steps=50, batch_size=32, warmup=10)
    gd = GaussianDiffusion(task='impute', steps=60, **kw).fit(sines, disable=True)
    x = sines[:3].astype(np.float64)
    obs = random_mask(x.shape, 0.5, generator=0)
    res = gd.impute(np.where(obs, x, np.nan), n_samples=3, seed=0, nfe=10, return_samples=True, disable=True)
    assert res.median.dtype == np.float64 and np.array_equal(res.samples[:, obs], np.broadcast_to(x[obs], (3, obs.sum())))
    assert np.isfinite(res.median).all()
    with pytest.raises(ValueError, match='use impute'): gd.sample(2)
    tr = GaussianDiffusion(task='trend', steps=150, **kw).fit(sines, disable=True)
    cond = trend(sines[:4], 'linear')
    gen = tr.sample_from_trend(cond, n_per_trend=3, seed=0, nfe=20, disable=True)
    assert gen.shape == (4, 3, 24, 5)
    with pytest.raises(ValueError, match='sample_from_trend needs'): gd.sample_from_trend(cond)


def test_calibrated_impute_widens_only_the_gaps_and_keeps_the_median(imputer, sines):
    from tsbridge_lambda.conditional import calibrated_impute
    t = np.arange(400.)
    smooth = np.stack([np.sin(t / 15 + k) for k in range(5)], 1) * 2.4 + 0.5
    obs = random_mask(smooth[None].shape, 0.4, generator=3)[0]
    gappy = np.where(obs, smooth, np.nan)
    res, q = calibrated_impute(imputer, gappy, coverage=0.8, hide=0.2, n_samples=4, seed=0, steps=8, disable=True)
    raw = imputer.impute(gappy, n_samples=4, quantiles=(0.1, 0.9), seed=0, steps=8, disable=True)
    assert res.median.shape == smooth.shape and q.shape == (5,) and np.isfinite(q).all()
    assert np.array_equal(res.median, raw.median)                                 # the median is impute's
    assert np.array_equal(res.lower[obs], smooth[obs]) and np.array_equal(res.upper[obs], smooth[obs])   # observed: exact
    assert np.allclose(res.lower[~obs], (raw.lower - q)[~obs]) and np.allclose(res.upper[~obs], (raw.upper + q)[~obs])
    batch, qb = calibrated_impute(imputer, gappy[None], coverage=0.8, hide=0.2, n_samples=4, seed=0, steps=8, disable=True)
    assert batch.median.shape == (1,) + smooth.shape and np.allclose(qb, q)      # (T, C) and (1, T, C) agree
    with pytest.raises(ValueError, match='hide must be'): calibrated_impute(imputer, gappy, hide=0.)
    with pytest.raises(ValueError, match='coverage must be'): calibrated_impute(imputer, gappy, coverage=1.2)
    with pytest.raises(TypeError, match='seed must be an int'): calibrated_impute(imputer, gappy, seed=1.5)
    with pytest.raises(RuntimeError, match='not fitted'): calibrated_impute(TimeBridge(preset='tiny'), gappy)
    plain = TimeBridge(steps=2, **TINY).fit(sines[:32], disable=True)
    with pytest.raises(ValueError, match="task='impute'"): calibrated_impute(plain, gappy, seed=0, steps=2, disable=True)
    with pytest.raises(ValueError, match='Too few values'): calibrated_impute(imputer, gappy[:30], hide=0.05, seed=0, steps=4, disable=True)
