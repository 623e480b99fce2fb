"""Jupyter server configuration for the lenswidget browser tests.

Started by Playwright (see ``playwright.config.ts``) as::

    ../.venv/bin/jupyter lab --config jupyter_server_test_config.py

It can also be started by hand (``npm start`` in ``ui-tests/``) to run the
specs against a long-lived server with ``LENSWIDGET_UI_REUSE_SERVER=1``.

Never use this configuration outside tests: it switches off every security
protection of the server (no token, no password, no XSRF check, root allowed).
"""

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

from jupyterlab import galata

UI_TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = UI_TESTS_DIR.parent

# Everything the server writes goes under one throw-away folder, removed when
# the server exits: the root directory of the notebooks (Galata makes one
# sub-folder per test there and removes it afterwards), the workspaces and
# the terminal rc file.  Set LENSWIDGET_UI_ROOT_DIR to use (and keep) a given
# root directory.
_scratch = tempfile.mkdtemp(prefix="lenswidget-ui-")
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
_root = os.environ.get("LENSWIDGET_UI_ROOT_DIR") or os.path.join(_scratch, "root")
os.makedirs(_root, exist_ok=True)
os.environ["JUPYTERLAB_GALATA_ROOT_DIR"] = _root

# configure_jupyter_server creates its temporary files and folders in the
# system temporary directory: point them at the scratch folder.
_saved = (galata.mkdtemp, galata.NamedTemporaryFile)
galata.mkdtemp = functools.partial(tempfile.mkdtemp, dir=_scratch)
galata.NamedTemporaryFile = functools.partial(tempfile.NamedTemporaryFile, dir=_scratch)
try:
    galata.configure_jupyter_server(c)  # noqa: F821  (``c`` is injected by traitlets)
finally:
    galata.mkdtemp, galata.NamedTemporaryFile = _saved
c.ServerApp.root_dir = _root  # noqa: F821

# A fixed port, distinct from the usual 8888 so that a developer's own
# JupyterLab does not collide with the test server.  Must match
# ``playwright.config.ts`` (both read LENSWIDGET_UI_PORT).
c.ServerApp.port = int(os.environ.get("LENSWIDGET_UI_PORT", "8917"))  # noqa: F821
c.ServerApp.port_retries = 0  # noqa: F821
c.ServerApp.ip = "127.0.0.1"  # noqa: F821
c.ServerApp.allow_root = True  # noqa: F821
c.ServerApp.open_browser = False  # noqa: F821
c.IdentityProvider.token = ""  # noqa: F821
c.ServerApp.password = ""  # noqa: F821

# Kernels inherit this process' environment: let them import the repository's
# test helpers (``tests/models.py``) and find the repository's fixtures.
os.environ["LENSWIDGET_REPO_ROOT"] = str(REPO_ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No network on CI: fail fast instead of waiting on the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The machine running the tests may have no internet access: do not let
# JupyterLab try to reach PyPI or the news feed.
c.LabApp.news_url = None  # noqa: F821
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"  # noqa: F821
c.LabApp.extension_manager = "readonly"  # noqa: F821

c.ServerApp.log_level = os.environ.get("LENSWIDGET_UI_LOG_LEVEL", "WARN")  # noqa: F821
