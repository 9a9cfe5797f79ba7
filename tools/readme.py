#!/usr/bin/env python3
"""README.md is generated from nbs/index.ipynb (nbdev's `nbdev_readme` needs Quarto, which is not
available offline; this does the same job with the standard library only).

    python tools/readme.py build          # write README.md from nbs/index.ipynb
    python tools/readme.py check          # exit 1 if README.md is out of date
    python tools/readme.py command test   # print the README's test command (used by .ci/run)
    python tools/readme.py command main   # print the README's main-job command
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INDEX, README = ROOT / 'nbs' / 'index.ipynb', ROOT / 'README.md'
HEADER = '<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->\n\n'


def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']


def render(nb_path=INDEX) -> str:
    "Markdown cells as they are; visible code cells as python blocks with their text outputs; images left to the docs site."
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = _src(cell).strip('\n')
        if cell['cell_type'] == 'markdown': parts.append(src)
        elif cell['cell_type'] == 'code':
            lines = src.splitlines()
            directives = [l for l in lines if l.startswith('#|')]
            if any(re.match(r'#\|\s*(hide|exporti?|export)\b', d) for d in directives): continue
            code = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
            if not code: continue
            parts.append(f'```python\n{code}\n```')
            for out in cell.get('outputs', []):
                data = out.get('data', {})
                if 'image/png' in data: continue
                text = out.get('text') or data.get('text/plain')
                if text:
                    text = ''.join(text) if isinstance(text, list) else text
                    parts.append('    ' + text.rstrip('\n').replace('\n', '\n    '))
    return HEADER + '\n\n'.join(parts) + '\n'


def commands(text=None) -> dict:
    "The README's two commands: the sh blocks that follow the markers `<!-- command: main -->` and `<!-- command: test -->`."
    text = README.read_text(encoding='utf-8') if text is None else text
    found = dict(re.findall(r'<!-- command: (\w+) -->\s*```(?:sh|bash)\n(.*?)\n```', text, flags=re.S))
    return {k: v.strip() for k, v in found.items()}


def main(argv):
    if argv[:1] == ['build']: README.write_text(render(), encoding='utf-8'); print(f'wrote {README.name}'); return 0
    if argv[:1] == ['check']:
        if not README.exists() or README.read_text(encoding='utf-8') != render():
            print('README.md is out of date with nbs/index.ipynb: run `python tools/readme.py build`.', file=sys.stderr); return 1
        return 0
    if argv[:1] == ['command'] and len(argv) == 2:
        cmds = commands()
        if argv[1] not in cmds: print(f'README.md has no command named {argv[1]!r} (found: {sorted(cmds)}).', file=sys.stderr); return 1
        print(cmds[argv[1]]); return 0
    print(__doc__, file=sys.stderr); return 2


if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
