"""Faust's table recovery with its end in the right order: seek, then resume.

When the tables have recovered, faust-streaming 0.15 resumes the stream partitions and then
seeks them to their committed offsets, a round trip to the broker later, while records flow
(they did while the changelogs were read). Records fetched in between (what arrived while
the worker recovered is already buffered) were delivered to the agents, and delivered a
second time from the same offsets after the seek. The rules take that for a redelivery after
a crash and publish the records again: a restarted worker doubled its outputs (same ids, so
consumers dropped them) and counted the events as duplicates. It holds on Apache Kafka too.

Here the two steps are swapped, the order Faust's own change for an app without tables
(faust-streaming #217) describes: the partitions are still paused while they are sought, and
nothing is fetched for them before. Everything else is Faust's, line for line. An app
without tables (the audit writer, the notifier) ends its recovery another way, where the
records flow again only after the seek: it was not affected.

Two other ways were dropped. Keeping Faust's read offsets past what was delivered was tried:
Faust's seek leaves there the next offset to read, not the last one delivered, so a second
seek in one generation skipped a record (a takeover test lost events). Pausing the
partitions again when the seek is asked for was not: the consumer thread may see them
active in between and hand over records that the delivery then drops, which the seek brings
back only where an offset was committed.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.tables.manager import TableManager as FaustTableManager
from faust.tables.recovery import Recovery as FaustRecovery


class Recovery(FaustRecovery):
    """Faust's recovery; at its end the stream partitions are sought before they resume."""

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Call when active table recovery is completed (Faust's, seek before resume)."""
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callback_coros = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callback_coros:
            await asyncio.wait(callback_coros)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                f"Recovery rebalancing again app id "
                f"{self.app.consumer_generation_id} param {generation_id}"
            )
            return
        # Faust resumes the stream partitions here and seeks after (module docstring). A
        # rebalance begun during the seek raises `RebalanceAgain`: then nothing resumes.
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        self.app.flow_control.resume()
        consumer.resume_flow()
        # finally make sure the fetcher is running.
        await cast(Any, self.app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class TableManager(FaustTableManager):
    """Faust's table manager, with the recovery above."""

    @property
    def recovery(self) -> FaustRecovery:
        """Recovery service used by this table manager."""
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
