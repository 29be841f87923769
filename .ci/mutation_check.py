"""Checks mutants of a mutmut run against tests named here, as mutmut's runner does (the
tests collected once, then one forked pytest session a mutant, stopping at the first
failure), and records each mutant a test caught in `mutants/`, where `mutmut results`,
.ci/mutation_score.py and .ci/mutation_verdicts.py read it. For tests written after the
run, without running every test that reaches each function again:

    python .ci/mutation_check.py 'chat_store.x_update_chat__mutmut_*' -- tests/test_chats.py::test_x

With no tests named after `--`, each mutant runs the tests mutmut's run found reaching its
function (as `mutmut run` does). With TEST_DATABASE_URL set, on PostgreSQL: for code only
PostgreSQL runs, a survivor of the SQLite run checked there. Run from the
checkout holding `mutants/`; the tests are taken from there too (copy new ones in first).
Mutants already caught are left out; one no test caught keeps the verdict it had."""

import fnmatch
import json
import os
import sys
from pathlib import Path

from mutation_score import CAUGHT as ALREADY_CAUGHT

CAUGHT = 1  # pytest's (and mutmut's) exit code for "a test failed"
VERDICTS = {CAUGHT: "caught", 0: "not caught"}


def main(arguments: list[str]) -> None:
    split = arguments.index("--") if "--" in arguments else len(arguments)
    patterns, tests = arguments[:split], arguments[split + 1 :]
    metas = {meta: json.loads(meta.read_text()) for meta in Path("mutants").rglob("*.py.meta")}
    names = {  # those the patterns match that no test has caught yet
        name: meta
        for meta, data in metas.items()
        for name, code in data["exit_code_by_key"].items()
        if code not in ALREADY_CAUGHT and any(fnmatch.fnmatch(name, pattern) for pattern in patterns)
    }
    root = Path.cwd()
    os.chdir("mutants")
    sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "tests")]
    os.environ["MUTANT_UNDER_TEST"] = ""
    import pytest
    from mutmut.utils.format_utils import mangled_name_from_mutant_name

    reaching = json.loads(Path("mutmut-stats.json").read_text())["tests_by_mangled_function_name"]

    def tests_of(name: str) -> list[str]:
        return tests or sorted(reaching.get(mangled_name_from_mutant_name(name), []))

    everything = sorted({test for name in names for test in tests_of(name)})
    if pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *everything]) != 0:
        sys.exit("the tests could not be collected")
    caught = []
    for name in sorted(names, key=lambda name: (name.rpartition("__mutmut_")[0], int(name.rpartition("_")[2]))):
        child = os.fork()
        if child == 0:
            os.environ["MUTANT_UNDER_TEST"] = name
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            os._exit(int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests_of(name)])))
        code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        # Only a failed test counts: an error inside pytest is not a verdict.
        print(f"{VERDICTS.get(code, 'error'):10} {name} (exit code {code})", flush=True)
        if code == CAUGHT:
            caught.append(name)
    os.chdir(root)
    for name in caught:
        metas[names[name]]["exit_code_by_key"][name] = CAUGHT
    for meta in {names[name] for name in caught}:
        meta.write_text(json.dumps(metas[meta], indent=4))
    print(f"{len(caught)} of {len(names)} caught, recorded in mutants/")


if __name__ == "__main__":
    main(sys.argv[1:])
