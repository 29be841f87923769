"""The whole service's mutation run is longer than a working session: its verdicts are kept
in the repository (docs/mutation-verdicts.json) so that another checkout can go on from them.

    python .ci/mutation_verdicts.py save      # after (or during a pause of) `mutmut run`
    python .ci/mutation_verdicts.py restore   # before `mutmut run`, in a checkout without mutants/
    python .ci/mutation_verdicts.py merge ../other/mutants   # what another run (PostgreSQL) caught

mutmut keeps each mutant's exit code beside a hash of its function's source, and when it
generates the mutants again it keeps a code only where that hash is unchanged (a function
that changed is tested afresh). `restore` writes the kept codes back where mutmut reads them;
`mutmut run` then runs only what has no verdict. A mutant that survived is not tried again by
tests written since: name it (`mutmut run NAME`) to do that."""

import json
import sys
from pathlib import Path

from mutation_score import CAUGHT

MUTANTS = Path("mutants")
KEPT = Path("docs/mutation-verdicts.json")


def number(name: str) -> int:
    return int(name.rpartition("__mutmut_")[2])


def function_of(name: str) -> str:
    """`x_update_chat` of `chat_store.x_update_chat__mutmut_3`: the key of its hash."""
    return name.rpartition("__mutmut_")[0].rpartition(".")[2]


def save() -> None:
    files = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        functions: dict[str, list] = {}
        for name, code in sorted(data["exit_code_by_key"].items(), key=lambda item: number(item[0])):
            function = function_of(name)
            functions.setdefault(function, [data["hash_by_function_name"].get(function), []])[1].append(code)
        files[str(meta.relative_to(MUTANTS).with_suffix(""))] = functions
    # One line a function, so that a diff shows which functions' verdicts changed.
    blocks = []
    for path, functions in sorted(files.items()):
        lines = [f"  {json.dumps(name)}: {json.dumps(verdict)}" for name, verdict in sorted(functions.items())]
        blocks.append(f"{json.dumps(path)}: {{\n" + ",\n".join(lines) + "\n}")
    KEPT.write_text("{\n" + ",\n".join(blocks) + "\n}\n")
    codes = [code for functions in files.values() for _, codes in functions.values() for code in codes]
    print(f"{sum(code is not None for code in codes)} of {len(codes)} verdicts kept in {KEPT}")


def restore() -> None:
    if MUTANTS.exists():
        sys.exit("mutants/ exists: restore only into a checkout without one")
    for path, functions in json.loads(KEPT.read_text()).items():
        module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        meta = {
            "exit_code_by_key": {
                f"{module}.{function}__mutmut_{i}": code
                for function, (_, codes) in functions.items()
                for i, code in enumerate(codes, start=1)
            },
            "hash_by_function_name": {function: digest for function, (digest, _) in functions.items()},
            "durations_by_key": {},
            "estimated_durations_by_key": {},
        }
        target = MUTANTS / f"{path}.meta"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(meta))
    print(f"restored {KEPT} into {MUTANTS}/")


def merge(other: Path) -> None:
    """Counts a mutant caught here when the other run (of the same function's code, e.g. with
    TEST_DATABASE_URL) caught it: code only PostgreSQL runs shows as "no tests" on SQLite.
    A mutant with no verdict here takes the other run's, whatever it is (a checkout of a
    later commit going on from one of an earlier commit)."""
    merged = 0
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        theirs_path = other / meta.relative_to(MUTANTS)
        if not theirs_path.exists():
            continue
        ours, theirs = json.loads(meta.read_text()), json.loads(theirs_path.read_text())
        for name, code in theirs["exit_code_by_key"].items():
            function = function_of(name)
            same_code = ours["hash_by_function_name"].get(function) == theirs["hash_by_function_name"].get(function)
            if not same_code or code is None or name not in ours["exit_code_by_key"]:
                continue
            mine = ours["exit_code_by_key"][name]
            if mine is None or (code in CAUGHT and mine not in CAUGHT):
                ours["exit_code_by_key"][name] = code
                merged += 1
        meta.write_text(json.dumps(ours, indent=4))
    print(f"{merged} verdicts taken from the run in {other}")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "merge":
        merge(Path(sys.argv[2]))
    else:
        {"save": save, "restore": restore}[command]()
