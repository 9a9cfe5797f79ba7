"""F-matching (TimeBridge Table 16's ablation) as `TimeBridge(parameterization='fmatching')`: bit for bit the subclass
the ablation built before issue 19 (`experiments.fmatching_class`, its arithmetic restated here as the reference), and saveable."""
import numpy as np, pytest, torch
from tsbridge_lambda.timebridge import TimeBridge
from tsbridge_lambda.data import load_dataset

TINY = dict(preset='tiny', batch_size=32, warmup=10, threads=None)   # bit identity needs a held thread count


def _old_coeffs(bridge, t, sigma_data):
    "experiments.fmatching_coeffs before issue 19, verbatim."
    a, b, c = bridge.coeffs(torch.as_tensor(t, dtype=torch.float64))
    sd2 = sigma_data**2
    var = (a**2 + b**2) * sd2 + c
    return b * sd2 / var, (sd2 * (a**2 * sd2 + c) / var).sqrt(), var.rsqrt()


class OldFMatching(TimeBridge):
    """The subclass `experiments.fmatching_class()` returned before issue 19 (kind 'timebridge_fmatching', not saveable), with
    its D written from the coefficients directly (CPU; the verbatim copy passed these tests in commit a3ee7ec)."""
    _kind = 'timebridge_fmatching'
    def _denoiser(self, net):
        def D(x_t, t, x_T):
            t = torch.as_tensor(t).reshape(-1).expand(len(x_t))
            c_skip, c_out, c_in = (k.to(x_t.dtype)[:, None, None] for k in _old_coeffs(self.bridge, t, self.config['sigma_data']))
            return c_skip * x_t + c_out * net(c_in * x_t, t, cond=x_T)     # condition_on_prior=True throughout
        return D


@pytest.fixture(scope='module')
def sines():
    return load_dataset('sines', n_samples=128, seed=0).X * 3 + 10


@pytest.fixture(scope='module')
def pair(sines):
    "(old, new) fitted the same way: GP prior, as in the ablation."
    kw = dict(prior='gp', steps=12, **TINY)
    return OldFMatching(**kw).fit(sines, disable=True), TimeBridge(parameterization='fmatching', **kw).fit(sines, disable=True)


def test_coeffs_moved_unchanged():
    from tsbridge_lambda.loss import fmatching_coeffs
    from tsbridge_lambda.experiments import fmatching_coeffs as reexported
    assert reexported is fmatching_coeffs
    from tsbridge_lambda.bridge import VPBridge
    from tsbridge_lambda.schedules import VPSchedule, VESchedule
    t = torch.linspace(1e-4, 1 - 1e-4, 9, dtype=torch.float64)
    for br in (VPBridge(VPSchedule(0.1, 2.)), VPBridge(VESchedule())):
        for a, b in zip(fmatching_coeffs(br, t, 0.5), _old_coeffs(br, t, 0.5)): assert torch.equal(a, b)


def test_denoiser_loss_and_samples_bit_equal(pair, sines):
    old, new = pair
    assert new.history_ == old.history_                                  # the same training trajectory, step by step
    for a, b in zip(old.model_.parameters(), new.model_.parameters()): assert torch.equal(a, b)
    g = torch.Generator().manual_seed(0)
    x_t, x_T = torch.randn(4, 24, 5, generator=g), torch.randn(4, 24, 5, generator=g)
    Do, Dn = old._denoiser(old.model_), new._denoiser(new.model_)
    with torch.no_grad():
        for t in (1e-3, 0.1, 0.5, 0.9, 1 - 1e-3):
            for tt in (torch.tensor(t), torch.full((4,), t)):                  # the sampler's scalar and the loss's per-sample t
                assert torch.equal(Do(x_t, tt, x_T), Dn(x_t, tt, x_T))
        batch = torch.as_tensor(new.scaler.transform(sines[:16]), dtype=torch.float32)
        lo = old._loss_fn()(old.model_, batch, torch.Generator().manual_seed(3))
        ln = new._loss_fn()(new.model_, batch, torch.Generator().manual_seed(3))
    assert torch.equal(lo, ln)
    np.testing.assert_array_equal(old.sample(8, seed=1, steps=4, disable=True), new.sample(8, seed=1, steps=4, disable=True))


def test_trend_task_bit_equal(sines):
    """The ablation's class could also run the trend task (the network conditioned on the trend). There its config said
    'residual' (the trend default), which zeroed the output heads at construction; the option never zeroes them, as
    the old class did with parameterization='x0', the reference here."""
    kw = dict(task='trend', steps=4, **TINY)
    old = OldFMatching(parameterization='x0', **kw).fit(sines, disable=True)
    new = TimeBridge(parameterization='fmatching', **kw).fit(sines, disable=True)
    assert new.history_ == old.history_
    from tsbridge_lambda.data import trend
    tr = trend(sines[:3], 'linear')
    np.testing.assert_array_equal(old.sample_from_trend(tr, seed=0, steps=3, disable=True),
                                  new.sample_from_trend(tr, seed=0, steps=3, disable=True))


def test_save_load_identical_samples(pair, tmp_path):
    _, new = pair
    new.save(tmp_path / 'fm.pt')
    again = TimeBridge.load(tmp_path / 'fm.pt')
    assert again.config['parameterization'] == 'fmatching' and again.config == new.config
    np.testing.assert_array_equal(new.sample(6, seed=2, steps=4, disable=True), again.sample(6, seed=2, steps=4, disable=True))


def test_refused_for_impute():
    with pytest.raises(ValueError, match="parameterization='fmatching'.*task='impute'"):
        TimeBridge(parameterization='fmatching', task='impute', preset='tiny')
    with pytest.raises(ValueError, match='parameterization must be one of'): TimeBridge(parameterization='F', preset='tiny')


def test_ablation_builds_the_option():
    "The ablation notebook's F-matching row: a plain TimeBridge whose configuration names the variant (so its config key differs)."
    from tsbridge_lambda.experiments import make_model, settings, config_key
    s = settings('tiny')
    fm, gp = make_model('TimeBridge-GP', 'etth', s, parameterization='fmatching'), make_model('TimeBridge-GP', 'etth', s)
    assert type(fm) is TimeBridge and fm.config['parameterization'] == 'fmatching' and fm.config['prior'] == 'gp'
    assert {k for k in fm.config if fm.config[k] != gp.config[k]} == {'parameterization'}
    assert config_key('etth', fm) != config_key('etth', gp)
    from tsbridge_lambda.experiments import fmatching_class
    with pytest.warns(DeprecationWarning, match="parameterization='fmatching'"): old_spelling = fmatching_class()
    assert make_model('TimeBridge-GP', 'etth', s, cls=old_spelling).config == fm.config   # the old spelling builds the option
