"""Tests of tsbridge_lambda.metrics and tsbridge_lambda.ts2vec at tiny sizes: each metric is ~0 (or its floor) for
identical distributions and grows under a known corruption; closed forms (Fréchet distance, correlations, t-interval);
masked imputation errors; probes; reproducibility for a seed; clear errors at the public boundary."""
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import linalg, stats

from tsbridge_lambda.data import MinMaxScaler, load_dataset, random_mask
from tsbridge_lambda.metrics import (context_fid, correlational_score, cross_correlations, discriminative_score, embedding_fid,
                                     evaluate, frechet_distance, imputation_scores, mae, mse, paired_fid, predictive_score,
                                     probe, repeat_seed, summary, t_interval, unit_scale, SINES_BOUNDS)
from tsbridge_lambda.ts2vec import TS2Vec, hierarchical_contrastive_loss, random_crops

CPU = dict(device='cpu', disable=True)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "The small networks here run faster on one thread, and far faster when the cores are shared."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def sines():
    """Two independent samples of the sines benchmark (3 channels, L = 24), as plain arrays: the tests below are about the
    metrics on any array (min-max of real); the published sines scale the benchmark's windows carry has its own test."""
    get = lambda n, seed: np.asarray(load_dataset('sines', n_samples=n, channels=3, seed=seed).train)
    return get(300, 0), get(300, 1)


def noisy(x, sigma, seed=0): return x + sigma * np.random.default_rng(seed).normal(size=x.shape)


def time_shuffled(x, seed=0):
    return np.take_along_axis(x, np.argsort(np.random.default_rng(seed).random(x.shape[:2]), axis=1)[..., None], axis=1)


# ---------------------------------------------------------------- scaling

def test_unit_scale_uses_real_min_max():
    real = np.random.default_rng(0).uniform(-3, 5, (20, 6, 2))
    r, f = unit_scale(real, real * 2)
    assert np.allclose(r.min(axis=(0, 1)), 0) and np.allclose(r.max(axis=(0, 1)), 1, atol=1e-6)
    assert f.max() > 1                                     # the fake set is not rescaled on its own


def test_unit_scale_with_bounds_is_the_published_sines_map():
    x = np.sin(np.linspace(0, 3, 48)).reshape(2, 24, 1)
    assert np.allclose(unit_scale(x, bounds=SINES_BOUNDS)[0], (x + 1) / 2)
    with pytest.raises(ValueError, match='hi > lo'): unit_scale(x, bounds=(1, 1))
    with pytest.raises(ValueError, match='scale must be'): correlational_score(x, x, scale='yes')


def test_metrics_scale_by_real_by_default(sines):
    "Predictive scores are computed in the [0, 1] units of the real set: invariant to an affine map of the inputs."
    real, _ = sines
    kw = dict(n_iters=30, seed=0, **CPU)
    assert predictive_score(real, real, **kw) == pytest.approx(predictive_score(3 * real + 7, 3 * real + 7, **kw), abs=1e-5)


# ---------------------------------------------------------------- Fréchet distance

def test_frechet_closed_form_general_covariances():
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(2, 5, 5)); S1, S2 = A @ A.T + np.eye(5), B @ B.T; m1, m2 = rng.normal(size=(2, 5))
    ref = ((m1 - m2)**2).sum() + np.trace(S1 + S2 - 2 * linalg.sqrtm(S1 @ S2).real)
    assert frechet_distance(m1, S1, m2, S2) == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(m1, S1, m1, S1) == pytest.approx(0, abs=1e-9)


def test_embedding_fid_matches_gaussian_closed_form():
    "Monte-Carlo: embeddings drawn from two known Gaussians give the closed-form distance of their parameters."
    rng = np.random.default_rng(2)
    m1, m2 = np.array([0., 1., -1.]), np.array([0.5, 1., 0.])
    L1 = np.array([[1., 0, 0], [0.5, 1, 0], [0, 0.3, 0.5]]); L2 = np.array([[2., 0, 0], [0, 0.5, 0], [0.2, 0, 1]])
    S1, S2 = L1 @ L1.T, L2 @ L2.T
    e1 = m1 + rng.normal(size=(200_000, 3)) @ L1.T
    e2 = m2 + rng.normal(size=(200_000, 3)) @ L2.T
    exact = ((m1 - m2)**2).sum() + np.trace(S1 + S2 - 2 * linalg.sqrtm(S1 @ S2).real)
    assert embedding_fid(e1, e2) == pytest.approx(exact, rel=0.02)


def test_embedding_fid_exact_zero_for_identical_singular_sets():
    e = np.random.default_rng(3).normal(size=(40, 320))     # n < d: singular covariance
    assert abs(embedding_fid(e, e)) < 1e-9


# ---------------------------------------------------------------- TS2Vec

def test_ts2vec_crops_overlap_and_loss_floor():
    x = torch.arange(3 * 24, dtype=torch.float32).reshape(3, 24, 1)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        v1, v2, ov = random_crops(x, g)
        assert torch.equal(v1[:, -ov:], v2[:, :ov])
    z = torch.zeros(4, 8, 5)                                # all similarities equal: a uniform choice among 2n - 1
    levels = [(8, 0.5 * np.log(7) + 0.5 * np.log(15)), (4, 0.5 * np.log(7) + 0.5 * np.log(7)),
              (2, 0.5 * np.log(7) + 0.5 * np.log(3)), (1, 0.5 * np.log(7))]
    assert float(hierarchical_contrastive_loss(z, z)) == pytest.approx(np.mean([v for _, v in levels]), abs=1e-6)


def test_ts2vec_reproducible_and_leaves_global_rng_alone(sines):
    real, _ = sines
    state = torch.random.get_rng_state()
    a = TS2Vec(device='cpu').fit(real, n_iters=10, seed=5, disable=True).encode(real[:4])
    b = TS2Vec(device='cpu').fit(real, n_iters=10, seed=5, disable=True).encode(real[:4])
    assert torch.equal(state, torch.random.get_rng_state())
    assert a.shape == (4, 320) and np.allclose(a, b, atol=1e-6)


# ---------------------------------------------------------------- Context-FID and paired FID

def test_context_fid_zero_for_identical_and_grows_with_noise(sines):
    real, other = sines
    kw = dict(n_iters=30, seed=0, **CPU)
    enc = TS2Vec(device='cpu').fit(unit_scale(real)[0], n_iters=30, seed=0, disable=True)
    same = context_fid(real, real, encoder=enc)
    vals = [context_fid(real, f, encoder=enc) for f in (other, noisy(real, 0.1), noisy(real, 0.4))]
    assert abs(same) < 1e-8
    assert vals[0] < vals[1] < vals[2], vals
    assert context_fid(real, other, **kw) == context_fid(real, other, **kw)   # reproducible for a seed


def test_paired_fid_requires_pairs(sines):
    real, _ = sines
    with pytest.raises(ValueError, match='one target per condition'):
        paired_fid(real[:10], real[:9])
    assert abs(paired_fid(real[:50], real[:50], n_iters=5, seed=0, **CPU)) < 1e-8


# ---------------------------------------------------------------- correlational score

def test_correlational_hand_computed_and_identical():
    a = np.arange(4.)
    real, fake = np.stack([a, a], -1)[None], np.stack([a, a[::-1]], -1)[None]
    assert np.allclose(cross_correlations(real), [0.75, 0.75, 0.75])
    assert correlational_score(real, fake) == pytest.approx(0.15, abs=1e-12)
    assert correlational_score(real, real) == 0.0


def test_correlational_grows_with_noise_and_ignores_time_order(sines):
    real, _ = sines
    s = [correlational_score(real, noisy(real, sig)) for sig in (0.05, 0.2, 0.8)]
    assert s[0] < s[1] < s[2]
    assert correlational_score(real, time_shuffled(real)) < 1e-12
    d = [correlational_score(real, real, n_draws=60, seed=k) for k in (0, 0, 1)]
    assert d[0] == d[1] != d[2]


# ---------------------------------------------------------------- discriminative score

def test_discriminative_floor_and_time_shuffle(sines):
    real, other = sines
    kw = dict(n_iters=600, seed=0, **CPU)
    same, shuffled = discriminative_score(real, other, **kw), discriminative_score(real, time_shuffled(real), **kw)
    assert same < 0.12 and shuffled > 0.3, (same, shuffled)
    assert discriminative_score(real, other, **kw) == same


def test_discriminative_one_channel_and_small_sets(sines):
    real, other = sines
    v = discriminative_score(real[:40, :, :1], other[:40, :, :1], n_iters=5, seed=0, **CPU)
    assert 0 <= v <= 0.5
    with pytest.raises(ValueError, match='Too few windows'):
        discriminative_score(real[:1], other[:1], n_iters=1, **CPU)


# ---------------------------------------------------------------- predictive score

def test_predictive_floor_below_corrupted(sines):
    "Trained on real windows (the floor) vs on mirrored ones (1 - x): a faster learning rate stands in for 5000 iterations."
    real, _ = sines
    kw = dict(n_iters=300, lr=0.02, seed=0, **CPU)
    floor, bad = predictive_score(real, real, **kw), predictive_score(real, 1 - real, **kw)
    assert floor < bad, (floor, bad)
    assert predictive_score(real, real, **kw) == floor


def test_predictive_single_channel_uses_itself(sines):
    real, _ = sines
    v = predictive_score(real[..., :1], real[..., :1], n_iters=20, seed=0, **CPU)
    assert 0 < v < 1


# ---------------------------------------------------------------- imputation errors

def test_imputation_errors_count_missing_entries_only():
    target = np.zeros((2, 5, 2))
    observed = random_mask(target.shape, 0.5, generator=0)
    pred = np.where(observed, 1e6, 2.0)                     # wild values where observed must not count
    assert mse(target, pred, observed) == pytest.approx(4.0)
    assert mae(target, pred, observed) == pytest.approx(2.0)
    pred2 = np.where(observed, np.nan, -1.0)                # NaN where observed is fine too
    assert mae(target, pred2, observed) == pytest.approx(1.0)
    sc = MinMaxScaler().fit(np.array([[0.], [4.]]).repeat(2, 1))     # [0, 4] -> [0, 1] scale: errors x 1/4
    s = imputation_scores(target, pred, observed, sc)
    assert s['mae'] == pytest.approx(2.0) and s['mae_01'] == pytest.approx(0.5) and s['mse_01'] == pytest.approx(0.25)


def test_imputation_errors_reject_bad_inputs():
    t = np.zeros((1, 4, 1)); obs = np.array([True, False, True, True])[None, :, None]
    with pytest.raises(ValueError, match='one shape'): mse(t, t[:, :3], obs)
    with pytest.raises(TypeError, match='boolean'): mse(t, t, obs.astype(int))
    with pytest.raises(ValueError, match='no missing'): mae(t, t, np.ones_like(obs))
    with pytest.raises(ValueError, match='NaN at 1 missing'): mse(t, np.full_like(t, np.nan), obs)


# ---------------------------------------------------------------- probes

def test_probe_separable_and_random_labels():
    rng = np.random.default_rng(0)
    feat = rng.normal(size=(600, 6)); tr, te = np.arange(400), np.arange(400, 600)
    lab = rng.integers(0, 2, 600)
    assert probe(feat + 6 * lab[:, None], lab, tr, te) == {'linear': 1.0, 'nonlinear': 1.0}
    for kind in ('svc', 'mlp'):
        acc = probe(feat, lab, tr, te, nonlinear=kind)
        assert all(abs(v - 0.5) < 0.12 for v in acc.values()), acc
    mask = np.zeros(600, bool); mask[:400] = True
    assert probe(feat + 6 * lab[:, None], lab, mask, ~mask)['linear'] == 1.0


def test_probe_rejects_bad_inputs():
    feat, lab = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match='pool over time'): probe(np.zeros((10, 3, 2)), lab, [0, 1], [2])
    with pytest.raises(ValueError, match='one per row'): probe(feat, lab[:5], [0, 1], [2])
    with pytest.raises(ValueError, match='held-out'): probe(feat, lab, [0, 1, 2], [2, 3])
    with pytest.raises(ValueError, match='single class'): probe(feat, lab, [0, 2], [1])


# ---------------------------------------------------------------- t-interval and evaluate

def test_t_interval_matches_scipy():
    vals = np.random.default_rng(4).normal(size=5)
    m, h = t_interval(vals)
    lo, hi = stats.t.interval(0.95, 4, loc=vals.mean(), scale=stats.sem(vals))
    assert m - h == pytest.approx(lo, abs=1e-12) and m + h == pytest.approx(hi, abs=1e-12)
    m9, h9 = t_interval(vals, 0.9)
    assert h9 == pytest.approx(stats.t.ppf(0.95, 4) * vals.std(ddof=1) / np.sqrt(5), abs=1e-12)
    assert np.isnan(t_interval([1.0])[1])


QUICK = {'context_fid': {'n_iters': 5}, 'discriminative': {'n_iters': 10}, 'predictive': {'n_iters': 10}}


def test_evaluate_table_intervals_and_reproducibility(sines):
    real, other = sines
    real, other = real[:100], other[:100]
    run = lambda seed: evaluate(real, other, repeats=3, seed=seed, metric_kwargs=QUICK, **CPU)
    df = run(0)
    assert isinstance(df, pd.DataFrame) and list(df.index) == ['context_fid', 'correlational', 'discriminative', 'predictive']
    for _, row in df.iterrows():
        vals = np.array(row['values'])
        assert len(vals) == 3 and len(set(vals)) > 1 or row.name == 'discriminative'   # reseeded every repeat
        lo, hi = stats.t.interval(0.95, 2, loc=vals.mean(), scale=stats.sem(vals))
        assert row['mean'] == pytest.approx(vals.mean()) and row['half_width'] == pytest.approx((hi - lo) / 2, abs=1e-12)
    pd.testing.assert_frame_equal(df.drop(columns='seconds'), run(0).drop(columns='seconds'))
    assert not np.allclose(run(1)['mean'], df['mean'])
    assert summary(df)['correlational'].count('±') == 1


def test_evaluate_values_are_the_metrics_with_the_repeat_seeds(sines):
    real, other = sines
    real, other = real[:100], other[:100]
    df = evaluate(real, other, metrics=['context_fid', 'discriminative'], repeats=2, seed=7,
                  metric_kwargs={'context_fid': {'n_iters': 5}, 'discriminative': {'n_iters': 10}}, **CPU)
    assert df.loc['context_fid', 'values'][1] == context_fid(real, other, n_iters=5, seed=repeat_seed(7, 1, 0), **CPU)
    assert df.loc['discriminative', 'values'][0] == discriminative_score(real, other, n_iters=10, seed=repeat_seed(7, 0, 2), **CPU)


def test_evaluate_several_fakes_share_the_encoder_exactly(sines):
    real, other = sines
    real, other = real[:100], other[:100]
    kw = dict(metrics=['context_fid', 'correlational'], repeats=2, seed=3, metric_kwargs={'context_fid': {'n_iters': 5}}, **CPU)
    both = evaluate(real, {'indep': other, 'noisy': noisy(real, 0.3)}, **kw)
    assert list(both.index.names) == ['fake', 'metric'] and len(both) == 4
    for name, f in (('indep', other), ('noisy', noisy(real, 0.3))):
        alone = evaluate(real, f, **kw)
        assert both.loc[name]['values'].tolist() == alone['values'].tolist()
    assert both.loc[('noisy', 'context_fid'), 'mean'] > both.loc[('indep', 'context_fid'), 'mean']
    assert summary(both).shape == (2, 2)


def test_evaluate_metric_is_independent_of_the_others(sines):
    "A metric's repeats use seeds of their own: adding metrics to the list does not change its numbers."
    real, other = sines
    a = evaluate(real[:100], other[:100], metrics=['predictive'], repeats=2, metric_kwargs={'predictive': {'n_iters': 10}}, **CPU)
    b = evaluate(real[:100], other[:100], metrics=['correlational', 'predictive'], repeats=2,
                 metric_kwargs={'predictive': {'n_iters': 10}}, **CPU)
    assert a.loc['predictive', 'values'] == b.loc['predictive', 'values']


# ---------------------------------------------------------------- errors at the public boundary

@pytest.mark.parametrize('fn', [context_fid, correlational_score, discriminative_score, predictive_score])
def test_mismatched_shapes_are_rejected(fn, sines):
    real, _ = sines
    with pytest.raises(ValueError, match=r'\(L, C\)'): fn(real, real[..., :2])
    with pytest.raises(ValueError, match=r'\(L, C\)'): fn(real, real[:, :12])
    with pytest.raises(ValueError, match='shape \\(N, L, C\\)'): fn(real, real[0])
    with pytest.raises(ValueError, match='NaN'): fn(real, np.full_like(real, np.nan))


def test_evaluate_rejects_unknown_metrics_and_options(sines):
    real, _ = sines
    with pytest.raises(ValueError, match='Unknown metrics'): evaluate(real, real, metrics=['fid'])
    with pytest.raises(ValueError, match='not evaluated'):
        evaluate(real, real, metrics=['correlational'], metric_kwargs={'predictive': {}})
    with pytest.raises(ValueError, match='positive integer'): evaluate(real, real, repeats=0)
    with pytest.raises(ValueError, match='positive integer'): predictive_score(real, real, n_iters=0)


def test_encoder_channel_mismatch_is_clear(sines):
    real, _ = sines
    enc = TS2Vec(device='cpu').fit(real, n_iters=2, seed=0, disable=True)
    with pytest.raises(ValueError, match='channels'): enc.encode(real[..., :2])
    with pytest.raises(RuntimeError, match='not fitted'): TS2Vec(device='cpu').encode(real)


def test_conformal_margin_reaches_the_coverage_it_promises():
    from tsbridge_lambda.metrics import conformal_margin, band_coverage
    rng = np.random.default_rng(3)
    y = rng.standard_normal((2, 4000, 2)) * np.array([1., 10.])                # two channels, different units
    half = np.broadcast_to(0.2 * np.abs(y).mean((0, 1)), y.shape)
    lo, hi = -half, half                                                          # a band far too narrow
    cal = np.zeros(y.shape, bool); cal[0] = True
    q = conformal_margin(y, lo, hi, where=cal, coverage=0.8)
    assert q.shape == (2,) and (q > 0).all() and 5 < q[1] / q[0] < 20            # per channel, in its units
    assert (band_coverage(y, lo - q, hi + q, cal) >= 0.8).all()                  # on the calibration entries: by construction
    assert np.allclose(band_coverage(y, lo - q, hi + q, ~cal), 0.8, atol=0.02)   # on new entries: about the target
    assert (band_coverage(y, lo, hi, ~cal) < 0.3).all()                          # and it was far off before
    with pytest.raises(ValueError, match='coverage must be'): conformal_margin(y, lo, hi, coverage=1.0)
    with pytest.raises(ValueError, match='one shape'): conformal_margin(y, lo[:, :10], hi)
    nan = y.copy(); nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match='hold values'): conformal_margin(nan, lo, hi)


def _scale_in_worker(x): return x.metric_scale


def test_benchmark_windows_keep_their_metric_scale_across_processes():
    "Windows sent to a process pool (or DataLoader worker, or pickled) keep the published scale; ndarray's pickle dropped it."
    import pickle
    from concurrent.futures import ProcessPoolExecutor
    real = load_dataset('sines', n_samples=40, seed=0).part('train')
    assert real.metric_scale == SINES_BOUNDS
    back = pickle.loads(pickle.dumps(real[:5, ::2]))
    assert back.metric_scale == SINES_BOUNDS and np.array_equal(back, real[:5, ::2])
    with ProcessPoolExecutor(1) as pool: assert pool.submit(_scale_in_worker, real).result() == SINES_BOUNDS


def test_benchmark_windows_carry_their_metric_scale():
    "Sines windows from load_dataset are scored on the published fixed bounds without scale=; plain arrays by min-max."
    from tsbridge_lambda.data import load_dataset
    from tsbridge_lambda.metrics import SINES_BOUNDS, evaluate
    w = load_dataset('sines', n_samples=300, seed=0)
    real, fake = w.part('train')[:150], w.part('train')[150:] * 0.9      # arithmetic gives a plain array
    assert real.metric_scale == SINES_BOUNDS and not hasattr(fake, 'metric_scale')
    kw = dict(metrics='predictive', repeats=1, seed=0, disable=True, device='cpu', metric_kwargs={'predictive': {'n_iters': 20}})
    score = lambda r, **k: float(evaluate(r, fake, **kw, **k)['mean'].iloc[0])      # the predictive MAE depends on the scale
    auto = score(real)
    assert auto == score(np.asarray(real), scale=SINES_BOUNDS) and auto != score(real, scale=True)
    assert score(np.asarray(real)) == score(real, scale=True)                    # plain arrays: min-max of real, as before
    import inspect
    from tsbridge_lambda import metrics as M
    for f in (M.context_fid, M.correlational_score, M.discriminative_score, M.predictive_score, M.evaluate):
        assert inspect.signature(f).parameters['scale'].default == 'auto', f.__name__
