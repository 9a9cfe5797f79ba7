"""TimeBridge and the Gaussian baseline on tiny configs: shapes, finiteness, units, save/load, exact resume."""
import numpy as np, pytest, torch
from tsbridge_lambda.timebridge import TimeBridge, GaussianDiffusion
from tsbridge_lambda.data import load_dataset

TINY = dict(preset='tiny', batch_size=32, warmup=10)


@pytest.fixture(scope='module')
def sines():
    return load_dataset('sines', n_samples=256, seed=0).X * 3 + 10     # units far from [-1, 1]


@pytest.mark.parametrize('prior', ['gp', 'data', 'gaussian'])
def test_timebridge_fit_sample_units(sines, prior):
    tb = TimeBridge(prior=prior, steps=30, **TINY).fit(sines, disable=True)
    out = tb.sample(16, seed=0, steps=10, disable=True)
    assert out.shape == (16, 24, 5) and out.dtype == np.float32 and np.isfinite(out).all()
    assert sines.min() <= np.median(out) <= sines.max()          # in the user's units, not the scaled [-1, 1]
    assert len(tb.history_) == 30


def test_baseline_fit_sample(sines):
    gd = GaussianDiffusion(steps=20, n_steps=50, **TINY).fit(sines, disable=True)
    for nfe in (None, 10):
        out = gd.sample(8, seed=1, nfe=nfe, disable=True)
        assert out.shape == (8, 24, 5) and np.isfinite(out).all() and out.min() > 5


@pytest.mark.parametrize('cls', [TimeBridge, GaussianDiffusion])
def test_save_load_identical_samples(sines, tmp_path, cls):
    est = cls(steps=15, **TINY).fit(sines, disable=True)
    est.save(tmp_path / 'm.pt')
    again = cls.load(tmp_path / 'm.pt')
    kw = {'steps': 4} if cls is TimeBridge else {'nfe': 5}
    np.testing.assert_array_equal(est.sample(6, seed=2, disable=True, **kw), again.sample(6, seed=2, disable=True, **kw))
    assert not np.array_equal(est.sample(6, seed=2, disable=True, **kw), est.sample(6, seed=3, disable=True, **kw))


def test_resume_continues_the_same_loss_trajectory(sines, tmp_path):
    fixed = dict(TINY, threads=None)                  # bit-identity across runs needs a held thread count
    full = TimeBridge(steps=40, checkpoint_every=20, **fixed).fit(sines, disable=True)
    ck = tmp_path / 'ck.pt'
    TimeBridge(checkpoint_every=20, **fixed).fit(sines, steps=20, checkpoint=ck, disable=True)
    resumed = TimeBridge(checkpoint_every=20, **fixed).fit(sines, steps=40, checkpoint=ck, resume=True, disable=True)
    assert resumed.history_ == full.history_
    for a, b in zip(resumed.model_.parameters(), full.model_.parameters()): assert torch.equal(a, b)


def test_bad_inputs(sines, tmp_path):
    with pytest.raises(ValueError, match='NaN'): TimeBridge(**TINY).fit(np.full((4, 24, 2), np.nan))
    with pytest.raises(ValueError, match=r'shape \(N, L, C\)'): TimeBridge(**TINY).fit(sines[0])
    with pytest.raises(ValueError, match='at least 2'): TimeBridge(**TINY).fit(sines[:1])
    with pytest.raises(ValueError, match='not a tsbridge_lambda model'):
        torch.save({'format': 'other'}, tmp_path / 'x.pt'); TimeBridge.load(tmp_path / 'x.pt')


def test_grid_warping_rho_is_a_sampler_setting(sines):
    "rho (Karras grid warping) reaches the sampler: the default equals rho=7 bit for bit, another rho changes the draw."
    tb = TimeBridge(steps=5, **TINY).fit(sines, disable=True)
    a = tb.sample(6, seed=3, steps=6, disable=True)
    assert np.array_equal(a, tb.sample(6, seed=3, steps=6, rho=7., disable=True))
    assert not np.allclose(a, tb.sample(6, seed=3, steps=6, rho=3., disable=True))
    tb.config['sample_rho'] = 3.
    assert np.array_equal(tb.sample(6, seed=3, steps=6, disable=True), tb.sample(6, seed=3, steps=6, rho=3., disable=True))
    with pytest.raises(ValueError, match='rho'): tb.sample(2, seed=0, rho=-1., disable=True)
    with pytest.raises(ValueError, match='rho'): tb.sample(2, seed=0, rho='7', disable=True)
    with pytest.raises(ValueError, match='sample_rho'): TimeBridge(sample_rho=0, **TINY)
