#!/usr/bin/env python3
"""Which public methods have no API entry: a `show_doc` call of their own in a notebook under `nbs/`.

    python tools/check_api_docs.py      # list what is missing; exit 1 if anything is

The docs site renders the saved output of `show_doc` cells only (tools/build_docs.py), so a method without one
has no entry. Checked:

- the estimators and the trainer (`ESTIMATORS`): every public method and property, inherited ones included;
  an inherited one needs `show_doc(Cls.m, name='Cls.m')`, or its entry would carry the base class's name;
- the other classes users call (`CLASSES`): the public methods and properties they define themselves;
- every notebook: a cell with a `show_doc` call holds that one call as its last statement, because a cell
  displays only its last expression (the other entries of a cell with several never render).

`EXCLUDED` names the methods left out on purpose, each with its reason.
"""
from __future__ import annotations

import ast, importlib, inspect, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"

ESTIMATORS = ["estimator.Estimator", "timebridge.TimeBridge", "timebridge.GaussianDiffusion", "paired.PairedDiffusion",
              "train.Trainer"]
CLASSES = ["backbone.DiffusionTS", "paired.ConditionalDenoiser", "align.Alignment",
           "conditional.TimeBridgeImputer", "conditional.PyPOTSImputer"]
EXCLUDED = {
    "PairedDiffusion.sample": "inherited from Estimator and raises NotImplementedError (the pair has no unconditional "
                              "sampler; 14_paired says so and points to predict_y / predict_x)",
}
_DATA = (str, bytes, int, float, complex, bool, tuple, list, dict, set, frozenset, type(None), type)


def _load(path: str):
    mod, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(f"tsbridge_lambda.{mod}"), name)


def public_members(cls: type, inherited: bool) -> dict:
    "{name: defining class} of the public methods and properties of `cls` defined in this package."
    out = {}
    for name in dir(cls):
        if name.startswith("_"): continue
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if not owner.__module__.startswith("tsbridge_lambda") or (owner is not cls and not inherited): continue
        if isinstance(vars(owner)[name], _DATA): continue          # class constants, nested classes
        out[name] = owner
    return out


def notebook_cells(nbs: Path = NBS):
    "(notebook, cell id, source) of every code cell of the notebooks directly under `nbs`."
    for p in sorted(nbs.glob("*.ipynb")):
        for c in json.loads(p.read_text())["cells"]:
            if c["cell_type"] == "code": yield p.name, c.get("id"), "".join(c["source"])


def _parse(source: str):
    code = "\n".join("" if l.lstrip().startswith(("%", "!")) else l for l in source.split("\n"))   # magics
    try: return ast.parse(code)
    except SyntaxError: return None


def show_doc_calls(nbs: Path = NBS) -> tuple[dict, list]:
    "({(documented expression, name= or None): [(notebook, cell id)]}, [cells whose entries would not all render])."
    entries, problems = {}, []
    for nb, cid, source in notebook_cells(nbs):
        if "show_doc" not in source: continue
        tree = _parse(source)
        if tree is None: continue
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id == "show_doc" and n.args]
        for call in calls:
            name = next((k.value.value for k in call.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)), None)
            entries.setdefault((ast.unparse(call.args[0]), name), []).append((nb, cid))
        last = tree.body[-1] if tree.body else None
        shown = isinstance(last, ast.Expr) and last.value in calls
        if calls and (len(calls) > 1 or not shown):
            problems.append(f"{nb} cell {cid}: {len(calls)} show_doc call(s); put each alone in its own cell "
                            "(a cell displays only its last expression)")
    return entries, problems


def missing(nbs: Path = NBS) -> list[str]:
    "Every problem found: methods without an entry, and show_doc calls that would not render."
    entries, problems = show_doc_calls(nbs)
    out = []
    for path, inherited in [(p, True) for p in ESTIMATORS] + [(p, False) for p in CLASSES]:
        cls = _load(path)
        for name, owner in sorted(public_members(cls, inherited).items()):
            full = f"{cls.__name__}.{name}"
            if full in EXCLUDED: continue
            ok = (full, full) in entries or (owner is cls and (full, None) in entries)
            if not ok:
                how = f"show_doc({full}, name='{full}')" if owner is not cls else f"show_doc({full})"
                out.append(f"{full} (defined in {owner.__name__}) has no API entry: add a cell `{how}`")
    return out + problems


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    found = missing()
    print("\n".join(found) if found else "every checked public method has an API entry")
    sys.exit(1 if found else 0)
