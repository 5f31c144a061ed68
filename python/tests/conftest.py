"""pytest setup: the package under test is this checkout's python/daq_pool
unless DAQ_POOL_TEST_INSTALLED=1 asks for the installed one. Tools the
tests start (C++ servers, senders, recorders) come from environment
variables that ctest sets (see tests/python/CMakeLists.txt); a test whose
tool is not given is skipped, and with CI=true that skip is an error."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("DAQ_POOL_TEST_INSTALLED") != "1":
    sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from support import short_tmp  # noqa: E402,F401  (a fixture for every test file)

import glob  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def no_thread_sanitizer_report():
    """Fails the test if a C++ process it started reported a data race.

    In the tsan preset the producers (py_shm_server, py_recorder,
    frame_pipeline) are ThreadSanitizer builds; Python is not instrumented.
    A child's exit status says nothing once the test stops it with SIGTERM
    (and a report at shutdown comes after that), and its stderr goes to the
    log unread: so every child writes its reports to a file of its own
    (TSAN_OPTIONS log_path, inherited), and a report file fails the test,
    with the report. Uninstrumented processes ignore the option.
    """
    d = tempfile.mkdtemp(prefix="dqtsan")
    before = os.environ.get("TSAN_OPTIONS")
    os.environ["TSAN_OPTIONS"] = (before + ":" if before else "") + f"log_path={d}/report"
    try:
        yield
    finally:
        if before is None:
            del os.environ["TSAN_OPTIONS"]
        else:
            os.environ["TSAN_OPTIONS"] = before
        reports = []
        for f in sorted(glob.glob(os.path.join(d, "report*"))):
            with open(f, errors="replace") as r:
                reports.append(f"--- {os.path.basename(f)} (pid):\n{r.read()}")
        shutil.rmtree(d, ignore_errors=True)
        if reports:
            pytest.fail("ThreadSanitizer reported in a C++ process this test started:\n" + "\n".join(reports),
                        pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With CI=true a skipped test is a failure: CI installs everything."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"CI=true: skipped tests fail ({report.longrepr})"
