"""SPEC §2-§3 identities for every schedule setting the papers use (float64)."""
import pytest, torch
from tsbridge_lambda.schedules import VPSchedule, VESchedule, VP_PRESETS
from tsbridge_lambda.bridge import VPBridge, forward_sample, transition

F64 = dict(dtype=torch.float64)
SETTINGS = [pytest.param(VPSchedule(*v), 1., id=k) for k, v in VP_PRESETS.items()] + [pytest.param(VESchedule(), 2., id='ve')]


def test_vp_sigma_is_not_eq25():
    "Erratum pin: the paper's eq. 25 expression is 1/SNR, and sigma^2 = 1 - alpha^2."
    s = VPSchedule(0.2, 10.)
    t = torch.linspace(0.05, 1, 20, **F64)
    eq25 = torch.exp(s.beta_d * t**2 / 2 + s.beta_min * t) - 1
    torch.testing.assert_close(s.sigma(t)**2, 1 - s.alpha(t)**2)
    torch.testing.assert_close(eq25, s.sigma(t)**2 / s.alpha(t)**2)
    assert not torch.allclose(eq25, s.sigma(t), atol=1e-2)


@pytest.mark.parametrize('sch,T', SETTINGS)
def test_identity1_ends(sch, T):
    br = VPBridge(sch, T)
    torch.testing.assert_close(torch.stack(br.coeffs(0.)), torch.tensor([0., 1., 0.], **F64), atol=1e-14, rtol=0)
    torch.testing.assert_close(torch.stack(br.coeffs(T)), torch.tensor([1., 0., 0.], **F64), atol=1e-12, rtol=0)


@pytest.mark.parametrize('sch,T', SETTINGS)
def test_identity2_marginal_is_gaussian_conditioning(sch, T):
    "q(x_t|x_0,x_T) from conditioning the joint Gaussian of (x_t, x_T) given x_0, computed here independently."
    br, g = VPBridge(sch, T), torch.Generator().manual_seed(0)
    t = torch.linspace(1e-3, T - 1e-3, 64, **F64)
    x_0, x_T = torch.randn(2, 64, **F64, generator=g)
    at, st2, aT, sT2 = sch.alpha(t), sch.sigma(t)**2, sch.alpha(T), sch.sigma(T)**2
    cov = (aT / at) * st2
    a, b, c = br.coeffs(t)
    torch.testing.assert_close(a * x_T + b * x_0, at * x_0 + cov / sT2 * (x_T - aT * x_0), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(c, st2 - cov**2 / sT2, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize('sch,T', SETTINGS)
def test_identity3_h_is_grad_log_transition(sch, T):
    br, g = VPBridge(sch, T), torch.Generator().manual_seed(1)
    t = torch.tensor([0.02, 0.3, 0.7, 0.97], **F64) * T
    x = torch.randn(4, 5, 3, **F64, generator=g).requires_grad_()
    x_T = torch.randn(4, 5, 3, **F64, generator=g)
    mean = (sch.alpha(T) / sch.alpha(t))[:, None, None] * x
    var = (sch.alpha(T)**2 * (1 / sch.snr(T) - 1 / sch.snr(t)))[:, None, None]
    logp = (-(x_T - mean)**2 / (2 * var)).sum()
    grad, = torch.autograd.grad(logp, x)
    torch.testing.assert_close(br.h(x.detach(), t, x_T), grad, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize('sch,T', SETTINGS)
def test_score_with_true_x0_is_grad_log_marginal(sch, T):
    br, g = VPBridge(sch, T), torch.Generator().manual_seed(2)
    t = torch.tensor([0.05, 0.5, 0.9], **F64) * T
    x = torch.randn(3, 4, 2, **F64, generator=g).requires_grad_()
    x_0, x_T = torch.randn(2, 3, 4, 2, **F64, generator=g)
    a, b, c = (k[:, None, None] for k in br.coeffs(t))
    logq = (-(x - a * x_T - b * x_0)**2 / (2 * c)).sum()
    grad, = torch.autograd.grad(logq, x)
    torch.testing.assert_close(br.score(x.detach(), t, x_T, x_0), grad, rtol=1e-8, atol=1e-8)


def test_drifts_match_spec():
    "f - g^2 (s - h) and f - g^2 (s/2 - h), assembled here from the parts."
    sch = VPSchedule(0.2, 10.); br = VPBridge(sch)
    g = torch.Generator().manual_seed(3)
    x, x_T, D = torch.randn(3, 2, 6, 1, **F64, generator=g)
    t = torch.tensor([0.1, 0.6], **F64)
    f = sch.f(t)[:, None, None] * x; g2 = sch.beta(t)[:, None, None]
    s, h = br.score(x, t, x_T, D), br.h(x, t, x_T)
    torch.testing.assert_close(br.sde_drift(x, t, x_T, D), f - g2 * (s - h))
    torch.testing.assert_close(br.ode_drift(x, t, x_T, D), f - g2 * (s / 2 - h))


def test_marginal_sampling_moments():
    sch = VPSchedule(0.1, 5.); br = VPBridge(sch); g = torch.Generator().manual_seed(4)
    n = 100_000
    x_0, x_T = torch.full((n, 1, 1), 0.8, **F64), torch.full((n, 1, 1), -0.5, **F64)
    xt = br.sample_marginal(x_0, x_T, torch.full((n,), 0.35, **F64), torch.randn(n, 1, 1, **F64, generator=g))
    a, b, c = br.coeffs(0.35)
    assert abs(float(xt.mean() - (a * -0.5 + b * 0.8))) < 5 * float((c / n).sqrt())
    assert abs(float(xt.var() / c) - 1) < 0.02
    xf = forward_sample(sch, x_0, 0.35, torch.randn(n, 1, 1, **F64, generator=g))
    assert abs(float(xf.mean() - 0.8 * sch.alpha(0.35))) < 5 * float(sch.sigma(0.35)) / n**0.5
    m, v = transition(sch, 0.35, 1.)
    torch.testing.assert_close(m**2 * sch.sigma(0.35)**2 + v, sch.sigma(1.)**2)


def test_bad_bridge_arguments():
    with pytest.raises(ValueError, match='end time T must be positive'): VPBridge(VPSchedule(), T=0.)
    with pytest.raises(ValueError, match='beta_min >= 0'): VPSchedule(-1., 2.)
