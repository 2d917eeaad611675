"""The composition root: the job queue with a runner for every job kind, and the chores
every worker does on a timer. ``tether serve`` and ``tether worker`` build the queue here;
nothing below this module knows which services run jobs.

Kinds registered: ``import`` (imports.runner), ``delete_dataset`` (catalog.deletion),
``sync`` (sync.runner), ``probe`` (resolve.probe_job; it also follows syncs and imports that
wrote rows), ``add_tasks`` (projects.tasks), ``predictions`` (projects.predictions),
``export`` (projects.target_export: annotations to a target storage). Chores: removing stale
uploads, starting scheduled syncs.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import Engine

from tether import idempotency
from tether.catalog import deletion
from tether.config import Settings
from tether.db.engine import refresh_statistics
from tether.imports import runner, submit
from tether.jobs.queue import JobQueue
from tether.projects import predictions, target_export, tasks
from tether.resolve import probe_job
from tether.sync import runner as sync_runner
from tether.sync import split
from tether.sync import start as sync_start


def build_queue(settings: Settings, engine: Engine) -> JobQueue:
    queue = JobQueue(settings, engine, after_job=partial(refresh_statistics, engine))
    probe_after = partial(
        probe_job.then_probe, settings=settings, engine=engine, enqueue=queue.enqueue
    )
    queue.register(runner.KIND, probe_after(runner.import_runner(settings.import_chunk_rows)))
    queue.register(deletion.KIND, deletion.delete_runner(settings.delete_chunk_rows))
    syncs = sync_runner.sync_runner(settings, enqueue=queue.enqueue)
    queue.register(sync_runner.KIND, probe_after(syncs))
    queue.register(split.PART_KIND, syncs)
    queue.register(probe_job.KIND, probe_job.probe_runner(settings))
    queue.register(tasks.KIND, tasks.add_tasks_runner(settings.add_tasks_chunk_rows))
    queue.register(predictions.KIND, predictions.predictions_runner())
    queue.register(target_export.KIND, target_export.export_runner(settings))
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
    queue.chores.append(partial(idempotency.purge_expired, engine))
    return queue
