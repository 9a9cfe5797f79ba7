"""SPEC §3 identity 4 and §4: the samplers recover known distributions, count their evaluations,
preserve observed points, and the identity-4 check catches a wrong sign or factor anywhere."""
import math, pytest, torch
from tsbridge_lambda.schedules import VPSchedule, DDPMSchedule, VP_PRESETS
from tsbridge_lambda.bridge import VPBridge
from tsbridge_lambda.samplers import (karras_times, sample_heun, sample_euler_maruyama, sample_ddpm, sample_ddim,
                                      gaussian_denoiser, gaussian_ddpm_denoiser, ddim_steps)

F64 = dict(dtype=torch.float64)
M, V = 0.25, 0.09


def moments(bridge, steps=300, n=20_000, churn=0.33, seed=0, x_T=-0.6):
    out = sample_heun(gaussian_denoiser(bridge, M, V), torch.full((n, 1, 1), x_T, **F64), karras_times(steps, T=bridge.T),
                      bridge, churn=churn, generator=torch.Generator().manual_seed(seed), disable=True)
    return float(out.mean()), float(out.var())


def close_to_target(mean, var): return abs(mean - M) < 0.012 and abs(var / V - 1) < 0.06


@pytest.mark.parametrize('preset', ['sines', 'mujoco', 'fmri', 'conditional'])
def test_identity4_heun_recovers_gaussian(preset):
    mean, var = moments(VPBridge(VPSchedule(*VP_PRESETS[preset])))
    assert close_to_target(mean, var), (mean, var)


def test_identity4_matches_independent_measurement():
    "SPEC §3 measured 40 steps -> (0.256, 0.099) with an independent implementation; 400 -> (0.251, 0.091)."
    br = VPBridge(VPSchedule(0.2, 10.))
    mean, var = moments(br, steps=40, n=100_000)
    assert abs(mean - 0.256) < 0.004 and abs(var - 0.099) < 0.003
    mean, var = moments(br, steps=400, n=100_000)
    assert abs(mean - 0.251) < 0.004 and abs(var - 0.091) < 0.003


class _Mutant(VPBridge):
    "A bridge with one deliberate mistake, to show that identity 4 detects it."
    def __init__(self, mistake):
        super().__init__(VPSchedule(0.2, 10.)); self.mistake = mistake
    def h(self, x, t, x_T):
        h = super().h(x, t, x_T)
        return -h if self.mistake == 'h_sign' else h
    def score(self, x, t, x_T, denoised):
        s = super().score(x, t, x_T, denoised)
        return 2 * s if self.mistake == 'score_factor' else s
    def _drift(self, x, t, x_T, denoised, score_factor):
        if self.mistake == 'ode_half_missing': score_factor = 1.
        if self.mistake == 'f_sign':
            return super()._drift(x, t, x_T, denoised, score_factor) - 2 * self.schedule.f(t).to(x) * x
        return super()._drift(x, t, x_T, denoised, score_factor)
    def g(self, t):
        return self.schedule.g2(t) if self.mistake == 'g_not_sqrt' else super().g(t)


@pytest.mark.parametrize('mistake', ['h_sign', 'score_factor', 'ode_half_missing', 'f_sign', 'g_not_sqrt'])
def test_identity4_catches_mistakes(mistake):
    with torch.no_grad():
        mean, var = moments(_Mutant(mistake), steps=100, n=20_000)
    assert not (math.isfinite(mean) and math.isfinite(var) and close_to_target(mean, var)), (mistake, mean, var)


def test_ode_is_deterministic_and_churn_supplies_spread():
    br = VPBridge(VPSchedule(0.2, 10.))
    x_T = torch.full((50, 1, 1), -0.6, **F64)
    out = sample_heun(gaussian_denoiser(br, M, V), x_T, karras_times(40), br, churn=0., disable=True)
    assert float(out.std()) < 1e-12


@pytest.mark.parametrize('steps,churn,nfe', [(40, 0.33, 119), (40, 0., 79), (10, 1., 10), (1, 0.33, 2)])
def test_nfe(steps, churn, nfe):
    br, calls = VPBridge(VPSchedule(0.2, 10.)), []
    den = gaussian_denoiser(br, M, V)
    def counting(x, t, x_T): calls.append(float(t[0])); return den(x, t, x_T)
    sample_heun(counting, torch.zeros(2, 3, 1, **F64), karras_times(steps), br, churn=churn,
                generator=torch.Generator().manual_seed(0), disable=True)
    assert len(calls) == nfe
    assert 0 < min(calls) and max(calls) < 1


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('sampler', ['heun', 'em'])
def test_mask_keeps_observed_entries_exactly(dtype, sampler):
    br, g = VPBridge(VPSchedule(0.1, 0.2)), torch.Generator().manual_seed(5)
    x_T = torch.randn(6, 24, 3, dtype=dtype, generator=g)
    mask = torch.rand(6, 24, 3, generator=g) < 0.6
    def den(x, t, x_T): out = gaussian_denoiser(br, 0., 0.3)(x, t, x_T); out[~mask] = float('nan'); return out
    kw = dict(mask=mask.int(), generator=g, disable=True)
    out = (sample_heun(den, x_T, karras_times(12), br, **kw) if sampler == 'heun'
           else sample_euler_maruyama(den, x_T, karras_times(12), br, **kw))
    assert torch.equal(out[~mask], x_T[~mask])          # bit for bit, even with NaN drift there
    assert torch.isfinite(out).all() and (out[mask] != x_T[mask]).all()


def test_generator_makes_sampling_reproducible():
    br = VPBridge(VPSchedule(0.2, 10.)); x_T = torch.zeros(4, 8, 2, **F64); den = gaussian_denoiser(br, M, V)
    run = lambda s: sample_heun(den, x_T, karras_times(10), br, generator=torch.Generator().manual_seed(s), disable=True)
    assert torch.equal(run(7), run(7)) and not torch.equal(run(7), run(8))


def test_callback_sees_every_step():
    br, seen = VPBridge(VPSchedule(0.2, 10.)), []
    sample_heun(gaussian_denoiser(br, M, V), torch.zeros(2, 3, 1, **F64), karras_times(7), br,
                generator=torch.Generator().manual_seed(0), callback=lambda d: seen.append((d['i'], d['x'].shape)), disable=True)
    assert [i for i, _ in seen] == list(range(7)) and all(s == (2, 3, 1) for _, s in seen)



@pytest.mark.parametrize('sampler', ['heun', 'em', 'ddpm', 'ddim'])
def test_callback_t_is_the_diffusion_time_in_every_sampler(sampler):
    "'t' is the diffusion time of the step, a float decreasing in (0, 1], for every sampler; 'step' indexes it, 'i' counts the calls."
    seen, g, x = [], torch.Generator().manual_seed(0), torch.zeros(2, 3, 1, **F64)
    cb = lambda d: seen.append((d['i'], d['t'], d['step']))
    if sampler in ('heun', 'em'):
        br, ts = VPBridge(VPSchedule(0.2, 10.)), karras_times(7)
        (sample_heun if sampler == 'heun' else sample_euler_maruyama)(gaussian_denoiser(br, M, V), x, ts, br, generator=g, callback=cb, disable=True)
        want_step, want_t = list(range(7)), ts[:-1].tolist()
    else:
        sch = DDPMSchedule('cosine', 20); model = gaussian_ddpm_denoiser(sch, M, V)
        if sampler == 'ddpm': sample_ddpm(model, x, sch, generator=g, callback=cb, disable=True); want_step = list(range(19, -1, -1))
        else: sample_ddim(model, x, sch, steps=5, callback=cb, disable=True); want_step = ddim_steps(20, 5)
        want_t = [(s + 1) / 20 for s in want_step]                       # the time the estimators' networks see (ddpm_time)
    i, t, step = map(list, zip(*seen))
    assert i == list(range(len(seen))) and step == want_step and t == want_t
    assert all(type(v) is float and 0 < v <= 1 for v in t) and all(a > b for a, b in zip(t, t[1:]))

def test_euler_maruyama_recovers_gaussian():
    br = VPBridge(VPSchedule(0.2, 10.))
    out = sample_euler_maruyama(gaussian_denoiser(br, M, V), torch.full((20_000, 1, 1), -0.6, **F64), karras_times(500), br,
                                generator=torch.Generator().manual_seed(0), disable=True)
    assert close_to_target(float(out.mean()), float(out.var()))


def test_sampler_argument_errors():
    br = VPBridge(VPSchedule()); den = gaussian_denoiser(br, M, V); x = torch.zeros(2, 3, 1, **F64)
    with pytest.raises(ValueError, match='churn must be in'): sample_heun(den, x, karras_times(4), br, churn=2.)
    with pytest.raises(ValueError, match='decrease strictly'): sample_heun(den, x, karras_times(4).flip(0), br)
    with pytest.raises(ValueError, match='singular at t = T'): sample_heun(den, x, torch.tensor([1., 0.5, 0.]), br)
    with pytest.raises(ValueError, match='does not broadcast'): sample_heun(den, x, karras_times(4), br, mask=torch.ones(5, 5))
    with pytest.raises(ValueError, match='n >= 1'): karras_times(0)


@pytest.mark.parametrize('betas', ['linear', 'cosine'])
def test_ddpm_and_ddim_recover_gaussian(betas):
    sch = DDPMSchedule(betas, 1000)
    noise = torch.randn(20_000, 1, 1, **F64, generator=torch.Generator().manual_seed(0))
    model = gaussian_ddpm_denoiser(sch, M, V)
    out = sample_ddpm(model, noise, sch, generator=torch.Generator().manual_seed(1), disable=True)
    assert abs(float(out.mean()) - M) < 0.01 and abs(float(out.var()) / V - 1) < 0.06
    out = sample_ddim(model, noise, sch, steps=1000, disable=True)
    assert abs(float(out.mean()) - M) < 0.01 and abs(float(out.var()) / V - 1) < 0.06
    out = sample_ddim(model, noise, sch, steps=1000, eta=1., generator=torch.Generator().manual_seed(2), disable=True)
    assert abs(float(out.mean()) - M) < 0.01 and abs(float(out.var()) / V - 1) < 0.06


def test_ddim_steps_and_nfe():
    sch = DDPMSchedule('cosine', 500); calls = []
    model = gaussian_ddpm_denoiser(sch, M, V)
    def counting(x, i): calls.append(int(i[0])); return model(x, i)
    sample_ddim(counting, torch.zeros(2, 3, 1, **F64), sch, steps=119, disable=True)
    assert len(calls) == 119 and calls[0] == 499 and calls[-1] == 0 and calls == sorted(calls, reverse=True)
    assert ddim_steps(10, 10) == list(range(9, -1, -1))
