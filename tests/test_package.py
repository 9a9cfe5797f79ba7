"""The package as users get it: README in step with the landing notebook, the two README commands,
and a wheel (not only an editable install) that carries every module and imports."""
import subprocess, sys, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
import readme  # noqa: E402


def test_readme_is_generated_from_index():
    assert (ROOT / 'README.md').read_text(encoding='utf-8') == readme.render(), \
        'README.md is stale: run `python tools/readme.py build` after editing nbs/index.ipynb'


def test_readme_has_exactly_two_commands():
    cmds = readme.commands()
    assert sorted(cmds) == ['main', 'test']
    for cmd in cmds.values():
        assert 'torch==2.13.0' in cmd and '\n' not in cmd      # pinned: no CUDA build of torch on a CPU machine
    assert 'nbdev_test' in cmds['test'] and 'pytest' in cmds['test']


def test_quarto_config_is_one_file():
    top, nbs = ROOT / '_quarto.yml', ROOT / 'nbs' / '_quarto.yml'
    assert top.is_symlink() and top.resolve() == nbs.resolve()


def test_wheel_contains_and_imports_every_module(tmp_path):
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    whl, = tmp_path.glob('tsbridge_lambda-*.whl')
    names = set(zipfile.ZipFile(whl).namelist())
    modules = sorted(p.name for p in (ROOT / 'tsbridge_lambda').glob('*.py'))
    missing = [m for m in modules if f'tsbridge_lambda/{m}' not in names]
    assert not missing, f'wheel lacks {missing}'
    assert 'tsbridge_lambda/published.csv' in names, 'wheel lacks the published numbers (settings.ini package_data)'
    ep = next(n for n in names if n.endswith('entry_points.txt'))
    assert 'tsbl = tsbridge_lambda.cli:main' in zipfile.ZipFile(whl).read(ep).decode()
    site = tmp_path / 'site'
    zipfile.ZipFile(whl).extractall(site)
    code = ('import sys; sys.path.insert(0, sys.argv[1]); import tsbridge_lambda as t, importlib; '
            'mods = [importlib.import_module("tsbridge_lambda." + m) for m in sys.argv[2:]]; print(t.__file__)')
    out = subprocess.run([sys.executable, '-c', code, str(site)] + [m[:-3] for m in modules if m != '__init__.py'],
                         check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert out.strip().startswith(str(site)), out
