"""The preset registry (`presets`, issue 19): every preset name a component accepts is in it, the tables the modules
have always exported are its views, 'tiny' is written out, and `dataset_preset` is the one fall-back to 'sines'."""
import copy, json
from pathlib import Path

import numpy as np
import pytest

from tsbridge_lambda import presets as P, schedules, priors, backbone, timebridge, paired, experiments, cli
from tsbridge_lambda.timebridge import TimeBridge, GaussianDiffusion, preset_settings
from tsbridge_lambda.paired import PairedDiffusion

ROOT = Path(__file__).resolve().parents[1]


def test_old_tables_are_views_of_the_registry():
    assert schedules.VP_PRESETS is P.VP_PRESETS and priors.GP_ETA is P.GP_ETA and timebridge.SIGMA_DATA is P.SIGMA_DATA
    assert backbone.BACKBONE_PRESETS is P.BACKBONE_PRESETS and backbone.TRAIN_PRESETS is P.TRAIN_PRESETS
    assert paired.PAIRED_PRESETS is P.PAIRED_PRESETS
    assert experiments.PRESETS is P.RUN_PRESETS['timebridge'] and experiments.LAMBDA_PRESETS is P.RUN_PRESETS['lambda']
    assert experiments.SETTING_NOTES == {**P.RUN_NOTES['timebridge'], **P.RUN_NOTES['lambda']}
    assert list(P.BACKBONE_PRESETS) == list(P.TRAIN_PRESETS) == list(P.DATASET_PRESETS) == ['tiny', *P.PAPER_DATASETS]
    assert list(P.VP_PRESETS) == [*P.PAPER_DATASETS, 'conditional'] and list(P.SIGMA_DATA) == list(P.GP_ETA) == list(P.PAPER_DATASETS)
    for name, p in P.DATASET_PRESETS.items():
        assert P.BACKBONE_PRESETS[name] == p['backbone'] and P.TRAIN_PRESETS[name] == p['train']
        if name in P.PAPER_DATASETS: assert (P.VP_PRESETS[name], P.SIGMA_DATA[name], P.GP_ETA[name]) == (p['vp'], p['sigma_data'], p['gp_eta'])
    assert P.VP_PRESETS['conditional'] == P.CONDITIONAL_VP


def test_every_accepted_preset_name_is_in_the_registry():
    for name in P.DATASET_PRESETS:
        assert TimeBridge(preset=name).config['preset'] == GaussianDiffusion(preset=name).config['preset'] == name
    for bad in ('quick', 'medium', 'paper', 'conditional', 'etth/linear'):
        for cls in (TimeBridge, GaussianDiffusion):
            with pytest.raises(ValueError, match='Unknown preset'): cls(preset=bad)
        with pytest.raises(ValueError, match='Unknown backbone preset'): backbone.make_backbone(bad, 2, 24)
    for name in P.PAIRED_PRESETS: assert PairedDiffusion(preset=name).config['preset'] == name
    with pytest.raises(ValueError, match='Unknown preset'): PairedDiffusion(preset='medium')
    with pytest.raises(SystemExit): cli.main(['fit-paired', 'lorenz', '--out', 'unused.pt', '--preset', 'medium'])   # argparse's choices
    for paper, table in P.RUN_PRESETS.items():
        assert set(table) <= set(P.SCALES)                                             # run presets are named by scale
        for scale in table: assert experiments.settings(scale, paper=paper, torch_threads=None)['preset'] == scale
        with pytest.raises(ValueError, match='preset must be one of'): experiments.settings('bogus', paper=paper)
    assert {s['net'] for s in P.RUN_PRESETS['lambda'].values()} <= set(P.PAIRED_PRESETS)
    assert set(P.PAIRED_PRESETS) <= set(P.SCALES)


def test_tiny_is_written_out():
    assert preset_settings('tiny') == dict(beta_min=0.2, beta_d=10., sigma_data=0.5, eta=1., batch_size=16, steps=20, accumulate=1, patience=2000)
    assert TimeBridge(preset='tiny', task='impute').config['beta_d'] == 10.          # the conditional schedule: dataset presets only
    assert TimeBridge(preset='sines', task='impute').config['beta_d'] == P.CONDITIONAL_VP[1]


class _Fitting(Exception): pass


@pytest.mark.parametrize('name', ['etth/linear', 'lorenz', 'gait', 'no-such-dataset', 'my.csv', *P.PAPER_DATASETS])
def test_dataset_preset_is_the_one_fall_back(name, monkeypatch):
    want = name if name in P.PAPER_DATASETS else 'sines'
    assert P.dataset_preset(name) == want
    assert experiments.model_preset(name) == want                                     # the experiments' tables
    def fit(self, *a, **k): raise _Fitting(self.config['preset'])
    monkeypatch.setattr(cli, 'load_windows', lambda *a, **k: np.zeros((4, 24, 1), np.float32))
    monkeypatch.setattr(TimeBridge, 'fit', fit)
    with pytest.raises(_Fitting) as e: cli.main(['fit', name, '--out', 'unused.pt', '--quiet'])   # `tsbl fit` without --preset
    assert e.value.args[0] == want
    assert preset_settings(P.dataset_preset(name)) == preset_settings(want)
    if name not in P.DATASET_PRESETS:
        with pytest.raises(ValueError, match='Unknown preset'): preset_settings(name)   # no silent fall-back left in the estimators


def test_scale_table_is_on_the_docs_page():
    nb = json.loads((ROOT / 'nbs' / '00a_presets.ipynb').read_text())
    prose = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    assert P.scales_markdown() in prose


_check_scales = P.check_scales   # the notebook's check, with the tables passed in so the drift cases can change them


def test_scale_table_states_the_tables():
    _check_scales(P.SCALES, P.DATASET_PRESETS, P.PAIRED_PRESETS, P.RUN_PRESETS)


@pytest.mark.parametrize('change', ['sample_steps', 'seeds', 'lr', 'width', 'new number'])
def test_scale_table_check_finds_drift(change):
    scales, dataset, paired, run = copy.deepcopy((P.SCALES, P.DATASET_PRESETS, P.PAIRED_PRESETS, P.RUN_PRESETS))
    if change == 'sample_steps': run['timebridge']['quick']['sample_steps'] = 12
    if change == 'seeds': run['lambda']['medium']['seeds'] = (0, 1, 2)
    if change == 'lr': paired['paper']['lr'] = 1e-3
    if change == 'width': dataset['tiny']['backbone']['d_model'] = 8
    if change == 'new number': scales['medium']['meaning'] += ' (two to eight)'
    with pytest.raises(AssertionError): _check_scales(scales, dataset, paired, run)
