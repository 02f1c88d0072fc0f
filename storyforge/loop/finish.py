"""Finishing a film: its takes and clips placed in the output folder, the cut, run.json and the review page."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from storyforge.atomic import link, write_text
from storyforge.report import Host, JobRecord, RunReport
from storyforge.seams import report as seam_report

if TYPE_CHECKING:
    from storyforge.loop.store import JobStore
    from storyforge.plan.model import Job


def finish(store: JobStore, out: Path, *, whole: bool, reuse_film: bool, before_cut: object = None) -> RunReport:
    """Takes and clips placed in `out`, plan.json, keyframes/, the film (unless nothing in it changed), run.json
    and review.html. `before_cut()` (when given) runs once every entry key is known: it frees the model."""
    plan = store.plan
    missing = _found_or_missing(store)
    if callable(before_cut):
        before_cut()
    _place(store, out, whole)
    write_text(out / "plan.json", plan.dumps())
    from storyforge.keyframes import write_out

    write_out(plan, store.starts, out, whole=whole)
    order = {job.id: n for n, job in enumerate(plan.jobs)}
    records = sorted(store.starts.records, key=lambda record: order.get(record.id, 0))
    report = RunReport(out=out, backend=store.setup.backend,
                       jobs=[_job_record(store, job) for job in plan.jobs if job.id in store.records],
                       keyframes=records, driver=Host.here())
    report.notices = store.notices + store.cache.discarded
    report.warnings = store.warnings
    picked = {job.id: store.entries[job.id] for job in plan.jobs if job.id in store.entries}  # the film's seams
    report.seams, report.chains = seam_report(plan, {job_id: entry.meta["seams"] for job_id, entry in
                                                     picked.items() if "seams" in entry.meta})
    report.model_loads = store.model_loads
    if missing and store.reroll:
        # re-rolling: what was there stays until a cut can be made with the new clips (see JobStore.lookup)
        shots = f"{len(missing)} shots have" if len(missing) > 1 else "1 shot has"
        report.notices.append(f"film.mp4 was not cut again: {shots} no clip in the cache ({', '.join(missing)});"
                              f" the film and their clips stay as they were, without the new "
                              f"{', '.join(sorted(store.targets))}; render without --no-cache to cut it")
    elif missing:
        _uncut(store, out, report, missing)
    else:
        _cut(store, out, report, reuse_film)
    report.write()
    from storyforge.review import build

    report.review = build(plan, out).page  # reads the run.json just written
    return report


def _found_or_missing(store: JobStore) -> list[str]:
    """Takes no node brought in, looked up in the cache (with --only, the film is cut when the other shots'
    clips are cached); the shots whose picked take is not there."""
    missing: list[str] = []
    for job in store.plan.jobs:
        for take in job.all_takes:
            if store.slot(take) not in store.entries and store.key_known(take):
                started = time.time()
                entry = store.lookup(take)
                if entry is not None:
                    store.record(take, entry, "cached", started)
            if store.slot(take) not in store.entries and take.take == job.take:
                missing.append(job.id)
    return missing


def _uncut(store: JobStore, out: Path, report: RunReport, missing: list[str]) -> None:
    """What is left of an earlier cut or clip of the missing shots shows their old version: not current."""
    from storyforge.loop.names import clip_name
    from storyforge.outdir import remove_files

    plan = store.plan
    removed = remove_files(out, ["film.mp4", *(clip_name(plan.job(j)) for j in missing)])
    shots = f"{len(missing)} shots have" if len(missing) > 1 else "1 shot has"
    gone = f"; removed the out-of-date {', '.join(removed)}"
    report.notices.append(f"film.mp4 was not cut: {shots} no clip yet ({', '.join(missing)}); render "
                          f"without --only to make them" + (gone if removed else ""))


def _place(store: JobStore, out: Path, whole: bool) -> None:
    """Every take at takes/<scene>__<shot>/take<N>.mp4, stamped with how it was made (packets copied from
    the cache), and the picked one linked to clips/<scene>__<shot>.mp4; with `whole`, files of takes and
    shots no longer in the plan go."""
    from storyforge.loop.names import clip_name, take_name
    from storyforge.provenance import stamp, take_tags

    plan = store.plan
    expected: set[Path] = set()
    for job in plan.jobs:
        for take in job.all_takes:
            entry = store.entries.get(store.slot(take))
            target = out / take_name(take)
            expected.add(target)
            if entry is None:
                continue
            stamp(entry.clip, target, take_tags(plan, take, entry.key))
            if take.take == job.take:
                link(target, out / clip_name(job))
    if whole:  # only files the manifest says storyforge wrote
        from storyforge.outdir import remove_stale

        remove_stale(out, "clips", (out / clip_name(job) for job in plan.jobs))
        remove_stale(out, "takes", expected)  # and the folders of takes it made that this leaves empty


def _job_record(store: JobStore, job: Job) -> JobRecord:
    """The job's run.json line: its picked take's record, with every take's."""
    from storyforge.loop.names import take_name

    takes = tuple(replace(store.records[store.slot(take)], clip=take_name(take)) for take in job.all_takes
                  if store.slot(take) in store.records)
    return replace(store.records[job.id], takes=takes)


def _cut(store: JobStore, out: Path, report: RunReport, reuse_film: bool) -> None:
    from storyforge.clipfile import count_frames
    from storyforge.cut import CutClip, cut_key
    from storyforge.loop.names import clip_name
    from storyforge.plan.keys import digest
    from storyforge.provenance import film_tags
    from storyforge.stitch import stitch

    plan = store.plan
    clips = [CutClip(job.id, out / clip_name(job), job.frames, job.transition.type, job.transition.frames)
             for job in plan.jobs]
    # the film's tags are part of its key: a new title or pick is a new film file, even from the same clips
    tags = film_tags(plan, {job.id: store.entries[job.id].key for job in plan.jobs})
    key = digest({"cut": cut_key(clips, [store.entries[job.id].key for job in plan.jobs],
                                 plan.audio.sha256 if plan.audio else None), "tags": tags})
    film = out / "film.mp4"
    report.film, report.cut_key = film, key
    from storyforge.outdir import folder_of
    from storyforge.readback import read_run

    previous = read_run(folder_of(out))  # typed and bounded: whatever run.json holds, this cannot crash
    now = folder_of(out).stat("film.mp4")
    if (reuse_film and now is not None and previous.cut_key == key and previous.film_bytes == now.st_size
            and previous.total_frames == plan.total_frames):
        report.total_frames = plan.total_frames
        return
    from storyforge.outdir import scratch

    with scratch(out, "stitch") as work_dir:  # verify="packets": the decode below checks the frames once
        result = stitch(clips, film, fps=plan.fps, audio=plan.audio.path if plan.audio else None,
                        work_dir=work_dir, verify="packets", metadata=tags)
    decoded = count_frames(film)
    if decoded != plan.total_frames:
        raise RuntimeError(f"{film} decodes to {decoded} frames but the plan has {plan.total_frames}")
    report.stitch_seconds = result.seconds
    report.total_frames = decoded
    report.warnings.extend(result.warnings)
