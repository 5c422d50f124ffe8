"""
Tearing down Docker containers: a scope against the loops people write.

Fifty running containers (``sleep`` as PID 1, which ignores ``SIGTERM``) are
removed three ways, interleaved and alternating their order in one run:

- ``scope``: tracked in one scope (``scope.track("container", ...)``), removed
  by ``scope.close()`` with the default policy (``wait=True`` included);
- ``loop``: a sequential ``container.remove(force=True)`` loop in docker-py;
- ``cli``: one ``docker rm -f`` with all the ids.

Wall time of the teardown alone (making the containers, and tracking them,
is set-up), median of the repetitions. Goals: the scope is at least 1.6 times
as fast as the loop, and within 1.15 times the single CLI call.

Usage: ``python bench/bench_docker.py [--quick] [--count N]``. Needs a Docker
engine and the image of ``CLEANROOM_TEST_IMAGE`` (``.ci/docker-engine``
provides both); containers run with ``network_mode="none"``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from _measure import Result

IMAGE = os.environ.get("CLEANROOM_TEST_IMAGE", "cleanroom-test-busybox:latest")
LABEL = "cleanroom-bench"


def _start(client: Any, count: int, run: str) -> list[Any]:
    """Start *count* containers in parallel; the setup is not measured."""

    def one(_: int) -> Any:
        return client.containers.run(
            IMAGE,
            ["sleep", "300"],
            detach=True,
            network_mode="none",
            labels={LABEL: run},
        )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def _scope(containers: list[Any]) -> Callable[[], None]:
    from cleanroom import Scope

    scope = Scope("bench")
    for container in containers:
        scope.track("container", container.name, id=container.id)
    return scope.close


def _loop(containers: list[Any]) -> Callable[[], None]:
    def teardown() -> None:
        for container in containers:
            container.remove(force=True)

    return teardown


def _cli(containers: list[Any]) -> Callable[[], None]:
    docker = shutil.which("docker")
    if docker is None:
        raise SystemExit("the docker command is needed for the CLI contender")
    command = [docker, "rm", "-f", *(c.id for c in containers)]
    return lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def run(repetitions: int, count: int = 50) -> list[Result]:
    """Measure the three teardowns; return the two ratios against their goals."""
    import docker

    client = docker.from_env(max_pool_size=16)
    run_id = uuid.uuid4().hex[:8]
    contenders = {"scope": _scope, "loop": _loop, "cli": _cli}
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    try:
        for repetition in range(repetitions):
            order = names if repetition % 2 == 0 else names[::-1]
            for name in order:
                teardown = contenders[name](_start(client, count, run_id))
                started = time.perf_counter()
                teardown()
                samples[name].append(time.perf_counter() - started)
                left = client.containers.list(
                    all=True, filters={"label": f"{LABEL}={run_id}"}
                )
                if left:
                    raise SystemExit(f"{name} left {len(left)} containers behind")
    finally:
        for container in client.containers.list(
            all=True, filters={"label": f"{LABEL}={run_id}"}
        ):
            container.remove(force=True)
        client.close()
    median = {name: statistics.median(values) for name, values in samples.items()}
    detail = ", ".join(f"{name} {median[name]:.3f} s" for name in names)
    return [
        Result(
            f"docker: {count} containers, loop / scope",
            median["loop"] / median["scope"],
            1.6,
            "x",
            higher_is_better=True,
            detail=detail,
        ),
        Result(
            f"docker: {count} containers, scope / one docker rm -f",
            median["scope"] / median["cli"],
            1.15,
            "x",
            detail=detail,
        ),
    ]


def _unavailable() -> str | None:
    """Why the benchmark cannot run here, or ``None``."""
    try:
        import docker
        import docker.errors
    except ImportError:
        return "the docker package is not installed"
    try:
        client = docker.from_env()
    except docker.errors.DockerException as exc:
        return f"no Docker engine answers ({exc})"
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return f"the image {IMAGE} is missing (.ci/docker-engine imports it)"
    finally:
        client.close()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions, not 7")
    parser.add_argument("--count", type=int, default=50, help="containers per run")
    args = parser.parse_args(argv)
    reason = _unavailable()
    if reason is not None:
        print(f"docker benchmark skipped: {reason}")
        return 0
    results = run(3 if args.quick else 7, args.count)
    for result in results:
        print("  ".join(result.row()))
    print(f"  {results[0].detail}")
    return 0 if all(result.met for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
