"""The Diffusion-TS backbone (SPEC §6): shapes, the decomposition's identities, conditioning, gradients, presets."""
import math
import pytest, torch
from tsbridge_lambda.backbone import (DiffusionTS, FourierSeason, TrendBlock, Attention, poly_basis, make_backbone,
                                      BACKBONE_PRESETS, TRAIN_PRESETS, Decomposition)

TINY = dict(n_layer_enc=1, n_layer_dec=2, d_model=16, n_heads=2)


def cubic_projector(L):
    "(L, L) float64 projector onto the polynomials of degree <= 3 in time, from a constant column and `poly_basis`."
    A = torch.cat([torch.ones(L, 1, dtype=torch.float64), poly_basis(L, dtype=torch.float64).T], 1)
    return A @ torch.linalg.pinv(A)


@pytest.mark.parametrize('N,L,C', [(2, 24, 5), (3, 17, 1), (1, 9, 3), (2, 3, 2), (2, 4, 1)])
def test_output_shape_and_parts(N, L, C):
    torch.manual_seed(0)
    net = DiffusionTS(C, L, **TINY).eval()
    with torch.no_grad():
        out = net(torch.randn(N, L, C), torch.rand(N))
        parts = net(torch.randn(N, L, C), torch.rand(N), return_parts=True)
    assert out.shape == (N, L, C) and torch.isfinite(out).all()
    assert isinstance(parts, Decomposition)
    for p in parts: assert p.shape == (N, L, C)
    torch.testing.assert_close(parts.trend + parts.season + parts.residual, parts.out, atol=1e-6, rtol=0)
    torch.testing.assert_close(parts.residual.mean(1), torch.zeros(N, C), atol=1e-6, rtol=0)
    # the trend part is a cubic in time, channel by channel
    torch.testing.assert_close(cubic_projector(L) @ parts.trend.double(), parts.trend.double(), atol=1e-5, rtol=0)


def test_cond_changes_output_and_is_checked():
    torch.manual_seed(0)
    net = DiffusionTS(3, 12, cond_channels=3, **TINY).eval()
    x, x_T = torch.randn(4, 12, 3), torch.randn(4, 12, 3)
    with torch.no_grad():
        a, b = net(x, 0.5, cond=x_T), net(x, 0.5, cond=x_T + 0.5)
    assert (a - b).abs().max() > 1e-3
    assert net.embed.in_channels == 6
    with pytest.raises(ValueError, match='cond_channels=3'): net(x, 0.5)
    with pytest.raises(ValueError, match='cond_channels=3'): net(x, 0.5, cond=x_T[..., :2])
    with pytest.raises(ValueError, match='cond_channels=0'): DiffusionTS(3, 12, **TINY)(x, 0.5, cond=x_T)


def test_time_changes_output_and_scalar_t():
    torch.manual_seed(0)
    net = DiffusionTS(2, 10, **TINY).eval()
    x = torch.randn(3, 10, 2)
    with torch.no_grad():
        outs = [net(x, t) for t in (0., 1e-3, 0.5, 1.)]
        for i in range(len(outs) - 1): assert (outs[i] - outs[i + 1]).abs().max() > 1e-4
        torch.testing.assert_close(net(x, 0.5), net(x, torch.full((3,), 0.5, dtype=torch.float64)))
    with pytest.raises(ValueError, match=r't must be a scalar or have shape \(3,\)'): net(x, torch.rand(2))
    with pytest.raises(ValueError, match=r'x must have shape \(N, 10, 2\)'): net(torch.randn(3, 9, 2), 0.5)


@pytest.mark.parametrize('cond_channels', [0, 2])
def test_gradients_reach_every_parameter(cond_channels):
    torch.manual_seed(0)
    net = DiffusionTS(2, 11, cond_channels=cond_channels, **TINY)
    x = torch.randn(5, 11, 2)
    cond = torch.randn(5, 11, cond_channels) if cond_channels else None
    net(x, torch.rand(5), cond=cond).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f'no gradient reaches {name}'


@pytest.mark.parametrize('L', [24, 25, 7])
def test_season_identities(L):
    g = torch.Generator().manual_seed(L)
    h = torch.randn(3, L, 4, dtype=torch.float64, generator=g)
    # every frequency kept, exact amplitude: the identity
    full = FourierSeason(L, top_k=L, low_freq=0, drop_nyquist=False, amplitude='exact')
    torch.testing.assert_close(full(h), h, atol=1e-12, rtol=0)
    # the default band keeps everything but the mean (and the Nyquist term of an even L)
    alt = (-1.) ** torch.arange(L, dtype=torch.float64)[:, None]
    nyq = (h * alt).mean(1, keepdim=True) * alt if L % 2 == 0 else 0.
    band = FourierSeason(L, top_k=L, amplitude='exact')
    torch.testing.assert_close(band(h), h - h.mean(1, keepdim=True) - nyq, atol=1e-12, rtol=0)
    # the published scale is L times the component
    torch.testing.assert_close(FourierSeason(L, top_k=L)(h), L * band(h), atol=1e-10, rtol=0)
    # top-k keeps the k strongest sinusoids, per sample and feature
    i = torch.arange(L, dtype=torch.float64)[None, :, None]
    strong = torch.cos(2 * math.pi * 2 * i / L + 0.4) + 0.8 * torch.sin(2 * math.pi * 3 * i / L)
    weak = 0.3 * torch.cos(2 * math.pi * 1 * i / L)
    torch.testing.assert_close(FourierSeason(L, top_k=2, amplitude='exact')(0.7 + strong + weak), strong, atol=1e-12, rtol=0)
    se = FourierSeason(L)
    assert ((torch.fft.rfft(se(h), dim=1).abs() > 1e-9).sum(1) <= se.top_k).all()


def test_season_default_k_and_errors():
    assert FourierSeason(24).top_k == 2 == int(math.log(11))     # 11 candidates for L = 24, as in Diffusion-TS
    assert FourierSeason(100).top_k == int(math.log(49))
    assert FourierSeason(3).top_k == 1
    with pytest.raises(ValueError, match='no candidate frequency'): FourierSeason(2)
    with pytest.raises(ValueError, match='seq_len'): DiffusionTS(1, 2)


def test_trend_basis_spans_cubics():
    L = 24
    P = cubic_projector(L)
    i = torch.arange(L, dtype=torch.float64)
    cubic = 0.3 - 0.2 * i + 0.05 * i**2 - 0.002 * i**3
    torch.testing.assert_close(P @ cubic, cubic, atol=1e-9, rtol=0)
    assert (P @ i**4 - i**4).abs().max() > 1.                     # ...and not quartics
    tb = TrendBlock(L, 16, 3)
    trend = tb(torch.randn(4, L, 16)).double()
    torch.testing.assert_close(P @ trend, trend, atol=1e-5, rtol=0)
    coef = tb.coefficients(torch.randn(2, L, 16))
    assert coef.shape == (2, 3, 3)


@pytest.mark.parametrize('impl', ['auto', 'sdpa', 'explicit'])
def test_attention_matches_formula(impl):
    torch.manual_seed(0)
    x, ctx = torch.randn(2, 7, 8), torch.randn(2, 5, 8)
    for att in (Attention(8, 2, impl=impl), Attention(8, 2, cross=True, impl=impl)):
        if att.cross: q, (k, v) = att.q(x), att.kv(ctx).chunk(2, -1)
        else: q, k, v = att.qkv(x).chunk(3, -1)
        heads = [torch.softmax(q[..., s] @ k[..., s].transpose(1, 2) / 2., -1) @ v[..., s] for s in (slice(0, 4), slice(4, 8))]
        torch.testing.assert_close(att(x, ctx if att.cross else None), att.proj(torch.cat(heads, -1)), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='impl must be'): Attention(8, 2, impl='flash')


def test_attention_kernels_give_the_same_model():
    "Output and gradients agree between the SDPA and explicit attention paths (same weights)."
    a = make_backbone('tiny', 3, 24, seed=0, attn_impl='sdpa')
    b = make_backbone('tiny', 3, 24, seed=0, attn_impl='explicit')
    x, t = torch.randn(4, 24, 3), torch.rand(4)
    ya, yb = a(x, t), b(x, t)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    ya.square().sum().backward(); yb.square().sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_determinism_under_seed():
    a, b = make_backbone('tiny', 3, 16, seed=7), make_backbone('tiny', 3, 16, seed=7)
    c = make_backbone('tiny', 3, 16, seed=8)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()): assert torch.equal(v, w), k
    x = torch.randn(2, 16, 3)
    with torch.no_grad():
        assert torch.equal(a(x, 0.3), b(x, 0.3))
        assert not torch.equal(a(x, 0.3), c(x, 0.3))
    state = torch.random.get_rng_state()
    make_backbone('tiny', 3, 16, seed=7)
    assert torch.equal(state, torch.random.get_rng_state())        # seeding does not touch the global generator


def test_float64_model():
    net = make_backbone('tiny', 2, 12, seed=0).double()
    out = net(torch.randn(3, 12, 2, dtype=torch.float64), torch.rand(3, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_sines_parameter_count():
    n = sum(p.numel() for p in make_backbone('sines', 5, 24).parameters())
    assert abs(n / 235_000 - 1) < 0.10, n


def test_presets():
    spec = {'sines': (1, 2, 64, 128, 12000, 3000), 'stocks': (2, 2, 64, 64, 10000, 2000), 'etth': (3, 2, 64, 128, 18000, 4000),
            'mujoco': (3, 2, 64, 128, 14000, 3000), 'energy': (4, 3, 96, 64, 25000, 5000), 'fmri': (4, 4, 96, 64, 15000, 3000)}
    for name, (enc, dec, d, batch, steps, patience) in spec.items():
        p = BACKBONE_PRESETS[name]
        assert (p['n_layer_enc'], p['n_layer_dec'], p['d_model'], p['n_heads']) == (enc, dec, d, 4)
        assert TRAIN_PRESETS[name] == dict(batch_size=batch, steps=steps, accumulate=2, patience=patience)   # reference Config/<name>.yaml
        net = make_backbone(name, 3, 24, seed=0)
        assert len(net.encoder) == enc and len(net.decoder) == dec
    with pytest.raises(ValueError, match="Unknown backbone preset"): make_backbone('imagenet', 3, 24)
    assert make_backbone('sines', 5, 24, cond_channels=5).embed.in_channels == 10


@pytest.mark.parametrize('L', [24, 13])
def test_season_equals_cosine_sum(L):
    "The masked-FFT season equals the published form, a sum of 2|H_f| cos(2 pi f i / L + arg H_f) over the top-k f."
    h = torch.randn(2, L, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    se = FourierSeason(L)
    H = torch.fft.rfft(h, dim=1)
    cand = torch.arange(1, L // 2 + (L % 2))
    want = torch.zeros_like(h)
    for n in range(2):
        for c in range(3):
            for f in cand[H[n, cand, c].abs().argsort(descending=True)[:se.top_k]]:
                want[n, :, c] += 2 * H[n, f, c].abs() * torch.cos(2 * math.pi * float(f) * torch.arange(L, dtype=torch.float64) / L + H[n, f, c].angle())
    torch.testing.assert_close(se(h), want, atol=1e-10, rtol=0)
