"""What changed in each version of the results documents' schema (:data:`HISTORY`), for people
reading an old document and for the migrations that bring it up to date."""

HISTORY: dict[int, str] = {
    1: "The first shape. Run documents carry no `kind`; load-test and selfcheck documents say "
    "`kind`. Fields were added to run documents while the version stayed 1: `config.api`, "
    "`config.sync_driver`, `config.async_driver`, `config.prepared_statements`, "
    "`config.event_loop`, `config.scenario_options` (scenario library and driver controls), "
    "`config.processes`, `config.plan_args` (fault handling, `--resume`, `--processes`), "
    "`client.processes` per cell.",
    2: "Every document says its `kind` (`run`, `loadtest`, `selfcheck`, `comparison`). Run "
    "documents always carry the controls `config.api`, `config.sync_driver`, "
    "`config.async_driver`, `config.prepared_statements`, `config.event_loop`, "
    "`config.scenario_options`, `config.processes`, and every cell `client.processes`: a version "
    "1 document that lacks them gets the values that its run had (the defaults of the time). "
    "`bench compare` writes a `comparison` document beside its page.",
    3: "Rounds of pairs. A round is one pass over the pool sizes, one sync and one async cell per "
    "pool size back to back, the order alternating from round to round, every round's cells forked "
    "from a fork server of its own. Each cell gains `cell.arm` (the side it stands for: `sync` or "
    "`async`, or `a`/`b` in an A/A calibration, where both arms run the same mode), `pair` "
    "(`round`, `position` 0 or 1 within its pair, `order`: the arms in the order they ran) and "
    "`fork_server` (`round`, `pid`; `null` where unknown), and `series` (completions per interval "
    "of the measured window) with `drift` (throughput changing inside the window). The config "
    "gains `rounds` (`trials` stays, the same number), `equivalence` (the practical band), "
    "`budget_s` and `aa` (the side an A/A calibration ran, else `null`). The summary is computed "
    "by the paired method (Student t intervals on log ratios, verdicts faster / slower / "
    "equivalent / inconclusive); an A/A run adds `calibration`. A `comparison` document's rows "
    "carry Welch intervals per cell and its `gates` the family-wise result of each rule. "
    "A version 2 run keeps its cells; "
    "each gets `arm` = its mode, `pair` from its trial with sync first (as version 2 always ran), "
    "`fork_server` null; its stored bootstrap summary is dropped (readers compute the paired "
    "one).",
}
