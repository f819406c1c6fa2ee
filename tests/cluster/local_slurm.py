"""A real single-node SLURM cluster on loopback, for the cluster test (and for trying the
SLURM profile by hand).

Debian's `slurmctld`, `slurmd` and `munge` (packages slurm-wlm and munge) are started as
plain processes: munged on a private socket and key, slurmctld and slurmd on free loopback
ports, with `N` fake GPUs (gres `gpu:fake:N` backed by character devices that this harness
creates in its own folder), so that jobs that ask for `--gpus=1` are scheduled and get
CUDA_VISIBLE_DEVICES. Every daemon's PID is recorded in `<base>/run/*.pid` and `stop()`
signals exactly those PIDs.

Pitfalls (snakemake 9.27 + snakemake-executor-plugin-slurm 2.8, slurm-wlm 22.05):

- The config has to be the default `/etc/slurm/slurm.conf`: inside each job the plugin
  removes every SLURM_* variable (SLURM_CONF too) before its nested `srun`. This harness
  writes it there with a marker line and refuses to replace a file that it did not write.
- There is no slurmdbd, so `sacct` does not work: snakemake must query job states with
  `--slurm-status-command squeue`, and finished jobs must stay visible to squeue for
  `MinJobAge` seconds, at least 3x `--slurm-init-seconds-before-status-checks`.
- No cgroups in a container: process tracking by /proc, no task binding.
- One cluster per machine (the config path is fixed): `start()` holds an exclusive lock
  (LOCK_PATH) until `stop()`, so two test sessions on one machine take turns instead of
  rewriting each other's slurm.conf under running jobs.

Needs root. By hand:

    sudo .venv/bin/python tests/cluster/local_slurm.py start   # prints the base folder
    sudo .venv/bin/python tests/cluster/local_slurm.py stop /tmp/diffsweep-slurm-XXXX
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONF_DIR = Path("/etc/slurm")
MARK = "# written by diffsweep tests/cluster/local_slurm.py"
LOCK_PATH = Path(tempfile.gettempdir()) / "diffsweep-local-slurm.lock"
DAEMONS = ("slurmctld", "slurmd", "munged")
PROGRAMS = ("slurmctld", "slurmd", "munged", "mungekey", "sbatch", "squeue", "scontrol", "sinfo", "scancel", "srun")


class Unavailable(RuntimeError):
    """This machine cannot host the cluster (not root, packages missing, a foreign slurm.conf)."""


def why_unavailable() -> str | None:
    """None if a cluster can be started here, else the reason (for pytest.skip)."""
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root (the SLURM and munge daemons run as root and as user munge)"
    missing = [name for name in PROGRAMS if shutil.which(name) is None]
    if missing:
        return (f"SLURM/munge not installed ({', '.join(missing)} missing): "
                "apt-get install slurm-wlm munge (.ci/run does this when it runs as root)")
    try:
        import pwd
        pwd.getpwnam("munge")
    except KeyError:
        return "no 'munge' user (install the munge package)"
    for name in ("slurm.conf", "gres.conf"):
        path = CONF_DIR / name
        if path.exists() and MARK not in path.read_text(errors="replace"):
            return f"{path} exists and was not written by this harness (another cluster?); not touching it"
    conf = CONF_DIR / "slurm.conf"
    if conf.exists():   # ours, but is its cluster still up (started by hand, or by another session)?
        base = conf.read_text(errors="replace").split("(base ", 1)[-1].split(")", 1)[0]
        pid_file = Path(base) / "run" / "slurmctld.pid"
        if not LOCK_PATH.exists() or _lock_is_free():
            if pid_file.exists() and _alive(int(pid_file.read_text())):
                return f"a local cluster (base {base}) is running; stop it: {__file__} stop {base}"
    return None


def _lock_is_free() -> bool:
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


class LocalSlurm:
    """munged + slurmctld + slurmd on 127.0.0.1, state under `base`."""

    def __init__(self, base: str | Path | None = None, cpus: int | None = None, mem_mb: int | None = None,
                 gpus: int = 2, min_job_age: int = 600, partition: str = "debug"):
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="diffsweep-slurm-"))
        self.cpus = cpus or os.cpu_count() or 1
        total_mb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) // 1024
        self.mem_mb = mem_mb or max(1000, total_mb - 2048)
        self.gpus, self.min_job_age, self.partition = gpus, min_job_age, partition
        self.host = socket.gethostname().split(".")[0]
        self.munge_socket = self.base / "munge" / "munge.socket"
        self.env = {**os.environ, "SLURM_CONF": str(CONF_DIR / "slurm.conf")}
        self._lock_fd = None

    # --- start ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0, wait_for_lock: float = 1200.0) -> "LocalSlurm":
        reason = why_unavailable()
        if reason:
            raise Unavailable(reason)
        self._lock(wait_for_lock)
        reason = why_unavailable()   # again: the previous holder may have left a foreign config
        if reason:
            raise Unavailable(reason)
        started = time.perf_counter()
        for sub in ("log", "run", "state", "spool", "munge", "dev"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)  # munged (user munge) must reach its socket folder
        shutil.chown(self.base / "munge", "munge", "munge")
        self._write_config()
        self._start_munge()
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(CONF_DIR / "slurm.conf")])
        self._wait(lambda: "UP" in self._out(["scontrol", "ping"]), timeout, "slurmctld did not answer")
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(CONF_DIR / "slurm.conf")])

        def node_ready():
            state = self._out(["sinfo", "-h", "-n", self.host, "-o", "%T"]).strip()
            if state.startswith(("down", "drain")):
                self._out(["scontrol", "update", f"nodename={self.host}", "state=resume"])
            return state.startswith(("idle", "mixed", "allocated"))
        self._wait(node_ready, timeout, "the node did not become idle")
        self.start_seconds = time.perf_counter() - started
        return self

    def _lock(self, wait: float) -> None:
        self._lock_fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self._lock_fd)
                    self._lock_fd = None
                    raise Unavailable(f"another local cluster held {LOCK_PATH} for {wait:.0f} s")
                time.sleep(1.0)

    def _write_config(self) -> None:
        CONF_DIR.mkdir(parents=True, exist_ok=True)
        key = self.base / "munge" / "munge.key"
        if not key.exists():
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True)
        shutil.chown(key, "munge", "munge")
        os.chmod(key, 0o600)
        gres_type, node_gres = "", ""
        if self.gpus:
            for index in range(self.gpus):
                device = self.base / "dev" / f"fakegpu{index}"
                if not device.exists():
                    try:  # a character device like /dev/null: SLURM then sets CUDA_VISIBLE_DEVICES
                        os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))
                    except PermissionError:  # no CAP_MKNOD: still scheduled, but CUDA_VISIBLE_DEVICES is empty
                        device.touch()
            (CONF_DIR / "gres.conf").write_text(
                f"{MARK}\nNodeName={self.host} Name=gpu Type=fake File={self.base}/dev/fakegpu[0-{self.gpus - 1}]\n")
            gres_type, node_gres = "GresTypes=gpu", f"Gres=gpu:fake:{self.gpus}"
        elif (CONF_DIR / "gres.conf").exists():
            (CONF_DIR / "gres.conf").unlink()
        b = self.base
        (CONF_DIR / "slurm.conf").write_text(f"""{MARK} (base {b})
ClusterName=diffsweeptest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
{gres_type}
MinJobAge={self.min_job_age}
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
StateSaveLocation={b}/state
SlurmdSpoolDir={b}/spool
SlurmctldPidFile={b}/run/slurmctld.daemon.pid
SlurmdPidFile={b}/run/slurmd.daemon.pid
SlurmctldLogFile={b}/log/slurmctld.log
SlurmdLogFile={b}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName={self.host} NodeAddr=127.0.0.1 NodeHostname={self.host} CPUs={self.cpus} RealMemory={self.mem_mb} {node_gres} State=UNKNOWN
PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")

    def _start_munge(self) -> None:
        d = self.base / "munge"
        self._spawn("munged", ["munged", "--foreground", f"--socket={self.munge_socket}", f"--key-file={d / 'munge.key'}",
                               f"--pid-file={d / 'munged.pid'}", f"--log-file={d / 'munged.log'}",
                               f"--seed-file={d / 'munged.seed'}"], user="munge")

        def answers():
            token = subprocess.run(["munge", f"--socket={self.munge_socket}", "-n"], capture_output=True)
            return token.returncode == 0 and subprocess.run(
                ["unmunge", f"--socket={self.munge_socket}"], input=token.stdout, capture_output=True).returncode == 0
        self._wait(answers, 20, "munged did not answer")

    def _spawn(self, name: str, command: list[str], user: str | None = None) -> None:
        pid_file = self.base / "run" / f"{name}.pid"
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            return
        with open(self.base / "log" / f"{name}.out", "ab") as out:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=self.env, user=user, group=user)
        pid_file.write_text(str(process.pid))

    def _out(self, command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=20).stdout
        except subprocess.TimeoutExpired:
            return ""

    def _wait(self, condition, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            for name in DAEMONS:
                pid_file = self.base / "run" / f"{name}.pid"
                if pid_file.exists() and not _alive(int(pid_file.read_text())):
                    raise RuntimeError(f"{name} exited; {self.logs()}")
            time.sleep(0.2)
        raise RuntimeError(f"{message} within {timeout:.0f} s; {self.logs()}")

    # --- use -------------------------------------------------------------------------------

    def jobs(self) -> list[dict]:
        """Every job slurmctld still remembers (MinJobAge): id, state, comment, tres (GPUs asked for),
        start and end (ISO times, seconds), and for a task of a job array its array's id
        (`array`, the id sbatch printed) and task id (`task`); both None for a plain job."""
        jobs = []
        for line in self._out(["scontrol", "show", "job", "--oneliner"]).splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            if "JobId" in fields:
                jobs.append({"id": fields["JobId"], "state": fields.get("JobState", ""),
                             "comment": fields.get("Comment", ""), "tres": fields.get("TresPerJob", ""),
                             "start": fields.get("StartTime", ""), "end": fields.get("EndTime", ""),
                             "array": fields.get("ArrayJobId"), "task": fields.get("ArrayTaskId")})
        return jobs

    def logs(self, lines: int = 30) -> str:
        parts = []
        for path in sorted((self.base / "log").glob("*")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(parts)

    # --- stop ------------------------------------------------------------------------------

    def stop(self, purge: bool = True) -> None:
        """Cancel our jobs, stop the recorded PIDs (TERM, then KILL after 15 s), remove our config."""
        slurmctld = self.base / "run" / "slurmctld.pid"
        if slurmctld.exists() and _alive(int(slurmctld.read_text())):
            self._out(["scancel", "--full", "--state=RUNNING,PENDING"])
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(j["state"] in ("RUNNING", "PENDING", "COMPLETING")
                                                      for j in self.jobs()):
                time.sleep(0.5)
        for names in (("slurmd", "slurmctld"), ("munged",)):
            pids = []
            for name in names:
                pid_file = self.base / "run" / f"{name}.pid"
                if pid_file.exists():
                    pid = int(pid_file.read_text())
                    if _alive(pid):
                        os.kill(pid, signal.SIGTERM)
                        pids.append(pid)
                    pid_file.unlink()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
                _reap(pids)
                time.sleep(0.1)
            for pid in pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            _reap(pids)
        for name in ("slurm.conf", "gres.conf"):
            path = CONF_DIR / name
            if path.exists() and MARK in path.read_text(errors="replace"):
                path.unlink()
        if purge:
            shutil.rmtree(self.base, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _reap(pids) -> None:
    """Collect daemons that are our own children (started by this process), so they do not linger as zombies."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else "start"
    if action == "start":
        cluster = LocalSlurm(sys.argv[2] if len(sys.argv) > 2 else None).start()
        print(cluster.base)
        print(f"started in {cluster.start_seconds:.1f} s; stop with: {sys.argv[0]} stop {cluster.base}", file=sys.stderr)
    elif action == "stop" and len(sys.argv) == 3:
        LocalSlurm(sys.argv[2]).stop()
    else:
        sys.exit(f"usage: {sys.argv[0]} start [BASE] | stop BASE")
