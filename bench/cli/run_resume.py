"""``bench run --resume``: the options the earlier run was planned with, refusing any other value
given for them on the command line, and whether the earlier run already has its profiled cells.

To tell a value given from a default, ``bench run``'s options are parsed by actions that note in
the namespace which options the command line gave (:func:`register_actions`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.cli.options import scenario_options
from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.results.schema import Mode
    from bench.run.plan import Concurrency

GIVEN = "given_options"  # what the command line gave: dest -> (option as typed, is a flag)


class _Given(argparse.Action):
    """Notes in the namespace that the command line gave this option, and how it was named
    (``--trials`` or ``--rounds``): argparse's defaults cannot tell a default from a value
    given equal to it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        given = getattr(namespace, GIVEN, None)
        if given is None:
            given = {}
            setattr(namespace, GIVEN, given)
        given[self.dest] = (option_string or self.dest, self.nargs == 0)


class _Store(_Given, argparse._StoreAction):
    pass


class _StoreTrue(_Given, argparse._StoreTrueAction):
    pass


class _StoreFalse(_Given, argparse._StoreFalseAction):
    pass


class _Append(_Given, argparse._AppendAction):
    pass


def register_actions(command: argparse.ArgumentParser) -> None:
    """Make every option of ``command`` note in the namespace when the command line gives it
    (:data:`GIVEN`)."""
    for name, action in (
        (None, _Store), ("store", _Store), ("store_true", _StoreTrue),
        ("store_false", _StoreFalse), ("append", _Append),
    ):  # fmt: skip
        command.register("action", name, action)


def resumed(args: argparse.Namespace) -> tuple[argparse.Namespace, dict[str, Any] | None]:
    """With ``--resume``: the plan of the earlier run, the database and folders of this one.
    An option of the plan given on the command line must have the plan's value."""
    given: dict[str, tuple[str, bool]] = vars(args).pop(GIVEN, None) or {}
    if args.resume is None:
        return args, None
    if not args.resume.strip():
        raise UsageError("--resume needs the results file of the run to finish")
    from bench.results import store as results

    previous = results.load(Path(args.resume))
    plan_args = previous["config"].get("plan_args")
    if not isinstance(plan_args, dict):
        raise UsageError(f"{args.resume} does not record its plan (older asyncbench?): rerun it")
    plan_args = dict(plan_args)
    if "rounds" not in plan_args and "trials" in plan_args:  # recorded before version 3
        plan_args["rounds"] = plan_args.pop("trials")
    if plan_args.get("ops") is None and not plan_args.get("duration"):
        plan_args["ops"] = previous["config"].get("ops")  # the default of its time
    differ = [
        f"{_shown(option, flag, getattr(args, dest))} "
        f"(the run: {_shown_plan(flag, plan_args[dest])})"
        for dest, (option, flag) in given.items()
        if dest in plan_args and not _same(dest, getattr(args, dest), plan_args[dest])
    ]
    if differ:
        raise UsageError(
            f"--resume {args.resume}: these options differ from the run being resumed: "
            f"{', '.join(differ)} (leave them out: a resumed run keeps its plan)"
        )
    return argparse.Namespace(**{**vars(args), **plan_args, "resume": args.resume}), previous


def _same(dest: str, value: Any, planned: Any) -> bool:
    """Whether a value given on the command line is the plan's: lists as JSON keeps them, and
    the lists of numbers, modes and scenario options by what they mean, not how they are
    written (``2,4`` and ``2, 4`` are the same pool sizes)."""
    from bench.run import plan

    if value is None or planned is None:
        return value is planned
    readers: dict[str, Any] = {
        "pool_sizes": plan.parse_pool_sizes,
        "modes": plan.parse_modes,
        "concurrency": lambda text: str(plan.parse_concurrency(text)),
        "scenario_opt": scenario_options,
    }
    read = readers.get(dest)
    if read is not None:
        try:
            return bool(read(value) == read(planned))
        except UsageError:
            return False
    if isinstance(value, (list, tuple)) and isinstance(planned, (list, tuple)):
        return list(value) == list(planned)
    return bool(value == planned)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value) if value else "none"
    return "its default" if value is None else str(value)


def _shown(option: str, flag: bool, value: Any) -> str:
    return option if flag else f"{option} {_text(value)}"


def _shown_plan(flag: bool, planned: Any) -> str:
    return "without it" if flag else _text(planned)  # a flag given and not the plan's


def profile_kept(
    previous: dict[str, Any],
    scenario_source: str,
    modes: Sequence[str],
    pool_sizes: Sequence[int],
    profile_pool: int | None,
    concurrency: Concurrency,
    warmup: int | None,
) -> bool:
    """Whether a resumed run already has every profiled cell ``--profile`` would run."""
    from bench.measure.spec import CellSpec
    from bench.run import profile

    template = CellSpec(scenario_source, kind="", sync_url="", async_url="")
    pool = profile.profile_pool(pool_sizes, profile_pool)
    specs = profile.profile_specs(template, cast("list[Mode]", modes), pool, concurrency, warmup)
    return profile.complete(previous.get("profile"), specs)
