"""tests/optional.py: a missing optional dependency is a skip with its reason locally, a failure in CI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests import conftest as tests_conftest
from tests import optional

CHECKOUT = Path(__file__).resolve().parents[1]
ABSENT = "onepass_no_such_module"


@pytest.fixture
def missing(monkeypatch):
    """This test's own record of missing dependencies, so that the run's summary (and CI) ignore them."""
    record: dict[str, str] = {}
    monkeypatch.setattr(optional, "MISSING", record)
    return record


@pytest.mark.parametrize("ci", ["", "false", "true"])
def test_require_skips_locally_and_fails_in_ci(monkeypatch, missing, ci):
    monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci == "true" else pytest.skip.Exception
    with pytest.raises(outcome, match=f"{ABSENT} is not installed \\(the xyz extra\\)"):
        optional.require(ABSENT, "the xyz extra")
    with pytest.raises(outcome, match="/nonexistent/chromium not found \\(apt-get install chromium\\)"):
        optional.require_files(sys.executable, "/nonexistent/chromium", install="apt-get install chromium")
    assert set(missing) == {ABSENT, "/nonexistent/chromium"}
    assert optional.require("json", "the standard library").dumps([1]) == "[1]"


def test_has_records_what_goes_unchecked(missing):
    assert optional.has("json", "the standard library", "nothing")
    assert not optional.has(ABSENT, "the xyz extra", "the xyz output")
    assert missing == {ABSENT: f"{ABSENT} is not installed (the xyz extra): the xyz output not checked"}


def test_no_test_module_skips_on_its_own():
    offenders = [
        str(path.relative_to(CHECKOUT))
        for path in (CHECKOUT / "tests").rglob("*.py")
        if path.name != "test_optional.py" and "importorskip(" in path.read_text()
    ]
    assert offenders == [], "use tests/optional.py's require() instead of pytest.importorskip"


@pytest.mark.parametrize("ci", ["false", "true"])
def test_a_run_missing_an_optional_package_fails_only_in_ci(tmp_path, monkeypatch, missing, capsys, ci):
    (tmp_path / f"test_uses_extra_{ci}.py").write_text(  # one module name per run of this process
        "from tests.optional import has\n"
        f"HAVE = has({ABSENT!r}, 'the xyz extra', 'the xyz output')\n"
        "def test_something():\n"
        "    assert HAVE is False\n"
    )
    monkeypatch.setenv("CI", ci)
    # in process, with this suite's hooks (tests/conftest.py) as the plugin: a subprocess would pay
    # seconds of imports
    exit_code = pytest.main([str(tmp_path), "-p", "no:cacheprovider", "-q"], plugins=[tests_conftest])
    output = capsys.readouterr().out
    assert "optional dependencies missing" in output and "the xyz output not checked" in output
    assert "1 passed" in output
    assert exit_code == (pytest.ExitCode.TESTS_FAILED if ci == "true" else pytest.ExitCode.OK), output
