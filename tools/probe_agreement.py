"""Do two fitted pairs' speed probes agree window by window? (issue 18: the seed-0 tie of LAMBDA and Barlow Twins)

Two alignments' probe accuracies on the gait angles-GRF pair are counted in 67ths (67 test windows per encoder), so
equal accuracies need not mean equal models. This script reads the two fitted pairs of one seed back from run caches
(`experiments.model_file`: the configuration and training-pair fingerprints), prints their probe scores as
`lambda_probes` computes them, how far apart their frozen features are, and, per encoder and probe, how many test
windows each classifies correctly and on how many their predictions agree.

Usage, from the repository root (TSBL_DATA_DIR pointing at the data):

    python tools/probe_agreement.py [--a lambda:runs/lambda_gait_medium/cache] [--b barlow:runs/lambda_probes_medium/cache]
                                    [--seed 0] [--preset medium]
"""
from __future__ import annotations
import argparse
import numpy as np

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--a', default='lambda:runs/lambda_gait_medium/cache', help='ALIGN:CACHE_FOLDER of the first pair')
    ap.add_argument('--b', default='barlow:runs/lambda_probes_medium/cache', help='ALIGN:CACHE_FOLDER of the second pair')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--preset', default='medium')
    a = ap.parse_args(argv)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from tsbridge_lambda.experiments import settings, paired_data, make_paired, model_file, probe_scores
    from tsbridge_lambda.paired import PairedDiffusion
    s = settings(a.preset, paper='lambda')
    data = paired_data('angles-grf', s)
    y, split = data.meta['speed'].astype(str).to_numpy(), data.meta['split'].to_numpy()
    tr, te = split == 'train', split == 'test'
    models = {}
    for spec in (a.a, a.b):
        align, folder = spec.split(':', 1)
        f = model_file(folder, 'angles-grf', make_paired(align, s, seed=a.seed), data)
        if not f.is_file(): raise SystemExit(f'No fitted {align} pair of seed {a.seed} in {folder} (looked for {f.name}).')
        models[align] = PairedDiffusion.load(f)
        print(f'{align}: {f}; probe scores {probe_scores(models[align], data, "speed", seed=a.seed)}')
    (na, ma), (nb, mb) = models.items()
    for D, mod in ((data.X, 'x'), (data.Y, 'y')):
        fa, fb = (np.asarray(m.encode(D, mod, seed=a.seed), np.float64) for m in (ma, mb))
        d = np.abs(fa - fb)
        print(f'h_{mod}: features max |difference| {d.max():.3g}, mean |difference| / mean |{na}| {d.mean() / np.abs(fa).mean():.3g}')
        for k, head in (('linear', LogisticRegression(max_iter=5000)), ('nonlinear', SVC(kernel='rbf'))):
            pa, pb = (make_pipeline(StandardScaler(), head).fit(F[tr], y[tr]).predict(F[te]) for F in (fa, fb))
            print(f'  {k}: correct {na} {np.sum(pa == y[te])}, {nb} {np.sum(pb == y[te])} of {te.sum()}; predictions agree on {np.sum(pa == pb)}')

if __name__ == '__main__':
    main()
