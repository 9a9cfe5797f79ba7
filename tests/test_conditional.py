"""Conditional TimeBridge: exact observed entries (windows and long series), seamless stitching, trend conditioning, the conditioning of issue 17, the PyPOTS-style entry point and baselines."""
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


def test_observed_entries_exact_on_long_series_and_no_seams(imputer, monkeypatch):
    "Each window starts from what the previous one produced, bit for bit, and treats it as observed: no seams to average away."
    import torch
    t = np.arange(200.)
    smooth = np.stack([np.sin(t / 15 + k) for k in range(5)], 1) * 2.4 + 0.5       # inside the training range
    obs = random_mask(smooth[None].shape, 0.5, generator=2)[0]
    calls, window = [], imputer._impute_window
    def spy(w, observed, *args, **kwargs):
        out = window(w, observed, *args, **kwargs)
        calls.append((w.clone(), observed.clone(), torch.where(observed, w, out.to(w.dtype))))
        return out
    monkeypatch.setattr(imputer, '_impute_window', spy)
    res = imputer.impute(np.where(obs, smooth, np.nan), n_samples=4, seed=1, steps=8, disable=True)
    assert res.median.shape == smooth.shape and np.array_equal(res.median[obs], smooth[obs])
    L = imputer.shape_[0]
    starts = window_positions(200, L, L // 2)
    assert len(calls) == len(starts) > 2
    for (s0, (_, _, done)), (s1, (w, observed, _)) in zip(zip(starts, calls), zip(starts[1:], calls[1:])):
        shared = s0 + L - s1                                                      # steps the two windows share
        assert torch.equal(w[:, :shared], done[:, s1 - s0:]) and bool(observed[:, :shared].all())


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
    from tsbridge_lambda.metrics import band_coverage
    cover = band_coverage(smooth[None], res.lower[None], res.upper[None], ~obs[None])
    assert cover.mean() >= 0.7                                                   # the widened band covers the real gaps


def test_untrained_imputer_returns_the_spline_prior(sines):
    "Issue 17: with the residual parameterisation the untrained network's estimate is x_T, so imputation starts at interpolation."
    import torch
    from tsbridge_lambda.priors import spline_fill
    from tsbridge_lambda.samplers import karras_times, sample_heun
    imp = TimeBridge(task='impute', **TINY)
    imp.shape_ = (24, 5); imp._build(None)
    g = torch.Generator().manual_seed(0)
    x = torch.as_tensor(sines[:6], dtype=torch.float32) / 5
    observed = torch.rand(x.shape, generator=g) < 0.5
    x_T = spline_fill(x, observed)
    D = imp._denoiser(imp.net_)
    with torch.no_grad():
        for t in (1e-4, 0.3, 0.9999):
            assert torch.equal(D(torch.randn(x.shape, generator=g), torch.full((6,), t), x_T, observed=observed), x_T)
    out = sample_heun(D, x_T, karras_times(10), imp.bridge, churn=0.33, mask=~observed, generator=g, extra_args={'observed': observed})
    assert torch.equal(out[observed], x_T[observed])                             # observed values bit-exact
    assert (out - x_T).abs().max() < 0.05                                        # and the rest stays at the spline


def test_conditioning_reaches_the_network_in_training_and_sampling(sines):
    "The mask channel is what the sampler passes; training holds observed entries of x_t at x_T (as the sampler does)."
    import torch
    seen = []
    imp = TimeBridge(task='impute', steps=2, **TINY).fit(sines[:64], disable=True)
    for net in (imp.trainer_.model, imp.model_):
        net.register_forward_pre_hook(lambda m, args, kw: seen.append((args[0].detach().clone(), kw['cond'].detach().clone())), with_kwargs=True)
    imp.trainer_.train_step()
    x_t, cond = seen[-1]
    x_T, mask = cond.chunk(2, -1)
    held = mask.bool()
    assert held.any() and (~held).any() and torch.equal(x_t[held], x_T[held])    # held at x_T where observed
    assert set(mask.unique().tolist()) <= {0., 1.}
    x = sines[:2].copy(); obs = random_mask(x.shape, 0.5, generator=4)
    imp.impute(np.where(obs, x, np.nan), n_samples=1, seed=0, steps=2, disable=True)
    _, cond = seen[-1]
    np.testing.assert_array_equal(cond.chunk(2, -1)[1].bool().numpy(), obs)     # the sampler's mask channel = the observation mask


def test_models_saved_before_issue_17_load_with_their_old_behaviour(tmp_path, sines):
    import torch
    old = TimeBridge(task='impute', steps=3, parameterization='x0', condition_on_mask=False, hold_observed=False, **TINY).fit(sines[:64], disable=True)
    path = old.save(tmp_path / 'old.pt')
    state = torch.load(path, weights_only=True)
    for k in ('parameterization', 'condition_on_mask', 'hold_observed'): del state['config'][k]   # as written by older versions
    torch.save(state, path)
    new = TimeBridge.load(path)
    assert (new.config['parameterization'], new.config['condition_on_mask'], new.config['hold_observed']) == ('x0', False, False)
    x = np.where(random_mask(sines[:2].shape, 0.5, generator=0), sines[:2], np.nan)
    np.testing.assert_array_equal(new.impute(x, n_samples=2, seed=0, steps=3, disable=True).median,
                                  old.impute(x, n_samples=2, seed=0, steps=3, disable=True).median)


def test_pypots_style_entry_point_scored_with_pypots_metrics(sines):
    "fit / impute on {'X': array with NaN}; PyPOTS's calc_mae / calc_mse with the indicating mask agree with ours."
    from tsbridge_lambda.conditional import TimeBridgeImputer, quiet_pypots, pypots_available
    from tsbridge_lambda.metrics import mae, mse
    if not pypots_available(): pytest.skip('pypots is not installed (pip install tsbridge_lambda[baselines])')
    with quiet_pypots(): from pypots.nn.functional import calc_mae, calc_mse
    imp = TimeBridgeImputer(n_steps=24, n_features=5, n_samples=3, steps=30, **TINY).fit({'X': sines[:200]})
    X_ori = sines[200:216]
    X = np.where(random_mask(X_ori.shape, 0.4, generator=5), X_ori, np.nan)
    out = imp.impute({'X': X})
    assert out.shape == X.shape and np.array_equal(out[~np.isnan(X)], X[~np.isnan(X)])
    indicating_mask = np.isnan(X) ^ np.isnan(X_ori)
    assert calc_mae(out, np.nan_to_num(X_ori), indicating_mask) == pytest.approx(mae(X_ori, out, ~indicating_mask), rel=1e-9)
    assert calc_mse(out, np.nan_to_num(X_ori), indicating_mask) == pytest.approx(mse(X_ori, out, ~indicating_mask), rel=1e-9)
    with pytest.raises(TypeError, match="dict with the key 'X'"): imp.impute(X)
    with pytest.raises(ValueError, match='n_steps = 20'): TimeBridgeImputer(n_steps=24, **TINY).fit({'X': sines[:8, :20]})


def test_pypots_baselines_keep_observed_values_and_are_seeded(sines, monkeypatch):
    from tsbridge_lambda import conditional
    if not conditional.pypots_available(): pytest.skip('pypots is not installed (pip install tsbridge_lambda[baselines])')
    X = np.where(random_mask(sines[200:208].shape, 0.5, generator=6), sines[200:208], np.nan)
    runs = [conditional.PyPOTSImputer('SAITS', steps=10, batch_size=32, seed=0, n_layers=1, d_model=16, n_heads=2, d_k=8, d_v=8, d_ffn=16)
            .fit({'X': sines[:128]}) for _ in range(2)]
    a, b = (r.impute({'X': X}) for r in runs)
    assert np.array_equal(a, b) and np.array_equal(a[~np.isnan(X)], X[~np.isnan(X)]) and np.isfinite(a).all()
    assert runs[0].epochs_ == 3                                                   # ceil(10 steps * 32 / 128 windows)
    with pytest.raises(ValueError, match='model must be one of'): conditional.PyPOTSImputer('BRITS')
    monkeypatch.setattr(conditional, 'pypots_available', lambda: False)
    with pytest.raises(ImportError, match=r'tsbridge_lambda\[baselines\]'): conditional.PyPOTSImputer('SAITS')


def test_imputation_is_not_capped_at_the_training_range(sines):
    "Issue 17: a test period outside the training range (Energy's warmer spring) is imputed there, not clamped to the training max."
    imp = TimeBridge(task='impute', steps=2, **TINY).fit(sines[:64], disable=True)
    assert imp.config['clip_denoised'] is None and TimeBridge(**TINY).config['clip_denoised'] == 1.
    hi_c = sines[:64].max((0, 1))                                            # each channel's training maximum
    x = sines[64:66] + (sines[:64].max() - sines[:64].min())                 # every value at or above it
    gappy = x.copy(); gappy[:, 8:14, :] = np.nan
    res = imp.impute(gappy, n_samples=2, seed=0, steps=6, disable=True)
    assert (res.median[:, 8:14] > hi_c).mean() > 0.9, res.median[:, 8:14].max((0, 1)) - hi_c
    imp.config['clip_denoised'] = 1.                                         # the clamp this replaces: held at the training max
    capped = imp.impute(gappy, n_samples=2, seed=0, steps=6, disable=True).median
    span = hi_c - sines[:64].min((0, 1))
    assert (capped[:, 8:14] < hi_c + 0.05 * span).all() and (res.median[:, 8:14] - hi_c).max() > 0.5 * span.min()
    with pytest.raises(ValueError, match='clip_denoised'): TimeBridge(clip_denoised=-1, **TINY)
    assert TimeBridge(clip_denoised=False, **TINY).config['clip_denoised'] is None
