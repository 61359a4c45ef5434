"""pytest-benchmark hooks for the micro-benchmarks: the JSON file says how it was made."""

from __future__ import annotations

import shlex
from importlib import metadata
from typing import Any

import pytest

from bench.results.environment import PACKAGES


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]
) -> None:
    """Record the command line and the package versions beside pytest-benchmark's own machine
    and commit information, so ``bench report`` can show what produced the figures."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    output_json["asyncbench"] = {
        "command": shlex.join(["python", "-m", "pytest", *config.invocation_params.args]),
        "packages": versions,
    }
