"""Greengrass entry point of com.edgeloop.Inference: build the IPC client, start the component, run until SIGTERM.

The recipe runs this with `python -u` (unbuffered, so the nucleus log sees every line at once) and passes
the component's own version, which Greengrass does not put in the environment. Everything past the IPC client
is edgeloop.device.component.start, which the local stack's simulated devices run too (against an IPC stand-in).

Exit codes (edgeloop.core.errors; the nucleus logs them, and a non-zero one marks the component BROKEN
after its retries):

| code | meaning                                                                              |
|------|--------------------------------------------------------------------------------------|
| 0    | stopped on SIGTERM/SIGINT after answering, forwarding and reporting what it held      |
| 1    | EdgeloopError without a more specific class (also: an uncaught bug, with a traceback) |
| 2    | ValidationError / ConfigError: bad configuration, thing name or command line          |
| 3    | IntegrityError / ModelFormatError: an artifact or signature that cannot be trusted    |
| 4    | NotFoundError: a named thing (model files, component) is missing                      |
| 5    | RegistryError / FleetControlError / StateStoreError / ConflictError: a service refused |
| 6    | LinkError: the uplink failed where the process could not carry on                      |
| 7    | StoreError: the durable buffer cannot be opened or written                             |
"""

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
from edgeloop.device.component import start, thing_name_from_env

log = logging.getLogger("edgeloop.inference")


def main(argv: list[str] | None = None) -> int:
    """Run the inference component; an edgeloop error ends it with that error's exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--greengrass-root", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--component-version", required=True, help="this component's version, from the recipe")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ipc = GreengrassCoreIPCClientV2()
    try:
        thing = thing_name_from_env(os.environ)
        running = start(ipc, thing, args.greengrass_root, args.work_dir, component_version=args.component_version)
        log.info("%s %s serving", thing, args.component_version)
        running.run(stop)
    except EdgeloopError as exc:
        log.error("inference component stopped: %s", exc)
        return exc.exit_code
    finally:
        ipc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
