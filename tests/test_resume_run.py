"A Table 1 run killed in the middle of a training and run again gives the same table as an uninterrupted run (tiny preset)."
import json, subprocess, sys
from pathlib import Path

# Runs Table 1's loop on sines for two methods. With a key and a step, the process SIGKILLs itself right after that
# training step of that model (no handler can run: a real crash); with 'frozen' any training or scoring raises, which
# proves a finished run is read back from its cache without recomputing anything.
SCRIPT = r'''
import os, signal, sys
from tsbridge_lambda import experiments as ex
from tsbridge_lambda.train import Trainer
out, mode = sys.argv[1], sys.argv[2]
if mode.startswith('kill:'):
    name, at = mode[5:].rsplit(':', 1)
    step0 = Trainer.train_step
    def train_step(self):
        v = step0(self)
        if self.checkpoint is not None and self.checkpoint.name == name and self.step == int(at): os.kill(os.getpid(), signal.SIGKILL)
        return v
    Trainer.train_step = train_step
if mode == 'frozen':
    def fail(*a, **k): raise AssertionError('recomputed a finished step')
    Trainer.train_step = fail; ex.score = fail
s = ex.settings('tiny')
rec = ex.Recorder('t', 'timebridge', {}, s, out=out)
ex.unconditional_rows(rec, ['sines'], ['TimeBridge-GP', 'TimeBridge'], [0], s)
rec.finish()
'''


def _run(out, mode='plain'):
    return subprocess.run([sys.executable, '-c', SCRIPT, str(out), mode], capture_output=True, text=True, timeout=600)


def _table(out):
    res = json.loads((Path(out) / 'results.json').read_text())
    return res['complete'], [(r['dataset'], r['method'], r['metric'], r['mean'], r['half_width']) for r in res['rows']]


def test_killed_run_resumes_to_the_same_table(tmp_path):
    full, cut = tmp_path / 'full', tmp_path / 'cut'
    assert _run(full).returncode == 0, 'uninterrupted run failed'
    done, expected = _table(full)
    assert done and len(expected) == 8                              # 2 methods x 4 metrics

    # killed at step 25 of the second model: its last checkpoint is step 20 (checkpoint_every=10 in the tiny preset)
    p = _run(cut, 'kill:sines-TimeBridge-seed0.ckpt.pt:25')
    assert p.returncode == -9, (p.returncode, p.stderr[-2000:])
    cache = cut / 'cache'
    assert (cache / 'sines-TimeBridge-GP-seed0.model.pt').exists() and (cache / 'sines-TimeBridge-GP-seed0.scores.json').exists()
    assert not (cache / 'sines-TimeBridge-seed0.model.pt').exists()
    from tsbridge_lambda.train import Trainer
    assert Trainer.read_checkpoint(cache / 'sines-TimeBridge-seed0.ckpt.pt')['step'] == 20
    done, partial = _table(cut)                                      # the finished method's rows were saved before the kill
    assert not done and partial == expected[:4]

    p = _run(cut)                                                    # the same command again continues the run
    assert p.returncode == 0, p.stderr[-2000:]
    done, resumed = _table(cut)
    assert done and resumed == expected                              # bit for bit: exact resume of the training
    fit = json.loads((cache / 'sines-TimeBridge-seed0.fit.json').read_text())['value']
    assert fit['resumed_from_step'] == 20 and fit['steps'] == 40
    assert not (cache / 'sines-TimeBridge-seed0.ckpt.pt').exists()

    p = _run(cut, 'frozen')                                          # a finished run recomputes nothing
    assert p.returncode == 0, p.stderr[-2000:]
    assert _table(cut) == (True, expected)
