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

import pytest  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With CI=true a skipped test is a failure: CI installs everything."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"CI=true: skipped tests fail ({report.longrepr})"
