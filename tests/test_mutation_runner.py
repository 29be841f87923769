"""The suite as mutmut's runner uses it (docs/testing.md): it collects the tests once in a
process, then runs a mutant's tests in a new pytest session of a forked copy, two such
sessions at a time. Without a mutant, every such session must pass: a test that fails there
would count every mutant it runs for as caught."""

import subprocess
import sys
import textwrap

from server import ROOT

SESSIONS = textwrap.dedent(
    """
    import os, sys
    import pytest

    files = sys.argv[1:]
    pytest.main(["--collect-only", "-qqq", "-p", "no:cacheprovider", *files])
    for _ in range(2):  # twice over, on the database the first pair left
        forked = []
        for _ in range(2):  # two sessions at once
            pid = os.fork()
            if pid == 0:
                os._exit(int(pytest.main(["-q", "-p", "no:cacheprovider", *files])))
            forked.append(pid)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in forked]
        print("exit codes", codes, flush=True)
        if any(codes):
            sys.exit(1)
    """
)


def test_forked_sessions_after_one_collection_pass_side_by_side_on_one_database() -> None:
    # Tests that query the database themselves, sign tokens with the suite's key, count every
    # row, or write beside the app.
    files = ["tests/test_auth.py", "tests/test_account.py", "tests/test_trash.py"]
    run = subprocess.run(
        [sys.executable, "-c", SESSIONS, *files], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-5000:]
    assert run.stdout.count("exit codes [0, 0]") == 2
