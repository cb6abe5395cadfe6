"""Greengrass entry point of com.edgeloop.Inference: build the IPC client, wire the runtime, run until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

from edgeloop.core.errors import EdgeloopError
from edgeloop.device.component import build_runtime, thing_name_from_env

log = logging.getLogger("edgeloop.inference")


def main(argv: list[str] | None = None) -> int:
    """Run the inference component; an edgeloop error ends it with that error's exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--greengrass-root", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ipc = GreengrassCoreIPCClientV2()
    try:
        runtime, inputs = build_runtime(ipc, thing_name_from_env(os.environ), args.greengrass_root, args.work_dir)
        runtime.run(inputs, stop)
    except EdgeloopError as exc:
        log.error("inference component stopped: %s", exc)
        return exc.exit_code
    finally:
        ipc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
