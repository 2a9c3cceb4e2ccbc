"""`triopacs prefetch PATIENT_ID | --status`: prefetch one patient's priors now, or show
the prefetcher's queue and statistics.

`--status` reads `<data>/prefetch.sqlite` as a second reader (WAL lets it beside a
running node): the queue as last written, the cumulative counts and the last cycle.

`prefetch PATIENT_ID` runs the node itself on the data directory - its listener too,
at the configured port, since the sources C-MOVE to our AE there - asks its prefetcher
for the patient, waits for the queries and retrievals to end, prints the counts and
stops (exit 1 if a study or a source failed). The data directory lock makes it refuse
while a node serves there (one line, exit 2): a running node prefetches by itself
(worklist queries, items added, its periodic cycle), and an embedding program asks it
with `node.prefetch.ask(PrefetchPriors(patient_id=...))`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import attrs
import trio

from .config import Config, load_config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_prefetch_commands(commands) -> None:
    prefetch = commands.add_parser("prefetch", help="prefetch a patient's prior studies now (node stopped), or --status")
    prefetch.add_argument("patient_id", nargs="?", metavar="PATIENT_ID")
    prefetch.add_argument("--status", action="store_true", help="show the queue and the statistics (beside a running node too)")
    prefetch.add_argument("--lookback", type=int, metavar="DAYS", help="priors of the last DAYS days (default: [prefetch] lookback_days)")
    prefetch.add_argument("--modality", default="", help="of the step about to be done: its priors come first")
    prefetch.add_argument("--body-part", default="", help="likewise, the body part")
    prefetch.add_argument("--config", type=Path, help="TOML configuration file")


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _status(config: Config) -> int:
    from .supervisor import prefetch_database
    from .workflow.prefetch.persistence import read_status

    saved = read_status(prefetch_database(config))
    if saved is None:
        print("no prefetch yet (no prefetch.sqlite in the data directory)")
        return EXIT_OK
    print(f"queue: {len(saved.patients)} patients to query, {len(saved.studies)} studies to retrieve")
    for patient in saved.patients:
        error = f"; last error: {patient.last_error}" if patient.last_error else ""
        print(f"  patient {patient.patient_id}: sources {', '.join(patient.sources)}, due {_when(patient.next_attempt_at)}{error}")
    for study in saved.studies:
        error = f"; {study.attempts} failed, last: {study.last_error}" if study.attempts else ""
        print(f"  study {study.study_instance_uid} of {study.patient_id} from {study.source}, due {_when(study.next_attempt_at)}{error}")
    print(f"cumulative ({saved.cycles} cycles): {saved.totals.summary()}")
    if saved.last_cycle is not None:
        last = saved.last_cycle
        print(f"last cycle: {last.cycle_id} ({last.trigger}), finished {_when(last.finished_at)}: {last.stats.summary()}")
    return EXIT_OK


def _prefetch_now(config: Config, args: argparse.Namespace) -> int:
    from .supervisor import open_node
    from .workflow.prefetch import PrefetchPriors
    from .workflow.prefetch.messages import PrefetchStudyDone, PrefetchStudyFailed

    # On for this run whatever the file says (a source must be configured); no periodic
    # cycle: this run is for the patient asked (and whatever the queue held).
    config = attrs.evolve(config, prefetch=attrs.evolve(config.prefetch, enabled=True, cycle_interval=0.0))
    asked = PrefetchPriors(
        patient_id=args.patient_id, lookback_days=args.lookback, modality=args.modality, body_part=args.body_part, wait=True
    )

    async def main():
        async with open_node(config) as node, trio.open_nursery() as nursery:
            with node.subscribe(PrefetchStudyDone, PrefetchStudyFailed) as studies:
                nursery.start_soon(_show_studies, studies)
                done = await node.prefetch.ask(asked, timeout=None)
                nursery.cancel_scope.cancel()
                while True:  # what came in after the last the task showed
                    try:
                        _show_study(studies.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        return done

    done = trio.run(main)
    print(f"prefetched {done.patient_id}: {done.stats.summary()}")
    return EXIT_FAILURE if done.stats.studies_failed or done.stats.queries_failed else EXIT_OK


async def _show_studies(events) -> None:
    async for event in events:
        _show_study(event)


def _show_study(event) -> None:
    """Progress on stderr, a line per study as it is done (how many there will be is
    known only once every source has answered)."""
    if hasattr(event, "error"):
        outcome = f"failed ({event.error}){'' if event.final else ', will be tried again'}"
    elif event.present:
        outcome = "already here"
    else:
        outcome = f"{event.series} series, {event.instances} instances, {event.bytes / 1e6:.1f} MB"
    print(f"study {event.study_instance_uid} from {event.source}: {outcome}", file=sys.stderr, flush=True)


def prefetch(args: argparse.Namespace) -> int:
    from .log import configure_logging
    from .actors.runtime.errors import first_of
    from .storage.data_lock import DataDirectoryInUse

    config = load_config(args.config)
    if args.status:
        return _status(config)
    if not args.patient_id or not args.patient_id.strip():
        print("triopacs prefetch: give a PATIENT_ID, or --status", file=sys.stderr)
        return EXIT_USAGE
    configure_logging("warning", config.log.format)
    try:
        return _prefetch_now(config, args)
    except BaseException as error:
        refused = first_of(error, DataDirectoryInUse)
        if refused is None:
            raise
    print(f"triopacs prefetch: {refused}; a running node prefetches by itself (see --status)", file=sys.stderr)
    return EXIT_USAGE
