"""
Tests of command kinds against real programs: ``tests/slowvm.py`` (a slow VM
manager whose creates outlive their caller and whose first delete fails) and
tmux sessions on a private socket.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio
import pytest

import cleanroom
from cleanroom import CleanupError, Scope
from cleanroom._core._session import current_owner
from cleanroom._crash._journal import Journal
from cleanroom._crash._sweep import PrefixRule, sweep
from cleanroom.exceptions import (
    CommandError,
    CommandTimeoutError,
    PolicyError,
    ScopeStateError,
)
from cleanroom.kinds.commands import (
    CommandKind,
    Template,
    load_project_kinds,
    parse_json,
    parse_lines,
    run_command,
)
from procs import running
from vms import SlowVM, Tmux

TESTS = Path(__file__).parent

# A name a shell would run as three commands; as one argument it is harmless.
# The canary folder is what "rm -rf" would remove if a shell ever saw it.
CANARY_PREFIX = "cleanroomcanary"


def scope(**policy: object) -> Scope:
    """A scope that cleans whatever the outcome, unless told otherwise."""
    settings: dict[str, object] = {"level": "all", "timeout": 60}
    settings.update(policy)
    return Scope("commands-test", **settings)  # type: ignore[arg-type]


@pytest.fixture
def canary() -> Path:
    """A folder that must survive; its path has no dot, so tmux takes it too."""
    folder = Path(tempfile.mkdtemp(prefix=CANARY_PREFIX))
    (folder / "alive").write_text("yes")
    yield folder
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


class TestTemplate:
    def test_fields_are_substituted_per_argument(self) -> None:
        """Each argument is rendered on its own: spaces and ';' stay inside it."""
        template = Template(
            ["vmctl", "rm", "--zone={zone}", "{name}"], {"name", "zone"}
        )
        assert template.render({"name": "a b;c", "zone": "eu west"}) == [
            "vmctl",
            "rm",
            "--zone=eu west",
            "a b;c",
        ]

    def test_braces_are_escaped_by_doubling(self) -> None:
        """``{{`` and ``}}`` stand for literal braces (tmux formats need them)."""
        template = Template(["tmux", "ls", "-F", "#{{session_name}}"], {"name"})
        assert template.render({"name": "x"}) == ["tmux", "ls", "-F", "#{session_name}"]

    def test_unknown_field_names_the_valid_ones(self) -> None:
        """A typo fails at once, naming the argument and the valid fields."""
        with pytest.raises(
            PolicyError, match=r"\{nmae\}.*'\{nmae\}'.*valid fields: \{name\}, \{zone\}"
        ):
            Template(["vmctl", "rm", "{nmae}"], {"name", "zone"})

    @pytest.mark.parametrize(
        "argument",
        [
            "{name!r}",
            "{name:>10}",
            "{name.__class__}",
            "{name[0]}",
            "{}",
            "{0}",
            "{name",
        ],
    )
    def test_only_plain_fields(self, argument: str) -> None:
        """Conversions, format specs, attributes, indexes and positions are refused."""
        with pytest.raises(PolicyError, match=r"bad argument|unknown field"):
            Template(["vmctl", argument], {"name"})

    def test_the_program_is_literal(self) -> None:
        """A name never chooses the program that runs."""
        with pytest.raises(PolicyError, match="must be literal"):
            Template(["{name}", "rm"], {"name"})

    def test_a_shell_line_is_refused(self) -> None:
        """A command is a list of arguments; a string would invite a shell."""
        with pytest.raises(PolicyError, match="never a shell line"):
            CommandKind("vm-str", delete="orbctl delete {name}")  # type: ignore[arg-type]

    def test_a_missing_identity_field_is_named(self, slowvm: SlowVM) -> None:
        """Deleting a resource that lacks a field its command uses says which."""
        kind = CommandKind(
            "zoned", delete=["vmctl", "rm", "{zone}", "{name}"], fields=["zone"]
        )
        resource = cleanroom.Resource("zoned", "vm-1")
        with pytest.raises(PolicyError, match="needs zone"):
            kind.delete(resource, wait=False)

    def test_identity_fields_are_substituted(self, slowvm: SlowVM) -> None:
        """``scope.track(kind, name, zone=...)`` fills ``{zone}``."""
        kind = CommandKind(
            "zoned2",
            delete=["vmctl", "rm", "--zone", "{zone}", "{name}"],
            fields=["zone"],
        )
        resource = cleanroom.Resource("zoned2", "vm-1", {"zone": "eu-1"})
        assert kind.delete_hint(resource) == "vmctl rm --zone eu-1 vm-1"

    def test_names_that_look_like_options_are_refused(self, slowvm: SlowVM) -> None:
        """``--all`` would be read as an option by the program: refused."""
        kind = slowvm.kind()
        with scope() as s, pytest.raises(PolicyError, match="starts with '-'"):
            s.commands.create(kind, "--all")
        assert slowvm.log() == []

    def test_bad_values_name_the_valid_choices(self) -> None:
        """Bad parsers, categories and missing commands fail with the choices."""
        with pytest.raises(PolicyError, match="'json', 'lines'"):
            CommandKind("p", delete=["true"], parser="yaml")  # type: ignore[arg-type]
        with pytest.raises(PolicyError, match="'runtime', 'record'"):
            CommandKind("c", delete=["true"], category="vm")  # type: ignore[arg-type]
        with pytest.raises(PolicyError, match="no list command"):
            CommandKind("o", delete=["true"], orphan_prefixes=["test-"])
        with pytest.raises(TypeError, match="delete"):
            CommandKind("d")  # type: ignore[call-arg]


class TestRunCommand:
    def test_runs_without_a_shell(self, canary: Path) -> None:
        """Metacharacters reach the program as text."""
        text = f"x;rm -rf {canary};echo $(id) `id` && echo |"
        done = run_command(["printf", "%s", text], timeout=10)
        assert (done.returncode, done.stdout) == (0, text)
        assert (canary / "alive").exists()

    def test_timeout_ends_the_process_group(self, tmp_path: Path) -> None:
        """A command past its timeout is ended with its children."""
        tag = f"cleanroom-group-{os.getpid()}-{time.monotonic_ns()}"
        script = (
            "import subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)',"
            f" {tag!r}])\n"
            "time.sleep(60)\n"
        )
        began = time.monotonic()
        with pytest.raises(CommandTimeoutError, match=r"took longer than 0\.5 s"):
            run_command([sys.executable, "-c", script, tag], timeout=0.5)
        assert time.monotonic() - began < 10
        deadline = time.monotonic() + 5
        while running(tag) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running(tag) == []

    def test_a_background_child_does_not_block_the_output(self) -> None:
        """A daemon that keeps the output open does not hold the caller up."""
        done = run_command(["sh", "-c", "sleep 30 & echo started $!"], timeout=10)
        words = done.stdout.split()
        try:
            assert words[0] == "started"
        finally:
            os.kill(int(words[1]), signal.SIGKILL)

    def test_a_missing_program_is_a_command_error(self) -> None:
        """A program not on PATH is reported by name."""
        with pytest.raises(CommandError, match="cannot run no-such-program-x"):
            run_command(["no-such-program-x"], timeout=5)


class TestParsers:
    def test_lines(self) -> None:
        """One name per line; a tab adds the creation time."""
        assert parse_lines("a\n\nb c\t12.5\r\n") == [("a", None), ("b c", 12.5)]

    def test_json(self) -> None:
        """Names, or objects with a name and a creation time (number or ISO)."""
        listed = parse_json(
            '["a", {"name": "b", "created": 3}, '
            '{"name": "c", "created": "1970-01-01T00:00:10+00:00"}]'
        )
        assert listed == [("a", None), ("b", 3.0), ("c", 10.0)]

    def test_bad_json_shape_is_a_command_error(self, tmp_path: Path) -> None:
        """Output of an unexpected shape is reported with the command."""
        kind = CommandKind(
            "shape", delete=["true"], list=["printf", '{{"vms": []}}'], parser="json"
        )
        with pytest.raises(CommandError, match="cannot read the output of printf"):
            kind.listed()

    def test_a_function_parses(self, slowvm: SlowVM) -> None:
        """A callable parser reads any output."""
        kind = slowvm.kind(
            parser=lambda out: [
                line.split("\t")[0].upper() for line in out.splitlines()
            ]
        )
        slowvm.make("vm-a")
        assert kind.listed() == ["VM-A"]


class TestDelete:
    def test_a_failed_delete_is_retried(self, slowvm: SlowVM) -> None:
        """slowvm's first delete fails ("busy"); the retry deletes it."""
        kind = slowvm.kind()
        slowvm.make("vm-1")
        with scope() as s:
            s.track(kind.name, "vm-1")
        assert slowvm.names() == []
        assert slowvm.log("delete") == [["delete", "vm-1"], ["delete", "vm-1"]]

    def test_not_found_by_exit_code_is_success(self, slowvm: SlowVM) -> None:
        """Deleting what is gone succeeds when the exit code says "not found"."""
        kind = slowvm.kind(exists=None, list=None)
        with scope() as s:
            s.track(kind.name, "never-made")
        assert slowvm.log("delete") == [["delete", "never-made"]]

    def test_not_found_by_exists_is_success(self, slowvm: SlowVM) -> None:
        """Without a "not found" code, the exists command tells it is gone."""
        kind = slowvm.kind(not_found_codes=[])
        with scope() as s:
            s.track(kind.name, "never-made")
        assert slowvm.log("delete") == [["delete", "never-made"]]
        assert ["exists", "never-made"] in slowvm.log()

    def test_stderr_of_a_failed_delete_is_in_the_error(self, tmp_path: Path) -> None:
        """Every attempt failed: the error has the command, the status and stderr."""
        script = (
            "import sys; sys.stderr.write('quota exceeded for ' + sys.argv[1]); "
            "sys.exit(4)"
        )
        kind = CommandKind(
            f"broken-{os.getpid()}",
            delete=[sys.executable, "-c", script, "{name}"],
            retries=2,
            timeout=10,
        )
        cleanroom.register_kind(kind)
        try:
            with pytest.raises(CleanupError) as info, scope() as s:
                s.track(kind.name, "vm-9")
        finally:
            cleanroom.unregister_kind(kind)
        (error,) = info.value.exceptions
        assert isinstance(error, CommandError)
        assert error.returncode == 4
        assert error.stderr == "quota exceeded for vm-9"
        assert "exited with 4: quota exceeded for vm-9" in str(error)
        assert "3 attempts" in "".join(error.__notes__)

    def test_kept_things_are_reported_with_a_quoted_delete_command(
        self, slowvm: SlowVM, canary: Path
    ) -> None:
        """A failed body keeps the VM; the hint is the delete command, shell-quoted."""
        kind = slowvm.kind()
        name = f"x;rm -rf {canary}"
        slowvm.make(name)
        with pytest.raises(RuntimeError), scope(level="all", on_failure="keep") as s:
            s.track(kind.name, name)
            raise RuntimeError("test failed")
        (kept,) = s.dispositions
        assert kept.state is cleanroom.State.KEPT
        assert kept.hint == shlex.join(slowvm.argv("delete", name))
        assert shlex.split(kept.hint)[-1] == name
        assert slowvm.names() == [name]
        # The hint, run by a shell as a user would, deletes it (on the second try).
        for _ in range(2):
            subprocess.run(kept.hint, shell=True, check=False, capture_output=True)
        assert slowvm.names() == []
        assert (canary / "alive").exists()


class TestCreate:
    def test_create_then_clean(self, slowvm: SlowVM) -> None:
        """A create that finishes is tracked and deleted at the end."""
        kind = slowvm.kind()
        with scope() as s:
            resource = s.commands.create(kind.name, "vm-ok")
            assert slowvm.names() == ["vm-ok"]
            assert resource.name == "vm-ok"
            with Journal(Path(os.environ["CLEANROOM_JOURNAL"])) as journal:
                # Rows of this process only: xdist workers share the journal.
                (row,) = journal.rows(owner=current_owner().id, kinds=[kind.name])
            assert row.state == "created"
            with pytest.raises(ScopeStateError, match="not a reservation"):
                s.confirm(resource)
        assert slowvm.names() == []

    def test_a_timed_out_create_that_appears_later_is_deleted(
        self, slowvm: SlowVM
    ) -> None:
        """The create outlives its timeout; the VM appears within grace: deleted."""
        kind = slowvm.kind(grace=10)
        with scope() as s:
            with pytest.raises(CommandTimeoutError):
                s.commands.create(
                    kind,
                    "vm-late",
                    # The worker starts at once; the caller gives up after 2 s.
                    slowvm.argv("create", "vm-late", "--delay", "3", "--linger", "30"),
                    timeout=2,
                )
            assert slowvm.names() == []
        assert ["appeared", "vm-late"] in slowvm.log()
        assert slowvm.names() == []

    def test_a_name_that_never_appears_is_success(self, slowvm: SlowVM) -> None:
        """No VM within grace: the scope closes cleanly and deletes nothing."""
        kind = slowvm.kind(grace=1)
        began = time.monotonic()
        with scope() as s, pytest.raises(CommandTimeoutError):
            s.commands.create(
                kind,
                "vm-never",
                slowvm.argv("create", "vm-never", "--never"),
                timeout=0.3,
            )
        assert time.monotonic() - began >= 1
        assert slowvm.log("delete") == []
        assert s.resources() == []

    def test_a_failed_create_stays_reserved(self, slowvm: SlowVM) -> None:
        """A create that exits non-zero raises with its stderr; cleanup still looks."""
        kind = slowvm.kind(grace=0.2)
        with scope() as s:
            with pytest.raises(CommandError, match="no capacity") as info:
                s.commands.create(kind, "vm-x", slowvm.argv("create", "vm-x", "--fail"))
            assert info.value.returncode == 1
            assert [r.name for r in s.resources()] == ["vm-x"]

    def test_a_project_kind_is_found_by_name(
        self, slowvm: SlowVM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A kind declared in pyproject.toml is loaded when its name is first used."""
        name = f"declared-{os.getpid()}"
        (tmp_path / "pyproject.toml").write_text(
            f"[tool.cleanroom.commands.{name}]\n" + _toml(slowvm.spec())
        )
        monkeypatch.chdir(tmp_path)
        try:
            with scope() as s:
                s.commands.create(name, "vm-p")
                assert slowvm.names() == ["vm-p"]
            assert slowvm.names() == []
        finally:
            cleanroom.unregister_kind(cleanroom.get_kind(name))

    def test_a_bad_project_kind_names_the_table_and_key(self, tmp_path: Path) -> None:
        """A typo in pyproject.toml is reported with the valid keys."""
        (tmp_path / "pyproject.toml").write_text(
            '[tool.cleanroom.commands.vm]\ndelete = ["true"]\ndelet = ["x"]\n'
        )
        with pytest.raises(
            PolicyError,
            match=r"'delet' in \[tool.cleanroom.commands.vm\]; valid: .*'delete'",
        ):
            load_project_kinds(tmp_path)

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ('delete = "rm {name}"', "never a shell line"),
            ('delete = ["true"]\nfields = [5]', "fields"),
            ('delete = ["rm", "{nam}"]', r"unknown field \{nam\}"),
            ('delete = ["true"]\ngrace = -1', "grace must be zero or more"),
        ],
    )
    def test_bad_project_values_name_the_table(
        self, tmp_path: Path, line: str, message: str
    ) -> None:
        """A bad value in pyproject.toml names its table and what is wrong."""
        (tmp_path / "pyproject.toml").write_text(
            f"[tool.cleanroom.commands.vm]\n{line}\n"
        )
        with pytest.raises(
            PolicyError, match=rf"\[tool.cleanroom.commands.vm\]: .*{message}"
        ):
            load_project_kinds(tmp_path)

    @pytest.mark.anyio
    async def test_async_create(self, slowvm: SlowVM) -> None:
        """acreate creates from async code; cleanup deletes."""
        kind = slowvm.kind()
        async with scope() as s:
            await s.commands.acreate(kind, "vm-async")
            assert slowvm.names() == ["vm-async"]
        assert slowvm.names() == []

    @pytest.mark.anyio
    async def test_a_cancelled_async_create_ends_the_command(
        self, slowvm: SlowVM
    ) -> None:
        """Cancelling the caller ends the create's process group; the name stays."""
        kind = slowvm.kind(grace=0.5)
        argv = slowvm.argv("create", "vm-c", "--never", "--linger", "60")
        async with scope() as s:
            with anyio.move_on_after(0.5) as cancelled:
                await s.commands.acreate(kind, "vm-c", argv, timeout=60)
            assert cancelled.cancelled_caught
            assert [r.name for r in s.resources()] == ["vm-c"]
            assert running(str(slowvm.state)) == []


class TestTmux:
    def test_sessions_are_created_and_killed(self, tmux: Tmux) -> None:
        """tmux sessions stand in for VMs: created, then killed at the end."""
        kind = tmux.kind()
        with scope() as s:
            s.commands.create(kind, "test-vm-1")
            s.track(kind.name, "test-vm-2")
            tmux.new("test-vm-2")
            assert tmux.sessions() == ["test-vm-1", "test-vm-2"]
        assert tmux.sessions() == []

    def test_shell_metacharacters_are_harmless(self, tmux: Tmux, canary: Path) -> None:
        """A name with ';', spaces, '$(...)' and quotes is one argument throughout."""
        kind = tmux.kind()
        name = f"x;rm -rf {canary};echo $(id) 'q\""
        with scope() as s:
            s.commands.create(kind, name)
            assert tmux.sessions() == [name]
        assert tmux.sessions() == []
        assert (canary / "alive").exists()

    def test_exact_names_only(self, tmux: Tmux) -> None:
        """Deleting "vm" never kills "vm-2" (tmux's "=" target is exact)."""
        kind = tmux.kind()
        tmux.new("vm-2")
        with scope() as s:
            s.track(kind.name, "vm")
        assert tmux.sessions() == ["vm-2"]


class TestPrefixSweep:
    def test_only_names_that_start_with_the_prefix(self, tmux: Tmux) -> None:
        """ "test-vm-" removes test-vm-*, never names that merely contain it."""
        kind = tmux.kind(min_age=0)
        for name in ("test-vm-1", "test-vm-2", "my-test-vm-3", "xtest-vm-", "test-vmx"):
            tmux.new(name)
        report = sweep(None, prefix_rules=[PrefixRule(kind.name, "test-vm-")])
        assert sorted(r.name for r in report.results if r.action == "removed") == [
            "test-vm-1",
            "test-vm-2",
        ]
        assert tmux.sessions() == ["my-test-vm-3", "test-vmx", "xtest-vm-"]

    def test_young_things_are_spared(self, tmux: Tmux) -> None:
        """A thing younger than min_age may be another run's create: spared."""
        kind = tmux.kind(min_age=3600)
        tmux.new("test-vm-new")
        assert kind.list_names("test-vm-") == []
        assert tmux.sessions() == ["test-vm-new"]

    def test_a_live_sessions_create_in_flight_is_spared(
        self, slowvm: SlowVM, tmp_path: Path
    ) -> None:
        """A name a live session reserved (its create still running) is not swept."""
        journal_file = tmp_path / "journal.sqlite3"
        kind_name = f"inflight-{os.getpid()}"
        (tmp_path / "pyproject.toml").write_text(
            f"[tool.cleanroom.commands.{kind_name}]\n" + _toml(slowvm.spec(min_age=0))
        )
        create = slowvm.argv("create", "test-vm-inflight", "--linger", "60")
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(f"""
                    import cleanroom
                    with cleanroom.managed_resources() as scope:
                        scope.commands.create(
                            {kind_name!r}, "test-vm-inflight", {create!r}, timeout=120
                        )
                """),
            ],
            cwd=tmp_path,
            env={**os.environ, "CLEANROOM_JOURNAL": str(journal_file)},
        )
        try:
            assert slowvm.wait_for("test-vm-inflight")
            slowvm.make("test-vm-orphan")
            load_project_kinds(tmp_path)
            with Journal(journal_file) as journal:
                report = sweep(
                    journal, prefix_rules=[PrefixRule(kind_name, "test-vm-")]
                )
            actions = {r.name: r.action for r in report.results}
            assert actions == {
                "test-vm-inflight": "skipped",
                "test-vm-orphan": "removed",
            }
            assert slowvm.names() == ["test-vm-inflight"]
        finally:
            child.kill()
            child.wait()
            cleanroom.unregister_kind(cleanroom.get_kind(kind_name))


FAILING_TEST = """
def test_vm(cleanroom):
    cleanroom.commands.create("vm", "test-vm-1;echo pwned")
    assert False, "the test failed"
"""


@pytest.fixture
def project(
    pytester: pytest.Pytester, slowvm: SlowVM, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A pytest project that declares the slowvm kind ``vm`` in pyproject.toml."""
    monkeypatch.setenv("CLEANROOM_JOURNAL", str(pytester.path / "journal.sqlite"))
    monkeypatch.delenv("CLEANROOM_SESSION", raising=False)
    pytester.makepyprojecttoml("[tool.cleanroom.commands.vm]\n" + _toml(slowvm.spec()))
    pytester.makepyfile(test_vms=FAILING_TEST)
    return pytester


class TestPytest:
    def test_a_failed_test_keeps_its_vm(
        self, project: pytest.Pytester, slowvm: SlowVM
    ) -> None:
        """The failed test's VM stays, reported with its quoted delete command."""
        result = project.runpytest_subprocess()
        result.assert_outcomes(failed=1)
        assert slowvm.names() == ["test-vm-1;echo pwned"]
        hint = shlex.join(slowvm.argv("delete", "test-vm-1;echo pwned"))
        result.stdout.fnmatch_lines(["*kept vm 'test-vm-1;echo pwned'*", f"*{hint}"])

    def test_forced_cleanup_deletes_it(
        self, project: pytest.Pytester, slowvm: SlowVM
    ) -> None:
        """With --cleanroom-force the failed test's VM is deleted after it."""
        result = project.runpytest_subprocess("--cleanroom-force")
        result.assert_outcomes(failed=1)
        assert slowvm.names() == []
        assert slowvm.log("delete") == [["delete", "test-vm-1;echo pwned"]] * 2

    def test_a_failed_delete_shows_its_stderr_in_the_summary(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The summary of a run says why a VM could not be deleted."""
        monkeypatch.setenv("CLEANROOM_JOURNAL", str(pytester.path / "journal.sqlite"))
        monkeypatch.delenv("CLEANROOM_SESSION", raising=False)
        script = "import sys; sys.exit('quota service down for ' + sys.argv[1])"
        pytester.makepyprojecttoml(
            "[tool.cleanroom.commands.vm]\n"
            + _toml(
                {
                    "create": ["true"],
                    "delete": [sys.executable, "-c", script, "{name}"],
                    "retries": 1,
                }
            )
        )
        pytester.makepyfile(
            test_it="""
            def test_vm(cleanroom):
                cleanroom.commands.create("vm", "test-vm-9")
            """
        )
        result = pytester.runpytest_subprocess()
        # The cleanup's failure is the test's teardown error.
        result.assert_outcomes(passed=1, errors=1)
        why = "exited with 1: quota service down for test-vm-9"
        result.stdout.fnmatch_lines([f"*failed to clean vm 'test-vm-9'*{why}*"])


class TestCli:
    def run(self, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cleanroom", *args],
            cwd=folder,
            env={
                **{k: v for k, v in os.environ.items() if k != "CLEANROOM_SESSION"},
                "CLEANROOM_JOURNAL": str(folder / "journal.sqlite3"),
            },
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def project(self, folder: Path, slowvm: SlowVM, **overrides: object) -> None:
        (folder / "pyproject.toml").write_text(
            "[tool.cleanroom.commands.vm]\n" + _toml(slowvm.spec(**overrides))
        )

    def test_list_and_sweep_a_kept_vm(self, slowvm: SlowVM, tmp_path: Path) -> None:
        """``cleanroom list`` shows a kept VM and how to delete it; --kept sweeps it."""
        self.project(tmp_path, slowvm)
        body = textwrap.dedent("""
            import cleanroom
            with cleanroom.managed_resources("made") as scope:
                scope.keep(scope.commands.create("vm", "test-vm-kept"), "look at it")
        """)
        subprocess.run(
            [sys.executable, "-c", body],
            cwd=tmp_path,
            env={**os.environ, "CLEANROOM_JOURNAL": str(tmp_path / "journal.sqlite3")},
            check=True,
            timeout=60,
        )
        assert slowvm.names() == ["test-vm-kept"]
        listed = self.run(tmp_path, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        (session,) = json.loads(listed.stdout)["sessions"]
        (row,) = session["resources"]
        assert (row["name"], row["status"], row["reason"]) == (
            "test-vm-kept",
            "kept",
            "look at it",
        )
        assert row["hint"] == shlex.join(slowvm.argv("delete", "test-vm-kept"))
        swept = self.run(tmp_path, "sweep", "--kept", "--yes", "--json")
        assert swept.returncode == 0, swept.stderr
        assert json.loads(swept.stdout)["removed"] == 1
        assert slowvm.names() == []

    def test_prefix_sweep(self, slowvm: SlowVM, tmp_path: Path) -> None:
        """``cleanroom sweep --prefix`` knows the declared kind without --import."""
        self.project(tmp_path, slowvm, min_age=0)
        for name in ("test-vm-1", "test-vm-2", "my-test-vm-3", "test-vmx"):
            slowvm.make(name)
        swept = self.run(
            tmp_path, "sweep", "--kind", "vm", "--prefix", "test-vm-", "--yes"
        )
        assert swept.returncode == 0, swept.stdout + swept.stderr
        assert slowvm.names() == ["my-test-vm-3", "test-vmx"]

    def test_declared_prefixes_need_no_option(
        self, slowvm: SlowVM, tmp_path: Path
    ) -> None:
        """A kind's ``orphan_prefixes`` are swept by a plain ``cleanroom sweep``."""
        self.project(tmp_path, slowvm, min_age=0, orphan_prefixes=["test-vm-"])
        for name in ("test-vm-1", "my-test-vm-2"):
            slowvm.make(name)
        dry = self.run(tmp_path, "sweep", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        planned = json.loads(dry.stdout)["results"]
        assert [(r["name"], r["action"]) for r in planned] == [
            ("test-vm-1", "would-remove")
        ]
        assert slowvm.names() == ["my-test-vm-2", "test-vm-1"]
        swept = self.run(tmp_path, "sweep", "--json")
        assert swept.returncode == 0, swept.stderr
        assert slowvm.names() == ["my-test-vm-2"]

    def test_check_round_trips_a_command_kind(
        self, slowvm: SlowVM, tmp_path: Path
    ) -> None:
        """``cleanroom check`` probes the kind and creates and deletes one VM."""
        self.project(tmp_path, slowvm)
        checked = self.run(tmp_path, "check", "--json")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        report = json.loads(checked.stdout)
        (trip,) = [t for t in report["roundtrips"] if t["name"].startswith("commands")]
        assert trip["ok"] is True, trip
        assert trip["detail"].startswith("created and deleted vm 'cleanroom-check-")
        created = [line[1] for line in slowvm.log("create")]
        assert len(created) == 1
        assert created[0].startswith("cleanroom-check-")
        assert slowvm.names() == []


def swept_before_the_tests(pytester: pytest.Pytester, slowvm: SlowVM) -> None:
    """Make two VMs; a pytest run's test finds only ``my-test-vm-old`` left."""
    for name in ("test-vm-old", "my-test-vm-old"):
        slowvm.make(name)
    pytester.makepyfile(
        test_it=f"""
        import json, pathlib

        def test_orphans_are_gone_already():
            state = pathlib.Path({str(slowvm.state)!r})
            found = [json.loads(p.read_text())["name"] for p in state.glob("*.vm")]
            assert found == ["my-test-vm-old"]
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


class TestSessionStart:
    def test_declared_prefixes_are_swept_before_the_tests(
        self, pytester: pytest.Pytester, slowvm: SlowVM, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A pytest run first deletes ``test-vm-*`` orphans, never ``my-test-vm-*``."""
        monkeypatch.setenv("CLEANROOM_JOURNAL", str(pytester.path / "journal.sqlite"))
        monkeypatch.delenv("CLEANROOM_SESSION", raising=False)
        pytester.makepyprojecttoml(
            "[tool.cleanroom.commands.vm]\n"
            + _toml(slowvm.spec(min_age=0, orphan_prefixes=["test-vm-"]))
        )
        swept_before_the_tests(pytester, slowvm)

    def test_a_conftest_kind_is_swept_before_the_tests(
        self, pytester: pytest.Pytester, slowvm: SlowVM, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The prefix rules of a kind that a conftest registers apply at the start."""
        monkeypatch.setenv("CLEANROOM_JOURNAL", str(pytester.path / "journal.sqlite"))
        monkeypatch.delenv("CLEANROOM_SESSION", raising=False)
        with Journal(pytester.path / "journal.sqlite"):
            pass  # a journal to sweep, as on any machine where cleanroom ran
        spec = slowvm.spec(min_age=0, orphan_prefixes=["test-vm-"])
        pytester.makeconftest(
            f"""
            from cleanroom import register_kind
            from cleanroom.kinds.commands import CommandKind

            register_kind(CommandKind("conftest-vm", **{spec!r}))
            """
        )
        swept_before_the_tests(pytester, slowvm)


class TestKilledRunner:
    def test_the_reaper_deletes_after_sigkill(
        self, slowvm: SlowVM, tmp_path: Path
    ) -> None:
        """SIGKILL mid-create: the reaper deletes the created VM and the late one."""
        kind_name = f"reaped-{os.getpid()}"
        (tmp_path / "pyproject.toml").write_text(
            f"[tool.cleanroom.commands.{kind_name}]\n" + _toml(slowvm.spec(grace=20))
        )
        journal_file = tmp_path / "journal.sqlite3"
        late = slowvm.argv("create", "vm-late", "--delay", "2", "--linger", "5")
        body = textwrap.dedent(f"""
            import cleanroom
            scope = cleanroom.Scope("runner").__enter__()
            scope.commands.create({kind_name!r}, "vm-made")
            print("ready", flush=True)
            scope.commands.create({kind_name!r}, "vm-late", {late!r}, timeout=60)
        """)
        child = subprocess.Popen(
            [sys.executable, "-c", body],
            cwd=tmp_path,
            env={
                **{k: v for k, v in os.environ.items() if k != "CLEANROOM_SESSION"},
                "CLEANROOM_JOURNAL": str(journal_file),
            },
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.stdout.close()
        # The second create has journaled its name and is running: kill now.
        deadline = time.monotonic() + 10
        while ["create", "vm-late"] not in slowvm.log():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child.kill()
        child.wait()
        assert slowvm.names() == ["vm-made"]
        deadline = time.monotonic() + 60
        while slowvm.names() or ["appeared", "vm-late"] not in slowvm.log():
            assert time.monotonic() < deadline, slowvm.log()
            time.sleep(0.1)
        while True:
            with Journal(journal_file) as journal:
                rows = {row.name: row for row in journal.rows()}
            if all(row.state != "sweeping" for row in rows.values()):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.1)
        assert {name: (row.state, row.actor) for name, row in rows.items()} == {
            "vm-made": ("cleaned", "reaper"),
            "vm-late": ("cleaned", "reaper"),
        }
        # Each VM: a failed first delete, then a successful one.
        assert sorted(map(tuple, slowvm.log("delete"))) == [
            ("delete", "vm-late"),
            ("delete", "vm-late"),
            ("delete", "vm-made"),
            ("delete", "vm-made"),
        ]


def _toml(spec: dict[str, object]) -> str:
    """Render a kind's keyword arguments as the lines of a TOML table."""
    import json

    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in spec.items())
