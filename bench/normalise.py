"""Normalising source records, per dialect: CPU per record in one process, no I/O.

Every changed dossier a poll reads is normalised — mapped to the portal's form and
validated against the contract (pydantic, dates, cross-field rules, the NUL check) —
and in poll mode that is about a quarter of the polling process's CPU. This measures it
alone, on the simulators' own records: ``--dossiers`` dossiers per dialect from a seeded
world, changed ``--changes`` times so they carry histories, encoded as the sources send
them. For each dialect, best of ``--runs`` (CPU time, garbage collector paused):

* the baseline: decoding the same records' JSON (``json.loads``), what reading them
  costs at the least;
* decoding and normalising them (``normalise`` of the dialect, the demo catalogue and the
  default status maps as context).

It prints µs per record for both and the ratio normalise ÷ decode.

    .venv/bin/python bench/normalise.py [--dossiers 2000] [--changes 6000] [--runs 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from benchutil import machine

from app.demodata import load_demo_catalogue
from app.simulators import dvclt as dvclt_sim
from app.simulators import igate as igate_sim
from app.simulators import opencps as opencps_sim
from app.simulators.world import World
from app.sync.normalise import dvclt, igate, opencps
from app.sync.normalise.common import Catalogue, Context, Normalised, StatusMap


def context(dialect: str) -> Context:
    catalogue = load_demo_catalogue()
    return Context(
        statuses=StatusMap(dialect),
        catalogue=Catalogue(
            {p["MaTTHC"]: p for p in catalogue["procedures"]},
            {a["MaCoQuan"]: a["TenCoQuan"] for a in catalogue["agencies"]},
        ),
    )


def encoded_records(dialect: str, dossiers: int, changes: int) -> list[bytes]:
    """Each dossier as its connector hands it to normalisation, JSON-encoded."""
    world = World(dialect)  # type: ignore[arg-type]
    world.reset(seed=766, dossiers=dossiers)
    world.mutate(changes)
    records: list[Any] = []
    for dossier in world.dossiers:
        if dialect == "igate":
            records.append(
                {"dossier": igate_sim.record(dossier), "history": igate_sim.history(dossier)}
            )
        elif dialect == "opencps":
            records.append(
                {
                    "dossier": opencps_sim.record(dossier),
                    "files": opencps_sim.files(dossier),
                    "actions": opencps_sim.actions(dossier),
                }
            )
        else:
            messages = [
                {
                    "item": dvclt_sim.summary(world, message),
                    "detail": dvclt_sim.detail(world, message),
                }
                for message in world.messages_in_time_order(dossier)
            ]
            if messages:
                records.append({"code": dossier.ma_ho_so, "messages": messages})
    return [json.dumps(record, ensure_ascii=False).encode() for record in records]


def normaliser(dialect: str) -> Callable[[dict[str, Any], Context], Normalised]:
    if dialect == "igate":
        return igate.normalise
    if dialect == "opencps":
        return opencps.normalise
    return lambda raw, ctx: dvclt.normalise(raw["code"], raw["messages"], ctx)


def best_cpu(run: Callable[[], object], runs: int) -> float:
    """The least CPU seconds of ``runs`` runs, with the collector paused during each."""
    times = []
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            began = time.process_time()
            run()
            times.append(time.process_time() - began)
        finally:
            gc.enable()
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dossiers", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"{args.dossiers:,} dossiers a dialect, {args.changes:,} changes, best of {args.runs}")
    print("| dialect | records | decode µs/record | decode + normalise µs/record | ratio |")
    print("|---|---|---|---|---|")
    for dialect in ("igate", "opencps", "dvclt"):
        encoded = encoded_records(dialect, args.dossiers, args.changes)
        ctx, normalise = context(dialect), normaliser(dialect)
        decode = best_cpu(lambda: [json.loads(e) for e in encoded], args.runs)  # noqa: B023
        both = best_cpu(
            lambda: [normalise(json.loads(e), ctx) for e in encoded],  # noqa: B023
            args.runs,
        )
        per = 1e6 / len(encoded)
        print(
            f"| {dialect} | {len(encoded):,} | {decode * per:.0f} | {both * per:.0f} "
            f"| {both / decode:.1f}× |"
        )
    print(machine())


if __name__ == "__main__":
    main()
