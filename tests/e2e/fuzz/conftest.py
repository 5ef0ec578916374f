"""Hostile-input tests: how many requests the fuzzers sent, printed at the end of the run."""

from __future__ import annotations

from collections import Counter

#: requests sent by each fuzzer in this run ({"schemathesis": n, "webhook": n, ...})
SENT: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if SENT:
        terminalreporter.write_sep("-", "fuzzing")
        for name, count in sorted(SENT.items()):
            terminalreporter.write_line(f"{name}: {count} generated requests")
