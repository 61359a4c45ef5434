"""A scenario is a plain module; this finds it and checks it (the operation sequence it is run as,
and the ``Op`` and ``Outcome`` its functions receive, are in :mod:`bench.sequence`, re-exported
here for scenario modules).

A scenario module declares:

- a docstring (its first line is the description ``bench list`` shows);
- ``WEIGHTS``: operation name -> relative weight;
- for every name, mirror twins: ``def NAME_sync(session: Session, op: Op)`` (or plain ``NAME``)
  and ``async def NAME_async(session: AsyncSession, op: Op)``;
- optionally ``metadata`` (the tables it needs; default: the shared models),
  ``seed(session, counts[, options]) -> data`` (rows to create before measuring; ``data`` reaches
  every operation as ``op.data``) and ``verify(session, data, outcome) -> list[str]`` (problems
  found in the final state, given which operations succeeded);
- optionally ``OPTIONS``: name -> :class:`Option` (``--scenario-opt name=value``, validated here;
  the values reach every operation as ``op.options`` and ``seed`` as its third argument);
- optionally ``API``: what the operations receive. ``"orm"`` (the default): a ``Session`` /
  ``AsyncSession``; ``"core"``: a ``Connection`` / ``AsyncConnection``; ``"driver"``: the
  driver's own connection (psycopg2, psycopg, asyncpg, ...) from the same pool, in autocommit
  mode, kept by each worker while the pool has one for every worker;
- optionally ``DATABASES``: the database kinds it runs on (default: all).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.orm import Session

from bench.db.drivers import KINDS
from bench.errors import UsageError, one_line
from bench.sequence import CHUNK, Op, Outcome, Sequence

# what a scenario module imports from here: Op and Outcome (and Option, defined below)
__all__ = ["APIS", "CHUNK", "Op", "Option", "Outcome", "Scenario", "Sequence", "available", "load"]

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"

SyncOp = Callable[[Any, "Op"], Any]
AsyncOp = Callable[[Any, "Op"], Awaitable[Any]]
APIS = ("orm", "core", "driver")


def _plain(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:g}"


@dataclass(frozen=True)
class Option:
    """A scenario option: its default (whose type is the option's type) and what it means."""

    default: int | float | str | bool
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def parse(self, name: str, text: str) -> int | float | str | bool:
        kind = type(self.default)
        value: int | float | str | bool
        try:
            if kind is bool:
                if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError
                value = text.lower() in ("1", "true", "yes", "on")
            else:
                value = kind(text)
        except ValueError:
            noun = {int: "a whole number", float: "a number", bool: "true or false"}
            raise UsageError(
                f"scenario option {name} must be {noun.get(kind, 'text')}, got {text!r}"
            ) from None
        if self.choices and value not in self.choices:
            raise UsageError(
                f"scenario option {name} must be one of {', '.join(self.choices)}, got {text!r}"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                raise UsageError(f"scenario option {name} must be a finite number, got {text!r}")
            if self.minimum is not None and value < self.minimum:
                raise UsageError(
                    f"scenario option {name} must be at least {_plain(self.minimum)}, got {text!r}"
                )
            if self.maximum is not None and value > self.maximum:
                raise UsageError(
                    f"scenario option {name} must be at most {_plain(self.maximum)}, got {text!r}"
                )
        return value

    def describe(self) -> str:
        if self.choices:
            allowed = "|".join(self.choices)
        elif self.minimum is not None or self.maximum is not None:
            low = "" if self.minimum is None else _plain(self.minimum)
            high = "" if self.maximum is None else _plain(self.maximum)
            allowed = f"{low}..{high}"
        else:
            allowed = type(self.default).__name__
        return f"{self.help} ({allowed})"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    source: str  # file path
    weights: dict[str, int]
    sync_ops: dict[str, SyncOp]
    async_ops: dict[str, AsyncOp]
    metadata: MetaData
    module: ModuleType = field(repr=False)
    options: dict[str, Option] = field(default_factory=dict)
    api: str = "orm"
    databases: tuple[str, ...] = KINDS

    def seed(self, session: Session, counts: Mapping[str, int], options: Mapping[str, Any]) -> Any:
        fn = getattr(self.module, "seed", None)
        if fn is None:
            return None
        takes_options = len(inspect.signature(fn).parameters) >= 3
        return fn(session, counts, options) if takes_options else fn(session, counts)

    def resolve_options(self, given: Mapping[str, str]) -> dict[str, Any]:
        """Every option's value: the defaults, overridden by ``--scenario-opt name=value``."""
        unknown = [name for name in given if name not in self.options]
        if unknown:
            takes = f"its options: {', '.join(self.options)}" if self.options else "it takes none"
            raise UsageError(f"scenario {self.name!r} has no option {unknown[0]!r} ({takes})")
        values: dict[str, Any] = {name: opt.default for name, opt in self.options.items()}
        for name, text in given.items():
            values[name] = self.options[name].parse(name, text)
        return values

    def weights_for(self, options: Mapping[str, Any]) -> dict[str, int]:
        """``WEIGHTS``, or what the module's optional ``weights(options)`` makes of the options."""
        fn = getattr(self.module, "weights", None)
        if not callable(fn):
            return self.weights
        weights = dict(fn(options))
        if set(weights) - set(self.weights) or sum(weights.values()) <= 0:
            raise UsageError(
                f"scenario {self.name!r}: weights(options) must weigh operations of WEIGHTS "
                f"and not all by 0, got {weights}"
            )
        return {name: int(weights.get(name, 0)) for name in self.weights}

    def check_database(self, kind: str) -> None:
        if kind not in self.databases:
            raise UsageError(
                f"scenario {self.name!r} does not run on {kind} "
                f"(it runs on: {', '.join(self.databases)})"
            )

    def verify(self, session: Session, data: Any, outcome: Outcome) -> list[str]:
        fn = getattr(self.module, "verify", None)
        return list(fn(session, data, outcome)) if fn else []


def available() -> list[str]:
    """Names of the scenarios shipped in ``scenarios/``."""
    return sorted(
        p.stem
        for p in SCENARIOS_DIR.glob("*.py")
        if not p.stem.startswith("_") and p.stem != "locustfile"
    )


def load(ref: str) -> Scenario:
    """Find a scenario by name (``crud``) or by path (``./my.py``) and check its shape."""
    module = _import(ref)
    return _check(module, ref)


def _import(ref: str) -> ModuleType:
    looks_like_path = ref.endswith(".py") or "/" in ref or "\\" in ref
    if looks_like_path:
        path = Path(ref).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"scenario file not found: {ref}")
    else:
        path = SCENARIOS_DIR / f"{ref}.py"
        if not ref.isidentifier() or not path.is_file():
            names = ", ".join(available()) or "none"
            raise UsageError(f"unknown scenario {ref!r} (available: {names})")
    name = f"asyncbench_scenario_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import scenario from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit too: a scenario must not end the harness
        del sys.modules[name]
        raise UsageError(
            f"scenario {ref!r} failed to import: {type(exc).__name__}: {one_line(exc)}"
        ) from None
    return module


def _check(module: ModuleType, ref: str) -> Scenario:
    path = Path(module.__file__ or ref)
    weights = getattr(module, "WEIGHTS", None)
    if not isinstance(weights, dict) or not weights:
        raise UsageError(f"scenario {ref!r} declares no WEIGHTS dict")
    if len(weights) > 255:
        raise UsageError(f"scenario {ref!r} declares more than 255 operations")
    sync_ops: dict[str, SyncOp] = {}
    async_ops: dict[str, AsyncOp] = {}
    for name, weight in weights.items():
        if not isinstance(weight, int) or weight < 0:
            raise UsageError(f"scenario {ref!r}: weight of {name!r} must be a whole number >= 0")
        sync_fn = getattr(module, f"{name}_sync", None) or getattr(module, name, None)
        async_fn = getattr(module, f"{name}_async", None)
        if not callable(sync_fn) or inspect.iscoroutinefunction(sync_fn):
            raise UsageError(f"scenario {ref!r}: missing plain function {name}_sync(session, op)")
        if not inspect.iscoroutinefunction(async_fn):
            raise UsageError(
                f"scenario {ref!r}: missing async twin: async def {name}_async(session, op)"
            )
        sync_ops[name] = sync_fn
        async_ops[name] = async_fn
    if sum(weights.values()) <= 0:
        raise UsageError(f"scenario {ref!r}: weights add up to 0")
    metadata = getattr(module, "metadata", None)
    if metadata is None:
        from bench.models import Base

        metadata = Base.metadata
    api = getattr(module, "API", "orm")
    if api not in APIS:
        raise UsageError(f"scenario {ref!r}: API must be one of {', '.join(APIS)}, got {api!r}")
    options = getattr(module, "OPTIONS", {})
    if not isinstance(options, dict) or not all(
        isinstance(k, str) and k.isidentifier() and isinstance(v, Option)
        for k, v in options.items()
    ):
        raise UsageError(f"scenario {ref!r}: OPTIONS must map names to bench.scenario.Option")
    databases = tuple(getattr(module, "DATABASES", KINDS))
    if not databases or any(kind not in KINDS for kind in databases):
        raise UsageError(f"scenario {ref!r}: DATABASES must name some of {', '.join(KINDS)}")
    doc = inspect.getdoc(module) or ""
    return Scenario(
        name=path.stem,
        description=doc.splitlines()[0] if doc else "(no description)",
        source=str(path),
        weights=dict(weights),
        sync_ops=sync_ops,
        async_ops=async_ops,
        metadata=metadata,
        module=module,
        options=dict(options),
        api=api,
        databases=databases,
    )
