"""``eventplatform init [DIR]``: scaffold a new deployment (DESIGN.md, repository layout).

Writes, from the templates in ``eventplatform/cli/templates/init`` (package data):

- ``schemas/<package>/Greeting.avsc``: one event contract;
- ``connectors/greetings-in.toml``: a webhook ingress for it, and ``connectors/greeter.toml``,
  which has ``eventplatform up`` run the service (connector type ``service``);
- ``<package>/events.py`` and ``<package>/service.py``: the event class and an
  :class:`~eventplatform.app.EventApp` whose handler records each greeting in a table;
- ``tests/test_service.py``: the handler against a real broker, with the pytest plugin;
- ``pyproject.toml``, ``README.md`` and ``.gitignore``.

``<package>`` is ``--name``, else the folder's name made a Python identifier. Existing files are
never overwritten: when any target exists, nothing is written and the error names them. The
closing lines say how to run it and print the ``curl`` that sends it an event.
"""

from __future__ import annotations

import keyword
import re
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated

import typer

from eventplatform.cli._common import console, err_console
from eventplatform.errors import InitError

__all__ = ["CURL", "app", "package_name", "scaffold"]

app = typer.Typer()

_TEMPLATES = ("templates", "init")
_PACKAGE_DIR = "__package__"
#: The request the scaffolded ingress accepts, as ``init`` prints it.
CURL = (
    "curl -i http://127.0.0.1:8080/hooks/greetings -H 'X-API-Key: dev' "
    """-H 'Content-Type: application/json' -d '{"name": "Ada", "text": "Hello!"}'"""
)


def package_name(name: str) -> str:
    """``name`` as a Python package name: lower case, ``_`` for anything not a letter or digit.

    Raises:
        InitError: nothing usable is left, or the result would shadow a module the project
            imports (the standard library's, or eventplatform).
    """
    package = re.sub(r"\W+", "_", name.strip().lower()).strip("_")
    if package[:1].isdigit():
        package = f"_{package}"
    if not package.isidentifier() or keyword.iskeyword(package):
        raise InitError(f"{name!r} does not make a Python package name; pass --name")
    if package in sys.stdlib_module_names or package in {"eventplatform", "tests"}:
        raise InitError(
            f"a package named {package!r} would shadow the module of that name; pass --name"
        )
    return package


def _files(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            found += _files(entry, f"{relative}/")
        else:
            found.append((relative, entry))
    return found


def scaffold(directory: Path, *, name: str | None = None) -> list[Path]:
    """Write a new deployment into ``directory`` (created when missing).

    Returns:
        The files written, relative to ``directory``.

    Raises:
        InitError: the name makes no package name, ``directory`` is a file, or a file to
            write exists already (then nothing is written).
    """
    target = directory.resolve()
    if target.exists() and not target.is_dir():
        raise InitError(f"{directory} is a file, not a folder")
    project = name or target.name
    package = package_name(project)
    values = {"name": project, "package": package, "curl": CURL}
    plan: list[tuple[Path, str]] = []
    for relative, template in _files(resources.files("eventplatform.cli").joinpath(*_TEMPLATES)):
        # Python templates end in .tmpl, so that linters and type checkers leave them alone.
        path = Path(relative.replace(_PACKAGE_DIR, package).removesuffix(".tmpl"))
        text = template.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(f"{{{{{key}}}}}", value)
        plan.append((path, text))
    existing = [str(path) for path, _ in plan if (target / path).exists()]
    if existing:
        raise InitError(
            f"{directory} already has {', '.join(existing)}; nothing was written "
            "(init never overwrites: choose an empty or new folder)"
        )
    for path, text in plan:
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text, encoding="utf-8")
    return [path for path, _ in plan]


@app.command("init")
def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to create the deployment (created when missing).")
    ] = Path("."),
    name: Annotated[
        str | None,
        typer.Option("--name", help="Project and package name [default: the folder's name]."),
    ] = None,
) -> None:
    """Create a new deployment: an event, a webhook ingress, a service, its test, a pyproject.

    Then `eventplatform up` in that folder runs it; init prints the curl line that sends it an
    event. Never overwrites a file.
    """
    try:
        written = scaffold(directory, name=name)
    except InitError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    shown = directory if directory.is_absolute() else Path(directory)
    console.print(f"created an eventplatform deployment in {shown}/:", highlight=False)
    for path in written:
        console.print(f"  {path}", highlight=False)
    console.print("run it:", highlight=False)
    if directory.resolve() != Path.cwd().resolve():
        console.print(f"  cd {shown}", highlight=False)
    console.print("  eventplatform up", highlight=False)
    console.print("then, from another shell:", highlight=False)
    # Printed plain (no wrapping), so it can be copied and pasted as one command.
    print(f"  {CURL}", flush=True)
