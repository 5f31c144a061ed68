"""Installation, offline: a venv that sees Debian's numpy/pyzmq/h5py/
matplotlib (--system-site-packages) and ``pip install --no-build-isolation``
of a copy of python/; and CMake's install of the package where the
interpreter looks (cmake --install --component python)."""
import os
import shutil
import subprocess
import sys


import daq_pool
from support import tool

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(daq_pool.__file__)))


def test_venv_pip_install_offline(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(PKG_ROOT, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")  # offline: nothing downloaded
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(py), "-m", "pip", "install", "--no-build-isolation", str(src)], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(py), "-c", "import daq_pool, daq_pool.shm, daq_pool.zmq, daq_pool.recording, numpy; "
                        "print(daq_pool.__file__)"], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(str(venv)), r.stdout  # the installed copy, not the checkout
    r = subprocess.run([str(venv / "bin" / "daq-pool"), "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0 and "view" in r.stdout


def test_cmake_install_where_python_looks(tmp_path):
    build = os.environ.get("DAQ_POOL_BUILD_DIR")
    cmake = os.environ.get("DAQ_POOL_CMAKE", "cmake")
    if not build:
        tool("DAQ_POOL_BUILD_DIR")  # skip (fails with CI=true)
    r = subprocess.run([cmake, "--install", build, "--component", "python", "--prefix", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    found = [root for root, dirs, files in os.walk(tmp_path) if root.endswith("/daq_pool") and "__init__.py" in files]
    assert len(found) == 1, found
    site = os.path.dirname(found[0])
    rel = os.path.relpath(site, tmp_path)
    env = dict(os.environ, PYTHONPATH=site)
    r = subprocess.run([sys.executable, "-c", "import daq_pool; print(daq_pool.__file__)"], capture_output=True,
                       text=True, timeout=60, env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith(site), r.stderr
    # With the default prefix the same relative directory is on the interpreter's own path.
    r = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.path))"], capture_output=True,
                       text=True, timeout=60)
    assert any(p.endswith(rel) for p in r.stdout.split()), f"{rel} not on {sys.executable}'s sys.path"
