"""Run every benchmark module and print one table of results with ratios against anchors.

Each ``bench/<name>.py`` exposes ``run(quick: bool) -> list[Result]``; this
runner discovers them, so adding a benchmark never touches this file.
``python -m bench [names...] [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from rich.console import Console
from rich.table import Table

import bench
from bench.result import Result


def _modules(selected: list[str]) -> list[str]:
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(bench.__path__)
        if not info.name.startswith("_") and info.name != "result"
    )
    return [name for name in names if not selected or name in selected]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmark modules to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    results: list[Result] = []
    for name in _modules(args.names):
        module = importlib.import_module(f"bench.{name}")
        results.extend(module.run(quick=args.quick))
    table = Table("benchmark", "case", "metric", "value", "anchor", "anchor value", "ratio", "target", "met")
    for result in results:
        table.add_row(*result.cells())
    Console().print(table)


if __name__ == "__main__":
    main()
