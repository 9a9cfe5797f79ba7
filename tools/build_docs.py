#!/usr/bin/env python3
"""Build the documentation site from the notebooks, offline, with Python tools only.

    python tools/build_docs.py            # build the site into _docs/ (and refresh nbs/sidebar.yml)
    python tools/build_docs.py --check    # check the built site; exit 1 with a list of problems
    python tools/build_docs.py --sidebar  # only rewrite nbs/sidebar.yml (the Quarto sidebar)

Two ways to render, one source. Users with Quarto run `nbdev_docs` (`nbs/_quarto.yml` + `nbs/sidebar.yml`);
this script is the way that needs only pip packages (the `docs` extra): it copies every notebook under
`nbs/` (skipping folders and files whose names start with `_` or `.`, and anything git ignores) into a
work folder, applies the nbdev directives the way nbdev's own processors do for the site, then runs
Sphinx with myst-nb (saved outputs are rendered, nothing is executed) and the furo theme, and serves
MathJax 2 from the `jupyter-server-mathjax` wheel. Page names follow nbdev's: `nbs/02_bridge.ipynb` is
`_docs/bridge.html`, so the links in `tsbridge_lambda/_modidx.py` hold on both sites.

The navigation follows the learning path. `SECTIONS` maps file names to sections; a notebook that matches
no pattern lands in "More" at the end, so a new notebook appears without editing this file.
"""
from __future__ import annotations

import argparse, ast, copy, hashlib, html, json, re, shutil, subprocess, sys, time
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
CONF = ROOT / "docs"
OUT = ROOT / "_docs"
WORK = ROOT / ".cache" / "build_docs"     # processed copies + Sphinx cache (git-ignored; outside nbdev/Quarto _proc)
SIDEBAR = NBS / "sidebar.yml"
MATHJAX_DIR = "mathjax"                   # under _static/

# The learning path: (section caption, patterns on the notebook's path relative to nbs/, without .ipynb).
# First match wins; inside a section notebooks are ordered by pattern, then by file name.
SECTIONS = [
    ("", [r"^index$"]),
    ("Diffusion bridges", [r"^01[a-z]?_", r"^02[a-z]?_", r"^03[a-z]?_", r"^05[a-z]?_"]),
    ("Denoiser and training", [r"^06[a-z]?_", r"^07[a-z]?_", r"^08[a-z]?_"]),
    ("TimeBridge", [r"^09[a-z]?_", r"^10[a-z]?_(?!.*(paired|lambda))"]),
    ("LAMBDA", [r"^1\d[a-z]?_(?!experiments).*(paired|lambda)"]),
    ("Metrics", [r"^1\d[a-z]?_.*(ts2vec|metric)"]),
    ("Performance", [r"^1\d[a-z]?_.*bench"]),
    ("Data and command line", [r"^04[a-z]?_", r"^99[a-z]?_", r"^00[a-z]?_"]),
    ("Tutorials", [r"^tutorials/"]),
    ("Experiments", [r"^1\d[a-z]?_experiments(_[a-z]+)?$", r"^experiments/results$", r"^experiments/"]),
]
OTHER = "More"
ASSET_EXTS = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".pdf", ".csv", ".txt"}


# ----------------------------------------------------------------------------------------- discovery
def _skipped(rel: Path) -> bool:
    return any(p.startswith(("_", ".")) for p in rel.parts)


def source_files(nbs: Path = NBS) -> list[Path]:
    "Files under `nbs` (relative paths) that git does not ignore, skipping `_*` and `.*` names."
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
                             cwd=nbs, capture_output=True, text=True, check=True).stdout
        files = [Path(f) for f in out.split("\0") if f]
        files = [f for f in files if (nbs / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        files = [p.relative_to(nbs) for p in nbs.rglob("*") if p.is_file()]
    return sorted(f for f in files if not _skipped(f))


def notebooks(nbs: Path = NBS) -> list[Path]:
    return [f for f in source_files(nbs) if f.suffix == ".ipynb"]


def page_name(rel: Path) -> Path:
    "nbdev's doc name: `02a_bridge.ipynb` -> `bridge` (the folder kept), lower case."
    return rel.with_name(re.sub(r"^\d+[a-zA-Z0-9]*_", "", rel.name.lower())).with_suffix("")


def page_names(nbs_list: list[Path]) -> dict[Path, Path]:
    names, seen = {}, {}
    for rel in nbs_list:
        seen.setdefault(page_name(rel), []).append(rel)
    for rel in nbs_list:
        pn = page_name(rel)
        names[rel] = pn if len(seen[pn]) == 1 else rel.with_suffix("")   # clash: keep the file name
    return names


def learning_path(nbs_list: list[Path]) -> list[tuple[str, list[Path]]]:
    "Group and order notebooks by `SECTIONS`; unmatched ones go to a last section."
    keyed = []
    for rel in nbs_list:
        key = rel.with_suffix("").as_posix()
        rank = (len(SECTIONS), 0)
        for i, (_, pats) in enumerate(SECTIONS):
            hit = next((j for j, p in enumerate(pats) if re.search(p, key)), None)
            if hit is not None: rank = (i, hit); break
        keyed.append((rank, key, rel))
    keyed.sort()
    groups: dict[int, list[Path]] = {}
    for (i, _), _, rel in keyed: groups.setdefault(i, []).append(rel)
    return [(SECTIONS[i][0] if i < len(SECTIONS) else OTHER, groups[i]) for i in sorted(groups)]


# ------------------------------------------------------------------------------------- Quarto sidebar
def sidebar_yml(nbs_list: list[Path]) -> str:
    lines = ["# Generated by tools/build_docs.py from the notebooks' names (the learning path); do not edit.",
             "# Regenerate with: python tools/build_docs.py --sidebar", "website:", "  sidebar:", "    contents:"]
    for caption, rels in learning_path(nbs_list):
        if not caption:
            lines += [f"      - {r.as_posix()}" for r in rels]
            continue
        lines += [f'      - section: "{caption}"', "        contents:"]
        lines += [f"          - {r.as_posix()}" for r in rels]
    return "\n".join(lines) + "\n"


def write_sidebar(nbs_list: list[Path]) -> bool:
    text = sidebar_yml(nbs_list)
    if SIDEBAR.exists() and SIDEBAR.read_text() == text: return False
    SIDEBAR.write_text(text)
    return True


# --------------------------------------------------------------------------------- notebook processing
_re_dir = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
_re_ansi = re.compile(r"\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])")
_re_magic = re.compile(r"^\s*%.*$", re.M)
_re_showdoc = re.compile(r"^show_doc\b", re.M)
_re_hideline = re.compile(r"#\|\s*hide_line\s*$")
_WIDGET = "application/vnd.jupyter.widget-view+json"


def _src(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def split_directives(src: str) -> tuple[dict[str, str], str]:
    "nbdev directives (`#| name value` lines at the top of a cell) and the rest of the source."
    dirs, lines = {}, src.splitlines()
    i = 0
    while i < len(lines):
        m = _re_dir.match(lines[i])
        if m: dirs[m.group(1).lower()] = m.group(2).strip().strip("'\"")
        elif lines[i].strip(): break
        i += 1
    body = "\n".join(l for l in lines[i:] if not _re_hideline.search(l))
    return dirs, body.strip("\n")


def _strip_outputs(outputs: list) -> list:
    res = []
    for o in outputs:
        o = copy.deepcopy(o)
        if o.get("output_type") == "stream":
            o["text"] = _re_ansi.sub("", "".join(o.get("text", "")))
        data = o.get("data")
        if data is not None:
            data.pop(_WIDGET, None)                      # widgets would need scripts from a CDN
            data.pop("application/vnd.jupyter.widget-state+json", None)
            if not data: continue
        if o.get("output_type") == "error":
            o["traceback"] = [_re_ansi.sub("", t) for t in o.get("traceback", [])]
        res.append(o)
    return res


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


_re_srclink = re.compile(r"\[source\]\(([^)\s]+)\)\{[^}]*\}")
_re_heading = re.compile(r"^(#{1,6})\s+(.*?)\s*$", re.M)


_re_gh_line = re.compile(r"/blob/[^/#]+/([^#]+?\.py)#L(\w+)$")


def _ann_names(a) -> list[str]:
    "Class names in the annotation of a fastcore `@patch`'s first argument: `Cls`, `(A, B)` or `A | B`."
    if isinstance(a, ast.Name): return [a.id]
    if isinstance(a, ast.Tuple): return [n for e in a.elts for n in _ann_names(e)]
    if isinstance(a, ast.BinOp) and isinstance(a.op, ast.BitOr): return _ann_names(a.left) + _ann_names(a.right)
    return []


@lru_cache(None)
def def_lines(py: Path) -> dict[str, int]:
    "The line of each def and class in the module `py`, as nbdev indexes them: `f`, `Cls`, `Cls.f`, and `Cls.f` for `@patch`."
    try: tree = ast.parse(py.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError): return {}
    defs, res = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef), {}
    for node in (n for n in tree.body if isinstance(n, defs)):
        res.setdefault(node.name, node.lineno)
        if isinstance(node, ast.ClassDef):
            res.update({f"{node.name}.{s.name}": s.lineno for s in node.body if isinstance(s, defs)})
        elif node.args.args and any(ast.unparse(getattr(d, "func", d)).rpartition(".")[2] == "patch"
                                    for d in node.decorator_list):
            res.update({f"{c}.{node.name}": node.lineno for c in _ann_names(node.args.args[0].annotation)})
    return res


def source_link(href: str, name: str, root: Path = ROOT) -> str:
    """A `show_doc` source link (`.../blob/main/<module>.py#L<n>`) with the line of `name` in the module as it is now:
    `name` itself, else the one method of that name there (`TimeBridge.fit` is `Estimator.fit` in estimator.py, where
    nbdev writes `#LNone`). Saved outputs go stale when a module changes; where no line is found nbdev's is kept, and
    `#LNone` dropped."""
    m = _re_gh_line.search(href)
    if not m: return href
    lines, meth = def_lines(root / m.group(1)), name.rpartition(".")[2]
    hits = {v for k, v in lines.items() if "." in k and k.rpartition(".")[2] == meth}
    line = lines.get(name) or (hits.pop() if len(hits) == 1 else None) or (m.group(2) if m.group(2) != "None" else None)
    return href[:m.end(1)] + (f"#L{line}" if line else "")


def showdoc_markdown(md: str) -> str:
    "Turn a saved `show_doc` markdown output into MyST: heading first, then nbdev's anchor and the source link."
    md = re.sub(r"^---\s*\n", "", md.strip())              # leading rule: CSS draws it
    md = re.sub(r"\{#[^}]*\}\s*$", "", md, flags=re.M)     # Quarto heading ids
    src = _re_srclink.search(md)
    if src: md = md[:src.start()] + md[src.end():]
    m = _re_heading.search(md)
    if not m: return md
    name = re.sub(r"[`*\\]", "", m.group(2)).strip()
    # nbdev's anchor (`bridge.html#vpbridge.coeffs`) kept as an explicit id, so _modidx links hold here too
    extra = f'<span id="{html.escape(name.lower())}"></span>'
    if src: extra += f'<a class="srclink reference external" href="{html.escape(source_link(src.group(1), name))}">source</a>'
    return md[:m.start()] + "{.showdoc}\n" + m.group(0) + "\n\n" + extra + "\n" + md[m.end():]


def load_symbols(root: Path = ROOT) -> dict[str, tuple[str, str]]:
    "`name` -> (page, anchor) from the package's `_modidx.py` (read as data; nothing imported)."
    res = {}
    for idx in (root).glob("*/_modidx.py"):
        try: d = ast.literal_eval(idx.read_text().split("=", 1)[1].strip())
        except (ValueError, SyntaxError, IndexError): continue
        lib = d.get("settings", {}).get("lib_path", idx.parent.name)
        for mod, syms in d.get("syms", {}).items():
            pages = {link.partition("#")[0] for link, _ in syms.values()}
            if len(pages) == 1:                          # a module's name links to its page
                page = next(iter(pages)).removesuffix(".html")
                for key in (mod, mod.split(".")[-1]): res.setdefault(key, (page, ""))
            for full, (link, _) in syms.items():
                page, _, anchor = link.partition("#")
                short = full[len(mod) + 1:] if full.startswith(mod + ".") else full
                for key in {full, short, full.replace(lib + ".", "", 1)}:
                    if short.split(".")[-1].startswith("_"): continue
                    res.setdefault(key, (page.removesuffix(".html"), anchor))
    return res


_re_code_span = re.compile(r"(?<![`\[])`([A-Za-z_][\w.]*)(\(\))?`(?![`\]])")
_re_fence = re.compile(r"^(```|~~~|:::|\$\$).*?$.*?^\1\s*$", re.M | re.S)


def linkify(md: str, symbols: dict, here: Path) -> str:
    "Backticked library names become links to their documentation (as nbdev's `add_links` does)."
    if not symbols: return md
    def repl(m):
        hit = symbols.get(m.group(1))
        if not hit: return m.group(0)
        page, anchor = hit
        href = Path(*([".."] * (len(here.parts) - 1)), page + ".html").as_posix() + (f"#{anchor}" if anchor else "")
        code = html.escape(m.group(1) + (m.group(2) or ""))
        # raw HTML: MyST would take a relative `page.html#x` link for a cross-reference to resolve
        return (f'<a class="reference internal symlink" href="{html.escape(href)}"><code class="docutils literal '
                f'notranslate"><span class="pre">{code}</span></code></a>')
    out, pos = [], 0
    for f in _re_fence.finditer(md):                     # leave fenced blocks and display math alone
        out.append(_re_code_span.sub(repl, md[pos:f.start()])); out.append(f.group(0)); pos = f.end()
    out.append(_re_code_span.sub(repl, md[pos:]))
    return "".join(out)


def _fix_nb_links(md: str, names: dict[str, str]) -> str:
    "Links to `NN_name.ipynb` point at the renamed copy, `name.ipynb`."
    def repl(m):
        target, frag = m.group(2), m.group(3) or ""
        new = names.get(Path(target).name)
        if new is None: return m.group(0)
        return f"]({(Path(target).parent / new).as_posix()}.ipynb{frag})"
    return re.sub(r"\]\((?!\w+:)(([^)#\s]+\.ipynb))(#[^)\s]*)?\)", repl, md)


def process_notebook(nb: dict, here: Path, names: dict[str, str], symbols: dict) -> tuple[dict, list[str]]:
    "Apply nbdev's documentation directives to a notebook; return the new notebook and notes."
    notes, cells, titled = [], [], False
    for cell in nb.get("cells", []):
        kind, src = cell.get("cell_type"), _src(cell)
        if kind == "raw":
            continue
        if kind == "markdown":
            s = src.strip()
            if s.startswith("#") and s.endswith(" -") and "\n" not in s: continue   # nbdev: heading ending ' -'
            s = _fix_nb_links(s, names)
            if not titled and re.match(r"^#\s+\S", s):          # `# Title` + `> summary`
                titled = True
                m = re.match(r"^(#\s+[^\n]+)\n+((?:>[^\n]*\n?)+)(.*)$", s, re.S)
                if m:
                    summary = " ".join(l.lstrip(">").strip() for l in m.group(2).splitlines()).strip()
                    nb.setdefault("metadata", {})["myst"] = {"html_meta": {"description": summary}}
                    s = f"{m.group(1)}\n\n{{.description}}\n{summary}\n\n{m.group(3).strip()}".strip()
            cells.append(_md(linkify(s, symbols, here)))
            continue
        if kind != "code": continue
        dirs, body = split_directives(src)
        if "hide" in dirs or dirs.get("include") == "false": continue
        if "default_exp" in dirs and not body.strip(): continue
        outputs = _strip_outputs(cell.get("outputs", []))
        if _re_showdoc.search(body):                         # show_doc: its markdown output, no code
            mds = ["".join(o["data"]["text/markdown"]) if isinstance(o["data"]["text/markdown"], list)
                   else o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
            if not mds: notes.append(f"show_doc cell without saved output: {body.splitlines()[0][:60]}")
            for md in mds: cells.append(_md(linkify(showdoc_markdown(md), symbols, here)))
            continue
        body = _re_magic.sub("", body).strip("\n")
        tags = []
        if dirs.get("echo") == "false" or "hide_input" in dirs: tags.append("remove-input")
        if dirs.get("output") == "false" or "hide_output" in dirs or dirs.get("eval") == "false" and not outputs:
            tags.append("remove-output")
        if dirs.get("code-fold") in ("true", "show"): tags.append("hide-input")
        if not body.strip(): tags.append("remove-input")
        if "remove-input" in tags and (not outputs or "remove-output" in tags): continue
        cells.append({"cell_type": "code", "execution_count": cell.get("execution_count"),
                      "metadata": {"tags": tags} if tags else {}, "source": body, "outputs": outputs})
    if not titled: notes.append("no `# Title` markdown cell")
    meta = {k: v for k, v in nb.get("metadata", {}).items() if k in ("kernelspec", "language_info", "myst")}
    meta.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    meta["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}   # `!tsbl ...` and `%magic` lines highlight without errors
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells}, notes


def toctree_cells(sections: list[tuple[str, list[Path]]], names: dict[Path, Path]) -> list[dict]:
    cells = []
    for caption, rels in sections:
        entries = [names[r].as_posix() for r in rels if names[r].as_posix() != "index"]
        if not entries: continue
        opts = ":hidden:\n:maxdepth: 2\n" + (f":caption: {caption}\n" if caption else "")
        cells.append(_md("```{toctree}\n" + opts + "\n" + "\n".join(entries) + "\n```"))
    return cells


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data: return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def prepare_sources(src: Path) -> tuple[list[Path], dict[Path, Path]]:
    "Processed copies of the notebooks (and their image/data files) in `src`, Sphinx's source folder."
    files = source_files()
    nbs_list = [f for f in files if f.suffix == ".ipynb"]
    if not any(f.as_posix() == "index.ipynb" for f in nbs_list):
        sys.exit("nbs/index.ipynb is missing: it is the landing page")
    names = page_names(nbs_list)
    by_file = {r.name: names[r].name for r in nbs_list}
    symbols = load_symbols()
    sections = learning_path(nbs_list)
    keep = set()
    for rel in nbs_list:
        nb = json.loads((NBS / rel).read_text(encoding="utf-8"))
        here = names[rel]
        out, notes = process_notebook(nb, here, by_file, symbols)
        if here.as_posix() == "index": out["cells"] += toctree_cells(sections, names)
        for i, c in enumerate(out["cells"]): c["id"] = f"c{i:03d}"
        for n in notes: print(f"  note: {rel}: {n}")
        dest = src / here.with_suffix(".ipynb")
        _write_if_changed(dest, json.dumps(out, indent=1, ensure_ascii=False).encode())
        keep.add(dest)
    for rel in files:
        if rel.suffix.lower() in ASSET_EXTS:
            dest = src / rel
            _write_if_changed(dest, (NBS / rel).read_bytes()); keep.add(dest)
    for p in sorted(src.rglob("*"), reverse=True):      # drop copies of notebooks that are gone
        if p.is_file() and p not in keep: p.unlink()
        elif p.is_dir() and not any(p.iterdir()): p.rmdir()
    return nbs_list, names


def mathjax_source() -> Path:
    try:
        import jupyter_server_mathjax
    except ImportError:
        sys.exit('MathJax comes from the jupyter-server-mathjax package: pip install -e ".[docs]"')
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def build(out: Path, work: Path, sidebar: bool = True, clean: bool = False, jobs: str = "1") -> int:
    t0 = time.time()
    src, doctrees, html_dir = work / "src", work / "doctrees", work / "html"   # myst-nb also writes work/jupyter_execute
    if clean:
        shutil.rmtree(work, ignore_errors=True); shutil.rmtree(out, ignore_errors=True)
    src.mkdir(parents=True, exist_ok=True)
    nbs_list, _ = prepare_sources(src)
    if sidebar and write_sidebar(nbs_list):
        print(f"updated {SIDEBAR.relative_to(ROOT)} (the Quarto sidebar): commit it")
    mj = mathjax_source()
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(CONF), "-d", str(doctrees),
           "-j", jobs, str(src), str(html_dir)]
    print(f"building {len(nbs_list)} notebooks into {out} ...", flush=True)
    r = subprocess.run(cmd, cwd=ROOT)
    if r.returncode: return r.returncode
    shutil.rmtree(out, ignore_errors=True)              # the site is replaced whole: no stale pages
    shutil.copytree(html_dir, out, ignore=shutil.ignore_patterns(".buildinfo", ".doctrees"))
    shutil.copytree(mj, out / "_static" / MATHJAX_DIR, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    (out / ".nojekyll").touch()
    print(f"built {out} in {time.time() - t0:.1f} s; open {out / 'index.html'}")
    return 0


# ------------------------------------------------------------------------------------------- the check
_NET = re.compile(r"^\s*(https?:)?//", re.I)
_CSS_NET = re.compile(r"""(@import\s+(url\()?\s*['"]?\s*(https?:)?//|url\(\s*['"]?\s*(https?:)?//)""", re.I)
_LOAD_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "shortcut", "apple-touch-icon",
              "manifest", "preconnect", "dns-prefetch"}
_RAW_MATH = re.compile(r"(?<![\\$\w])\$(?!\s)[^$\n]{1,200}?(?<![\s\\])\$(?![\w$])|\$\$[^$]+\$\$")


class _Page(HTMLParser):
    SKIP = {"code", "pre", "script", "style", "textarea"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.loads, self.links, self.ids, self.text, self.inline = [], [], set(), [], []
        self.stack, self.mathjax = [], []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if "id" in a: self.ids.add(a["id"])
        if tag not in ("br", "img", "link", "meta", "input", "hr", "source", "wbr", "area", "base", "col", "embed"):
            cls = a.get("class", "").split()
            self.stack.append(tag in self.SKIP or "math" in cls or "highlight" in cls)
        if tag == "script" and a.get("src"):
            self.loads.append(("script", a["src"]))
            if "MathJax.js" in a["src"]: self.mathjax.append(a["src"])
        elif tag == "link" and a.get("href"):
            rels = set(a.get("rel", "").lower().split())
            if rels & _LOAD_RELS: self.loads.append(("link " + a.get("rel", ""), a["href"]))
            else: self.links.append(a["href"])
        elif tag in ("img", "iframe", "source", "embed", "video", "audio") and a.get("src"):
            self.loads.append((tag, a["src"]))
        if tag == "a" and a.get("href"): self.links.append(a["href"])
        if a.get("style") and _CSS_NET.search(a["style"]): self.loads.append(("style attribute", a["style"]))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "img", "link", "meta", "input", "hr", "source", "wbr", "area", "base", "col", "embed"):
            self.stack.pop()

    def handle_endtag(self, tag):
        if self.stack and tag not in ("br", "img", "link", "meta", "input", "hr", "source"): self.stack.pop()

    def handle_data(self, data):
        skipping = any(self.stack)
        if self.lasttag in ("style", "script") and skipping: self.inline.append((self.lasttag, data))
        if not skipping: self.text.append(data)


def _local_target(page: Path, ref: str, out: Path) -> Path | None:
    ref = html.unescape(ref).strip()
    if not ref or ref.startswith(("#", "mailto:", "javascript:", "data:", "tel:")) or re.match(r"^[a-z][\w+.-]*:", ref, re.I) \
            or ref.startswith("//"):
        return None
    path = re.split(r"[?#]", ref, 1)[0]
    if not path: return None
    target = (out / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
    return target


def check(out: Path = OUT, nbs_list: list[Path] | None = None, check_sidebar: bool = True) -> list[str]:
    "Problems with the built site in `out` (an empty list when all is well)."
    problems = []
    if not (out / "index.html").exists():
        return [f"{out}/index.html is missing: build first (python tools/build_docs.py)"]
    nbs_list = notebooks() if nbs_list is None else nbs_list
    names = page_names(nbs_list)
    for rel in nbs_list:
        if not (out / names[rel].with_suffix(".html")).exists():
            problems.append(f"no page for nbs/{rel} (expected {names[rel].with_suffix('.html')})")
    if check_sidebar:
        if not SIDEBAR.exists() or SIDEBAR.read_text() != sidebar_yml(nbs_list):
            problems.append("nbs/sidebar.yml does not list the notebooks in the learning-path order: "
                            "run python tools/build_docs.py (or --sidebar) and commit it")
    if not (out / "_static" / MATHJAX_DIR / "MathJax.js").exists():
        problems.append(f"_static/{MATHJAX_DIR}/MathJax.js is missing from the site")
    for css in sorted(out.rglob("*.css")):
        for i, line in enumerate(css.read_text(errors="replace").splitlines(), 1):
            if _CSS_NET.search(line):
                problems.append(f"{css.relative_to(out)}:{i}: loads from the network: {line.strip()[:120]}")
    for page in sorted(out.rglob("*.html")):
        if MATHJAX_DIR in page.relative_to(out).parts[:2]: continue
        rel = page.relative_to(out)
        p = _Page()
        p.feed(page.read_text(errors="replace"))
        for what, ref in p.loads:
            if _NET.match(html.unescape(ref)) or _CSS_NET.search(ref):
                problems.append(f"{rel}: <{what}> loads from the network: {ref[:120]}")
            else:
                t = _local_target(page, ref, out)
                if t is not None and not t.exists(): problems.append(f"{rel}: <{what}> missing file: {ref}")
        for what, body in p.inline:
            if (what == "style" and _CSS_NET.search(body)) or \
               (what == "script" and re.search(r"""['"](https?:)?//[^'"\s]+\.(js|css|woff2?|ttf)\b""", body)):
                problems.append(f"{rel}: inline <{what}> loads from the network: {body.strip()[:120]}")
        for ref in p.links:
            t = _local_target(page, ref, out)
            if t is None: continue
            if not t.exists() and not (t / "index.html").exists():
                problems.append(f"{rel}: broken link: {ref}")
        text = "".join(p.text)
        raw = [m.group(0) for m in _RAW_MATH.finditer(text)]
        if raw: problems.append(f"{rel}: math left untypeset (raw $): {', '.join(raw[:3])[:160]}")
        if ('class="math' in page.read_text(errors="replace")) and not p.mathjax:
            problems.append(f"{rel}: has math but does not load MathJax")
        for src in p.mathjax:
            if _NET.match(src): problems.append(f"{rel}: MathJax from the network: {src}")
    return problems


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="check the built site instead of building it")
    ap.add_argument("--sidebar", action="store_true", help="only rewrite nbs/sidebar.yml")
    ap.add_argument("--out", type=Path, default=OUT, help="site folder (default: _docs)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: .cache/build_docs)")
    ap.add_argument("--clean", action="store_true", help="rebuild from scratch")
    ap.add_argument("--keep-sidebar", action="store_true", help="build without rewriting nbs/sidebar.yml")
    ap.add_argument("-j", "--jobs", default="1", help="Sphinx's parallel jobs (default 1)")
    a = ap.parse_args(argv)
    out = a.out.resolve()
    if a.sidebar:
        changed = write_sidebar(notebooks())
        print(f"{SIDEBAR.relative_to(ROOT)} {'updated' if changed else 'already current'}")
        return 0
    if a.check:
        problems = check(out)
        pages = len(list(out.rglob("*.html")))
        if problems:
            print(f"docs check: {len(problems)} problem(s) in {out}:")
            for p in problems: print("  -", p)
            return 1
        print(f"docs check: OK ({pages} pages in {out}; every notebook has a page; no network loads; "
              f"internal links resolve; math typeset by a local MathJax)")
        return 0
    work = a.work.resolve() if a.work else (WORK if out == OUT.resolve() else out.parent / (out.name + "_work"))
    return build(out, work, sidebar=not a.keep_sidebar, clean=a.clean, jobs=a.jobs)


if __name__ == "__main__":
    sys.exit(main())
