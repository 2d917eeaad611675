"""The composition root: the job queue with a runner for every job kind, and the chores
every worker does on a timer. ``tether serve`` and ``tether worker`` build the queue here;
nothing below this module knows which services run jobs.

Kinds registered: ``import`` (imports.runner), ``delete_dataset`` (catalog.deletion),
``sync`` (sync.runner). Chores: removing stale uploads, starting scheduled syncs.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine

from tether.catalog import deletion
from tether.config import Settings
from tether.db.engine import refresh_statistics
from tether.imports import runner, submit
from tether.jobs.queue import JobQueue
from tether.sync import runner as sync_runner
from tether.sync import split
from tether.sync import start as sync_start


def build_queue(settings: Settings, engine: Engine) -> JobQueue:
    queue = JobQueue(settings, engine, after_job=partial(refresh_statistics, engine))
    queue.register(runner.KIND, runner.import_runner(settings.import_chunk_rows))
    queue.register(deletion.KIND, deletion.delete_runner(settings.delete_chunk_rows))
    syncs = sync_runner.sync_runner(settings, enqueue=queue.enqueue)
    queue.register(sync_runner.KIND, syncs)
    queue.register(split.PART_KIND, syncs)
    queue.chores.append(
        partial(sync_start.start_due_syncs, engine, queue.enqueue, parts=settings.sync_parts)
    )
    queue.chores.append(
        partial(
            submit.remove_stale_uploads,
            engine,
            settings.uploads_dir,
            settings.upload_max_age_seconds,
        )
    )
    return queue
