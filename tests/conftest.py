"""Shared set-up of the suite's own tests."""

import os

# `make test` runs these tests on two pytest-xdist workers. Each worker has PYTEST_XDIST_WORKER set, and
# pytest-benchmark disables itself wherever it sees it: in this worker (tests/test_measurement.py pins the real
# fixture) and in every pytester subprocess that inherits it. The tests need real benchmark sessions, so it goes
# (conftest files load before pytest-benchmark configures its session).
for _name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
    os.environ.pop(_name, None)

# --bench-strict-gate auto is on where CI or BUILD_NUMBER is set: the suite's own runs behave alike on CI and off it
# (tests of the auto rule set them themselves).
for _name in ("CI", "BUILD_NUMBER"):
    os.environ.pop(_name, None)

pytest_plugins = ["pytester"]
