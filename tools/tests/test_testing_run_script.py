"""ivtools.testing.run_script: a child process with the clean environment, its output on failure."""

from __future__ import annotations

import sys

import pytest

from ivtools.testing import run_script


def test_returns_stdout_and_passes_the_clean_environment():
    code = "import os; print(os.environ['OMP_NUM_THREADS'], os.environ['DS_BUILD_OPS'], os.environ['EXTRA'])"
    assert run_script([sys.executable, "-c", code], env={"EXTRA": "x"}) == "1 0 x\n"


def test_failure_shows_the_tail_of_both_streams():
    code = "import sys; sys.stdout.write('a' * 50 + 'OUT'); sys.stderr.write('b' * 50 + 'ERR'); sys.exit(3)"
    with pytest.raises(AssertionError) as info:
        run_script([sys.executable, "-c", code], tail=10)
    message = str(info.value)
    assert "exited with 3" in message
    assert "aaaaaaaOUT" in message and "bbbbbbbERR" in message
    assert "a" * 11 not in message and "b" * 11 not in message
