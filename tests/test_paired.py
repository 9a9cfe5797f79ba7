"""LAMBDA: the alignment losses' identities and the PairedDiffusion estimator on the paired test beds (tiny configs)."""
import math, os
import numpy as np, pytest, torch
from tsbridge_lambda.align import (window_contrastive_loss, window_covariance_loss, latent_windows, Alignment, ALIGNMENTS)
from tsbridge_lambda.paired import PairedDiffusion
from tsbridge_lambda.data import load_dataset


@pytest.fixture(scope='module')
def Z():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 24, 8, generator=g)
    return a, a + 0.2 * torch.randn(6, 24, 8, generator=g)


def test_contrastive_matched_beats_shuffled(Z):
    a, b = Z
    assert window_contrastive_loss(a, b, 6) < window_contrastive_loss(a, b[torch.tensor([1, 2, 3, 4, 5, 0])], 6)
    assert window_contrastive_loss(a, b, 6) < window_contrastive_loss(a, b.flip(1), 6)      # windows out of phase


def test_contrastive_hand_computed_two_windows():
    zx = torch.tensor([[[1., 0.], [0., 1.]]]); zy = torch.tensor([[[2., 0.], [1., 1.]]])
    r = 1 / math.sqrt(2)
    xy = -(math.log(math.e / (math.e + math.exp(r))) + math.log(math.exp(r) / (1 + math.exp(r)))) / 2
    yx = -(math.log(math.e / (math.e + 1)) + math.log(0.5)) / 2
    assert window_contrastive_loss(zx, zy, 1, tau=1.).item() == pytest.approx((xy + yx) / 2, abs=1e-6)


def test_covariance_zero_for_equal_and_mean_shift_invariant(Z):
    a, b = Z
    assert window_covariance_loss(a, a, 6).item() == 0.
    shift = torch.randn(1, 1, 8)
    assert window_covariance_loss(a + shift, b + shift, 6).item() == pytest.approx(window_covariance_loss(a, b, 6).item(), rel=1e-4)
    assert window_covariance_loss(a, b, 6) > 0


def test_windows_and_errors(Z):
    a, _ = Z
    assert latent_windows(a, 6, 3).shape == (6, 7, 6, 8)
    with pytest.raises(ValueError, match='same shape'): window_contrastive_loss(a, a[:, :12], 6)
    with pytest.raises(ValueError, match='align must be one of'): Alignment('clip')


def test_learnable_lambda_is_bounded_away_from_zero(Z):
    al = Alignment('lambda', d_model=8, window=6, lam='learn')
    opt = torch.optim.Adam(al.parameters(), lr=0.05)
    for _ in range(200):
        term, parts = al(*Z); opt.zero_grad(); term.backward(); opt.step()
    L = sum(al.raw(*Z).values()).item()
    assert parts['lambda'] == pytest.approx(1 / L, rel=0.05) and parts['lambda'] > 0.01


@pytest.fixture(scope='module')
def lorenz():
    return load_dataset('lorenz', n_trajectories=60, seq_len=24)


def test_lambda_zero_is_two_independent_models(lorenz):
    tr = lorenz.train
    both = PairedDiffusion('none', preset='tiny', steps=15, threads=None).fit(tr.X, tr.Y, disable=True)
    alone = PairedDiffusion('none', preset='tiny', steps=15, directions=('y|x',), threads=None).fit(tr.X, tr.Y, disable=True)
    s1, s2 = both.trainer_.model.den_y.state_dict(), alone.trainer_.model.den_y.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    aligned = PairedDiffusion('lambda', preset='tiny', steps=15).fit(tr.X, tr.Y, disable=True)
    s3 = aligned.trainer_.model.den_y.state_dict()
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)       # the alignment does change the training


def test_latent_decoder_input_routes_the_target_through_z(lorenz, tmp_path):
    "decoder_input='latent': the decoder starts from Z (x_t reaches the estimate only through the aligned latents); saved, loaded, and absent from default configs."
    tr, te = lorenz.train, lorenz.test
    assert 'decoder_input' not in PairedDiffusion('lambda', preset='tiny').config['net']            # fingerprints of older models unchanged
    assert 'decoder_input' not in PairedDiffusion('lambda', preset='tiny', decoder_input='embedding').config['net']
    m = PairedDiffusion('lambda', preset='tiny', steps=10, decoder_input='latent', device='cpu').fit(tr.X, tr.Y, disable=True)
    den = m.model_.den_y
    assert den.decoder_input == 'latent'
    x, c = torch.randn(3, *tr.Y.shape[1:]), torch.randn(3, *tr.X.shape[1:])
    z, emb, temb = den.encode(x, torch.full((3,), 0.3))
    with torch.no_grad():
        assert torch.allclose(den(x, torch.full((3,), 0.3), cond=c), den.decode(z, den.encode_condition(c), temb).out)
    m.save(tmp_path / 'pair.pt')
    back = PairedDiffusion.load(tmp_path / 'pair.pt', device='cpu')
    assert back.config['net']['decoder_input'] == 'latent'
    np.testing.assert_array_equal(back.predict_y(te.X[:2], nfe=3, seed=0, disable=True).mean, m.predict_y(te.X[:2], nfe=3, seed=0, disable=True).mean)
    with pytest.raises(ValueError, match='decoder_input must be one of'): PairedDiffusion('lambda', decoder_input='z')
    with pytest.raises(ValueError, match='decoder_input must be one of'): PairedDiffusion('lambda', net=dict(d_model=16, decoder_input='z'))
    net = dict(PairedDiffusion('lambda', preset='tiny').config['net'], decoder_input='embedding')
    assert PairedDiffusion('lambda', preset='tiny', net=net).config == PairedDiffusion('lambda', preset='tiny').config   # same fingerprint
    both = PairedDiffusion('none', preset='tiny', steps=10, threads=None, decoder_input='latent').fit(tr.X, tr.Y, disable=True)
    alone = PairedDiffusion('none', preset='tiny', steps=10, directions=('y|x',), threads=None, decoder_input='latent').fit(tr.X, tr.Y, disable=True)
    s1, s2 = both.trainer_.model.den_y.state_dict(), alone.trainer_.model.den_y.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)                  # lambda = 0 is still two independent models


PRINTED = dict(lam='learn', align_scale=1., cov_norm=None, embed='flat', center=False)   # the terms as printed, before issue 18


def test_alignment_keeps_latent_variance(lorenz):
    "Issue 18: with alignment on, the within-window latent variance stays above half of the unaligned run's (the printed terms fall below)."
    tr = lorenz.train
    def var(align, **kw):
        h = PairedDiffusion(align, preset='tiny', steps=100, **kw).fit(tr.X, tr.Y, disable=True).fit_history().iloc[-20:]
        return np.array([h['var_x'].mean(), h['var_y'].mean()])
    free, aligned, printed = var('none'), var('lambda'), var('lambda', **PRINTED)
    assert (aligned >= 0.5 * free).all(), (aligned, free)
    assert (printed < 0.5 * free).any(), (printed, free)                   # the check can fail: the old terms collapse


def test_fit_history_diagnostics_leave_training_alone(lorenz):
    tr = lorenz.train
    run = lambda every: PairedDiffusion('lambda', preset='tiny', steps=12, lam=0.5, diag_every=every, threads=None).fit(tr.X, tr.Y, disable=True)
    a, b = run(1), run(100)
    sa, sb = a.trainer_.model.state_dict(), b.trainer_.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)                     # gradient ratios measured every step change nothing
    h = a.fit_history()
    assert len(h) == 12 and {'var_x', 'var_y', 'acc', 'pos_acc', 'ratio_x', 'ratio_y', 'lambda', 'con', 'cov'} <= set(h.columns)
    assert h['ratio_x'].notna().all() and b.fit_history()['ratio_x'].notna().sum() == 1 and (h['lambda'] == 0.5).all()
    ad = PairedDiffusion('lambda', preset='tiny', steps=40, warmup=10, diag_every=5).fit(tr.X, tr.Y, disable=True).fit_history()['lambda']
    assert (ad.iloc[:11] == 1.).all() and ad.iloc[-1] != 1. and 1e-2 <= ad.min() and ad.max() <= 1e2   # held in the warm-up, then adapted
    with pytest.raises(ValueError, match='diag_every'): PairedDiffusion(diag_every=0)
    with pytest.raises(ValueError, match='align_scale'): PairedDiffusion(align_scale='huge')
    with pytest.raises(ValueError, match='lam must be one of'): PairedDiffusion(lam='auto')


def test_files_from_before_issue_18_load_with_the_printed_terms(lorenz, tmp_path):
    tr = lorenz.train
    m = PairedDiffusion('lambda', preset='tiny', steps=3, lam='learn').fit(tr.X, tr.Y, disable=True)
    m.save(tmp_path / 'm.pt')
    state = torch.load(tmp_path / 'm.pt', weights_only=True)
    for k in ('align_scale', 'cov_norm', 'center', 'embed', 'grad_share', 'diag_every'): state['config'].pop(k)
    torch.save(state, tmp_path / 'old.pt')
    old = PairedDiffusion.load(tmp_path / 'old.pt')
    assert {k: old.config[k] for k in ('align_scale', 'cov_norm', 'center', 'embed')} == dict(align_scale=1., cov_norm=None, center=False, embed='flat')
    np.testing.assert_array_equal(old.encode(tr.X[:2]), m.encode(tr.X[:2]))
    assert old.lambda_ == m.lambda_ and len(old.fit_history()) == 3


@pytest.mark.parametrize('align', [a for a in ALIGNMENTS if a != 'lambda'])
def test_every_alignment_trains(lorenz, align):
    tr = lorenz.train
    m = PairedDiffusion(align, preset='tiny', steps=6).fit(tr.X, tr.Y, disable=True)
    assert np.isfinite(m.history_).all()


@pytest.mark.parametrize('name,kw', [('lorenz', dict(n_trajectories=40, seq_len=24)),
                                     ('pendulum', dict(regime='regular', n_trajectories=40, seq_len=24)),
                                     ('pendulum', dict(regime='chaotic', n_trajectories=40, seq_len=24)),
                                     ('gait', dict(modalities=('angles', 'grf'), seq_len=64, disable=True))])
def test_trains_and_translates_on_each_test_bed(name, kw, tmp_path):
    if name == 'gait' and not os.environ.get('TSBL_DATA_DIR'): pytest.skip('gait needs TSBL_DATA_DIR (../shared/data)')
    d = load_dataset(name, **kw)
    tr, te = d.train, d.test
    m = PairedDiffusion('lambda', preset='tiny', steps=8).fit(tr.X[:256], tr.Y[:256], disable=True)
    y = m.predict_y(te.X[:3], n_samples=2, nfe=4, seed=0, disable=True)
    x = m.predict_x(te.Y[:3], n_samples=2, nfe=4, seed=0, disable=True)
    assert y.mean.shape == te.Y[:3].shape and x.mean.shape == te.X[:3].shape
    lo, hi = tr.Y.min(), tr.Y.max()
    span = hi - lo
    assert y.mean.min() >= lo - span and y.mean.max() <= hi + span            # in Y's units, not scaled ones
    m.save(tmp_path / 'm.pt')
    np.testing.assert_array_equal(PairedDiffusion.load(tmp_path / 'm.pt').encode(te.X[:2]), m.encode(te.X[:2]))


def test_unpaired_and_bad_inputs(lorenz):
    tr = lorenz.train
    with pytest.raises(ValueError, match='must be paired'): PairedDiffusion(preset='tiny').fit(tr.X, tr.Y[:-2])
    with pytest.raises(ValueError, match='must be paired'): PairedDiffusion(preset='tiny').fit(tr.X[:, :20], tr.Y)
    bad = tr.X.copy(); bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'): PairedDiffusion(preset='tiny').fit(bad, tr.Y)
    with pytest.raises(RuntimeError, match='not fitted'): PairedDiffusion(preset='tiny').predict_y(tr.X)
    with pytest.raises(TypeError, match='unknown settings'): PairedDiffusion(stepz=3)


def test_cli_fit_paired_and_translate(tmp_path, capsys):
    import pandas as pd
    from tsbridge_lambda.cli import main
    t = np.arange(400) * 0.05
    rec = pd.DataFrame({'time': t, 'a': np.sin(t), 'b': np.cos(1.3 * t), 'f': np.sin(t) * np.cos(1.3 * t)})
    rec.to_csv(tmp_path / 'rec.csv', index=False)
    assert main(['fit-paired', str(tmp_path / 'rec.csv'), '--x-columns', 'a,b', '--y-columns', 'f', '--seq-len', '24',
                 '--preset', 'tiny', '--steps', '5', '--out', str(tmp_path / 'pair.pt'), '--quiet']) == 0
    rec[['time', 'a', 'b']].iloc[:100].to_csv(tmp_path / 'x.csv', index=False)
    assert main(['translate', '--model', str(tmp_path / 'pair.pt'), '--input', str(tmp_path / 'x.csv'), '--output', str(tmp_path / 'y.csv'),
                 '--bands', str(tmp_path / 'b.csv'), '--n-samples', '2', '--nfe', '4', '--quiet']) == 0
    y = pd.read_csv(tmp_path / 'y.csv')
    assert list(y.columns) == ['f'] and len(y) == 100 and np.isfinite(y['f']).all()
    assert list(pd.read_csv(tmp_path / 'b.csv').columns) == ['f_lower', 'f_upper']
    (tmp_path / 'bad.csv').write_bytes(b'\x00\xff\x00garbage')
    with pytest.raises(ValueError, match='Could not read'):
        main(['translate', '--model', str(tmp_path / 'pair.pt'), '--input', str(tmp_path / 'bad.csv'), '--output', str(tmp_path / 'o.csv')])
    with pytest.raises(ValueError, match='x-columns'):
        main(['fit-paired', str(tmp_path / 'rec.csv'), '--out', str(tmp_path / 'p2.pt')])
    # the alignment settings of issue 18 reach the model from the command line and are saved with it
    base = ['fit-paired', str(tmp_path / 'rec.csv'), '--x-columns', 'a,b', '--y-columns', 'f', '--seq-len', '24', '--preset', 'tiny', '--steps', '3', '--quiet']
    assert main(base + ['--decoder-input', 'latent', '--grad-share', '0.3', '--out', str(tmp_path / 'p3.pt')]) == 0
    c = PairedDiffusion.load(tmp_path / 'p3.pt').config
    assert (c['lam'], c['grad_share'], c['net']['decoder_input']) == ('adapt', 0.3, 'latent')
    assert main(base + ['--lam', '0.5', '--out', str(tmp_path / 'p3.pt')]) == 0 and PairedDiffusion.load(tmp_path / 'p3.pt').config['lam'] == 0.5
    for bad, msg in ((['--lam', 'often'], "--lam: must be 'adapt', 'learn' or a finite number >= 0, got 'often'"),
                     (['--lam', '-1'], "got '-1'"), (['--grad-share', '0'], '--grad-share: must be a finite number > 0'),
                     (['--decoder-input', 'z'], "invalid choice: 'z'")):
        with pytest.raises(SystemExit): main(base + bad + ['--out', str(tmp_path / 'p4.pt')])
        assert msg in capsys.readouterr().err
    with pytest.raises(ValueError, match='with --align none there is none'):
        main(base + ['--align', 'none', '--grad-share', '0.3', '--out', str(tmp_path / 'p4.pt')])
    with pytest.raises(ValueError, match='does nothing'):
        main(base + ['--lam', 'learn', '--grad-share', '0.3', '--out', str(tmp_path / 'p4.pt')])


def test_resumed_fit_keeps_the_whole_fit_history(lorenz, tmp_path):
    "A fit stopped at a checkpoint and resumed has the same per-step diagnostics as one run straight through (issue 18)."
    tr, ck = lorenz.train, tmp_path / 'pair.ckpt.pt'
    kw = dict(preset='tiny', steps=12, warmup=4, diag_every=3, checkpoint_every=4, threads=None)
    whole = PairedDiffusion('lambda', **kw).fit(tr.X, tr.Y, disable=True).fit_history()
    class Stop(Exception): pass
    def stop(info):
        if info['step'] == 9: raise Stop                                # after the step-8 checkpoint: step 9 is lost
    with pytest.raises(Stop): PairedDiffusion('lambda', **kw).fit(tr.X, tr.Y, disable=True, checkpoint=ck, callback=stop)
    with pytest.raises(ValueError, match=r"other settings \(grad_share: 0.1 there, 0.3 now\)"):   # refused before any weight is loaded
        PairedDiffusion('lambda', grad_share=0.3, **kw).fit(tr.X, tr.Y, disable=True, checkpoint=ck, resume=True)
    with pytest.raises(ValueError, match='different pairs'):
        PairedDiffusion('lambda', **kw).fit(tr.X[::-1], tr.Y[::-1], disable=True, checkpoint=ck, resume=True)
    resumed = PairedDiffusion('lambda', **kw).fit(tr.X, tr.Y, disable=True, checkpoint=ck, resume=True).fit_history()
    assert len(resumed) == 12 and set(resumed.columns) == set(whole.columns)
    pd_testing = pytest.importorskip('pandas').testing
    pd_testing.assert_frame_equal(resumed[whole.columns], whole)
    again = PairedDiffusion('lambda', **kw).fit(tr.X, tr.Y, disable=True, checkpoint=ck, resume=True)   # finished: 0 steps run
    pd_testing.assert_frame_equal(again.fit_history()[whole.columns], whole)
