"""Print one closing line that adds up every suite's counts: 'N passed, N failed, N skipped'."""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def pytest_counts(path: Path) -> tuple[int, int, int]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return total - failed - skipped, failed, skipped


def vitest_counts(path: Path) -> tuple[int, int, int]:
    data = json.loads(path.read_text())
    return data.get("numPassedTests", 0), data.get("numFailedTests", 0), data.get("numPendingTests", 0)


def playwright_counts(path: Path) -> tuple[int, int, int]:
    stats = json.loads(path.read_text()).get("stats", {})
    if stats.get("flaky"):
        print(f"playwright: {stats['flaky']} flaky (passed on retry)")
    return stats.get("expected", 0) + stats.get("flaky", 0), stats.get("unexpected", 0), stats.get("skipped", 0)


def main(folder: str) -> None:
    base = Path(folder)
    readers = {"pytest.xml": pytest_counts, "vitest.json": vitest_counts, "playwright.json": playwright_counts}
    totals = [0, 0, 0]
    for name, reader in readers.items():
        path = base / name
        if not path.exists():
            continue
        try:
            counts = reader(path)
        except Exception as exc:  # a broken report must not hide the others
            print(f"could not read {path}: {exc}")
            continue
        print(f"{name.split('.')[0]}: {counts[0]} passed, {counts[1]} failed, {counts[2]} skipped")
        totals = [a + b for a, b in zip(totals, counts)]
    print(f"{totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test-results")
