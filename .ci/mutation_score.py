"""Mutation scores per module, read from the exit codes mutmut keeps in `mutants/` (run after
`mutmut run`): caught (a test failed, or the test process ran out of time) of all mutants
checked, "no tests" counted as survived.

A test process that ended in an error (exit code 255: pytest.main raised, or refused the
test ids it was given because a test module failed to import under the mutant) is counted
as caught, apart from the test failures, and listed: such an error is also what a test id
that pytest cannot find again gives (docs/testing.md), so a list of them is to be read.

With module names as arguments, exits 1 when one of them is a security, session,
idempotency, rate-limit or store module under 90 % (docs/testing.md); the others' target,
80 %, is for the service as a whole."""

import json
import re
import sys
from collections import Counter
from pathlib import Path

STRICT = {"security", "account_store", "chat_store", "message_store", "search_store", "import_store"}
STRICT |= {"service.idempotency", "service.ratelimit"}
# mutmut's exit codes (mutmut/stats.py): a test failed (1; 3 is an error inside pytest) or
# the process ran past its CPU or wall limit (SIGXCPU, or 36).
CAUGHT = {1, 3, 24, -24, 152, 36}
ERROR = 255
SURVIVED = {0, 5, 33}  # passed; no tests reached the function


def verdicts(root: Path) -> dict[str, int | None]:
    """Every mutant's exit code by its name (None: not run yet)."""
    codes: dict[str, int | None] = {}
    for meta in root.rglob("*.py.meta"):
        codes |= json.loads(meta.read_text())["exit_code_by_key"]
    return codes


def main() -> None:
    caught: Counter[str] = Counter()
    total: Counter[str] = Counter()
    unrun: Counter[str] = Counter()
    errors: dict[str, list[str]] = {}
    for name, code in sorted(verdicts(Path("mutants")).items()):
        module = re.match(r"(\S+)\.x[_ǁ]", name).group(1)
        if code is None:
            unrun[module] += 1
            continue
        total[module] += 1
        if code in CAUGHT or code == ERROR:
            caught[module] += 1
        if code not in CAUGHT and code not in SURVIVED:
            errors.setdefault(module, []).append(f"{name} (exit code {code})")

    failed = []
    for module in sorted(total | unrun):
        target = 90 if module in STRICT else 80
        score = 100 * caught[module] / max(total[module], 1)
        listed = f", {len(errors[module])} of them errors" if module in errors else ""
        listed += f"; {unrun[module]} not run yet" if unrun[module] else ""
        print(f"{module:32} {caught[module]:5} of {total[module]:5}  {score:5.1f} %  (target {target} %{listed})")
        if module in sys.argv[1:] and module in STRICT and total[module] and score < target:
            failed.append(module)
    everything = 100 * sum(caught.values()) / max(sum(total.values()), 1)
    not_run = f"; {sum(unrun.values())} not run yet" if unrun else ""
    print(f"{'all of the above':32} {sum(caught.values()):5} of {sum(total.values()):5}  {everything:5.1f} %{not_run}")
    for module, names in errors.items():
        print(f"\nended in an error, not a test result (see docs/testing.md), {module}:")
        print("\n".join(f"  {name}" for name in names))
    if failed:
        sys.exit(f"below target: {', '.join(failed)}")


if __name__ == "__main__":
    main()
