"""The command line."""

import subprocess
import sys

import pytest

from mobilevlm_mini.__main__ import main
from mobilevlm_mini.doctor import check_package


def test_doctor_passes_here(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "OK    torch" in out and "FAIL" not in out


def test_doctor_names_a_missing_package():
    check = check_package("surely_not_installed_pkg")
    assert not check.ok and "missing" in check.detail and "make setup" in check.fix


def test_help_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "mobilevlm_mini", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "doctor" in result.stdout


def test_unknown_command_fails():
    with pytest.raises(SystemExit):
        main(["nonsense"])
