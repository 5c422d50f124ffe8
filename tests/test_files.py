"""
Tests of the ``path`` and ``tempdir`` kinds: scope.tempdir(), tempfile(),
track_path(), track_glob() and watch(), and the safety rules of deletion.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import pytest

from cleanroom import (
    CleanupError,
    Disposition,
    PolicyError,
    Registry,
    Resource,
    Scope,
    ScopeStateError,
    State,
    UnsafePathError,
    get_kind,
)
from cleanroom.kinds import files
from cleanroom.kinds.files import PATHS, TEMPDIRS


@attrs.define
class Sandbox:
    """Folders that stand in for the temporary, current and home directories."""

    base: Path
    tmp: Path
    cwd: Path
    home: Path
    outside: Path


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """Point the temporary, current and home directories into tmp_path."""
    for name in list(os.environ):
        if name.startswith("CLEANROOM_"):
            monkeypatch.delenv(name)
    base = tmp_path.resolve()
    box = Sandbox(
        base=base,
        tmp=base / "tmp",
        cwd=base / "work" / "cwd",
        home=base / "home",
        outside=base / "outside",
    )
    for folder in (box.tmp, box.cwd, box.home, box.outside):
        folder.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(box.tmp))
    monkeypatch.chdir(box.cwd)
    monkeypatch.setenv("HOME", str(box.home))
    return box


def make_tree(root: Path) -> Path:
    """Create a small tree of folders and files under *root*; return *root*."""
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("f")
    (root / "top.txt").write_text("top")
    return root


def only_kept(scope: Scope) -> list[str]:
    """Return the hints of the scope's kept resources."""
    return [d.hint or "" for d in scope.dispositions if d.state is State.KEPT]


class TestKinds:
    def test_names_and_aliases(self) -> None:
        """The kinds are registered under their singular and plural names."""
        assert get_kind("path") is PATHS
        assert get_kind("paths") is PATHS
        assert get_kind("tempdir") is TEMPDIRS
        assert get_kind("TempDirs") is TEMPDIRS

    def test_runtime_and_external(self) -> None:
        """Paths are runtime things that outlive the process."""
        for kind in (PATHS, TEMPDIRS):
            assert kind.category == "runtime"
            assert kind.external
            assert kind.concurrent

    def test_allowed_roots(self, sandbox: Sandbox) -> None:
        """The temporary and current directories are allowed roots by default."""
        roots = files.allowed_roots()
        assert str(sandbox.tmp) in roots
        assert str(sandbox.cwd) in roots
        assert files.allowed_roots(sandbox.outside)[0] == str(sandbox.outside)


class TestTempdir:
    def test_created_and_deleted_on_close(self, sandbox: Sandbox) -> None:
        """A private folder is made in the temp dir and deleted with its tree."""
        with Scope() as scope:
            path = scope.tempdir()
            assert path.is_dir()
            assert path.parent == sandbox.tmp
            assert path.name.startswith("cleanroom-")
            assert stat.S_IMODE(path.stat().st_mode) == 0o700
            make_tree(path)
        assert not path.exists()
        assert sandbox.tmp.is_dir()

    def test_prefix_suffix_and_dir(self, sandbox: Sandbox) -> None:
        """prefix, suffix and dir work as for tempfile.mkdtemp."""
        with Scope() as scope:
            path = scope.tempdir(prefix="pre-", suffix=".d", dir=sandbox.outside)
            assert path.parent == sandbox.outside
            assert path.name.startswith("pre-")
            assert path.name.endswith(".d")
        assert not path.exists()

    def test_relative_dir(self, sandbox: Sandbox) -> None:
        """A relative dir is relative to the current directory; the path is absolute."""
        (sandbox.cwd / "here").mkdir()
        with Scope() as scope:
            path = scope.tempdir(dir="here")
            assert path.is_absolute()
            assert path.parent == sandbox.cwd / "here"
        assert not path.exists()

    def test_names_differ(self, sandbox: Sandbox) -> None:
        """Many temporary directories get distinct names and are all deleted."""
        with Scope() as scope:
            paths = [scope.tempdir() for _ in range(50)]
            for path in paths:
                make_tree(path)
            assert len(set(paths)) == 50
        assert not any(path.exists() for path in paths)
        assert list(sandbox.tmp.iterdir()) == []

    def test_already_deleted(self, sandbox: Sandbox) -> None:
        """A directory deleted by the body counts as cleaned."""
        with Scope() as scope:
            path = scope.tempdir()
            path.rmdir()
        assert scope.dispositions == ()

    def test_resource_identity(self, sandbox: Sandbox) -> None:
        """The resource records the path and its root, as JSON-friendly strings."""
        with Scope(level="none") as scope:
            path = scope.tempdir()
            (resource,) = scope.resources()
        assert resource.kind == "tempdir"
        assert resource.declarative
        assert dict(resource.identity) == {"path": str(path), "root": str(sandbox.tmp)}
        assert TEMPDIRS.exists(resource)
        TEMPDIRS.delete(resource, wait=True)
        assert not TEMPDIRS.exists(resource)

    def test_bad_arguments(self, sandbox: Sandbox) -> None:
        """Wrong types, separators and unsafe folders fail; nothing is tracked."""
        with Scope(level="none") as scope:
            with pytest.raises(TypeError, match="prefix must be a str"):
                scope.tempdir(prefix=3)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="separator"):
                scope.tempdir(suffix="a/b")
            with pytest.raises(TypeError, match="dir must be"):
                scope.tempdir(dir=3)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="dir must not be empty"):
                scope.tempdir(dir="")
            with pytest.raises(FileNotFoundError):
                scope.tempdir(dir=sandbox.base / "missing")
            with pytest.raises(UnsafePathError, match="filesystem root"):
                scope.tempdir(dir="/")
            with pytest.raises(UnsafePathError, match="home directory"):
                scope.tempdir(dir=sandbox.home)
            assert scope.resources() == []
        assert list(sandbox.tmp.iterdir()) == []


class FailingListener:
    """A registry listener that fails when told a path was created."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def intent(self, scope: Scope, resource: Resource) -> None:
        pass

    def created(self, scope: Scope, resource: Resource) -> None:
        self.paths.append(resource.identity["path"])
        raise RuntimeError("journal down")

    def settled(self, scope: Scope, disposition: Disposition) -> None:
        pass


class TestRegistrationFailure:
    @pytest.mark.parametrize("helper", ["tempdir", "tempfile"])
    def test_removed_when_it_cannot_be_tracked(
        self, sandbox: Sandbox, helper: str
    ) -> None:
        """A new temporary path whose registration fails is removed at once."""
        listener = FailingListener()
        registry = Registry.default()
        registry.subscribe(listener)
        try:
            with Scope() as scope, pytest.raises(RuntimeError, match="journal down"):
                getattr(scope, helper)()
        finally:
            registry.unsubscribe(listener)
        assert len(listener.paths) == 1
        assert list(sandbox.tmp.iterdir()) == []


class TestTempfile:
    def test_created_and_deleted_on_close(self, sandbox: Sandbox) -> None:
        """A temporary file is empty, private, and deleted on close."""
        with Scope() as scope:
            path = scope.tempfile(suffix=".json")
            assert path.is_file()
            assert path.read_bytes() == b""
            assert path.suffix == ".json"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            path.write_text("{}")
        assert not path.exists()

    def test_kind_is_path(self, sandbox: Sandbox) -> None:
        """Temporary files are of kind path; its hint is an rm command."""
        with pytest.raises(RuntimeError), Scope() as scope:
            path = scope.tempfile()
            raise RuntimeError
        (kept,) = scope.dispositions
        assert kept.resource.kind == "path"
        assert kept.hint == f"rm -rf -- {path}"
        assert path.exists()


class TestTrackPath:
    def test_file_and_tree(self, sandbox: Sandbox) -> None:
        """Tracked files and directory trees are deleted on close."""
        tree = make_tree(sandbox.tmp / "tree")
        single = sandbox.cwd / "out.txt"
        single.write_text("x")
        with Scope() as scope:
            assert scope.track_path(tree) == tree
            assert scope.track_path(str(single)) == single
        assert not tree.exists()
        assert not single.exists()

    def test_relative_path(self, sandbox: Sandbox) -> None:
        """A relative path is relative to the current directory."""
        with Scope() as scope:
            path = scope.track_path("build")
            assert path == sandbox.cwd / "build"
            make_tree(path)
        assert not path.exists()

    def test_missing_and_later_created(self, sandbox: Sandbox) -> None:
        """A path may be tracked before it exists; a path never created is fine."""
        later = sandbox.tmp / "later"
        never = sandbox.tmp / "never"
        with Scope() as scope:
            scope.track_path(later)
            scope.track_path(never)
            later.write_text("made")
        assert not later.exists()
        assert scope.dispositions == ()

    def test_explicit_root(self, sandbox: Sandbox) -> None:
        """root= allows a path outside the default roots and is stored."""
        target = sandbox.outside / "data"
        make_tree(target)
        with Scope() as scope:
            scope.track_path(target, root=sandbox.outside)
            (resource,) = scope.resources()
            assert resource.identity["root"] == str(sandbox.outside)
        assert not target.exists()
        assert sandbox.outside.is_dir()

    def test_symlink_to_outside_removes_link_only(self, sandbox: Sandbox) -> None:
        """Deleting a link to a folder outside the roots removes the link alone."""
        precious = make_tree(sandbox.outside / "precious")
        link = sandbox.tmp / "link"
        link.symlink_to(precious, target_is_directory=True)
        file_link = sandbox.tmp / "file-link"
        file_link.symlink_to(precious / "top.txt")
        with Scope() as scope:
            scope.track_path(link)
            scope.track_path(file_link)
        assert not os.path.lexists(link)
        assert not os.path.lexists(file_link)
        assert (precious / "a" / "b" / "f.txt").read_text() == "f"
        assert (precious / "top.txt").read_text() == "top"

    def test_symlink_inside_tree_is_not_followed(self, sandbox: Sandbox) -> None:
        """A link inside a deleted tree goes; what it points to stays."""
        precious = make_tree(sandbox.outside / "precious")
        tree = make_tree(sandbox.tmp / "tree")
        (tree / "a" / "escape").symlink_to(precious, target_is_directory=True)
        (tree / "file-escape").symlink_to(precious / "top.txt")
        with Scope() as scope:
            scope.track_path(tree)
        assert not tree.exists()
        assert (precious / "a" / "b" / "f.txt").read_text() == "f"
        assert (precious / "top.txt").read_text() == "top"

    def test_released_tree_with_symlink_as_root_of_tree(self, sandbox: Sandbox) -> None:
        """A link that replaced a tracked folder is removed as a link."""
        precious = make_tree(sandbox.outside / "precious")
        with Scope() as scope:
            path = scope.track_path(sandbox.tmp / "tree")
            path.symlink_to(precious, target_is_directory=True)
        assert not os.path.lexists(path)
        assert (precious / "top.txt").exists()

    def test_nested_paths_cleaned_together(self, sandbox: Sandbox) -> None:
        """A tree and paths inside it, cleaned concurrently, raise nothing."""
        with Scope() as scope:
            outer = scope.tempdir()
            make_tree(outer)
            for index in range(20):
                inner = outer / f"inner{index}"
                make_tree(inner)
                scope.track_path(inner)
            scope.track_path(outer / "a")
        assert not outer.exists()


READ_ONLY_SCRIPT = """
import os, sys
from pathlib import Path
from cleanroom import Scope

with Scope() as scope:
    path = scope.tempdir(dir=sys.argv[1])
    (path / "ro" / "deeper").mkdir(parents=True)
    (path / "ro" / "deeper" / "file").write_text("x")
    (path / "ro" / "link").symlink_to(sys.argv[2], target_is_directory=True)
    os.chmod(path / "ro" / "deeper", 0o500)
    os.chmod(path / "ro", 0o000)
print(path.exists())
"""


def unprivileged() -> list[str]:
    """Return a command prefix under which file permissions bind, even for root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root ignores file permissions, and setpriv is missing")
    # Without these capabilities root is bound by permission bits as others are.
    return [
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search,-fowner",
        "--inh-caps=-all",
    ]


class TestPermissions:
    def test_read_only_folders_inside(self, tmp_path: Path) -> None:
        """Read-only folders in a tree are made writable so that it can go."""
        shared = Path(tempfile.mkdtemp(prefix="cleanroom-test-"))
        try:
            shared.chmod(0o777)
            elsewhere = shared / "elsewhere"
            elsewhere.mkdir(mode=0o555)
            elsewhere.chmod(0o555)
            result = subprocess.run(
                [
                    *unprivileged(),
                    sys.executable,
                    "-c",
                    READ_ONLY_SCRIPT,
                    str(shared),
                    str(elsewhere),
                ],
                cwd=shared,
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout == "False\n"
            assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o555
            assert [p.name for p in shared.iterdir()] == ["elsewhere"]
        finally:
            for folder, _, _ in os.walk(shared):
                Path(folder).chmod(0o700)
            shutil.rmtree(shared)


class TestHandles:
    def test_keep_with_returned_equal_and_string(self, sandbox: Sandbox) -> None:
        """keep() accepts the returned path, an equal Path and its string."""
        with Scope() as scope:
            first = scope.tempdir()
            second = scope.tempdir()
            third = scope.track_path("rel")
            third.mkdir()
            scope.keep(first, "look at it")
            scope.keep(Path(str(second)))
            scope.keep("rel")
        assert first.exists()
        assert second.exists()
        assert third.exists()
        hints = only_kept(scope)
        assert f"rm -rf -- {first}" in hints
        assert f"rm -rf -- {third}" in hints
        reasons = [d.reason for d in scope.dispositions]
        assert "look at it" in reasons

    def test_release_deletes_now(self, sandbox: Sandbox) -> None:
        """release() deletes the path at once and stops tracking it."""
        with Scope() as scope:
            path = scope.tempdir()
            scope.release(str(path))
            assert not path.exists()
            assert scope.resources() == []
            with pytest.raises(ScopeStateError):
                scope.release(path)

    def test_forget_leaves_it(self, sandbox: Sandbox) -> None:
        """forget() stops tracking the path without deleting it."""
        with Scope() as scope:
            path = scope.tempfile()
            scope.forget(Path(str(path)))
        assert path.exists()
        assert [d.state for d in scope.dispositions] == [State.FORGOTTEN]

    def test_untracked_path(self, sandbox: Sandbox) -> None:
        """An untracked path is no handle."""
        with Scope() as scope:
            scope.tempdir()
            with pytest.raises(ScopeStateError, match="not tracked"):
                scope.keep(sandbox.tmp / "other")

    def test_resource_handle(self, sandbox: Sandbox) -> None:
        """The Resource of a path is a handle too."""
        with Scope() as scope:
            path = scope.tempdir()
            (resource,) = scope.resources()
            scope.keep(resource)
        assert path.exists()


class TestOutcome:
    def test_failed_body_keeps_and_reports(self, sandbox: Sandbox) -> None:
        """A failed body keeps its paths, each reported with an rm command."""
        with pytest.raises(ZeroDivisionError), Scope() as scope:
            path = scope.tempdir()
            _ = 1 / 0
        assert path.exists()
        (kept,) = scope.dispositions
        assert kept.state is State.KEPT
        assert kept.hint == f"rm -rf -- {path}"
        assert "on_failure" in (kept.reason or "")

    def test_force_cleans_after_failure(self, sandbox: Sandbox) -> None:
        """force=True deletes a failed body's paths."""
        with pytest.raises(ZeroDivisionError), Scope(force=True) as scope:
            path = scope.tempdir()
            _ = 1 / 0
        assert not path.exists()

    def test_on_failure_clean(self, sandbox: Sandbox) -> None:
        """on_failure='clean' deletes a failed body's paths."""
        with pytest.raises(ZeroDivisionError), Scope(on_failure="clean") as scope:
            path = scope.tempfile()
            _ = 1 / 0
        assert not path.exists()

    def test_level_none_keeps(self, sandbox: Sandbox) -> None:
        """Level none keeps paths even after a passed body."""
        with Scope(level="none") as scope:
            path = scope.tempdir()
        assert path.exists()
        (kept,) = scope.dispositions
        assert "level 'none'" in (kept.reason or "")

    def test_level_pods_cleans(self, sandbox: Sandbox) -> None:
        """Level pods cleans paths: they are runtime things."""
        with Scope(level="pods") as scope:
            path = scope.tempdir()
        assert not path.exists()

    def test_interrupted_cleans(self, sandbox: Sandbox) -> None:
        """An interrupted body cleans its paths."""
        with pytest.raises(KeyboardInterrupt), Scope() as scope:
            path = scope.tempdir()
            raise KeyboardInterrupt
        assert not path.exists()


class TestAsync:
    @pytest.mark.anyio
    async def test_aclose(self, sandbox: Sandbox) -> None:
        """await scope.aclose() deletes paths on asyncio and trio."""
        scope = Scope()
        path = make_tree(scope.tempdir())
        other = scope.tempfile()
        await scope.aclose()
        assert not path.exists()
        assert not other.exists()

    @pytest.mark.anyio
    async def test_async_with_watch(self, sandbox: Sandbox) -> None:
        """async with deletes what appeared under a watched root."""
        async with Scope() as scope:
            scope.watch(sandbox.cwd)
            make_tree(sandbox.cwd / "new")
        assert list(sandbox.cwd.iterdir()) == []

    @pytest.mark.anyio
    async def test_async_refusal_is_reported(self, sandbox: Sandbox) -> None:
        """An unsafe record fails its cleanup under aclose too; nothing is deleted."""
        victim = sandbox.outside / "victim"
        victim.write_text("precious")
        scope = Scope()
        scope.track("path", str(victim))
        with pytest.raises(CleanupError) as info:
            await scope.aclose()
        assert info.group_contains(UnsafePathError, match="outside every allowed root")
        assert victim.read_text() == "precious"


class TestRefusals:
    def test_filesystem_root(self) -> None:
        """/ is refused."""
        with Scope(level="none") as scope:
            with pytest.raises(UnsafePathError, match="filesystem root"):
                scope.track_path("/")
            assert scope.resources() == []

    def test_real_home(self) -> None:
        """The real home directory is refused."""
        with Scope(level="none") as scope:
            with pytest.raises(UnsafePathError, match="home directory"):
                scope.track_path(Path.home())
            assert scope.resources() == []
        assert Path.home().is_dir()

    def test_home_and_its_ancestors(self, sandbox: Sandbox) -> None:
        """The home directory and its ancestors are refused, and are no roots."""
        with Scope(level="none") as scope:
            with pytest.raises(UnsafePathError, match="it is the home directory"):
                scope.track_path(sandbox.home)
            with pytest.raises(UnsafePathError, match="contains the home directory"):
                scope.track_path(sandbox.base)
            with pytest.raises(UnsafePathError, match="cannot be an allowed root"):
                scope.track_path(sandbox.home / "x", root=sandbox.base)
            assert scope.resources() == []
        assert sandbox.home.is_dir()

    def test_current_directory_and_ancestors(
        self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The current directory and its ancestors are refused."""
        deeper = sandbox.cwd / "deep" / "er"
        deeper.mkdir(parents=True)
        with Scope(level="none") as scope:
            with pytest.raises(UnsafePathError, match="it is the current directory"):
                scope.track_path(".")
            monkeypatch.chdir(deeper)
            with pytest.raises(UnsafePathError, match="contains the current directory"):
                scope.track_path(sandbox.cwd / "deep", root=sandbox.cwd)
            assert scope.resources() == []
        assert deeper.is_dir()

    def test_root_itself(self, sandbox: Sandbox) -> None:
        """An allowed root itself is refused: the temp dir and an explicit root."""
        with Scope(level="none") as scope:
            with pytest.raises(UnsafePathError, match="it is the allowed root"):
                scope.track_path(sandbox.tmp)
            with pytest.raises(UnsafePathError, match="it is the allowed root"):
                scope.track_path(sandbox.outside, root=sandbox.outside)
        assert sandbox.tmp.is_dir()
        assert sandbox.outside.is_dir()

    def test_ancestor_of_a_configured_root(
        self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A folder holding a configured allowed root is refused."""
        deep = sandbox.outside / "extra" / "deep"
        deep.mkdir(parents=True)
        monkeypatch.setenv(files.ENV_ALLOWED_ROOTS, str(deep))
        with (
            Scope(level="none") as scope,
            pytest.raises(UnsafePathError, match="contains the allowed root"),
        ):
            scope.track_path(sandbox.outside / "extra")
        assert deep.is_dir()

    def test_outside_every_root(self, sandbox: Sandbox) -> None:
        """A path outside every root is refused; the error names path and roots."""
        victim = sandbox.outside / "victim"
        victim.write_text("precious")
        with Scope(level="none") as scope, pytest.raises(UnsafePathError) as info:
            scope.track_path(victim)
        message = str(info.value)
        assert str(victim) in message
        assert "outside every allowed root" in message
        assert str(sandbox.tmp) in message
        assert str(sandbox.cwd) in message
        assert "CLEANROOM_ALLOWED_ROOTS" in message
        assert victim.read_text() == "precious"

    def test_symlinked_parent_pointing_outside(self, sandbox: Sandbox) -> None:
        """A path whose parent is a link out of the roots is refused."""
        victim = sandbox.outside / "victim"
        victim.write_text("precious")
        door = sandbox.tmp / "door"
        door.symlink_to(sandbox.outside, target_is_directory=True)
        with (
            Scope(level="none") as scope,
            pytest.raises(UnsafePathError, match="outside every allowed root"),
        ):
            scope.track_path(door / "victim")
        assert victim.read_text() == "precious"

    @pytest.mark.parametrize("how", ["watch", "track_glob"])
    def test_linked_root_pointing_outside(self, sandbox: Sandbox, how: str) -> None:
        """A watched root that is a link out of the allowed roots is refused."""
        victim = sandbox.outside / "victim"
        door = sandbox.tmp / "door"
        door.symlink_to(sandbox.outside, target_is_directory=True)
        with Scope() as scope:
            with pytest.raises(UnsafePathError) as info:
                if how == "watch":
                    scope.watch(door)
                else:
                    scope.track_glob("*", door)
            victim.write_text("appeared later")
            assert scope.resources() == []
        assert victim.read_text() == "appeared later"
        message = str(info.value)
        assert f"it is a link to {str(sandbox.outside)!r}" in message
        assert "outside every allowed root" in message
        assert repr(str(sandbox.tmp)) in message

    def test_linked_root_pointing_inside(self, sandbox: Sandbox) -> None:
        """A link to a directory inside the allowed roots is resolved once."""
        real = sandbox.tmp / "real"
        real.mkdir()
        link = sandbox.cwd / "link"
        link.symlink_to(real, target_is_directory=True)
        with Scope() as scope:
            resource = scope.watch(link)
            (real / "new.txt").write_text("x")
        assert resource.identity["root"] == str(real)
        assert list(real.iterdir()) == []
        assert link.is_symlink()

    def test_tilde_is_the_home_directory(self, sandbox: Sandbox) -> None:
        """A path starting with ~ is expanded; ~ itself stays refused."""
        with Scope(level="none") as scope:
            with pytest.raises(UnsafePathError, match="it is the home directory"):
                scope.track_path("~")
            with pytest.raises(UnsafePathError, match="outside every allowed root"):
                scope.track_path("~/notes.txt")
            assert scope.resources() == []
        assert not (sandbox.cwd / "~").exists()
        allowed = sandbox.home / "work"
        allowed.mkdir()
        note = allowed / "notes.txt"
        note.write_text("x")
        with Scope() as scope:
            assert scope.track_path("~/work/notes.txt", root="~/work") == note
        assert not note.exists()

    def test_dotdot_escape(self, sandbox: Sandbox) -> None:
        """A path that climbs out of a root with .. is refused."""
        victim = sandbox.outside / "victim"
        victim.write_text("precious")
        sneaky = f"{sandbox.tmp}/x/../../outside/victim"
        with (
            Scope(level="none") as scope,
            pytest.raises(UnsafePathError, match="outside every allowed root"),
        ):
            scope.track_path(sneaky)
        assert victim.exists()

    def test_bad_input(self, sandbox: Sandbox) -> None:
        """Wrong types and empty or NUL-holding paths fail with clear errors."""
        with Scope(level="none") as scope:
            with pytest.raises(TypeError, match="path must be a str"):
                scope.track_path(3)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="not bytes"):
                scope.track_path(b"/tmp/x")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="must not be empty"):
                scope.track_path("")
            with pytest.raises(ValueError, match="NUL"):
                scope.track_path("a\0b")
            with pytest.raises(TypeError, match="root must be a str"):
                scope.track_path("x", root=3)  # type: ignore[arg-type]
            with pytest.raises(UnsafePathError, match="cannot be an allowed root"):
                scope.track_path("/etc/hostname", root="/")
            assert scope.resources() == []


class TestDeleteTimeChecks:
    def test_parent_swapped_for_link_after_tracking(self, sandbox: Sandbox) -> None:
        """A parent replaced by a link out of the root is caught when deleting."""
        folder = sandbox.tmp / "folder"
        folder.mkdir()
        victim = sandbox.outside / "victim"
        victim.write_text("precious")
        with pytest.raises(CleanupError) as info, Scope() as scope:
            scope.track_path(folder / "victim")
            folder.rmdir()
            folder.symlink_to(sandbox.outside, target_is_directory=True)
        assert info.group_contains(UnsafePathError, match="outside every allowed root")
        assert victim.read_text() == "precious"
        (failed,) = scope.dispositions
        assert failed.state is State.FAILED
        # No command that would follow the link out of the root is suggested.
        assert failed.hint is not None
        assert failed.hint.startswith("nothing — ")
        assert "outside every allowed root" in failed.hint

    def test_untrusted_records(self, sandbox: Sandbox) -> None:
        """Records that name unsafe paths are refused by the kind itself."""
        victim = sandbox.outside / "victim"
        victim.write_text("precious")
        records = [
            Resource("path", str(victim)),
            Resource("path", "x", {"path": str(victim), "root": str(sandbox.tmp)}),
            Resource("path", "x", {"path": str(victim), "root": "/"}),
            Resource("path", "x", {"path": str(sandbox.tmp), "root": str(sandbox.tmp)}),
            Resource(
                "path", "x", {"path": str(sandbox.home), "root": str(sandbox.base)}
            ),
            Resource("path", "x", {"path": "/", "root": str(sandbox.tmp)}),
        ]
        for record in records:
            with pytest.raises(UnsafePathError):
                PATHS.delete(record, wait=True)
        assert victim.read_text() == "precious"
        assert sandbox.tmp.is_dir()
        assert sandbox.home.is_dir()

    def test_bad_records(self, sandbox: Sandbox) -> None:
        """Records without a usable path fail with a clear error."""
        with pytest.raises(ValueError, match="absolute path"):
            PATHS.delete(Resource("path", "relative"), wait=True)
        hint = PATHS.delete_hint(Resource("path", "relative"))
        assert hint.startswith("nothing — ")
        assert "absolute path" in hint
        with pytest.raises(ValueError, match="absolute root"):
            PATHS.delete(
                Resource("path", "x", {"path": str(sandbox.tmp / "a"), "root": 3}),
                wait=True,
            )

    def test_track_by_name(self, sandbox: Sandbox) -> None:
        """scope.track('paths', name) deletes the path its name gives."""
        target = make_tree(sandbox.tmp / "named")
        with Scope() as scope:
            scope.track("paths", str(target))
        assert not target.exists()

    def test_current_directory_inside_at_delete(
        self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A folder that holds the current directory when deleted is left alone."""
        with pytest.raises(CleanupError) as info, Scope() as scope:
            path = scope.tempdir()
            (path / "sub").mkdir()
            monkeypatch.chdir(path / "sub")
        assert info.group_contains(UnsafePathError, match="current directory")
        assert path.is_dir()
        # From another directory, the command is right.
        (failed,) = scope.dispositions
        assert failed.hint == f"rm -rf -- {path}"


class TestConfiguredRoots:
    def test_environment(
        self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """CLEANROOM_ALLOWED_ROOTS adds roots, separated by os.pathsep."""
        other = sandbox.base / "other"
        other.mkdir()
        monkeypatch.setenv(
            files.ENV_ALLOWED_ROOTS, f"{sandbox.base / 'none'}{os.pathsep}{other}"
        )
        target = make_tree(other / "t")
        with Scope() as scope:
            scope.track_path(target)
        assert not target.exists()

    def test_pyproject(self, sandbox: Sandbox) -> None:
        """allowed_roots in [tool.cleanroom] adds roots relative to pyproject.toml."""
        (sandbox.cwd / "pyproject.toml").write_text(
            '[tool.cleanroom]\nallowed_roots = ["../../outside"]\n'
        )
        target = make_tree(sandbox.outside / "t")
        with Scope() as scope:
            scope.track_path(target)
        assert not target.exists()

    def test_pyproject_bad_value(self, sandbox: Sandbox) -> None:
        """A bad allowed_roots value fails with a PolicyError."""
        (sandbox.cwd / "pyproject.toml").write_text(
            "[tool.cleanroom]\nallowed_roots = 3\n"
        )
        with (
            Scope(level="none") as scope,
            pytest.raises(PolicyError, match="allowed_roots"),
        ):
            scope.track_path("x")

    def test_dangerous_configured_root(
        self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A configured root of / or home is an error, not a licence."""
        for value in ("/", str(sandbox.home)):
            monkeypatch.setenv(files.ENV_ALLOWED_ROOTS, value)
            with (
                Scope(level="none") as scope,
                pytest.raises(UnsafePathError, match="cannot be an allowed root"),
            ):
                scope.track_path(sandbox.home / "x")


class TestTrackGlob:
    def test_new_matches_only(self, sandbox: Sandbox) -> None:
        """Only matches that appeared after the call are deleted."""
        root = sandbox.cwd
        old = root / "old.log"
        old.write_text("old")
        with Scope() as scope:
            resource = scope.track_glob("*.log", root)
            assert isinstance(resource, Resource)
            (root / "new.log").write_text("new")
            (root / "new.txt").write_text("other")
            make_tree(root / "dir.log")
        assert old.exists()
        assert not (root / "new.log").exists()
        assert not (root / "dir.log").exists()
        assert (root / "new.txt").exists()
        assert root.is_dir()

    def test_recursive_pattern(self, sandbox: Sandbox) -> None:
        """** matches any number of folders, and pre-existing folders stay."""
        root = sandbox.tmp
        (root / "a" / "b").mkdir(parents=True)
        (root / "a" / "keep.log").write_text("old")
        with Scope() as scope:
            scope.track_glob("**/*.log", root)
            (root / "top.log").write_text("x")
            (root / "a" / "b" / "deep.log").write_text("x")
            (root / "a" / "b" / "deep.txt").write_text("x")
        assert not (root / "top.log").exists()
        assert not (root / "a" / "b" / "deep.log").exists()
        assert (root / "a" / "keep.log").exists()
        assert (root / "a" / "b" / "deep.txt").exists()

    def test_does_not_enter_links(self, sandbox: Sandbox) -> None:
        """Links to folders outside are not searched for matches."""
        root = sandbox.tmp
        (root / "door").symlink_to(sandbox.outside, target_is_directory=True)
        with Scope() as scope:
            scope.track_glob("*/*.log", root)
            (sandbox.outside / "precious.log").write_text("precious")
        assert (sandbox.outside / "precious.log").exists()

    def test_kept_with_hint(self, sandbox: Sandbox) -> None:
        """A kept glob's hint removes exactly the new matches."""
        root = sandbox.tmp
        with Scope() as scope:
            resource = scope.track_glob("*.tmp", root)
            (root / "a.tmp").write_text("x")
            (root / "b c.tmp").write_text("x")
            scope.keep(resource)
        (kept,) = scope.dispositions
        assert kept.hint == f"rm -rf -- {root / 'a.tmp'} '{root / 'b c.tmp'}'"
        assert PATHS.describe(resource) == f"new matches of '*.tmp' under '{root}'"
        assert PATHS.exists(resource)

    def test_bad_patterns(self, sandbox: Sandbox) -> None:
        """Bad patterns and roots fail at once; nothing is tracked."""
        with Scope(level="none") as scope:
            with pytest.raises(TypeError, match="pattern must be a str"):
                scope.track_glob(3, sandbox.tmp)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="empty"):
                scope.track_glob("", sandbox.tmp)
            with pytest.raises(ValueError, match="relative"):
                scope.track_glob("/etc/*", sandbox.tmp)
            with pytest.raises(ValueError, match=r"\.\."):
                scope.track_glob("../*", sandbox.tmp)
            with pytest.raises(ValueError, match="root itself"):
                scope.track_glob("./", sandbox.tmp)
            with pytest.raises(FileNotFoundError):
                scope.track_glob("*", sandbox.base / "missing")
            with pytest.raises(NotADirectoryError):
                scope.track_glob("*", scope.tempfile())
            with pytest.raises(UnsafePathError):
                scope.track_glob("*", "/")
            assert [r.kind for r in scope.resources()] == ["path"]


class TestWatch:
    def test_everything_new(self, sandbox: Sandbox) -> None:
        """Without patterns, every new entry goes and every old one stays."""
        root = sandbox.cwd
        make_tree(root)
        with Scope() as scope:
            scope.watch(root)
            (root / "top.txt").write_text("changed")
            (root / "a" / "b" / "new.txt").write_text("new")
            make_tree(root / "a" / "fresh")
            (root / "fresh.txt").write_text("new")
        assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
            "a",
            "a/b",
            "a/b/f.txt",
            "top.txt",
        ]
        assert (root / "top.txt").read_text() == "changed"

    def test_links(self, sandbox: Sandbox) -> None:
        """Old links are not entered, new links are removed as links."""
        root = sandbox.tmp
        (root / "door").symlink_to(sandbox.outside, target_is_directory=True)
        with Scope() as scope:
            scope.watch(root)
            (sandbox.outside / "precious").write_text("precious")
            (root / "new-door").symlink_to(sandbox.outside, target_is_directory=True)
        assert (sandbox.outside / "precious").exists()
        assert (root / "door").is_symlink()
        assert not os.path.lexists(root / "new-door")

    def test_patterns(self, sandbox: Sandbox) -> None:
        """With patterns, only new matching entries go."""
        root = sandbox.tmp
        with Scope() as scope:
            scope.watch(root, ["*.json", "cache/*"])
            (root / "a.json").write_text("x")
            (root / "a.txt").write_text("x")
            (root / "cache").mkdir()
            (root / "cache" / "entry").write_text("x")
        assert sorted(p.name for p in root.iterdir()) == ["a.txt"]

    def test_root_is_never_deleted(self, sandbox: Sandbox) -> None:
        """A watch never deletes its root, whatever the patterns."""
        root = sandbox.tmp / "root"
        root.mkdir()
        with Scope() as scope:
            scope.watch(root, ["**"])
            (root / "x").write_text("x")
        assert root.is_dir()
        assert list(root.iterdir()) == []

    def test_resource(self, sandbox: Sandbox) -> None:
        """A watch is a path resource whose snapshot is stored as strings."""
        (sandbox.tmp / "old").write_text("x")
        with Scope(level="none") as scope:
            resource = scope.watch(sandbox.tmp, ["*"])
        assert resource.kind == "path"
        assert resource.identity["root"] == str(sandbox.tmp)
        assert resource.identity["patterns"] == ["*"]
        assert resource.identity["before"] == ["old"]
        assert (
            PATHS.describe(resource) == f"new paths matching '*' under '{sandbox.tmp}'"
        )
        assert not PATHS.exists(resource)
        assert PATHS.delete_hint(resource).startswith("nothing — no new path")

    def test_bad_arguments(self, sandbox: Sandbox) -> None:
        """Bad roots and patterns fail at once; nothing is tracked."""
        with Scope(level="none") as scope:
            with pytest.raises(TypeError, match="sequence of strings"):
                scope.watch(sandbox.tmp, "*.json")
            with pytest.raises(ValueError, match="must not be empty"):
                scope.watch(sandbox.tmp, [])
            with pytest.raises(TypeError, match="pattern must be a str"):
                scope.watch(sandbox.tmp, [3])  # type: ignore[list-item]
            with pytest.raises(ValueError, match=r"\.\."):
                scope.watch(sandbox.tmp, ["a/../../x"])
            with pytest.raises(TypeError, match="root must be"):
                scope.watch(None)  # type: ignore[arg-type]
            with pytest.raises(UnsafePathError, match="home directory"):
                scope.watch(sandbox.home)
            assert scope.resources() == []

    def test_failed_body_keeps_new_entries(self, sandbox: Sandbox) -> None:
        """A failed body keeps what appeared; the hint lists it."""
        with pytest.raises(OSError, match="boom"), Scope() as scope:
            scope.watch(sandbox.tmp)
            (sandbox.tmp / "new").write_text("x")
            raise OSError("boom")
        (kept,) = scope.dispositions
        assert kept.hint == f"rm -rf -- {sandbox.tmp / 'new'}"
        assert (sandbox.tmp / "new").exists()


class TestSeed000:
    """The user story of seed 000: a chat service's workspace litter."""

    PATTERNS = (
        ".icotes_tmp*",
        ".icotes/chat_history/session_*.meta.json",
        ".icotes/chat_history/*_session-*.jsonl",
    )

    def litter(self, workspace: Path) -> list[Path]:
        """Create what one test run of the chat service leaves behind."""
        tmp = workspace / ".icotes_tmp4f2a"
        (tmp / "files").mkdir(parents=True)
        (tmp / "files" / "x.py").write_text("print()")
        history = workspace / ".icotes" / "chat_history"
        history.mkdir(parents=True, exist_ok=True)
        meta = history / "session_123.meta.json"
        meta.write_text("{}")
        log = history / "chat_session-123.jsonl"
        log.write_text("{}\n")
        return [tmp, meta, log]

    def test_watch_existing_workspace(self, sandbox: Sandbox) -> None:
        """watch() removes the run's litter and keeps the user's own files."""
        workspace = sandbox.cwd / "workspace"
        history = workspace / ".icotes" / "chat_history"
        history.mkdir(parents=True)
        own = history / "session_mine.meta.json"
        own.write_text("{}")
        leftover = workspace / ".icotes_tmp_before"
        leftover.mkdir()
        notes = workspace / "notes.md"
        with Scope() as scope:
            scope.watch(workspace, self.PATTERNS)
            litter = self.litter(workspace)
            notes.write_text("mine")
        assert not any(path.exists() for path in litter)
        assert own.exists()
        assert leftover.exists()
        assert notes.exists()
        assert history.is_dir()

    def test_watch_fresh_workspace(self, sandbox: Sandbox) -> None:
        """Folders the run created only for its litter go with it."""
        workspace = sandbox.cwd / "workspace"
        workspace.mkdir()
        with Scope() as scope:
            scope.watch(workspace, self.PATTERNS)
            self.litter(workspace)
        assert list(workspace.iterdir()) == []

    def test_track_glob_per_pattern(self, sandbox: Sandbox) -> None:
        """One track_glob per pattern does the same."""
        workspace = sandbox.cwd / "workspace"
        (workspace / ".icotes" / "chat_history").mkdir(parents=True)
        with Scope() as scope:
            for pattern in self.PATTERNS:
                scope.track_glob(pattern, workspace)
            litter = self.litter(workspace)
        assert not any(path.exists() for path in litter)
        assert (workspace / ".icotes" / "chat_history").is_dir()

    def test_failed_test_keeps_litter_with_hint(self, sandbox: Sandbox) -> None:
        """A failed test keeps the litter for debugging, with how to remove it."""
        workspace = sandbox.cwd / "workspace"
        workspace.mkdir()
        with pytest.raises(AssertionError), Scope() as scope:
            scope.watch(workspace, self.PATTERNS)
            litter = self.litter(workspace)
            raise AssertionError
        (kept,) = scope.dispositions
        assert all(path.exists() for path in litter)
        assert kept.hint is not None
        assert kept.hint.startswith("rm -rf -- ")
        for path in litter:
            assert str(path) in kept.hint
