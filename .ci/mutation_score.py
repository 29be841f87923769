"""Mutation scores per module from `mutmut results --all true` (read on stdin): caught
(killed, or the test process ended in an error) of all mutants, "no tests" counted as
survived. With module names as arguments, exits 1 when one of them is a security, session,
idempotency, rate-limit or store module under 90 % (docs/testing.md); the others' target,
80 %, is for the service as a whole."""

import re
import sys
from collections import Counter

STRICT = {"security", "account_store", "chat_store", "message_store", "search_store", "import_store"}
STRICT |= {"service.idempotency", "service.ratelimit"}
CAUGHT = {"killed", "timeout"}

caught: Counter[str] = Counter()
total: Counter[str] = Counter()
for line in sys.stdin:
    found = re.match(r"\s*(\S+)\.x[_ǁ]\S*__mutmut_\d+: (.+)$", line)
    if not found:
        continue
    module, status = found.group(1), found.group(2).strip()
    if status == "not checked":
        continue
    total[module] += 1
    caught[module] += status in CAUGHT

failed = []
for module in sorted(total):
    target = 90 if module in STRICT else 80
    score = 100 * caught[module] / total[module]
    print(f"{module:32} {caught[module]:5} of {total[module]:5}  {score:5.1f} %  (target {target} %)")
    if module in sys.argv[1:] and module in STRICT and score < target:
        failed.append(module)
everything = 100 * sum(caught.values()) / max(sum(total.values()), 1)
print(f"{'all of the above':32} {sum(caught.values()):5} of {sum(total.values()):5}  {everything:5.1f} %")
if failed:
    sys.exit(f"below target: {', '.join(failed)}")
