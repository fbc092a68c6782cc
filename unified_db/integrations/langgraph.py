"""A LangGraph checkpointer that keeps checkpoints in the unified schema.

``UnifiedCheckpointSaver(db)`` is a ``BaseCheckpointSaver`` (``langgraph-checkpoint``)
storing checkpoints, channel blobs and pending writes in ``lg_checkpoints``,
``lg_checkpoint_blobs`` and ``lg_checkpoint_writes`` under ``db.namespace``. It needs the
``langgraph`` extra (``pip install 'unified-db[langgraph]'``).

Layout: a checkpoint row holds the checkpoint serialized by ``serde`` with only its
primitive channel values inline; every other channel value is a blob row keyed by
(channel, version), written once when its version is new, so an unchanged message list
is not rewritten at every step. The checkpoint row lists the (channel, version) pairs it
reads, so ``aget_tuple`` is one statement: the row, its blobs and its pending writes.
``aput`` is one statement too (blobs and checkpoint together, atomically).

The async methods are the implementation (LangGraph's ``ainvoke``/``astream`` use them).
The sync ones (``invoke``/``stream``) work from threads other than the event loop's: they
run the async method on the loop the saver was first used on and wait for it. Called on
that loop's own thread (where waiting would deadlock) or with no running loop, they raise
``SyncCallUnavailableError`` naming their async twin.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ..core import UnifiedPostgreSQL, operation
from ..errors import ConflictError, FeatureUnavailableError, InvalidInputError
from ..stats import Stats

__all__ = ["PruneUnsupportedError", "SyncCallUnavailableError", "UnifiedCheckpointSaver"]

PRUNE_STRATEGIES = ("keep_latest", "delete")


class PruneUnsupportedError(FeatureUnavailableError, NotImplementedError):
    """``keep_latest`` cannot safely prune a thread whose graph uses a DeltaChannel."""


class SyncCallUnavailableError(FeatureUnavailableError, NotImplementedError):
    """A sync method was called where it cannot wait for the event loop; use the async one."""


# ---------------------------------------------------------------------------- pure logic


def split_channel_values(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inline, blobs): primitives stay in the checkpoint row, the rest become blobs."""
    inline: dict[str, Any] = {}
    blobs: dict[str, Any] = {}
    for k, v in values.items():
        if v is None or isinstance(v, (str, int, float, bool)):
            inline[k] = v
        else:
            blobs[k] = v
    return inline, blobs


def next_version(current: str | int | float | None) -> str:
    """The version after *current*: a zero-padded counter plus a random fraction.

    Text that sorts like the counter, and the random part keeps two forks of a thread
    from writing different values under one (channel, version) blob key.
    """
    if current is None:
        n = 0
    elif isinstance(current, (int, float)):
        n = int(current)
    else:
        n = int(str(current).split(".")[0])
    return f"{n + 1:032}.{random.random():016}"


def thread_config(config: RunnableConfig | None, arg: str = "config") -> tuple[str, str, str | None]:
    """(thread_id, checkpoint_ns, checkpoint_id) of a LangGraph config."""
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or str(thread_id) == "":
        raise InvalidInputError(
            f"{arg} needs configurable.thread_id, e.g. {{'configurable': {{'thread_id': 't1'}}}}"
        )
    return str(thread_id), str(configurable.get("checkpoint_ns") or ""), configurable.get("checkpoint_id")


# ---------------------------------------------------------------------------- SQL

# The blobs go in first (a CTE runs even when nothing reads it); one statement, so a
# checkpoint is never visible without its blobs.
PUT = """
WITH blobs AS (
    INSERT INTO __schema__.lg_checkpoint_blobs
        (namespace, thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT $1, $2, $3, b.channel, b.version, b.type, b.blob
    FROM unnest($4::text[], $5::text[], $6::text[], $7::bytea[]) AS b(channel, version, type, blob)
    ON CONFLICT DO NOTHING
)
INSERT INTO __schema__.lg_checkpoints (namespace, thread_id, checkpoint_ns, checkpoint_id,
    parent_checkpoint_id, run_id, type, checkpoint, blob_channels, blob_versions, metadata)
VALUES ($1, $2, $3, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    type = EXCLUDED.type, checkpoint = EXCLUDED.checkpoint, run_id = EXCLUDED.run_id,
    blob_channels = EXCLUDED.blob_channels, blob_versions = EXCLUDED.blob_versions,
    metadata = EXCLUDED.metadata
"""

_WRITES_INSERT = """
INSERT INTO __schema__.lg_checkpoint_writes (namespace, thread_id, checkpoint_ns, checkpoint_id,
    task_id, task_path, idx, channel, type, blob)
SELECT $1, $2, $3, $4, $5, $6, w.idx, w.channel, w.type, w.blob
FROM unnest($7::int[], $8::text[], $9::text[], $10::bytea[]) AS w(idx, channel, type, blob)
ON CONFLICT (namespace, thread_id, checkpoint_ns, checkpoint_id, task_id, idx) """
# Regular writes are written once (a retried task must not replace them); the special
# ones (error, interrupt, resume...) are replaced, as LangGraph's own savers do.
WRITES_INSERT = _WRITES_INSERT + "DO NOTHING"
WRITES_UPSERT = (
    _WRITES_INSERT + "DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"
)

_SELECT = """
SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type, c.checkpoint,
       c.metadata, b.channels AS b_channels, b.types AS b_types, b.blobs AS b_blobs,
       w.task_ids AS w_task_ids, w.channels AS w_channels, w.types AS w_types, w.blobs AS w_blobs,
       w.paths AS w_paths, w.idxs AS w_idxs
FROM __schema__.lg_checkpoints c
LEFT JOIN LATERAL (
    SELECT array_agg(r.channel) AS channels, array_agg(bl.type) AS types, array_agg(bl.blob) AS blobs
    FROM unnest(c.blob_channels, c.blob_versions) AS r(channel, version)
    -- A probe by the whole key for each (channel, version) the checkpoint reads; LIMIT 1
    -- keeps the planner from flattening it into a scan of every blob of the thread.
    CROSS JOIN LATERAL (
        SELECT x.type, x.blob FROM __schema__.lg_checkpoint_blobs x
        WHERE x.namespace = c.namespace AND x.thread_id = c.thread_id AND x.checkpoint_ns = c.checkpoint_ns
          AND x.channel = r.channel AND x.version = r.version
        LIMIT 1
    ) bl
) b ON true
LEFT JOIN LATERAL (
    SELECT array_agg(cw.task_id) AS task_ids, array_agg(cw.channel) AS channels,
           array_agg(cw.type) AS types, array_agg(cw.blob) AS blobs,
           array_agg(cw.task_path) AS paths, array_agg(cw.idx) AS idxs
    FROM __schema__.lg_checkpoint_writes cw
    WHERE cw.namespace = c.namespace AND cw.thread_id = c.thread_id
      AND cw.checkpoint_ns = c.checkpoint_ns AND cw.checkpoint_id = c.checkpoint_id
) w ON true
WHERE c.namespace = $1"""

GET_ONE = _SELECT + " AND c.thread_id = $2 AND c.checkpoint_ns = $3 AND c.checkpoint_id = $4"
GET_LATEST = _SELECT + " AND c.thread_id = $2 AND c.checkpoint_ns = $3 ORDER BY c.checkpoint_id DESC LIMIT 1"

# alist: the statement is assembled from these constant pieces only (never from caller
# data), one variant per combination of filters, so each keeps an index-friendly plan.
LIST_FILTERS = {
    "thread_id": "c.thread_id = ${}",
    "checkpoint_ns": "c.checkpoint_ns = ${}",
    "checkpoint_id": "c.checkpoint_id = ${}",
    "filter": "c.metadata @> ${}::jsonb",
    "before": "c.checkpoint_id < ${}",
}

DELETE_THREADS = """
WITH cp AS (
    DELETE FROM __schema__.lg_checkpoints WHERE namespace = $1 AND thread_id = ANY($2::text[])
), bl AS (
    DELETE FROM __schema__.lg_checkpoint_blobs WHERE namespace = $1 AND thread_id = ANY($2::text[])
)
DELETE FROM __schema__.lg_checkpoint_writes WHERE namespace = $1 AND thread_id = ANY($2::text[])
"""

DELETE_RUNS = """
WITH gone AS (
    DELETE FROM __schema__.lg_checkpoints
    WHERE namespace = $1 AND run_id = ANY($2::text[])
    RETURNING thread_id, checkpoint_ns, checkpoint_id
), writes AS (
    DELETE FROM __schema__.lg_checkpoint_writes w USING gone g
    WHERE w.namespace = $1 AND w.thread_id = g.thread_id AND w.checkpoint_ns = g.checkpoint_ns
      AND w.checkpoint_id = g.checkpoint_id
)
SELECT DISTINCT thread_id, checkpoint_ns FROM gone
"""

# Blobs of the given (thread, ns) pairs that no remaining checkpoint reads. Runs as a
# second statement of the caller's transaction, so it sees the deletes before it.
GC_BLOBS = """
WITH t AS (
    SELECT * FROM unnest($2::text[], $3::text[]) AS t(thread_id, checkpoint_ns)
), referenced AS (
    SELECT DISTINCT c.thread_id, c.checkpoint_ns, r.channel, r.version
    FROM __schema__.lg_checkpoints c
    JOIN t ON c.thread_id = t.thread_id AND c.checkpoint_ns = t.checkpoint_ns
    CROSS JOIN LATERAL unnest(c.blob_channels, c.blob_versions) AS r(channel, version)
    WHERE c.namespace = $1
)
DELETE FROM __schema__.lg_checkpoint_blobs b USING t
WHERE b.namespace = $1 AND b.thread_id = t.thread_id AND b.checkpoint_ns = t.checkpoint_ns
  AND NOT EXISTS (
      SELECT 1 FROM referenced x
      WHERE x.thread_id = b.thread_id AND x.checkpoint_ns = b.checkpoint_ns
        AND x.channel = b.channel AND x.version = b.version)
"""

COPY_THREAD = """
WITH target AS (
    SELECT EXISTS (SELECT 1 FROM __schema__.lg_checkpoints WHERE namespace = $1 AND thread_id = $3) AS taken
), cp AS (
    INSERT INTO __schema__.lg_checkpoints (namespace, thread_id, checkpoint_ns, checkpoint_id,
        parent_checkpoint_id, run_id, type, checkpoint, blob_channels, blob_versions, metadata, created_at)
    SELECT namespace, $3, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id, type, checkpoint,
           blob_channels, blob_versions, metadata, created_at
    FROM __schema__.lg_checkpoints WHERE namespace = $1 AND thread_id = $2 AND NOT (SELECT taken FROM target)
    RETURNING 1
), bl AS (
    INSERT INTO __schema__.lg_checkpoint_blobs
        (namespace, thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT namespace, $3, checkpoint_ns, channel, version, type, blob
    FROM __schema__.lg_checkpoint_blobs
    WHERE namespace = $1 AND thread_id = $2 AND NOT (SELECT taken FROM target)
    ON CONFLICT DO NOTHING
), wr AS (
    INSERT INTO __schema__.lg_checkpoint_writes (namespace, thread_id, checkpoint_ns, checkpoint_id,
        task_id, task_path, idx, channel, type, blob)
    SELECT namespace, $3, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob
    FROM __schema__.lg_checkpoint_writes
    WHERE namespace = $1 AND thread_id = $2 AND NOT (SELECT taken FROM target)
    ON CONFLICT DO NOTHING
)
SELECT (SELECT taken FROM target) AS taken, (SELECT count(*) FROM cp) AS copied
"""

DELTA_THREADS = """
SELECT DISTINCT thread_id FROM __schema__.lg_checkpoints
WHERE namespace = $1 AND thread_id = ANY($2::text[])
  AND (metadata ? 'counters_since_delta_snapshot' OR metadata ? 'delta_writes_versioned')
ORDER BY thread_id
"""

# keep_latest in one statement (one snapshot): keep each namespace's newest checkpoint
# and its writes; drop the rest. A subgraph call's namespace ("node:task") goes whole
# when the root checkpoint it started from is saved and is not the one kept. Rows a run
# saves meanwhile are not in the snapshot, so they are neither seen nor deleted.
PRUNE_KEEP_LATEST = """
WITH heads AS (
    SELECT DISTINCT ON (thread_id, checkpoint_ns) thread_id, checkpoint_ns, checkpoint_id,
           metadata -> 'parents' ->> '' AS root
    FROM __schema__.lg_checkpoints
    WHERE namespace = $1 AND thread_id = ANY($2::text[])
    ORDER BY thread_id, checkpoint_ns, checkpoint_id DESC
), calls AS (
    SELECT h.thread_id, h.checkpoint_ns FROM heads h
    WHERE strpos(h.checkpoint_ns, ':') > 0 AND h.root IS NOT NULL
      AND EXISTS (SELECT 1 FROM __schema__.lg_checkpoints r
                  WHERE r.namespace = $1 AND r.thread_id = h.thread_id AND r.checkpoint_ns = ''
                    AND r.checkpoint_id = h.root)
      AND NOT EXISTS (SELECT 1 FROM heads k
                      WHERE k.thread_id = h.thread_id AND k.checkpoint_ns = '' AND k.checkpoint_id = h.root)
), kept AS (
    SELECT h.thread_id, h.checkpoint_ns, h.checkpoint_id FROM heads h
    WHERE NOT EXISTS (SELECT 1 FROM calls x
                      WHERE x.thread_id = h.thread_id AND x.checkpoint_ns = h.checkpoint_ns)
), doomed AS (
    SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id FROM __schema__.lg_checkpoints c
    WHERE c.namespace = $1 AND c.thread_id = ANY($2::text[])
      AND NOT EXISTS (SELECT 1 FROM kept k WHERE k.thread_id = c.thread_id
                      AND k.checkpoint_ns = c.checkpoint_ns AND k.checkpoint_id = c.checkpoint_id)
), referenced AS (
    SELECT DISTINCT c.thread_id, c.checkpoint_ns, r.channel, r.version
    FROM kept k
    JOIN __schema__.lg_checkpoints c ON c.namespace = $1 AND c.thread_id = k.thread_id
     AND c.checkpoint_ns = k.checkpoint_ns AND c.checkpoint_id = k.checkpoint_id
    CROSS JOIN LATERAL unnest(c.blob_channels, c.blob_versions) AS r(channel, version)
), del_cp AS (
    DELETE FROM __schema__.lg_checkpoints c USING doomed d
    WHERE c.namespace = $1 AND c.thread_id = d.thread_id AND c.checkpoint_ns = d.checkpoint_ns
      AND c.checkpoint_id = d.checkpoint_id
    RETURNING 1
), del_w AS (
    DELETE FROM __schema__.lg_checkpoint_writes w
    WHERE w.namespace = $1 AND w.thread_id = ANY($2::text[])
      AND (EXISTS (SELECT 1 FROM doomed d WHERE d.thread_id = w.thread_id
                   AND d.checkpoint_ns = w.checkpoint_ns AND d.checkpoint_id = w.checkpoint_id)
           OR EXISTS (SELECT 1 FROM calls x
                      WHERE x.thread_id = w.thread_id AND x.checkpoint_ns = w.checkpoint_ns))
), del_b AS (
    DELETE FROM __schema__.lg_checkpoint_blobs b
    WHERE b.namespace = $1 AND b.thread_id = ANY($2::text[])
      AND NOT EXISTS (SELECT 1 FROM referenced x
                      WHERE x.thread_id = b.thread_id AND x.checkpoint_ns = b.checkpoint_ns
                        AND x.channel = b.channel AND x.version = b.version)
), orphans AS (
    UPDATE __schema__.lg_checkpoints c SET parent_checkpoint_id = NULL FROM kept k
    WHERE c.namespace = $1 AND c.thread_id = k.thread_id AND c.checkpoint_ns = k.checkpoint_ns
      AND c.checkpoint_id = k.checkpoint_id AND c.parent_checkpoint_id IS NOT NULL
)
SELECT count(*) FROM del_cp
"""


class UnifiedCheckpointSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer on a :class:`~unified_db.UnifiedDB` (namespaced like the rest).

    ``UnifiedCheckpointSaver(db, serde=None)``; the tables come with the migrations, so
    :meth:`setup` only applies pending ones. Errors are unified_db errors.
    """

    def __init__(self, db: UnifiedPostgreSQL, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.db = db
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bind_loop()

    def _bind_loop(self) -> None:
        """Remember the loop the saver runs on, for the sync methods called from threads."""
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                pass

    @property
    def _stats(self) -> Stats:  # lets @operation count the saver's calls in db.get_stats()
        return self.db._stats

    @property
    def namespace(self) -> str:
        return self.db.namespace

    async def setup(self) -> None:
        """Apply pending migrations (a no-op when the db was opened with auto_migrate)."""
        await self.db.migrate()

    def get_next_version(self, current: str | None, channel: None) -> str:
        return next_version(current)

    # ------------------------------------------------------------------ writes

    @operation("langgraph_aput")
    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the blobs of its new channel versions. One round trip."""
        self._bind_loop()
        thread_id, checkpoint_ns, parent_id = thread_config(config)
        inline, blob_values = split_channel_values(checkpoint["channel_values"])
        stored = {**checkpoint, "channel_values": inline}
        b_channels: list[str] = []
        b_versions: list[str] = []
        b_types: list[str] = []
        b_blobs: list[bytes | None] = []
        for k, ver in new_versions.items():
            if k in blob_values:
                type_, blob = self.serde.dumps_typed(blob_values[k])
                b_channels.append(k)
                b_versions.append(str(ver))
                b_types.append(type_)
                b_blobs.append(blob)
        refs = [(k, str(v)) for k, v in checkpoint["channel_versions"].items() if k not in inline]
        md = get_serializable_checkpoint_metadata(config, metadata)
        type_, data = self.serde.dumps_typed(stored)
        run_id = md.get("run_id")
        await self.db._execute(
            PUT,
            self.namespace,
            thread_id,
            checkpoint_ns,
            b_channels,
            b_versions,
            b_types,
            b_blobs,
            checkpoint["id"],
            parent_id,
            None if run_id is None else str(run_id),
            type_,
            data,
            [k for k, _ in refs],
            [v for _, v in refs],
            md,
        )
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    @operation("langgraph_aput_writes")
    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for a checkpoint. One round trip."""
        self._bind_loop()
        thread_id, checkpoint_ns, checkpoint_id = thread_config(config)
        if checkpoint_id is None:
            raise InvalidInputError("config needs configurable.checkpoint_id to store writes against")
        if not writes:
            return
        idxs, channels, types, blobs = [], [], [], []
        for idx, (channel, value) in enumerate(writes):
            type_, blob = self.serde.dumps_typed(value)
            idxs.append(WRITES_IDX_MAP.get(channel, idx))
            channels.append(channel)
            types.append(type_)
            blobs.append(blob)
        query = WRITES_UPSERT if all(w[0] in WRITES_IDX_MAP for w in writes) else WRITES_INSERT
        await self.db._execute(
            query,
            self.namespace,
            thread_id,
            checkpoint_ns,
            checkpoint_id,
            str(task_id),
            task_path,
            idxs,
            channels,
            types,
            blobs,
        )

    # ------------------------------------------------------------------ reads

    @operation("langgraph_aget_tuple")
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by *config* (the thread's latest without a checkpoint_id).

        One round trip: the row, its blobs and its pending writes.
        """
        self._bind_loop()
        thread_id, checkpoint_ns, checkpoint_id = thread_config(config)
        if checkpoint_id:
            row = await self.db._fetchrow(GET_ONE, self.namespace, thread_id, checkpoint_ns, checkpoint_id)
        else:
            row = await self.db._fetchrow(GET_LATEST, self.namespace, thread_id, checkpoint_ns)
        return None if row is None else self._tuple(row)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first, by thread / namespace / id, metadata filter, before.

        ``config=None`` lists every thread of this namespace. One round trip.
        """
        self._bind_loop()
        params: list[Any] = [self.namespace]
        wheres: list[str] = []

        def add(key: str, value: Any) -> None:
            params.append(value)
            wheres.append(LIST_FILTERS[key].format(len(params)))

        if config is not None:
            thread_id, checkpoint_ns, checkpoint_id = thread_config(config)
            add("thread_id", thread_id)
            if (config.get("configurable") or {}).get("checkpoint_ns") is not None:
                add("checkpoint_ns", checkpoint_ns)
            if checkpoint_id:
                add("checkpoint_id", checkpoint_id)
        if filter:
            if not isinstance(filter, dict):
                raise InvalidInputError(f"filter must be a dict of metadata keys and values (got {filter!r})")
            add("filter", filter)
        if before is not None:
            before_id = get_checkpoint_id(before)
            if before_id:
                add("before", before_id)
        query = _SELECT + "".join(" AND " + w for w in wheres) + " ORDER BY c.checkpoint_id DESC"
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise InvalidInputError(f"limit must be a non-negative integer or None (got {limit!r})")
            params.append(limit)
            query += f" LIMIT ${len(params)}"
        start = time.perf_counter()
        rows = await self.db._fetch(query, *params)
        self.db._stats.record("langgraph_alist", time.perf_counter() - start)
        for row in rows:
            yield self._tuple(row)

    def _tuple(self, row: Any) -> CheckpointTuple:
        checkpoint = self.serde.loads_typed((row["type"], row["checkpoint"]))
        if row["b_channels"]:
            values = dict(checkpoint["channel_values"])
            for channel, type_, blob in zip(row["b_channels"], row["b_types"], row["b_blobs"], strict=True):
                if type_ != "empty":
                    values[channel] = self.serde.loads_typed((type_, blob))
            checkpoint["channel_values"] = values
        writes: list[tuple[str, str, Any]] = []
        if row["w_task_ids"]:
            items = sorted(
                zip(
                    row["w_task_ids"],
                    row["w_channels"],
                    row["w_types"],
                    row["w_blobs"],
                    row["w_paths"],
                    row["w_idxs"],
                    strict=True,
                ),
                key=lambda w: writes_sort_key(w[4], w[0], w[5]),
            )
            writes = [(t, ch, self.serde.loads_typed((ty, b))) for t, ch, ty, b, _, _ in items]
        thread_id, ns = row["thread_id"], row["checkpoint_ns"]
        parent = row["parent_checkpoint_id"]
        return CheckpointTuple(
            {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": row["checkpoint_id"],
                }
            },
            checkpoint,
            row["metadata"],
            (
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent}}
                if parent
                else None
            ),
            writes,
        )

    # ------------------------------------------------------------------ deletes, copies, pruning

    @operation("langgraph_adelete_thread")
    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread (all its namespaces). One round trip."""
        await self.db._execute(DELETE_THREADS, self.namespace, [_thread_id(thread_id)])

    @operation("langgraph_adelete_for_runs")
    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) the given runs made, and blobs left unused.

        One transaction, two statements.
        """
        ids = _id_list(run_ids, "run_ids")
        if not ids:
            return
        async with self.db._transaction() as con:
            touched = await con.fetch(DELETE_RUNS, self.namespace, ids)
            if touched:
                await con.execute(
                    GC_BLOBS,
                    self.namespace,
                    [r["thread_id"] for r in touched],
                    [r["checkpoint_ns"] for r in touched],
                )

    @operation("langgraph_acopy_thread")
    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints, blobs and writes to a new thread.

        Raises ConflictError when the target thread already has checkpoints. A missing
        source copies nothing. One round trip.
        """
        src, dst = _thread_id(source_thread_id), _thread_id(target_thread_id, "target_thread_id")
        if src == dst:
            raise InvalidInputError("source_thread_id and target_thread_id must differ")
        row = await self.db._fetchrow(COPY_THREAD, self.namespace, src, dst, write=True)
        assert row is not None
        if row["taken"]:
            raise ConflictError(
                f"thread {dst!r} already has checkpoints; delete it first or copy to a new thread"
            )

    @operation("langgraph_aprune")
    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: ``keep_latest`` keeps each namespace's newest checkpoint, ``delete`` all.

        Raises PruneUnsupportedError (a NotImplementedError) for ``keep_latest`` on a
        thread that uses a DeltaChannel, whose history the kept checkpoint depends on.
        Prune threads that are not running: a blob shared with a checkpoint being
        saved at the same moment could be dropped. Two round trips.
        """
        ids = _id_list(thread_ids, "thread_ids")
        if strategy not in PRUNE_STRATEGIES:
            raise InvalidInputError(
                f"strategy must be one of {', '.join(PRUNE_STRATEGIES)} (got {strategy!r})"
            )
        if not ids:
            return
        if strategy == "delete":
            await self.db._execute(DELETE_THREADS, self.namespace, ids)
            return
        delta = await self.db._fetch(DELTA_THREADS, self.namespace, ids)
        if delta:
            raise PruneUnsupportedError(
                "keep_latest can't prune threads that use a DeltaChannel: "
                + ", ".join(r["thread_id"] for r in delta)
                + "; use strategy='delete' or leave them"
            )
        await self.db._fetchval(PRUNE_KEEP_LATEST, self.namespace, ids, write=True)

    # ------------------------------------------------------------------ sync API

    def _call(self, name: str, coro: Any) -> Any:
        """Run *coro* on the saver's loop from another thread and wait for its result."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop.is_closed() or not loop.is_running() or running is loop:
            coro.close()
            where = (
                "on the event loop's own thread, where waiting would deadlock"
                if running is not None and running is loop
                else "without a running event loop that the saver was used on"
            )
            raise SyncCallUnavailableError(
                f"UnifiedCheckpointSaver.{name}() was called {where}: use `await saver.a{name}(...)` "
                "(graph.ainvoke / graph.astream), or call it from another thread while the loop runs"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._call("get_tuple", self.aget_tuple(config))

    def list(  # noqa: A003 - LangGraph's name
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            return [t async for t in self.alist(config, filter=filter, before=before, limit=limit)]

        yield from self._call("list", collect())

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._call("put", self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self._call("put_writes", self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._call("delete_thread", self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._call("delete_for_runs", self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._call("copy_thread", self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._call("prune", self.aprune(thread_ids, strategy=strategy))


def _thread_id(value: Any, arg: str = "thread_id") -> str:
    if value is None or isinstance(value, (bytes, bytearray)) or str(value) == "":
        raise InvalidInputError(f"{arg} must be a non-empty string (got {value!r})")
    return str(value)


def _id_list(values: Any, arg: str) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | set | frozenset):
        raise InvalidInputError(f"{arg} must be a list of ids, not {type(values).__name__}")
    return [_thread_id(v, arg) for v in values]
