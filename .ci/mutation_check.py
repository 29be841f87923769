"""Checks mutants of a mutmut run against tests named here, as mutmut's runner does (the
tests collected once, then one forked pytest session a mutant, stopping at the first
failure), and records each mutant a test caught in `mutants/`, where `mutmut results`,
.ci/mutation_score.py and .ci/mutation_verdicts.py read it. For tests written after the
run, without running every test that reaches each function again:

    python .ci/mutation_check.py 'chat_store.x_update_chat__mutmut_*' -- tests/test_chats.py::test_x

With no tests named after `--`, each mutant runs the tests mutmut's run found reaching its
function, the quickest first, and records a survivor too, as `mutmut run` does (which,
given names, runs again those that have a verdict: this runs only those without one).
`--within FILE...` keeps those of the test files named, for a quick first pass (a mutant
they do not catch keeps no verdict, to be tested with all the tests that reach it):

    python .ci/mutation_check.py 'service.request_log*' --within tests/test_observability_app.py

With TEST_DATABASE_URL set, on PostgreSQL: for code only PostgreSQL runs, a survivor of the
SQLite run checked there. Run from the checkout holding `mutants/`; the tests are taken
from there too (copy new ones in first).
Mutants already caught are left out; one no test named caught keeps the verdict it had."""

import fcntl
import fnmatch
import json
import os
import resource
import signal
import sys
from pathlib import Path

from mutation_score import CAUGHT as ALREADY_CAUGHT

CAUGHT = 1  # pytest's (and mutmut's) exit code for "a test failed"
OVER_CPU_LIMIT = -signal.SIGXCPU
MEMORY_LIMIT = 6 * 2**30  # bytes of address space; a test process takes under 2 GiB
VERDICTS = {CAUGHT: "caught", OVER_CPU_LIMIT: "caught", 0: "not caught"}


class Collected:
    """A pytest plugin keeping the ids of the tests collected."""

    ids: frozenset[str] | None = None

    def pytest_collection_finish(self, session: object) -> None:
        self.ids = frozenset(item.nodeid for item in session.items)


def record(meta: Path, name: str, code: int) -> None:
    """Writes one verdict into its meta file, read again under a lock: two checks of one
    module (their mutants split by pattern) may run side by side."""
    with meta.open("r+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        data = json.load(file)
        data["exit_code_by_key"][name] = code
        file.seek(0)
        file.truncate()
        file.write(json.dumps(data, indent=4))


def main(arguments: list[str]) -> None:
    split = arguments.index("--") if "--" in arguments else len(arguments)
    patterns, tests = arguments[:split], arguments[split + 1 :]
    within: list[str] = []
    if "--within" in patterns:
        patterns, within = patterns[: patterns.index("--within")], patterns[patterns.index("--within") + 1 :]
    metas = {meta: json.loads(meta.read_text()) for meta in Path("mutants").rglob("*.py.meta")}
    names = {  # those the patterns match that have no verdict, or survived the run (for tests named)
        name: meta
        for meta, data in metas.items()
        for name, code in data["exit_code_by_key"].items()
        if code not in ALREADY_CAUGHT
        and (code is None or tests)
        and any(fnmatch.fnmatch(name, pattern) for pattern in patterns)
    }
    root = Path.cwd()
    os.chdir("mutants")  # the metas' paths stay relative to root
    sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "tests")]
    os.environ["MUTANT_UNDER_TEST"] = ""
    import pytest
    from mutmut.utils.format_utils import mangled_name_from_mutant_name

    stats = json.loads(Path("mutmut-stats.json").read_text())
    reaching, duration = stats["tests_by_mangled_function_name"], stats["duration_by_test"]

    collected = Collected()

    def tests_of(name: str) -> list[str]:
        found = reaching.get(mangled_name_from_mutant_name(name), [])
        kept = [test for test in found if not within or test.partition("::")[0] in within]
        # The run's record may name tests renamed since (a parameter's id): only those still there.
        kept = [test for test in kept if collected.ids is None or test in collected.ids]
        return tests or sorted(kept, key=lambda test: (duration.get(test, 0), test))

    files = sorted({test.partition("::")[0] for name in names for test in tests_of(name)})
    if pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *files], plugins=[collected]) != 0:
        sys.exit("the tests could not be collected")
    names = {name: meta for name, meta in names.items() if tests_of(name)}
    caught = 0
    for name in sorted(names, key=lambda name: (name.rpartition("__mutmut_")[0], int(name.rpartition("_")[2]))):
        child = os.fork()
        if child == 0:
            # A mutant that loops is stopped as mutmut stops it, by a CPU limit (SIGXCPU).
            limit = 60 + 10 * int(sum(duration.get(test, 1) for test in tests_of(name)))
            resource.setrlimit(resource.RLIMIT_CPU, (limit, limit))
            # One that grows without end (a loop in a message tree) fails on a MemoryError
            # before the machine runs out of memory.
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
            os.environ["MUTANT_UNDER_TEST"] = name
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            os._exit(int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests_of(name)])))
        code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        # A failed test or the CPU limit is a catch; an error inside pytest is not a verdict.
        print(f"{VERDICTS.get(code, 'error'):10} {name} (exit code {code})", flush=True)
        # Recorded at once, so that a check stopped midway keeps what it found. A survivor
        # is a verdict only where every test reaching the mutant ran, as in `mutmut run`.
        if code in (CAUGHT, OVER_CPU_LIMIT) or (code == 0 and not tests and not within):
            caught += code != 0
            record(root / names[name], name, code)
    print(f"{caught} of {len(names)} caught, recorded in mutants/")


if __name__ == "__main__":
    main(sys.argv[1:])
