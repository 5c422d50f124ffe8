"""
The Docker backend against a real engine: what it creates, labels, adopts and
removes, and what it leaves alone.

Containers run the local busybox image of ``.ci/docker-engine`` with
``network_mode="none"``; networks are internal. Every assertion asks the
engine itself, through a client of the test's own.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import cleanroom
from cleanroom import Level, Ownership, Scope, managed_resources
from cleanroom._core._session import current_owner
from cleanroom.exceptions import CleanupError, NameConflictError
from cleanroom.kinds import docker as docker_kind
from dockerenv import IMAGE, OFFLINE

pytestmark = pytest.mark.docker

SLEEP = ["sleep", "300"]


def container_exists(engine: Any, ref: str) -> bool:
    """Ask the engine whether a container exists."""
    import docker.errors

    try:
        engine.api.inspect_container(ref)
    except docker.errors.NotFound:
        return False
    return True


def network_exists(engine: Any, ref: str) -> bool:
    import docker.errors

    try:
        engine.api.inspect_network(ref)
    except docker.errors.NotFound:
        return False
    return True


def volume_exists(engine: Any, name: str) -> bool:
    import docker.errors

    try:
        engine.api.inspect_volume(name)
    except docker.errors.NotFound:
        return False
    return True


def labelled(engine: Any, label: str) -> list[Any]:
    """The containers (running or not) that carry *label* (``key=value``)."""
    return engine.containers.list(all=True, filters={"label": label})


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a child process with a journal and session of its own."""
    env = {k: v for k, v in os.environ.items() if k != "CLEANROOM_SESSION"}
    env["CLEANROOM_JOURNAL"] = str(tmp_path / "child-journal.sqlite3")
    env.update(extra)
    return env


class TestCreate:
    def test_run_labels_and_removes(self, engine: Any) -> None:
        """run() starts a labelled container that the scope removes when it closes."""
        with managed_resources("labels") as scope:
            container = scope.docker.run(IMAGE, SLEEP, **OFFLINE)
            info = engine.api.inspect_container(container.id)
            assert info["State"]["Running"]
            ownership = Ownership.from_labels(info["Config"]["Labels"])
            assert ownership is not None
            owner = current_owner()
            assert ownership.session == owner.session
            assert ownership.scope == "labels"
            assert ownership.pid == os.getpid()
            assert ownership.host == owner.host
            assert ownership.start_time == owner.start_time
            assert ownership.created <= time.time()
            assert container.name.startswith("cleanroom-")
        assert not container_exists(engine, container.id)

    def test_create_keeps_callers_labels(self, engine: Any, unique: Any) -> None:
        """create() makes a stopped container with the caller's labels and name."""
        name = unique("created")
        with managed_resources() as scope:
            container = scope.docker.create(
                IMAGE, SLEEP, name=name, labels={"team": "qa"}, **OFFLINE
            )
            info = engine.api.inspect_container(name)
            assert info["Id"] == container.id
            assert info["State"]["Status"] == "created"
            assert info["Config"]["Labels"]["team"] == "qa"
        assert not container_exists(engine, name)

    def test_never_pulls(self, engine: Any, unique: Any) -> None:
        """A missing image raises ImageNotFound; nothing is pulled or left."""
        import docker.errors

        name = unique("missing")
        with managed_resources() as scope:
            with pytest.raises(docker.errors.ImageNotFound):
                scope.docker.run("cleanroom-test-absent:never", SLEEP, name=name)
            assert scope.resources() == []
        assert not container_exists(engine, name)
        assert engine.images.list(name="cleanroom-test-absent") == []

    def test_failed_start_removes_the_container(self, engine: Any, unique: Any) -> None:
        """A container created but not started is removed at once."""
        import docker.errors

        name = unique("nostart")
        with managed_resources() as scope:
            with pytest.raises(docker.errors.APIError):
                scope.docker.run(IMAGE, ["/bin/absent-command"], name=name, **OFFLINE)
            assert not container_exists(engine, name)
            assert scope.resources() == []

    def test_network_after_its_containers(self, engine: Any, unique: Any) -> None:
        """A network and the containers on it all go, the network last."""
        name = unique("net")
        with managed_resources() as scope:
            network = scope.docker.network(name, internal=True)
            containers = [
                scope.docker.run(IMAGE, SLEEP, network=name) for _ in range(3)
            ]
            late = scope.docker.run(IMAGE, SLEEP, **OFFLINE)
            assert engine.api.inspect_network(network.id)["Internal"]
            assert len(engine.api.inspect_network(network.id)["Containers"]) == 3
        assert not network_exists(engine, network.id)
        for container in [*containers, late]:
            assert not container_exists(engine, container.id)

    def test_network_made_after_a_container_it_joins(
        self, engine: Any, unique: Any
    ) -> None:
        """Containers connected to a network made after them do not hold it up."""
        with managed_resources() as scope:
            container = scope.docker.create(IMAGE, SLEEP)
            network = scope.docker.network(unique("late"), internal=True)
            network.connect(container)
        assert not network_exists(engine, network.id)
        assert not container_exists(engine, container.id)

    def test_volume_is_a_record(self, engine: Any) -> None:
        """Level pods keeps a named volume (a record); level all removes it."""
        with managed_resources(level="pods") as scope:
            kept = scope.docker.volume()
        with managed_resources(level="all") as scope:
            removed = scope.docker.volume(labels={"team": "qa"})
            assert engine.api.inspect_volume(removed.name)["Labels"]["team"] == "qa"
        assert volume_exists(engine, kept.name)
        assert not volume_exists(engine, removed.name)
        engine.api.remove_volume(kept.name)

    def test_volume_level_by_configuration(self, engine: Any) -> None:
        """A custom level that names the volume kind cleans volumes too."""
        level = Level("pods-and-volumes", categories=("runtime",), kinds=("volume",))
        with managed_resources(level=level) as scope:
            volume = scope.docker.volume()
        assert not volume_exists(engine, volume.name)

    def test_volume_after_the_containers_using_it(self, engine: Any) -> None:
        """A volume is removed after the containers that mount it."""
        with managed_resources(level="all") as scope:
            volume = scope.docker.volume()
            container = scope.docker.run(
                IMAGE, SLEEP, volumes={volume.name: {"bind": "/data"}}, **OFFLINE
            )
        assert not container_exists(engine, container.id)
        assert not volume_exists(engine, volume.name)

    def test_anonymous_volumes_go_with_the_container(self, engine: Any) -> None:
        """Removal passes v=True: a container's anonymous volumes go with it."""
        with managed_resources() as scope:
            container = scope.docker.run(IMAGE, SLEEP, volumes=["/scratch"], **OFFLINE)
            mounts = engine.api.inspect_container(container.id)["Mounts"]
            anonymous = [m["Name"] for m in mounts if m["Type"] == "volume"]
            assert len(anonymous) == 1
        assert not volume_exists(engine, anonymous[0])

    def test_run_refuses_attached(self) -> None:
        """detach=False has no place in a scope: it is refused before creating."""
        with managed_resources() as scope:
            with pytest.raises(TypeError, match="always detaches"):
                scope.docker.run(IMAGE, SLEEP, detach=False)
            assert scope.resources() == []


class TestAsync:
    @pytest.mark.anyio
    async def test_async_twins(self, engine: Any, unique: Any) -> None:
        """arun, acreate, anetwork and avolume work from async code."""
        async with managed_resources(level="all") as scope:
            network = await scope.docker.anetwork(unique("anet"), internal=True)
            volume = await scope.docker.avolume()
            running = await scope.docker.arun(IMAGE, SLEEP, network=network.name)
            created = await scope.docker.acreate(IMAGE, SLEEP, **OFFLINE)
            assert container_exists(engine, running.id)
        assert not container_exists(engine, running.id)
        assert not container_exists(engine, created.id)
        assert not network_exists(engine, network.id)
        assert not volume_exists(engine, volume.name)

    @pytest.mark.anyio
    async def test_cancelled_body_still_removes(self, engine: Any) -> None:
        """A cancelled async body still has its containers removed."""
        import anyio

        ids = []
        with anyio.move_on_after(0.5):
            async with managed_resources() as scope:
                ids.append((await scope.docker.arun(IMAGE, SLEEP, **OFFLINE)).id)
                await anyio.sleep(30)
        assert ids
        assert not container_exists(engine, ids[0])


class TestAdoptAndTrack:
    def test_add_adopts_docker_objects(self, engine: Any, unique: Any) -> None:
        """scope.add() of docker-py objects tracks them by identity."""
        network = engine.networks.create(unique("adopted"), internal=True)
        volume = engine.volumes.create(unique("adopted"))
        container = engine.containers.create(IMAGE, SLEEP, **OFFLINE)
        ident = container.id
        with managed_resources(level="all") as scope:
            for obj in (network, volume, container):
                assert scope.add(obj) is obj
            kinds = sorted(resource.kind for resource in scope.resources())
            assert kinds == ["container", "network", "volume"]
            # Cleanup depends on the engine's object, not on the Python one.
            del container
        assert not network_exists(engine, network.id)
        assert not volume_exists(engine, volume.name)
        assert not container_exists(engine, ident)

    def test_adopted_object_is_a_handle(self, engine: Any) -> None:
        """The adopted object works as a handle for keep, forget and release."""
        container = engine.containers.create(IMAGE, SLEEP, **OFFLINE)
        with managed_resources() as scope:
            scope.add(container)
            scope.release(container)
            assert not container_exists(engine, container.id)
            assert scope.resources() == []

    def test_track_by_name(self, engine: Any, unique: Any, foreign: Any) -> None:
        """scope.track("container", name) removes the container of that name."""
        name = unique("tracked")
        foreign(name)
        with managed_resources() as scope:
            scope.track("container", name)
        assert not container_exists(engine, name)

    def test_track_image(self, engine: Any, unique: Any) -> None:
        """A tracked image tag is removed at level all; the image it names stays."""
        image = engine.images.get(IMAGE)
        tag = unique("image")
        image.tag(tag, "v1")
        with managed_resources(level="all") as scope:
            scope.track("image", f"{tag}:v1")
        assert engine.images.list(name=tag) == []
        assert engine.images.get(IMAGE).id == image.id

    def test_gone_is_success(self, engine: Any) -> None:
        """What was removed behind cleanroom's back counts as cleaned."""
        with managed_resources(level="all", wait=True) as scope:
            container = scope.docker.run(IMAGE, SLEEP, **OFFLINE)
            volume = scope.docker.volume()
            engine.api.remove_container(container.id, force=True)
            engine.api.remove_volume(volume.name)
        assert [d.state for d in scope.dispositions] == []

    def test_wait_confirms_removal(self, engine: Any) -> None:
        """With wait=True the scope returns once the engine no longer has them."""
        with managed_resources(wait=True) as scope:
            containers = [scope.docker.run(IMAGE, SLEEP, **OFFLINE) for _ in range(3)]
        assert not any(container_exists(engine, c.id) for c in containers)

    def test_failure_names_the_container(self, engine: Any) -> None:
        """A removal the engine refuses is one CleanupError naming the resource."""
        with managed_resources(level="all") as scope:
            volume = scope.docker.volume()
            holder = engine.containers.create(
                IMAGE, SLEEP, volumes={volume.name: {"bind": "/data"}}, **OFFLINE
            )
            with pytest.raises(CleanupError) as caught:
                scope.release(volume)
        holder.remove(force=True)
        engine.api.remove_volume(volume.name)
        assert volume.name in str(caught.value)


class TestParallel:
    def test_many_at_once_within_the_pool(
        self, engine: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Forty containers go at once without exhausting the connection pool."""
        caplog.set_level(logging.WARNING, logger="urllib3")
        with managed_resources() as scope:
            containers = [
                scope.docker.create(IMAGE, SLEEP, **OFFLINE) for _ in range(40)
            ]
        assert not any(container_exists(engine, c.id) for c in containers)
        assert "Connection pool is full" not in caplog.text

    def test_pool_is_sized_to_concurrency(self) -> None:
        """The client's connection pool holds a policy's default concurrency."""
        adapter = docker_kind.client().api.get_adapter("http+docker://localhost")
        pool_size = getattr(adapter, "pool_maxsize", None) or adapter.max_pool_size
        assert pool_size >= cleanroom.Policy().concurrency


class TestNameConflicts:
    def test_dead_sessions_container_is_replaced(
        self, engine: Any, unique: Any, tmp_path: Path
    ) -> None:
        """A name held by a dead session's kept container is freed and reused."""
        name = unique("stale")
        child = textwrap.dedent(f"""
            import cleanroom
            with cleanroom.managed_resources() as scope:
                scope.keep(scope.docker.run({IMAGE!r}, ["sleep", "300"],
                                            name={name!r}, network_mode="none"))
        """)
        subprocess.run(
            [sys.executable, "-c", child], env=child_env(tmp_path), check=True
        )
        stale = engine.api.inspect_container(name)["Id"]
        with managed_resources() as scope:
            fresh = scope.docker.run(IMAGE, SLEEP, name=name, **OFFLINE)
            assert fresh.id != stale
            assert not container_exists(engine, stale)
        assert not container_exists(engine, name)

    def test_foreign_container_is_left_alone(
        self, engine: Any, unique: Any, foreign: Any
    ) -> None:
        """A name held by a container cleanroom did not create is an error."""
        name = unique("foreign")
        holder = foreign(name)
        with managed_resources() as scope:
            with pytest.raises(
                NameConflictError, match="cleanroom did not create"
            ) as e:
                scope.docker.run(IMAGE, SLEEP, name=name, **OFFLINE)
            assert scope.resources() == []
        assert holder.id[:12] in str(e.value)
        assert f"docker rm -f {holder.id[:12]}" in str(e.value)
        assert engine.api.inspect_container(name)["Id"] == holder.id

    def test_live_sessions_container_is_left_alone(
        self, engine: Any, unique: Any
    ) -> None:
        """A name held by a live session's container is an error naming the owner."""
        name = unique("live")
        with managed_resources("holder") as holder_scope:
            holder = holder_scope.docker.run(IMAGE, SLEEP, name=name, **OFFLINE)
            with (
                managed_resources() as scope,
                pytest.raises(NameConflictError) as caught,
            ):
                scope.docker.run(IMAGE, SLEEP, name=name, **OFFLINE)
            message = str(caught.value)
            assert f"pid {os.getpid()}" in message
            assert "scope 'holder'" in message
            assert engine.api.inspect_container(name)["Id"] == holder.id
        assert not container_exists(engine, name)


class TestOwned:
    def test_list_owned_reads_labels(
        self, engine: Any, unique: Any, foreign: Any
    ) -> None:
        """list_owned() finds labelled containers, networks and volumes only."""
        stranger = foreign(unique("stranger"))
        with managed_resources(level="all") as scope:
            container = scope.docker.create(IMAGE, SLEEP, **OFFLINE)
            network = scope.docker.network(unique("owned"), internal=True)
            volume = scope.docker.volume()
            owned = {
                (o.resource.kind, o.resource.identity["id"]): o.ownership
                for kind in (
                    docker_kind.CONTAINERS,
                    docker_kind.NETWORKS,
                    docker_kind.VOLUMES,
                )
                for o in kind.list_owned()
            }
            mine = owned[("container", container.id)]
            assert mine.pid == os.getpid()
            assert mine.alive()
            assert ("network", network.id) in owned
            assert ("volume", volume.name) in owned
            assert ("container", stranger.id) not in owned


class TestKeep:
    def test_kept_container_hint(self, engine: Any) -> None:
        """A kept container is reported with the docker rm -f command."""
        with managed_resources() as scope:
            container = scope.docker.run(IMAGE, SLEEP, **OFFLINE)
            scope.keep(container, "debugging")
        (disposition,) = scope.dispositions
        assert disposition.hint == f"docker rm -f {container.id}"
        assert container_exists(engine, container.id)
        engine.api.remove_container(container.id, force=True)

    def test_keep_on_failure_in_pytest(
        self, pytester: pytest.Pytester, engine: Any, unique: Any
    ) -> None:
        """A failing test keeps its container and shows the command that deletes it."""
        mark = unique("failing")
        pytester.makepyfile(
            test_fails=f"""
            def test_fails(cleanroom):
                cleanroom.docker.run({IMAGE!r}, ["sleep", "300"],
                                     network_mode="none", labels={{"crtest": {mark!r}}})
                assert False
            """
        )
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        (kept,) = labelled(engine, f"crtest={mark}")
        try:
            result.stdout.fnmatch_lines([f"*docker rm -f {kept.id}*"])
        finally:
            kept.remove(force=True)


class TestWatch:
    def test_adopts_what_code_under_test_creates(
        self, engine: Any, unique: Any, foreign: Any
    ) -> None:
        """Containers made without cleanroom in a watch go with the scope."""
        before = foreign(unique("before"))
        with managed_resources() as scope:
            own = scope.docker.create(IMAGE, SLEEP, **OFFLINE)
            with scope.docker.watch() as watch:
                # Code under test that knows nothing of cleanroom:
                made = [
                    engine.containers.create(IMAGE, SLEEP, **OFFLINE) for _ in range(2)
                ]
                labelled_inside = scope.docker.create(IMAGE, SLEEP, **OFFLINE)
            adopted = {resource.identity["id"] for resource in watch.adopted}
            assert adopted == {c.id for c in made}
        for container in [*made, own, labelled_inside]:
            assert not container_exists(engine, container.id)
        assert container_exists(engine, before.id)

    def test_watch_stops_with_the_scope(self, engine: Any) -> None:
        """A watch left open closes, and adopts, when its scope closes."""
        with managed_resources() as scope:
            scope.docker.watch()
            made = engine.containers.create(IMAGE, SLEEP, **OFFLINE)
        assert not container_exists(engine, made.id)

    def test_watch_filters(self, engine: Any, unique: Any, foreign: Any) -> None:
        """Filters narrow what a watch adopts."""
        with managed_resources() as scope:
            with scope.docker.watch(filters={"label": "crtest-watch"}) as watch:
                chosen = foreign(labels={"crtest-watch": "1"})
                other = foreign(unique("other"))
            assert [r.identity["id"] for r in watch.adopted] == [chosen.id]
        assert not container_exists(engine, chosen.id)
        assert container_exists(engine, other.id)


REAPED_CHILD = """
import sys, time
import cleanroom
image, network = sys.argv[1:3]
with cleanroom.managed_resources("doomed") as scope:
    net = scope.docker.network(network, internal=True)
    ids = [scope.docker.run(image, ["sleep", "300"], network=network).id
           for _ in range(3)]
    ids.append(scope.docker.volume().name)
    print(net.id, *ids, flush=True)
    time.sleep(300)
"""


class TestCrash:
    def test_reaper_removes_after_sigkill(
        self, engine: Any, unique: Any, tmp_path: Path
    ) -> None:
        """A SIGKILLed owner's containers, network and volume go within 15 s."""
        child = subprocess.Popen(
            [sys.executable, "-c", REAPED_CHILD, IMAGE, unique("reaped")],
            env=child_env(tmp_path, CLEANROOM_LEVEL="all"),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        network, *containers, volume = child.stdout.readline().split()
        assert all(container_exists(engine, c) for c in containers)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        killed = time.monotonic()
        while time.monotonic() - killed < 15:
            if not any(container_exists(engine, c) for c in containers) and not (
                network_exists(engine, network) or volume_exists(engine, volume)
            ):
                break
            time.sleep(0.1)
        took = time.monotonic() - killed
        assert not any(container_exists(engine, c) for c in containers)
        assert not network_exists(engine, network)
        assert not volume_exists(engine, volume)
        print(f"reaped in {took:.2f} s")

    def test_reaper_uses_the_owners_engine(
        self, engine: Any, unique: Any, tmp_path: Path
    ) -> None:
        """Objects made on a DOCKER_HOST are reaped there, and hinted with -H."""
        host = "unix:///var/run/docker.sock"
        if not Path("/var/run/docker.sock").exists():
            pytest.skip("the engine does not listen on /var/run/docker.sock")
        child = subprocess.Popen(
            [sys.executable, "-c", REAPED_CHILD, IMAGE, unique("hosted")],
            env=child_env(tmp_path, CLEANROOM_LEVEL="all", DOCKER_HOST=host),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        network, *containers, volume = child.stdout.readline().split()
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            any(container_exists(engine, c) for c in containers)
            or network_exists(engine, network)
        ):
            time.sleep(0.1)
        assert not any(container_exists(engine, c) for c in containers)
        assert not network_exists(engine, network)
        assert not volume_exists(engine, volume)

    def test_hint_names_the_engine(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A container made on a DOCKER_HOST is deleted by hand with docker -H."""
        host = "unix:///var/run/docker.sock"
        if not Path("/var/run/docker.sock").exists():
            pytest.skip("the engine does not listen on /var/run/docker.sock")
        monkeypatch.setenv("DOCKER_HOST", host)
        with managed_resources() as scope:
            container = scope.docker.create(IMAGE, SLEEP, **OFFLINE)
            (resource,) = scope.resources()
            assert resource.identity["engine"] == host
            hint = docker_kind.CONTAINERS.delete_hint(resource)
            assert hint == f"docker -H {host} rm -f {container.id}"


ORPHAN_CHILD = """
import os, signal, sys
import cleanroom
scope = cleanroom.managed_resources("orphaned").__enter__()
box = scope.docker.run(sys.argv[1], ["sleep", "300"], network_mode="none")
print(box.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


class TestSweep:
    def test_sweep_by_labels_among_foreign_containers(
        self, engine: Any, foreign: Any, unique: Any, tmp_path: Path
    ) -> None:
        """A sweep without journal rows removes a dead session's container only."""
        orphan = subprocess.run(
            [sys.executable, "-c", ORPHAN_CHILD, IMAGE],
            env=child_env(tmp_path, CLEANROOM_REAPER="off"),
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        try:
            assert container_exists(engine, orphan)
            strangers = [foreign(unique(f"stranger{i}")) for i in range(3)]
            with managed_resources() as scope:
                live = scope.docker.create(IMAGE, SLEEP, **OFFLINE)
                result = subprocess.run(
                    [sys.executable, "-m", "cleanroom", "sweep", "--yes"],
                    # A journal of its own: the orphan's rows are not there.
                    env=child_env(tmp_path / "elsewhere"),
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert result.returncode == 0, result.stdout + result.stderr
                assert container_exists(engine, live.id)
            assert all(container_exists(engine, s.id) for s in strangers)
            assert not container_exists(engine, orphan)
        finally:
            if container_exists(engine, orphan):
                engine.api.remove_container(orphan, force=True)


class TestXdist:
    def test_two_workers(
        self, pytester: pytest.Pytester, engine: Any, unique: Any
    ) -> None:
        """Under pytest-xdist -n 2, every worker's containers are removed."""
        mark = unique("xdist")
        pytester.makepyfile(
            test_many=f"""
            import pytest

            @pytest.mark.parametrize("n", range(6))
            def test_runs(cleanroom, n):
                container = cleanroom.docker.run(
                    {IMAGE!r}, ["sleep", "300"], network_mode="none",
                    labels={{"crtest": {mark!r}}},
                )
                container.reload()
                assert container.status == "running"
            """
        )
        result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=6)
        assert labelled(engine, f"crtest={mark}") == []


class TestCheck:
    def test_probe(self) -> None:
        """probe() names the engine's version."""
        assert docker_kind.CONTAINERS.probe().startswith("Docker ")

    def test_roundtrip(self, engine: Any) -> None:
        """roundtrip() creates a container and removes it."""
        before = {c.id for c in engine.containers.list(all=True)}
        with Scope("check") as scope:
            line = docker_kind.CONTAINERS.roundtrip(scope)
        assert line.startswith("created container ")
        assert {c.id for c in engine.containers.list(all=True)} == before

    def test_hints(self) -> None:
        """Each kind says how to delete its objects by hand."""
        resource = cleanroom.Resource("container", "web", {"id": "abc"})
        assert docker_kind.CONTAINERS.delete_hint(resource) == "docker rm -f abc"
        network = cleanroom.Resource("network", "net", {"id": "n1"})
        assert docker_kind.NETWORKS.delete_hint(network) == "docker network rm n1"
        volume = cleanroom.Resource("volume", "vol")
        assert docker_kind.VOLUMES.delete_hint(volume) == "docker volume rm vol"
        image = cleanroom.Resource("image", "app:1")
        assert docker_kind.IMAGES.delete_hint(image) == "docker rmi app:1"
