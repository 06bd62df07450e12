"""What the cores reach when all of them work at once: the profile's stage loop alone, then one copy per core.

    python -m benchmarks.scaling JOB --frames 1000 --report RESULTS.md --section scaling-light

``composer profile``'s bound (docs/design.md section 5) is ``cores x 1000 / CPU ms per frame``, each stage measured
alone on one thread while the other cores idle. With every core busy the same work costs more: the cores
share caches and memory bandwidth (and, on an SMT machine, execution units). This benchmark measures how
much more. It runs the profile's single-thread stage loop (:func:`composer.measure.profile.measure_stages`: every
stage on one thread, its outputs written to a scratch folder)

1. alone, in one child process, then
2. as one copy per usable core, in as many child processes released together from a barrier, each over the
   same frames into a folder of its own,

and then composer's processor renders the same frames with the job's settings, in a fresh process, as
``composer profile`` does, and the stage loop runs alone once more: the costs alone are the mean of the two
runs, which bracket the others as the profile's two measurements bracket its render. The report gives each
stage's CPU ms per frame in both cases and the bound each sets. Composer's fps over the first is the
profile's efficiency; over the second it is the share of what the cores did with every core on its own copy
of the work, with nothing to coordinate.

The copies' CPU sums leave out what the stage loop does not clock (the loop itself, opening files) and
assume the cores never wait. So the report also gives the copies' figure end to end: the frames they made
together over their mean wall time from the first decode to the closed video (the model's loading left
out), as if a copy that finished first could have taken over some of the other's frames. That is the most
a render of these frames reached on this machine with nothing to coordinate: the reachable figure to read
composer's against.

A CPU bound only means something without an accelerator; with one, the stages it runs are left out of the
sums as ``composer profile`` leaves them out. Exit status 1 if a child fails (its error is printed).
"""

from __future__ import annotations

import argparse
import queue
import statistics
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from composer.config import defaults
from composer.config.job import Job, load_job
from composer.errors import ComposerError
from composer.measure.children import Failure, collect, context, failure, render_fresh
from composer.measure.machine import describe_machine
from composer.measure.report import markdown_table, text_table, write_section
from composer.measure.stages import Bound, Measurement, StageCost, compute_bound, mean_costs, measure_stages
from composer.measure.trial import trial_job

_BARRIER_SECONDS = 600  # a copy that has not reached the barrier by then has hung


@dataclass(frozen=True)
class Scaling:
    """The stage costs alone and with every core busy, and composer's render of the same frames."""

    job: Job
    frames: int
    copies: int
    alone: tuple[StageCost, ...]
    busy: tuple[StageCost, ...]  # each stage's cost averaged over the copies
    composer_fps: float
    busy_seconds: tuple[float, ...] = ()  # each copy's wall time end to end (none: not measured)

    @property
    def bound(self) -> Bound:
        """``composer profile``'s bound: the costs measured alone."""
        return compute_bound(self.alone, self.copies)

    @property
    def reachable(self) -> Bound:
        """The bound from the costs measured with every core busy."""
        return compute_bound(self.busy, self.copies)

    @property
    def end_to_end_fps(self) -> float | None:
        """The frames the copies made together over their mean wall time (as if a copy that finished first could
        have taken over some of the other's frames); None if not measured."""
        if not self.busy_seconds:
            return None
        return self.copies * self.frames / self.busy_mean_seconds

    @property
    def busy_mean_seconds(self) -> float:
        """The copies' mean wall time end to end."""
        return statistics.fmean(self.busy_seconds)

    def rows(self) -> list[tuple[str, ...]]:
        busy = {s.name: s for s in self.busy}
        rows = []
        for stage in self.alone:
            other = busy[stage.name]
            ratio = other.cpu_ms / stage.cpu_ms if stage.cpu_ms > 0 else 1.0
            where = " (accelerator)" if stage.accelerator else ""
            rows.append((stage.name + where, f"{stage.cpu_ms:.2f}", f"{other.cpu_ms:.2f}", f"{ratio:.2f}"))
        total_alone, total_busy = self.bound.cpu_ms, self.reachable.cpu_ms
        rows.append(("all CPU stages", f"{total_alone:.2f}", f"{total_busy:.2f}", f"{total_busy / total_alone:.2f}"))
        return rows

    def summary(self) -> list[str]:
        bound, reachable, whole = self.bound.fps, self.reachable.fps, self.end_to_end_fps
        lines = [
            f"bound, stages alone: {self.copies} cores x 1000 / {self.bound.cpu_ms:.2f} ms = {bound:.1f} fps",
            f"bound, every core busy: {self.copies} cores x 1000 / {self.reachable.cpu_ms:.2f} ms = "
            f"{reachable:.1f} fps ({reachable / bound:.2f} of the first)",
        ]
        if whole is not None:
            took = f"{min(self.busy_seconds):.2f}-{max(self.busy_seconds):.2f} s"
            lines.append(f"every core busy, end to end: {self.copies} copies x {self.frames} frames / "
                         f"{self.busy_mean_seconds:.2f} s (the copies' mean wall time; they took {took})"
                         f" = {whole:.1f} fps ({whole / bound:.2f} of the first bound)")
        lines.append(f"composer: {self.composer_fps:.1f} fps = {self.composer_fps / bound:.2f} of the first bound "
                     f"(the profile's efficiency), {self.composer_fps / reachable:.2f} of the second"
                     + (f", {self.composer_fps / whole:.2f} of the end-to-end figure" if whole is not None else ""))
        return lines


_HEADER = ("stage", "CPU ms alone", "CPU ms, every core busy", "ratio")


def _copy(job_file: str, frames: int, folder: str, barrier: threading.Barrier, answers: queue.Queue) -> None:
    """A child's body: the stage loop over ``frames`` output frames once every copy is ready."""
    try:
        trial = trial_job(load_job(Path(job_file)), frames, Path(folder) / "run")
    except BaseException as exc:
        barrier.abort()  # the other copies stop waiting
        answers.put(failure(exc))
        return
    try:
        barrier.wait(_BARRIER_SECONDS)
        answers.put(measure_stages(trial, Path(folder) / "measure", frames))
    except BaseException as exc:
        answers.put(failure(exc))


def _not_broken_barrier(errors: list[Failure]) -> Failure:
    """The copy that broke the barrier, not the ones it released."""
    return next((e for e in errors if not e.text.startswith("BrokenBarrierError")), errors[0])


def run_copies(job: Job, frames: int, copies: int, folder: Path) -> list[Measurement]:
    """Run the stage loop in ``copies`` child processes at once; each one's measurement.

    Raises:
        ChildFailed: a copy raised, or died without an answer.
    """
    ctx = context()
    barrier, answers = ctx.Barrier(copies), ctx.Queue()
    children = [ctx.Process(target=_copy, args=(str(job.path), frames, str(folder / f"copy-{k}"), barrier, answers),
                            name=f"scaling-copy-{k}") for k in range(copies)]
    for child in children:
        child.start()
    return collect(children, answers, first=_not_broken_barrier)


def composer_fps(job: Job, frames: int, folder: Path) -> float:
    """Composer's processor rendering the job's first ``frames`` output frames in a fresh process, as
    ``composer profile`` does."""
    return render_fresh(trial_job(job, frames, folder / "run"), name="scaling render").fps


def measure(job: Job, frames: int, copies: int, scratch: Path, log=print) -> Scaling:
    """The measurements, one after the other, each with the machine to itself: the stage loop alone, its
    copies at once, composer, and the stage loop alone again (the costs alone are the mean of the two, as
    ``composer profile`` brackets its render)."""
    log(f"stage loop alone, {frames} frames ...")
    before = run_copies(job, frames, 1, scratch / "alone")[0]
    log(f"stage loop, {copies} copies at once ...")
    busy = run_copies(job, frames, copies, scratch / "busy")
    log("composer ...")
    fps = composer_fps(job, frames, scratch / "composer")
    log(f"stage loop alone again, {frames} frames ...")
    after = run_copies(job, frames, 1, scratch / "alone-again")[0]
    return Scaling(job, frames, copies, mean_costs([before.stages, after.stages]),
                   mean_costs([m.stages for m in busy]), fps, tuple(m.seconds for m in busy))


def _name(job: Job) -> str:
    return f"{job.path.parent.name}/{job.path.name}" if job.path is not None else "job"


def markdown(result: Scaling) -> str:
    name = _name(result.job)
    lines = [f"## Scaling: {name}", "",
             f"The profile's single-thread stage loop over {result.frames} output frames of `{name}`, first alone, "
             f"then as {result.copies} copies at once (one per usable core, separate processes started together), "
             "then composer's render of the same frames with the job's settings, then alone once more. CPU ms are "
             "per output frame; the first column is the mean of the two runs alone, the second the mean over the "
             "copies. The end-to-end line reads the copies by the wall clock instead: decoding, every stage and "
             "the outputs' close, everything but the model's loading, with nothing to coordinate.",
             "", *markdown_table(_HEADER, result.rows(), "lrrr")]
    lines += [""] + [f"- {line}" for line in result.summary()]
    lines += ["", f"Machine: {describe_machine().summary()}.",
              f"Regenerate: `python -m benchmarks.scaling {name} --frames {result.frames} --copies {result.copies} "
              f"--report RESULTS.md --section SECTION`."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path, help="the job file")
    parser.add_argument("--frames", type=int, default=500, help="output frames per measurement (default 500)")
    parser.add_argument("--copies", type=int, help="copies at once (default: the usable cores)")
    parser.add_argument("--report", type=Path, help="write the result as a section of this Markdown file")
    parser.add_argument("--section", default="scaling", help="report section name (default scaling)")
    args = parser.parse_args(argv)
    copies = args.copies if args.copies is not None else defaults.usable_cores()
    if args.frames < 1 or copies < 1:
        parser.error("--frames and --copies must be at least 1")
    try:
        job = load_job(args.job)
        with tempfile.TemporaryDirectory(prefix="composer-scaling-") as scratch:
            result = measure(job, args.frames, copies, Path(scratch), log=lambda m: print(m, file=sys.stderr))
        print(text_table([_HEADER, *result.rows()], left=1))
        print("\n".join(result.summary()))
        if args.report is not None:
            write_section(args.report, args.section, markdown(result))
    except ComposerError as exc:  # ChildFailed among them
        print(f"benchmarks.scaling: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
