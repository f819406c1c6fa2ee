"""Fused evaluation: the runs of a shard advance together and one network call evaluates the
current samples of all of them, each row at its own sigma (config `sampling.fuse`).

Samplers and restorers stay plain functions that call `denoiser(x, sigma)`. Each run draws in
a thread of its own through a member of a `FusedGroup`: a call hands in (x, sigma) and waits.
Once every run still drawing has handed in a call (the others have finished or raised), the
serving thread concatenates the calls in the runs' order, calls the real denoiser once
with one sigma per row, and gives each run its rows (on the CPU, calls are packed whole into
network calls of at most CPU_ROWS rows). A batch thus holds the k-th call of every
run that makes more than k calls, whatever the threads' timing: reruns are bit-exact, runs
with different call counts (adaptive samplers, other step counts) simply leave the group
when done, and a run's rows are computed exactly as alone (the oracle, float64) or up to
float32 rounding (networks: other batch sizes pick other kernels). A run is handed back to
the job loop (evaluated, stored) as soon as its draw ends, while the others still draw.

Calls that need gradients (DPS-style restorers) or whose x cannot be concatenated with the
others (another dtype, device or sample shape) are answered one by one, as is every call of
a fused batch whose network call raised: each run then gets its own result or error.
"""

from __future__ import annotations

import functools
import math
import queue
import threading
import time

import torch


# Most runs drawn together: bounds the threads, and the memory of the runs' states, of a large shard.
GROUP_RUNS = 64
# Most rows of a fused call on the CPU. There the network is compute-bound beyond a few thousand
# rows and a row costs more once the activations leave the cache (docs/scale.md, "Fused
# evaluation"): fusing pays for small runs only. A GPU gets every call of a batch at once.
CPU_ROWS = 2048


def draws(job, denoiser, runs: list[dict], fuse: bool, starting=None):
    """(run, drawn) for every run, where `drawn()` gives `job.draw(run, denoiser)`'s result
    (output, reported nfe, counted nfe, seconds) or raises its error. Unfused, each run draws
    when its `drawn` is called, in the runs' order; fused, the runs draw together, GROUP_RUNS at
    a time, and each pair comes as soon as its run's draw has ended (a run with fewer steps is
    handed on, and can be stored, while the others still draw). On the CPU a shard whose calls
    cannot share a network call (`can_pack`) draws unfused: fusing would only add hand-offs.
    `starting(group)` is called before each group of runs (a lone run: a group of one) starts
    drawing, once the runs before it have been handed on."""
    size = GROUP_RUNS if fuse and can_pack(runs, job.device) else 1
    for start in range(0, len(runs), size):
        group = runs[start:start + size]
        if starting is not None:
            starting(group)
        if len(group) == 1:
            yield group[0], functools.partial(job.draw, group[0], denoiser)
        else:
            yield from draw_fused(job.draw, denoiser, group)


def call_rows(run: dict) -> int:
    """The rows of each network call a run makes: its samples, times its measurements (restoration)."""
    return run["n_samples"] * run.get("n_measurements", 1)


def can_pack(runs: list[dict], device) -> bool:
    """Whether fusing can put calls of two runs into one network call: off the CPU always, on the
    CPU if the two smallest runs' calls fit in CPU_ROWS together (measured: fused runs that share
    no call were 0.76-0.96x as fast as one run at a time, docs/scale.md)."""
    if torch.device(device).type != "cpu":
        return True
    smallest = sorted(map(call_rows, runs))[:2]
    return len(smallest) == 2 and sum(smallest) <= CPU_ROWS


def draw_fused(draw, denoiser, runs: list[dict]):
    """`draw(run, member)` for every run at once, each in a thread, their network calls fused
    and answered by a serving thread; yields (run, outcome) in the order the draws end. A run's
    seconds are its share of the group's time, batch by batch, in proportion to the rows it sent
    through the network: the shard's runs add up to the time the shard took."""
    group = FusedGroup(denoiser, len(runs))
    ended = queue.SimpleQueue()          # (index, outcome) of each run whose draw has ended
    threads = torch.get_num_threads()    # the job's intra-op threads (jobs.use_threads), in every run thread

    def work(index, run):
        torch.set_num_threads(threads)
        outcome = Outcome(error=RuntimeError("the run's draw ended without a result"))
        try:
            output, nfe, counted, _ = draw(run, group.member(index))
            outcome = Outcome(value=[output, nfe, counted, None])
        except (Exception, SystemExit) as error:   # recorded as the run's failure by the job loop (sys.exit too)
            outcome = Outcome(error=error)
        finally:
            seconds = group.leave(index)   # never leave the others waiting for this run
            if outcome.error is None:
                outcome.value[3] = seconds
            ended.put((index, outcome))

    def serve():
        torch.set_num_threads(threads)   # OpenMP's thread count is per thread: a new one starts at the default
        group.serve()

    server = threading.Thread(target=serve, name="fused-calls", daemon=True)
    workers = [threading.Thread(target=work, args=(index, run), name=f"run-{run['id']}", daemon=True)
               for index, run in enumerate(runs)]
    server.start()
    for worker in workers:
        worker.start()
    for _ in runs:
        index, outcome = ended.get()
        yield runs[index], outcome
    for thread in [*workers, server]:
        thread.join()


class Outcome:
    """A draw's result, or its error raised when called."""

    def __init__(self, value=None, error: BaseException | None = None):
        self.value, self.error = value, error

    def __call__(self):
        if self.error is not None:
            raise self.error
        return tuple(self.value)


class Call:
    """One denoiser call of a run, waiting for its answer."""

    def __init__(self, x: torch.Tensor, sigma):
        self.x, self.sigma = x, sigma
        self.grad = torch.is_grad_enabled()    # the caller's thread's mode (thread-local in torch)
        self.output, self.error = None, None
        self.answered = locked()             # released by the serving thread with the answer

    def sigma_rows(self) -> torch.Tensor:
        """sigma as one float64 value per row of x (lossless for a float, a float32 or float64
        tensor: each score source casts it as it would the caller's own sigma)."""
        sigma = torch.as_tensor(self.sigma, dtype=torch.float64, device=self.x.device)
        return sigma.expand(len(self.x)) if sigma.ndim == 0 else sigma.reshape(len(self.x))

    def answer_alone(self, denoiser) -> None:
        try:
            with torch.set_grad_enabled(self.grad):
                self.output = denoiser(self.x, self.sigma)
        except Exception as error:
            self.error = error


class FusedGroup:
    """The runs of a shard around one denoiser: members call, the serving thread answers.
    After a batch, its members resume one at a time, in order, each passing the turn on when
    it calls again or leaves, and the last one wakes the serving thread: one thread runs at a
    time, so the runs' small tensor operations do not fight over the GIL. Hand-offs are plain
    locks held by one thread and released by another."""

    def __init__(self, denoiser, size: int):
        self.denoiser = denoiser
        self.drawing = set(range(size))      # members that have not left
        self.waiting: dict[int, Call] = {}   # member -> its unanswered call
        self.resuming: list[Call] = []       # answered calls whose members have not had their turn
        self.rows = [0] * size               # rows each member sent through the network
        self.seconds = [0.0] * size          # each member's share of the group's time so far
        self.lock = threading.Lock()         # guards the five above
        self.ready = locked()                # released when every member still drawing waits

    def member(self, index: int):
        """The denoiser that member `index` (the index-th run of the shard) calls."""
        return functools.partial(self.call, index)

    def call(self, index: int, x, sigma):
        call, rows = Call(x, sigma), x.shape[0]
        with self.lock:
            self.waiting[index] = call
            self.rows[index] += rows
            self.pass_turn()
        call.answered.acquire()
        if call.error is not None:
            raise call.error
        return call.output

    def leave(self, index: int) -> float:
        """Member `index` has ended its draw: its share of the group's time."""
        with self.lock:
            self.drawing.discard(index)
            self.pass_turn()
            return self.seconds[index]

    def pass_turn(self) -> None:
        """To the next member of the last batch; after the last one, to the serving thread once
        every member still drawing waits (a waiting member has not left, so this happens once
        per batch, and nobody calls or leaves again before the batch is answered)."""
        if self.resuming:
            self.resuming.pop(0).answered.release()
        elif len(self.waiting) == len(self.drawing):
            self.ready.release()

    def serve(self) -> None:
        """Answer one batch at a time, in the calling thread, until every member has left. The
        time from one batch to the next (the members' own steps and the network call) is shared
        among the batch's members by their rows."""
        last = time.perf_counter()
        while True:
            self.ready.acquire()
            with self.lock:
                if not self.drawing:
                    return
                members = sorted(self.waiting)
                batch = [self.waiting.pop(index) for index in members]
            answer(self.denoiser, batch)
            now, rows = time.perf_counter(), sum(len(call.x) for call in batch) or 1
            with self.lock:
                for index, call in zip(members, batch):
                    self.seconds[index] += (now - last) * len(call.x) / rows
                self.resuming = batch
                self.pass_turn()
            last = now


def locked() -> threading.Lock:
    """A lock already held: `acquire` waits until another thread releases it."""
    lock = threading.Lock()
    lock.acquire()
    return lock


def answer(denoiser, batch: list[Call]) -> None:
    """Give every call its output (or error): compatible calls without gradients together, in
    batch order (on the CPU in packs of at most CPU_ROWS rows), the others one by one."""
    groups: dict[tuple, list[Call]] = {}
    for call in batch:
        if call.grad or not isinstance(call.x, torch.Tensor):
            call.answer_alone(denoiser)
        else:
            groups.setdefault((call.x.dtype, call.x.device, tuple(call.x.shape[1:])), []).append(call)
    for (_, device, _), calls in groups.items():
        for pack in packs(calls, CPU_ROWS if device.type == "cpu" else math.inf):
            answer_together(denoiser, pack)


def packs(calls: list[Call], most_rows) -> list[list[Call]]:
    """Consecutive calls, packed whole, at most `most_rows` rows a pack (a larger call alone)."""
    packed, rows = [], 0
    for call in calls:
        if packed and rows + len(call.x) <= most_rows:
            packed[-1].append(call)
            rows += len(call.x)
        else:
            packed.append([call])
            rows = len(call.x)
    return packed


def answer_together(denoiser, calls: list[Call]) -> None:
    """One network call for all `calls` (one sigma per row), each given its rows."""
    if len(calls) == 1:
        calls[0].answer_alone(denoiser)
        return
    try:
        with torch.no_grad():
            output = denoiser(torch.cat([call.x for call in calls]), torch.cat([call.sigma_rows() for call in calls]))
        for call, rows in zip(calls, output.split([len(call.x) for call in calls])):
            call.output = rows
    except Exception:   # one run's bad call must not fail the others: each gets its own answer
        for call in calls:
            call.answer_alone(denoiser)
