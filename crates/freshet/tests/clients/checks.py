"""The check runner shared by the client scripts in this directory.

Each script defines `test_*` functions and calls `run(label, globals())`:
every test runs, each failure is printed with its traceback, and the
process exits non-zero if any failed. The Rust side looks for the line
`<label>: all checks passed`.
"""

import traceback


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def run(label, namespace):
    tests = [(name, fn) for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
    failures = []
    for name, fn in tests:
        try:
            fn()
            print(f"{label} {name} ... ok")
        except Exception:  # noqa: BLE001 - report every failure
            print(f"{label} {name} ... FAILED")
            failures.append((name, traceback.format_exc()))
    for name, tb in failures:
        print(f"\n==== {name} ====\n{tb}")
    print(f"{label}: {len(tests) - len(failures)} passed, {len(failures)} failed")
    if not failures:
        print(f"{label}: all checks passed")
    return 1 if failures else 0
