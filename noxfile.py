"""
Development sessions: ``nox -s tests``, ``integration``, ``lint``, ``mypy``,
``docs`` and ``bench``. Plain ``nox`` runs lint, mypy, tests and docs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "mypy", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHON_VERSIONS = nox.project.python_versions(PYPROJECT)


def install(session: nox.Session, *groups: str, package: str | None = None) -> None:
    """
    Install dependency *groups* from pyproject.toml, and the *package* (such as
    ``".[all]"``) not editable, so that tests import it as users would.
    """
    targets = nox.project.dependency_groups(PYPROJECT, *groups)
    session.install(*targets, *([package] if package else []))


@nox.session(python=PYTHON_VERSIONS)
def tests(session: nox.Session) -> None:
    """Run the whole test suite, examples in the docs included."""
    install(session, "tests", package=".[all]")
    session.run("pytest", *session.posargs, env={"PYTHONDEVMODE": "1"})


@nox.session
def integration(session: nox.Session) -> None:
    """
    Run the tests that need Docker or Kubernetes, and only those. The
    Kubernetes control plane comes from ``.ci/control-plane`` (built on first
    use, 10 to 15 minutes); one started here is stopped at the end. A missing
    Docker engine fails the session: start one first (as root on Debian,
    ``.ci/docker-engine`` installs and starts ``dockerd`` and imports the test
    image; see the README).
    """
    install(session, "tests", package=".[all]")
    script = str(ROOT / ".ci" / "control-plane")
    running = subprocess.run([script, "status"], check=False).returncode == 0
    if not running:
        session.run(script, "start", external=True)
    try:
        kubeconfig = subprocess.run(
            [script, "kubeconfig"], capture_output=True, text=True, check=True
        ).stdout.strip()
        session.run(
            "pytest",
            "-m",
            "docker or kubernetes",
            *session.posargs,
            env={
                "CLEANROOM_REQUIRE_DOCKER": "1",
                "CLEANROOM_REQUIRE_KUBERNETES": "1",
                "CLEANROOM_TEST_KUBECONFIG": kubeconfig,
            },
        )
    finally:
        if not running:
            session.run(script, "stop", external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """
    Check the code with ruff, that it is formatted, and that the package's
    layers depend one way with no import cycles (``tests/test_layers.py``).
    """
    install(session, "lint", "tests", package=".")
    session.run("ruff", "check", *session.posargs, ".")
    session.run("ruff", "format", "--check", *session.posargs, ".")
    session.run("pytest", "-q", "-p", "no:randomly", "tests/test_layers.py")


@nox.session
def mypy(session: nox.Session) -> None:
    """Type-check the package and the typing tests, strictly."""
    install(session, "typing", package=".[all]")
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML documentation; any warning fails the build."""
    install(session, "docs", package=".")
    session.run(
        "sphinx-build",
        "-n",
        "-W",
        "--keep-going",
        "-b",
        "html",
        *session.posargs,
        "docs",
        "docs/_build/html",
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks and print what they measured."""
    script = ROOT / "bench" / "run.py"
    if not script.is_file():
        session.skip("bench/run.py does not exist")
    install(session, "bench", package=".[all]")
    session.run("python", str(script), *session.posargs)
    # The pytest plugin's overhead, its start-up cost on a third-party suite
    # (downloads more-itertools' sdist and builds two environments), the sweep
    # of 1,000 orphans, how fast a stopped run ends, Docker teardown, deleting
    # 100 pods (each says it skipped without its service) and the cost of a
    # leak check per test.
    for extra in (
        "bench_plugin.py",
        "bench_startup.py",
        "bench_sweep.py",
        "bench_signals.py",
        "bench_docker.py",
        "bench_kubernetes.py",
        "bench_leaks.py",
    ):
        session.run("python", str(ROOT / "bench" / extra))
