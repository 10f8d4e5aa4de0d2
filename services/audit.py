"""For auditors: verify the chains, replay a record as it stood, the access log, audit packages.

Replays and packages are client-level reads of the store itself (not of a projection): each leaves
an access record first, as every read of a client's record does.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from domain.replay import Replay, replay
from infra.access_log import AccessLog, AccessRecord
from infra.chain import chain_head
from services.audit_package import PackageReport, build_package, verify_package
from services.verification import StoreReport, verify_store

if TYPE_CHECKING:
    from services.bootstrap import Continuum
    from services.reads import Reader, Reads


class Audit:
    def __init__(self, wired: Continuum, reads: Reads) -> None:
        self.wired = wired
        self.reads = reads
        self.access: AccessLog = reads.access

    def verify(self, client_ref: str | None = None, *, positions: Collection[int] = (), seqs: Collection[int] = ()) -> StoreReport:
        """Both hash chains recomputed from the stored rows, in one snapshot (one client's chain with `client_ref`);
        the links at `positions` and the access hashes at `seqs` are collected (signed checkpoints name them)."""
        from domain.journey import ClientJourney
        from infra.store import chain_scheme

        key = self.wired.settings.chain_key
        return verify_store(self.wired.views, journey=ClientJourney.create_id(client_ref) if client_ref else None,
                            scheme=chain_scheme(key.get_secret_value() if key else None), positions=positions, seqs=seqs)

    @staticmethod
    def verify_package(package: dict[str, Any]) -> PackageReport:
        return verify_package(package)

    def replay(self, client_ref: str, reader: Reader, *, as_of: datetime | None, as_recorded: datetime | None) -> Replay:
        journey_id = self.reads.journey_id(client_ref)
        what = "replay" + (f" as-of {as_of.isoformat()}" if as_of else "")
        what += f" as-recorded {as_recorded.isoformat()}" if as_recorded else ""
        self.reads.record_read(reader, client_ref, what)
        return replay(list(self.wired.app.events.get(journey_id)), as_of=as_of, as_recorded=as_recorded)

    def export(self, client_ref: str, reader: Reader) -> dict[str, Any]:
        self.reads.journey_id(client_ref)
        self.reads.record_read(reader, client_ref, "export-audit")
        records = self.access.query(client_ref=client_ref)
        return build_package(self.wired, client_ref, exported_by=f"{reader.actor_id} ({reader.role})", access=records)

    def access_log(
        self, *, client_ref: str | None = None, actor_id: str | None = None, since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AccessRecord]:
        return self.access.query(client_ref=client_ref, actor_id=actor_id, since=since, limit=limit)

    def heads(self) -> tuple[int, str, int, str]:
        """The last event's position and global link, and the access log's last sequence number and hash."""
        with self.wired.views.transaction() as cursor:
            self.access.setup(cursor)
            position, event_head = chain_head(cursor)
            seq, access_head = self.access.head(cursor)
        return position, event_head, seq, access_head

    @staticmethod
    def now() -> datetime:
        return datetime.now(tz=UTC)
