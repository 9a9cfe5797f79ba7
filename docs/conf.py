"""Sphinx configuration for the offline documentation site.

`tools/build_docs.py` preprocesses copies of the notebooks in `nbs/` (nbdev directives applied) and runs
`sphinx-build -c docs <processed copies> _docs`; this file is that build's configuration. Nothing here
may load from the network at build or view time: the theme (furo) ships its assets, and MathJax 2 is
copied from the `jupyter-server-mathjax` wheel into `_docs/_static/mathjax` by the build script.
"""
import configparser
from pathlib import Path

_cfg = configparser.ConfigParser()
_cfg.read(Path(__file__).resolve().parents[1] / "settings.ini")
_s = _cfg["DEFAULT"]

project = _s.get("title", "tsbridge_lambda")
author = _s.get("author", "")
copyright = _s.get("copyright", "")
release = version = _s.get("version", "")
root_doc = "index"

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["myst.header"]          # show_doc headings are H3 under an H1, as in nbdev

# notebooks are committed executed: render their saved outputs, never run them
nb_execution_mode = "off"
nb_render_markdown_format = "myst"           # text/markdown outputs may hold $math$ and tables
nb_merge_streams = True
nb_output_stderr = "show"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "attrs_block", "attrs_inline",
                          "html_image", "deflist"]
myst_dmath_double_inline = True
myst_heading_anchors = 3
myst_update_mathjax = False                  # we configure MathJax 2 ourselves, below

# MathJax 2.7 served with the site (copied by tools/build_docs.py); typesets only Sphinx's math nodes
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processEscapes": False, "processEnvironments": True,
                "ignoreClass": "document", "processClass": "math|output_area"},
    "HTML-CSS": {"availableFonts": [], "webFont": "STIX-Web", "imageFont": None,
                 "preferredFont": None, "linebreaks": {"automatic": True}},
    "SVG": {"font": "STIX-Web"},
    "showMathMenu": False,
    "messageStyle": "none",
}

html_theme = "furo"
html_title = project
html_static_path = ["_static"]
html_css_files = ["tsbl.css"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {"navigation_with_keys": True}
pygments_style = "friendly"
