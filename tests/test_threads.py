"Training follows the cores other processes leave free (issue 20: speed on a busy machine)."
import numpy as np, pytest, torch
from tsbridge_lambda import train
from tsbridge_lambda.train import Trainer, FreeCores, threads_for
from tsbridge_lambda.timebridge import TimeBridge

def _trainer(**kw):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 3, generator=g); y = X @ torch.tensor([1., -2., .5])
    data = torch.cat([X, y[:, None]], 1)
    model = torch.nn.Linear(3, 1)
    loss = lambda m, b, gen: (m(b[:, :3])[:, 0] - b[:, 3]) ** 2
    return Trainer(model, loss, data, batch_size=32, warmup=5, seed=0, device='cpu', **kw)

def test_auto_threads_drop_to_the_free_cores_and_come_back(monkeypatch):
    "One core taken by another process: training runs on 1 thread; torch's setting is restored after fit."
    prev = torch.get_num_threads(); torch.set_num_threads(2)
    seen = []
    class OneFree:
        available = True
        def __call__(self): return 1.0
    monkeypatch.setattr(train, 'FreeCores', OneFree)
    try:
        tr = _trainer()
        tr.fit(20, disable=True, callback=lambda d: seen.append(torch.get_num_threads()))
        assert set(seen) == {1} and tr.thread_log == [(0, 1)]
        assert torch.get_num_threads() == 2
        tr = _trainer(threads=None)                         # None: torch's setting stays as it is
        seen.clear(); tr.fit(20, disable=True, callback=lambda d: seen.append(torch.get_num_threads()))
        assert set(seen) == {2} and tr.thread_log == []
    finally: torch.set_num_threads(prev)

def test_thread_policy_keeps_results_within_float_tolerance(monkeypatch):
    "The same seed trained at a followed thread count and at a fixed one gives the same samples up to float rounding."
    prev = torch.get_num_threads(); torch.set_num_threads(2)
    class OneFree:
        available = True
        def __call__(self): return 1.0
    X = np.sin(np.linspace(0, 20, 64 * 24)).reshape(64, 24, 1) + np.linspace(0, 1, 64)[:, None, None]
    try:
        a = TimeBridge(prior='gp', preset='tiny', seed=0, steps=30).fit(X, disable=True).sample(8, seed=1, disable=True)
        monkeypatch.setattr(train, 'FreeCores', OneFree)
        b = TimeBridge(prior='gp', preset='tiny', seed=0, steps=30).fit(X, disable=True).sample(8, seed=1, disable=True)
    finally: torch.set_num_threads(prev)
    np.testing.assert_allclose(a, b, atol=1e-4)

def test_bad_threads_setting_is_refused():
    with pytest.raises(ValueError, match="threads must be 'auto' or None"): _trainer(threads=3)

def test_free_cores_reads_this_machine():
    fc = FreeCores(min_interval=0.)
    if not fc.available: pytest.skip('no /proc/stat here')
    x = 0.
    for i in range(200000): x += i                           # some CPU time of our own, which must not count as others'
    free = fc()
    assert free is not None and 0. <= free <= fc.cpus
    assert threads_for(free, 64) >= 1
