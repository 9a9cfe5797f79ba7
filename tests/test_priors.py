"""Each prior, fitted to synthetic data of known structure, recovers it (SPEC §5)."""
import numpy as np, pytest, torch
from tsbridge_lambda.priors import GaussianPrior, DataPrior, GPPrior, Prior, rbf_kernel, safe_cholesky, spline_fill, fit_length_scale, trend

F64 = torch.float64


def _gp_windows(n, L, C, eta, ell, noise_std, mean, seed):
    g = torch.Generator().manual_seed(seed)
    cov = eta * rbf_kernel(L, ell) + noise_std**2 * torch.eye(L, dtype=F64)
    z = torch.randn(C, n, L, dtype=F64, generator=g)
    return mean + (safe_cholesky(cov) @ z[..., None])[..., 0].permute(1, 2, 0)


def test_gaussian_prior_is_standard_normal():
    p = GaussianPrior().fit(np.zeros((3, 12, 2)))
    s = p.sample(50_000, torch.Generator().manual_seed(0), F64)
    assert s.shape == (50_000, 12, 2)
    assert s.mean().abs() < 0.01 and (s.var() - 1).abs() < 0.01


def test_data_prior_recovers_per_step_mean_and_std():
    g = torch.Generator().manual_seed(1)
    mean = torch.linspace(-1, 1, 16, dtype=F64)[:, None] * torch.tensor([1., -0.5], dtype=F64)
    std = torch.linspace(0.05, 0.3, 16, dtype=F64)[:, None].repeat(1, 2)
    X = mean + std * torch.randn(20_000, 16, 2, dtype=F64, generator=g)
    p = DataPrior().fit(X)
    torch.testing.assert_close(p.mean, mean, atol=4 * 0.3 / 20_000**0.5, rtol=0)
    torch.testing.assert_close(p.std, std, atol=0.01, rtol=0)
    s = p.sample(20_000, g, F64)
    torch.testing.assert_close(s.std(0), std, atol=0.01, rtol=0)


def test_gp_prior_recovers_length_scale_and_covariance():
    X = _gp_windows(3000, 24, 2, eta=0.4, ell=2., noise_std=0.1, mean=0.3, seed=2)
    p = GPPrior(eta=0.4).fit(X)
    assert p.length_scale == 2.
    S = p.sample(50_000, torch.Generator().manual_seed(3), F64)
    emp = torch.einsum('nlc,nkc->clk', S - S.mean(0), S - S.mean(0)) / len(S)
    want = p.covariance()
    # sampling error of a covariance entry ~ sqrt((s_ii s_jj + s_ij^2) / n) <= sqrt(2) * max var / sqrt(n)
    tol = 5 * 2**0.5 * float(want.diagonal(dim1=1, dim2=2).max()) / len(S)**0.5
    assert (emp - want).abs().max() < tol
    torch.testing.assert_close(S.mean(0), p.mean, atol=5 * float(want.diagonal(dim1=1, dim2=2).max())**0.5 / len(S)**0.5, rtol=0)
    off = ~torch.eye(24, dtype=torch.bool)
    torch.testing.assert_close(want[:, off], (0.4 * rbf_kernel(24, 2.)).expand(2, 24, 24)[:, off])


@pytest.mark.parametrize('ell', [1., 3., 6.])
def test_fit_length_scale(ell):
    X = _gp_windows(2000, 32, 1, eta=1., ell=ell, noise_std=0.3, mean=0., seed=int(ell))
    assert fit_length_scale(X) == ell


def test_gp_prior_std_diagonal_option_and_state_roundtrip():
    X = _gp_windows(500, 12, 3, eta=0.5, ell=1.5, noise_std=0.2, mean=0., seed=4)
    p = GPPrior(eta=0.5, length_scale=1.5, diag='std').fit(X)
    torch.testing.assert_close(p.covariance().diagonal(dim1=1, dim2=2), 0.5 + X.std(0, unbiased=False).T)
    q = Prior.from_state_dict(p.state_dict())
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(p.sample(7, g1), q.sample(7, g2))


def test_prior_errors():
    with pytest.raises(ValueError, match="length_scale must be"): GPPrior(length_scale=-1)
    with pytest.raises(ValueError, match="diag must be"): GPPrior(diag='sd')
    with pytest.raises(RuntimeError, match='not fitted'): GPPrior().sample(2)
    with pytest.raises(ValueError, match='NaN'): DataPrior().fit(np.full((2, 5, 1), np.nan))


def test_spline_fill_torch_and_exactness():
    x = torch.tensor([[[0.], [5.], [1.], [9.], [3.]]], dtype=F64)
    obs = torch.tensor([[[False], [True], [False], [True], [False]]])
    out = spline_fill(x, obs)
    torch.testing.assert_close(out[0, :, 0], torch.tensor([5., 5., 7., 9., 9.], dtype=F64))
    with pytest.raises(ValueError, match='must match'): spline_fill(x, obs[:, :3])


def test_trend_reexported_and_linear_is_exact_on_lines():
    j = np.linspace(0, 1, 20)
    x = (2 * j - 0.5)[None, :, None].repeat(3, 0)
    np.testing.assert_allclose(trend(x, 'linear'), x, atol=1e-6)
