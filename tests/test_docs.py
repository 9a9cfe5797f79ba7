"""The offline documentation site (tools/build_docs.py): it builds, every notebook has a page, nothing loads
from the network, internal links resolve, math is typeset by a MathJax served with the site.

One build per session into a temporary folder (about 15 s); skipped when the `docs` extra is not installed."""
import html, importlib.util, json, re, subprocess, sys
from pathlib import Path

import pytest

for _pkg in ("sphinx", "myst_nb", "furo", "jupyter_server_mathjax"):
    pytest.importorskip(_pkg, reason='the docs extra is not installed: pip install -e ".[docs]"')

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_docs", ROOT / "tools" / "build_docs.py")
bd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bd)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs") / "site"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_docs.py"), "--out", str(out), "--keep-sidebar"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def test_check_passes(site):
    problems = bd.check(site)
    assert not problems, "\n".join(problems)


def test_every_notebook_has_a_page(site):
    nbs = bd.notebooks()
    assert any(p.as_posix() == "index.ipynb" for p in nbs)
    names = bd.page_names(nbs)
    missing = [str(p) for p in nbs if not (site / names[p].with_suffix(".html")).exists()]
    assert not missing
    assert (site / "bridge.html").exists()           # nbdev's name for nbs/02_bridge.ipynb


def test_math_page_loads_local_mathjax(site):
    page = bd._Page()
    page.feed((site / "bridge.html").read_text())
    assert page.mathjax, "bridge.html loads no MathJax"
    for src in page.mathjax:
        assert not bd._NET.match(src), src
        assert (site / src.split("?")[0]).is_file(), src
    text = (site / "bridge.html").read_text()
    assert 'class="math notranslate nohighlight"' in text
    assert not bd._RAW_MATH.search("".join(page.text)), "raw $...$ left in the page text"


def test_directives_applied(site):
    text = (site / "bridge.html").read_text()
    assert "#| export" not in text and "#| hide" not in text and "default_exp" not in text
    assert "show_doc(" not in text                   # show_doc cells become their rendered output
    assert 'id="vpbridge.coeffs"' in text            # nbdev's anchor, as in _modidx.py
    assert '<p class="description">' in text


def test_check_finds_problems(tmp_path):
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "MathJax.js").write_text("")
    (tmp_path / "_static" / "bad.css").write_text("@import url('https://fonts.example.org/x.css');\n")
    (tmp_path / "index.html").write_text(
        '<html><head><script src="https://cdn.example.org/mathjax.js"></script>'
        '<link rel="stylesheet" href="//cdn.example.org/a.css"><link rel="canonical" href="https://example.org/">'
        '</head><body><a href="https://example.org/">fine</a><a href="gone.html#x">broken</a>'
        '<a href="index.html#top">ok</a><p>raw math $x_T$ here</p><pre>$ echo $HOME $PATH</pre></body></html>')
    problems = bd.check(tmp_path, nbs_list=[Path("index.ipynb"), Path("02_bridge.ipynb")], check_sidebar=False)
    text = "\n".join(problems)
    assert "no page for nbs/02_bridge.ipynb" in text
    assert "cdn.example.org/mathjax.js" in text and "cdn.example.org/a.css" in text
    assert "bad.css:1" in text
    assert "broken link: gone.html#x" in text
    assert "raw $" in text
    assert "example.org/\"" not in text and len(problems) == 6, text


def test_learning_path_order():
    names = ["index", "99_cli", "00_core", "04_data", "12_metrics", "11_ts2vec", "13_paired", "10_conditional",
             "09_timebridge", "08_train", "07_loss", "06_backbone", "05_priors", "03_samplers", "02_bridge",
             "01_schedules", "experiments/01_table1", "tutorials/own_csv", "zz_new"]
    order = [p.with_suffix("").as_posix() for _, ps in bd.learning_path([Path(n + ".ipynb") for n in names]) for p in ps]
    assert order == ["index", "01_schedules", "02_bridge", "03_samplers", "05_priors", "06_backbone", "07_loss",
                     "08_train", "09_timebridge", "10_conditional", "13_paired", "11_ts2vec", "12_metrics",
                     "04_data", "99_cli", "00_core", "tutorials/own_csv", "experiments/01_table1", "zz_new"]
    assert bd.learning_path([Path("zz_new.ipynb")])[-1][0] == bd.OTHER


def test_sidebar_lists_every_notebook():
    yaml = pytest.importorskip("yaml")
    sb = yaml.safe_load(bd.SIDEBAR.read_text())["website"]["sidebar"]["contents"]
    listed = []
    for item in sb:
        listed += item["contents"] if isinstance(item, dict) else [item]
    assert sorted(listed) == sorted(p.as_posix() for p in bd.notebooks()), \
        "nbs/sidebar.yml is stale: run python tools/build_docs.py --sidebar"
    assert listed[0] == "index.ipynb"


def test_process_notebook():
    cell = lambda kind, src, **kw: {"cell_type": kind, "metadata": {}, "source": src, **kw}
    nb = {"metadata": {}, "cells": [
        cell("markdown", "# bridge\n\n> The bridge."),
        cell("code", "#| default_exp bridge", outputs=[]),
        cell("code", "#| hide\nfrom nbdev.showdoc import show_doc", outputs=[]),
        cell("code", "#| export\ndef f(x): return x", outputs=[]),
        cell("code", "show_doc(f)", outputs=[{"output_type": "execute_result", "metadata": {}, "data": {
            "text/markdown": "---\n\n[source](https://x.org/f.py#L1){target=\"_blank\"}\n\n### f\n\n*Identity.*"}}]),
        cell("code", "#| echo: false\nprint(1)", outputs=[{"output_type": "stream", "name": "stdout", "text": "1\n"}]),
        cell("markdown", "See [the core](00_core.ipynb) and `f`."),
    ]}
    out, notes = bd.process_notebook(nb, Path("bridge"), {"00_core.ipynb": "core"},
                                     {"f": ("bridge", "f")})
    srcs = [c["source"] for c in out["cells"]]
    assert srcs[0].startswith("# bridge\n\n{.description}\nThe bridge.")
    assert srcs[1] == "def f(x): return x"
    assert "### f" in srcs[2] and 'id="f"' in srcs[2] and "show_doc" not in srcs[2] and "{target" not in srcs[2]
    assert out["cells"][3]["metadata"]["tags"] == ["remove-input"]
    assert "(core.ipynb)" in srcs[4] and 'href="bridge.html#f"' in srcs[4]
    assert len(out["cells"]) == 5 and not notes
    assert out["metadata"]["myst"]["html_meta"]["description"] == "The bridge."
    json.dumps(out)


_spec_api = importlib.util.spec_from_file_location("check_api_docs", ROOT / "tools" / "check_api_docs.py")
api = importlib.util.module_from_spec(_spec_api)
_spec_api.loader.exec_module(api)


def test_every_public_method_has_an_api_entry():
    "tools/check_api_docs.py: each public method of the estimators and the trainer has its own show_doc cell."
    problems = api.missing()
    assert not problems, "\n".join(problems)


def test_api_check_finds_gaps(tmp_path):
    cell = lambda src, cid: {"cell_type": "code", "id": cid, "metadata": {}, "outputs": [], "source": src}
    nb = {"cells": [cell("show_doc(Trainer.fit)", "a"), cell("show_doc(TimeBridge.fit)", "b"),
                    cell("show_doc(Trainer.state_dict)\nshow_doc(Trainer.load_state_dict)", "c"),
                    cell("show_doc(Trainer.current_lr)\ntest_eq(1, 1)", "d")],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "08_train.ipynb").write_text(json.dumps(nb))
    text = "\n".join(api.missing(tmp_path))
    assert "Trainer.fit " not in text and "Trainer.train_step (defined in Trainer)" in text
    assert "show_doc(TimeBridge.fit, name='TimeBridge.fit')" in text      # inherited: needs its own name
    assert "08_train.ipynb cell c: 2 show_doc call(s)" in text and "08_train.ipynb cell d: 1 show_doc call(s)" in text
    assert "PairedDiffusion.sample" not in text                             # excluded, with its reason


def test_source_link_has_the_line(tmp_path):
    "nbdev writes `#LNone` for a method imported from another module (`TimeBridge.fit` is `Estimator.fit`): the build finds it."
    gh = "https://github.com/o/r/blob/main/m.py"
    (tmp_path / "m.py").write_text("class A:\n    def f(self): pass\n    @property\n    def p(self): pass\n"
                                   "class B:\n    def f(self): pass\n@patch\ndef g(self:A|B): pass\n")
    link = lambda line, name: bd.source_link(f"{gh}#L{line}", name, root=tmp_path)
    assert link("None", "A.f") == gh + "#L2" and link("None", "C.p") == gh + "#L4" and link("None", "C.g") == gh + "#L8"
    assert link("9", "A.f") == gh + "#L2"                  # the module as it is now, not a stale saved line
    assert link("None", "C.f") == gh and link("5", "C.f") == gh + "#L5"   # two classes define f: nbdev's line, or none
    est = "https://github.com/tsbridge-lambda/tsbridge_lambda/blob/main/tsbridge_lambda/estimator.py"
    line = bd.def_lines(ROOT / "tsbridge_lambda" / "estimator.py")["Estimator.fit"]
    md = f'---\n\n[source]({est}#LNone){{target="_blank"}}\n\n### TimeBridge.fit\n\n*Fit.*'
    assert f'href="{est}#L{line}"' in bd.showdoc_markdown(md)


def _srclinks():
    "(notebook, documented name, source href on the site) of every saved show_doc output."
    for rel in bd.notebooks():
        for c in json.loads((bd.NBS / rel).read_text(encoding="utf-8"))["cells"]:
            for o in c.get("outputs", []):
                md = o.get("data", {}).get("text/markdown")
                md = "".join(md) if isinstance(md, list) else md
                if not md or not bd._re_srclink.search(md): continue
                href = re.search(r'class="srclink reference external" href="([^"]+)"', bd.showdoc_markdown(md)).group(1)
                yield rel, re.sub(r"[`*\\]", "", bd._re_heading.search(md).group(2)).strip(), html.unescape(href)


def test_every_source_link_finds_its_def():
    "Every show_doc source link on the site points at the `def` or `class` of what it documents (none at `#LNone`)."
    bad, n = [], 0
    for rel, name, href in _srclinks():
        m, n = bd._re_gh_line.search(href), n + 1
        line = (ROOT / m.group(1)).read_text().splitlines()[int(m.group(2)) - 1] if m and m.group(2).isdigit() else ""
        meth = re.escape(name.rpartition(".")[2])
        if not re.match(rf"\s*(async\s+)?(def|class)\s+{meth}\b", line): bad.append(f"{rel}: {name}: {href} {line!r}")
    assert n > 100 and not bad, "\n".join(bad)
