"""The command line."""

import subprocess
import sys

import pytest

from mobilevlm_mini.__main__ import main
from mobilevlm_mini.doctor import check_cache, check_package


def test_doctor_passes_here(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(tmp_path))
    assert main(["doctor", "--seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "OK    torch" in out and "GFLOP/s" in out and "FAIL" not in out


def test_doctor_names_a_missing_package():
    check = check_package("surely_not_installed_pkg")
    assert not check.ok and "missing" in check.detail and "make setup" in check.fix


def test_doctor_fails_on_missing_torch(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(tmp_path))
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert main(["doctor", "--seconds", "0.1"]) == 1
    assert "FAIL  torch        missing" in capsys.readouterr().out


def test_doctor_fails_on_unwritable_cache(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(blocker / "cache"))
    check = check_cache()
    assert not check.ok and "not writable" in check.detail and "MOBILEVLM_MINI_DATA" in check.fix


def test_help_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "mobilevlm_mini", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "doctor" in result.stdout


def test_unknown_command_fails():
    with pytest.raises(SystemExit):
        main(["nonsense"])


@pytest.mark.parametrize("command", [["data", "--n", "-5"], ["data", "--size", "0"], ["train", "--projector", "foo"],
                                     ["train", "--preset", "quick", "--projector", "foo"],
                                     ["train", "--preset", "quick", "--layout", "foo"],
                                     ["train", "--preset", "quick", "--layout", "straddle", "--augment"]])
def test_bad_options_fail_at_once_in_one_line(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MOBILEVLM_MINI_DATA", str(tmp_path / "cache"))
    assert main([*command, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "must be a positive" in err or "'foo'" in err or "use it with layout 'aligned'" in err
    assert not (tmp_path / "cache").exists()  # nothing was drawn or pretrained first
