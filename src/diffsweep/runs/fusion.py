"""Fused evaluation: the runs of a shard advance together and one network call evaluates the
current samples of all of them, each row at its own sigma (config `jobs.fuse`).

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
a fused batch whose network call raised (each run then gets its own result or error; the
first such fallback of a group is logged). No thread waits for ever: a wait longer than
`wait_limit` (config `jobs.fuse_timeout_s`, or 10 times the slowest batch so far if longer)
breaks the group, and every run of it still drawing fails with FusedGroupBroken naming what was
awaited. This module touches nothing but its threads and the denoiser it is given.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
import queue
import threading
import time

import torch

log = logging.getLogger("diffsweep")

# Most runs drawn together: bounds the threads, and the memory of the runs' states, of a large shard.
GROUP_RUNS = 64
# Most rows of a fused call on the CPU. There the network is compute-bound beyond a few thousand
# rows and a row costs more once the activations leave the cache (docs/scale.md, "Fused
# evaluation"): fusing pays for small runs only. A GPU gets every call of a batch at once.
CPU_ROWS = 2048
# Longest wait, in seconds, of a fused group's thread (config `jobs.fuse_timeout_s`'s default) ...
TIMEOUT_S = 600.0
# ... or this many times the slowest batch of the group so far (network call and the runs' steps), if longer.
SLOWEST_BATCHES = 10


class FusedGroupBroken(RuntimeError):
    """A fused group that cannot go on: a wait past its limit (a run stuck between two calls, a
    network call that does not return, a bug in the hand-off) or a hand-off invariant that
    failed. The group's runs still drawing fail with it, its message saying which."""


def draws(job, denoiser, runs: list[dict], fuse: bool, starting=None, timeout_s: float = TIMEOUT_S):
    """(run, drawn, fused_with) for every run, where `drawn()` gives `job.draw(run, denoiser)`'s
    result (output, reported nfe, counted nfe, seconds) or raises its error, and `fused_with` is
    the number of runs of the group it drew in (1: alone, its seconds are its own draw time;
    more: its seconds are its share of the group's time). Unfused, each run draws when its
    `drawn` is called, in the runs' order; fused, the runs draw together, GROUP_RUNS at a time,
    and each comes as soon as its run's draw has ended (a run with fewer steps is handed on, and
    can be stored, while the others still draw). On the CPU a shard whose calls cannot share a
    network call (`can_pack`) draws unfused: fusing would only add hand-offs. `starting(group)`
    is called before each group of runs (a lone run: a group of one) starts drawing, once the
    runs before it have been handed on. `timeout_s`: the fused groups' wait limit (FusedGroup)."""
    size = GROUP_RUNS if fuse and can_pack(runs, job.device) else 1
    for start in range(0, len(runs), size):
        group = runs[start:start + size]
        if starting is not None:
            starting(group)
        if len(group) == 1:
            yield group[0], functools.partial(job.draw, group[0], denoiser), 1
        else:
            for run, outcome in draw_fused(job.draw, denoiser, group, timeout_s):
                yield run, outcome, len(group)


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


def draw_fused(draw, denoiser, runs: list[dict], timeout_s: float = TIMEOUT_S):
    """`draw(run, member)` for every run at once, each in a thread, their network calls fused
    and answered by a serving thread; yields (run, outcome) in the order the draws end. A run's
    seconds are its share of the group's time, batch by batch, in proportion to the rows it sent
    through the network: the shard's runs add up to the time the shard took. If the group breaks
    (FusedGroupBroken) and a run's thread has not ended within one more wait limit (stuck in its own
    code), the run is handed on failed with the group's error and its thread left behind."""
    group = FusedGroup(denoiser, len(runs), timeout_s, [run["id"] for run in runs])
    ended = queue.SimpleQueue()          # (index, outcome) of each run whose draw has ended
    threads = torch.get_num_threads()    # the job's intra-op threads (runs.source.use_threads), in every run thread

    def work(index, run):
        torch.set_num_threads(threads)
        outcome = Outcome(error=RuntimeError("the run's draw ended without a result"))
        try:
            output, nfe, counted, _ = draw(run, group.member(index))
            outcome = Outcome(value=(output, nfe, counted))
        except (Exception, SystemExit) as error:   # recorded as the run's failure by the job loop (sys.exit too)
            outcome = Outcome(error=error)
        finally:
            try:
                seconds = group.leave(index)   # never leave the others waiting for this run
            except AssertionError as error:   # a hand-off invariant failed: the group is broken (FusedGroup.check)
                outcome = Outcome(error=error)
            else:
                if outcome.error is None:
                    outcome.value = (*outcome.value, seconds)
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
    pending, waited_since_broken = set(range(len(runs))), False
    try:
        while pending:
            try:
                index, outcome = ended.get(timeout=group.wait_limit())
            except queue.Empty:           # a long draw is no fault; a broken group's stuck run is given up
                if group.broken is not None and waited_since_broken:
                    for index in sorted(pending):
                        yield runs[index], Outcome(error=FusedGroupBroken(str(group.broken)))
                    return
                waited_since_broken = group.broken is not None   # one more wait limit first
                continue
            pending.discard(index)
            yield runs[index], outcome
        for thread in [*workers, server]:
            thread.join(group.wait_limit())
    finally:
        if pending:    # the caller stopped early (fail_fast): the group's threads must not wait for it
            group.break_(FusedGroupBroken("fused evaluation: the job stopped drawing this group"))


class Outcome:
    """A draw's result, or its error raised when called."""

    def __init__(self, value=None, error: BaseException | None = None):
        self.value, self.error = value, error

    def __call__(self):
        if self.error is not None:
            raise self.error
        return tuple(self.value)


class Call:
    """One denoiser call of a group's member, waiting for its answer and then for its turn."""

    def __init__(self, member: int, x: torch.Tensor, sigma, lock: threading.Lock):
        self.member, self.x, self.sigma = member, x, sigma
        self.grad = torch.is_grad_enabled()    # the caller's thread's mode (thread-local in torch)
        self.output, self.error = None, None
        self.woken = threading.Condition(lock)   # notified when its member gets the turn (or the group breaks)

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

    The hand-off, all under one lock, each wait a named predicate on the state below:
    - a member calls: its call joins `waiting`, it passes its turn on and waits for its own
      (`has_turn`: its call answered and its member first of the batch's members left to resume);
    - the serving thread waits until `batch_due` (nobody holds the turn, every member still
      drawing waits), takes every waiting call, answers them (outside the lock), and gives the
      turn to the batch's first member; each member passes it on at its next call or when it
      leaves, the last one to the serving thread.
    One thread runs at a time after the first batch, so the runs' small tensor operations do
    not fight over the GIL. `check` asserts the invariants at every change. A member that leaves
    takes its calls with it (`leave`), whatever state they are in, so an error anywhere in a
    member never holds the others. Every wait ends after `wait_limit()`: the group breaks
    (`broken`), and every member still drawing raises FusedGroupBroken at its wait or next call."""

    def __init__(self, denoiser, size: int, timeout_s: float = TIMEOUT_S, names: list[str] | None = None):
        self.denoiser, self.size, self.timeout_s = denoiser, size, timeout_s
        self.names = names or [f"member {index}" for index in range(size)]   # the runs' ids, for errors
        self.lock = threading.Lock()          # guards everything below
        self.drawing = set(range(size))       # members that have not left
        self.waiting: dict[int, Call] = {}    # member -> its call handed in, not yet taken into a batch
        self.resuming = collections.deque()   # answered calls whose members have not had their turn yet
        self.turn: int | None = None          # the member that runs now; None: the serving thread's, or before the first batch
        self.answering = False                # the serving thread is answering a batch (outside the lock)
        self.seconds = [0.0] * size           # each member's share of the group's time so far
        self.slowest = 0.0                    # longest time from one batch to the next so far
        self.broken: FusedGroupBroken | None = None
        self.fell_back = False                # a fused network call of this group raised (logged once)
        self.batch = threading.Condition(self.lock)   # the serving thread waits on it for `batch_due`

    # -- predicates and invariants (the lock held) --

    def batch_due(self) -> bool:
        """Every member still drawing has handed in a call and nobody holds the turn (also when
        every member has left: the serving thread then ends)."""
        return self.turn is None and not self.resuming and self.waiting.keys() == self.drawing

    def has_turn(self, call: Call) -> bool:
        return self.turn == call.member

    def check(self) -> None:
        """The hand-off's invariants; one that fails breaks the group (a bug: trust none of its
        runs) and raises AssertionError."""
        problem = ("a call waits for a member that has left" if not self.waiting.keys() <= self.drawing else
                   "a resuming call's member has left or called again"
                   if any(call.member not in self.drawing or call.member in self.waiting for call in self.resuming) else
                   "the turn is held by a member that has left or waits"
                   if self.turn is not None and (self.turn not in self.drawing or self.turn in self.waiting) else None)
        if problem:
            self.broke(FusedGroupBroken(f"fused evaluation: the hand-off failed: {problem}"))
            raise AssertionError(problem)

    def wait_limit(self) -> float:
        return max(self.timeout_s, SLOWEST_BATCHES * self.slowest)

    def wait(self, condition: threading.Condition, predicate) -> None:
        """Wait (the lock held) until `predicate()`; past the wait limit, break the group, naming
        what it waited for (`awaited`). Raises FusedGroupBroken if the group is broken."""
        limit = self.wait_limit()
        if not condition.wait_for(lambda: self.broken is not None or predicate(), timeout=limit):
            self.broke(FusedGroupBroken(
                f"fused evaluation: waited {limit:g} s for {self.awaited()} (jobs.fuse_timeout_s); every run of the "
                f"group of {self.size} still drawing fails"))
        if self.broken is not None:
            raise FusedGroupBroken(str(self.broken))

    def awaited(self) -> str:
        """What the group waits for now (for a timeout's error)."""
        if self.answering:
            return "the serving thread's network call"
        late = [self.turn] if self.turn is not None else sorted(self.drawing - self.waiting.keys())
        if late:
            return f"run(s) {', '.join(self.names[index] for index in late)} to make the next call or end"
        return "the serving thread to take the batch"

    def break_(self, error: FusedGroupBroken) -> None:
        """Fail every member still drawing with `error` (each raises at its wait or next call)."""
        with self.lock:
            self.broke(error)

    def broke(self, error: FusedGroupBroken) -> None:
        """break_ with the lock held: the first error stays; every waiting thread is woken."""
        if self.broken is None:
            self.broken = error
        self.batch.notify_all()
        for call in [*self.waiting.values(), *self.resuming]:
            call.woken.notify_all()

    # -- members --

    def member(self, index: int):
        """The denoiser that member `index` (the index-th run of the shard) calls."""
        return functools.partial(self.call, index)

    def call(self, index: int, x, sigma):
        with self.lock:
            if self.broken is not None:
                raise FusedGroupBroken(str(self.broken))
            if index not in self.drawing or self.turn not in (None, index):
                self.broke(FusedGroupBroken(f"fused evaluation: the hand-off failed: {self.names[index]} called out "
                                            f"of turn"))
                raise AssertionError(f"{self.names[index]} called out of turn")
            call = Call(index, x, sigma, self.lock)
            self.waiting[index] = call
            self.pass_turn(index)
            self.wait(call.woken, functools.partial(self.has_turn, call))
        if call.error is not None:
            raise call.error
        return call.output

    def leave(self, index: int) -> float:
        """Member `index` has ended its draw (or raised anywhere, a call of it pending or not):
        its calls leave with it, its turn is passed on. Returns its share of the group's time."""
        with self.lock:
            self.drawing.discard(index)
            self.waiting.pop(index, None)
            self.resuming = collections.deque(call for call in self.resuming if call.member != index)
            self.pass_turn(index)
            return self.seconds[index]

    def pass_turn(self, index: int) -> None:
        """From member `index` (if it holds the turn) to the next member of the last batch; after
        the last one, to the serving thread once the batch is due."""
        if self.turn == index:
            self.turn = None
        if self.turn is None and self.resuming:
            call = self.resuming.popleft()
            self.turn = call.member
            call.woken.notify()
        elif self.batch_due():
            self.batch.notify()
        self.check()

    # -- the serving thread --

    def serve(self) -> None:
        """Answer one batch at a time, in the calling thread, until every member has left. The
        time from one batch to the next (the members' own steps and the network call) is shared
        among the batch's members by their rows. An error here breaks the group."""
        try:
            self.serve_batches()
        except FusedGroupBroken:
            pass   # the members raise it too
        except BaseException as error:
            self.break_(FusedGroupBroken(f"fused evaluation: the serving thread failed: {type(error).__name__}: {error}"))
            raise

    def serve_batches(self) -> None:
        last = time.perf_counter()
        while True:
            with self.lock:
                self.wait(self.batch, self.batch_due)
                if not self.drawing:
                    return
                batch = [self.waiting.pop(index) for index in sorted(self.waiting)]
                self.answering = True
                self.check()
            answer(self.denoiser, batch, self.fall_back)
            now, rows = time.perf_counter(), sum(len(call.x) for call in batch) or 1
            with self.lock:
                self.answering = False
                for call in batch:
                    self.seconds[call.member] += (now - last) * len(call.x) / rows
                self.slowest = max(self.slowest, now - last)
                self.resuming.extend(call for call in batch if call.member in self.drawing)
                self.pass_turn(None)
            last = now

    def fall_back(self, calls: list[Call], error: Exception) -> None:
        """A fused network call raised; its calls are answered one by one (logged once per group)."""
        if not self.fell_back:
            self.fell_back = True
            log.warning("fused evaluation: a network call of %d rows for %d runs raised %s: %s; its calls are "
                        "answered one run at a time (up to 2x slower; logged once per group of %d runs)",
                        sum(len(call.x) for call in calls), len(calls), type(error).__name__,
                        str(error).strip().splitlines()[0] if str(error).strip() else "", self.size)


def answer(denoiser, batch: list[Call], fall_back) -> None:
    """Give every call its output (or error): compatible calls without gradients together, in
    batch order (on the CPU in packs of at most CPU_ROWS rows), the others one by one.
    `fall_back(calls, error)` hears of a fused network call that raised."""
    groups: dict[tuple, list[Call]] = {}
    for call in batch:
        if call.grad or not isinstance(call.x, torch.Tensor):
            call.answer_alone(denoiser)
        else:
            groups.setdefault((call.x.dtype, call.x.device, tuple(call.x.shape[1:])), []).append(call)
    for (_, device, _), calls in groups.items():
        for pack in packs(calls, CPU_ROWS if device.type == "cpu" else math.inf):
            answer_together(denoiser, pack, fall_back)


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


def answer_together(denoiser, calls: list[Call], fall_back) -> None:
    """One network call for all `calls` (one sigma per row), each given its rows."""
    if len(calls) == 1:
        calls[0].answer_alone(denoiser)
        return
    try:
        with torch.no_grad():
            output = denoiser(torch.cat([call.x for call in calls]), torch.cat([call.sigma_rows() for call in calls]))
        for call, rows in zip(calls, output.split([len(call.x) for call in calls]), strict=True):
            call.output = rows
    except Exception as error:   # one run's bad call must not fail the others: each gets its own answer
        fall_back(calls, error)
        for call in calls:
            call.answer_alone(denoiser)
