"""kill -9 of a SqliteBuffer writer at random moments under heavy append, then reopen and count.

Each trial starts a writer process on the same buffer file: two threads append batches of 1-50 records
(mixed classes) as fast as they can and a third peeks and acks like a forwarder. The writer prints every
seq whose append returned ("appended"), and every seq before and after its ack ("acking", "acked"),
flushed, so the parent knows what was acknowledged. After a random delay the parent sends SIGKILL,
reopens the buffer and counts, over all trials:

- acknowledged: seqs whose append returned;
- recovered: acknowledged seqs still stored, or legitimately gone because the writer was acking them;
- lost: acknowledged - recovered (an acknowledged record that vanished without an ack);
- duplicates: seqs stored more than once, plus seqs whose ack returned yet are stored again after the
  kill (the buffer would deliver them twice).

    python benchmarks/crash.py [--quick]

Prints one line per 10 trials, then, as its last line, one JSON object with the keys trials,
acknowledged, recovered, lost, duplicates.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import emit, parse_args

from edgeloop.device.sqlite_buffer import SqliteBuffer

KEYS = ("trials", "acknowledged", "recovered", "lost", "duplicates")
THING = "crash-1"
MAX_DELAY_S = 0.3
WRITER = """
import random, sys, threading
from edgeloop.core.records import RecordKind
from edgeloop.device.sqlite_buffer import SqliteBuffer

buffer = SqliteBuffer(sys.argv[1], sys.argv[2])
lock = threading.Lock()

def say(word, seqs):
    with lock:
        print(word, *seqs, flush=True)

def append(seed):
    rng = random.Random(seed)
    while True:
        n = rng.randint(1, 50)
        kind = RecordKind(rng.randrange(4))
        records = buffer.append(kind, [{"writer": seed, "i": i, "pad": "x" * 100} for i in range(n)], now=1.0)
        say("appended", [r.seq for r in records])

def forward():
    while True:
        seqs = [r.seq for r in buffer.peek(100)]
        if seqs:
            say("acking", seqs)
            buffer.ack(seqs)
            say("acked", seqs)

for target, arg in ((append, 1), (append, 2)):
    threading.Thread(target=target, args=(arg,), daemon=True).start()
say("started", [])
forward()
"""


def trial(path: Path, delay_s: float) -> dict[str, set[int]]:
    """One writer killed after delay_s of writing; the seqs it printed, by word."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), THING], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    first = writer.stdout.readline()
    time.sleep(delay_s)
    writer.send_signal(signal.SIGKILL)
    rest, _ = writer.communicate()
    if writer.returncode != -signal.SIGKILL:
        raise SystemExit(f"writer ended on its own (rc {writer.returncode}) before the kill: {first}{rest[-500:]}")
    seen: dict[str, set[int]] = {"started": set(), "appended": set(), "acking": set(), "acked": set()}
    *complete, _cut = (first + rest).split("\n")  # a line cut by the kill acknowledged nothing
    for line in complete:
        word, *seqs = line.split()
        seen[word].update(int(s) for s in seqs)
    return seen


def stored_seqs(path: Path) -> list[int]:
    """Every seq in the reopened buffer (opening runs SQLite's recovery and the buffer's checks)."""
    buffer = SqliteBuffer(path, THING)
    try:
        return [r.seq for r in buffer.peek(10_000_000)]
    finally:
        buffer.close()


def main() -> None:
    """Kill, reopen, count; print the result line last."""
    args = parse_args(__doc__.splitlines()[0])
    trials = 20 if args.quick else 200
    rng = random.Random(2026)
    seen: dict[str, set[int]] = {"appended": set(), "acking": set(), "acked": set()}
    lost: set[int] = set()
    duplicates = 0
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-crash-") as tmp:
        path = Path(tmp) / "buffer.sqlite3"
        for n in range(1, trials + 1):
            for word, seqs in trial(path, rng.uniform(0.0, MAX_DELAY_S)).items():
                if word in seen:
                    seen[word] |= seqs
            stored = stored_seqs(path)
            present = set(stored)
            duplicates += sum(count - 1 for count in Counter(stored).values()) + len(seen["acked"] & present)
            seen["acked"] -= present  # counted once; a later trial may legitimately ack them again
            lost |= seen["appended"] - present - seen["acking"]
            if n % 10 == 0:
                print(f"{n} trials: {len(seen['appended'])} acknowledged, {len(lost)} lost, {duplicates} duplicates")
    acknowledged = len(seen["appended"])
    emit(
        {
            "trials": trials,
            "acknowledged": acknowledged,
            "recovered": acknowledged - len(lost),
            "lost": len(lost),
            "duplicates": duplicates,
        },
        KEYS,
    )


if __name__ == "__main__":
    sys.exit(main())
