"""Every command the manuals show parses as written, and every path and variable they name exists.

The fenced blocks of README.md, docs/*.md and bench/README.md are read the way a reader copies
them: shell blocks line by line (a trailing backslash continues the line, `$ ` marks a command in
a console transcript), YAML blocks (CI jobs) through a YAML parser, each string a command. From
each command:

- `releasegate …` is parsed by the CLI's own `parse_args` (flags, types, required options and
  the checks it makes before any network), with the variables the block sets (`export`,
  `NAME=value`, a CI job's `env:`/`variables:`) and no others;
- `python manage.py …` must name a management command, whose own parser takes its arguments;
- every `/api/v1/…` path named anywhere, placeholders filled, resolves to an endpoint other than
  the JSON 404 catch-all, and a method written before it (`POST /api/v1/…`, `curl -X PUT`) is one
  the endpoint answers;
- every environment variable named (set or read in a block, or written in backticks in prose) is
  documented in docs/operations.md, unless a CI system provides it.

None of this needs a network or a database; what only a running service shows was run by hand
(see the commit that added this file).
"""

import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, get_commands, load_command_class
from django.urls import Resolver404, resolve

from releasegate import cli

ROOT = Path(__file__).resolve().parents[2]
MANUALS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench/README.md"]
SHELL = {"sh", "bash", "shell", "console", ""}
SEPARATORS = {"|", "||", "&&", ";"}
VARIABLE = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"
# Names in backticks that look like variables but are values: attestation levels, a WSGI key.
NOT_VARIABLES = re.compile(r"RELEASEGATE_CLEARED_\w+|RELEASEGATE_BREAK_GLASS|REMOTE_ADDR")
# Provided by the CI system the example runs in, or by the pipeline's own build job.
FOREIGN = re.compile(r"(?:CI|GITHUB)_\w+|IMAGE|IMAGE_DIGEST")


@dataclass
class Command:
    where: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


def _blocks(path: Path) -> Iterator[tuple[str, int, str]]:
    """(language, line number, body) of each fenced block, indented ones (in lists) too."""
    text = path.read_text()
    pattern = re.compile(r"^( *)```([\w-]*)\n(.*?)^\1```", re.M | re.S)
    for match in pattern.finditer(text):
        indent = len(match.group(1))
        body = "\n".join(line[indent:] for line in match.group(3).splitlines())
        yield match.group(2), text.count("\n", 0, match.start()) + 2, body


def _shell_lines(language: str, body: str) -> Iterator[tuple[int, str]]:
    """(offset, command line): continuations joined, console output and comments left out."""
    pending, first = "", 0
    for number, raw in enumerate(body.splitlines()):
        if not pending:
            first = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line, pending = (pending + raw).strip(), ""
        if _open_quote(line):  # a quoted argument (a JSON body) that goes on
            pending = line + "\n"
            continue
        if language == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line and not line.startswith("#"):
            yield first, line


def _open_quote(line: str) -> bool:
    try:
        shlex.split(line, comments=True)
    except ValueError:
        return True
    return False


def _yaml_strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _yaml_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _yaml_strings(value)


def _yaml_env(node: object) -> dict[str, str]:
    """The variables a CI file sets for its commands (`env:`, `variables:`)."""
    found: dict[str, str] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"env", "variables"} and isinstance(value, dict):
                found.update({str(k): str(v) for k, v in value.items()})
            else:
                found.update(_yaml_env(value))
    elif isinstance(node, list):
        for value in node:
            found.update(_yaml_env(value))
    return found


def _split(line: str) -> Iterator[list[str]]:
    """The simple commands of a line: split at pipes and lists, redirections dropped."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return
    segment: list[str] = []
    skip = False
    for token in [*tokens, ";"]:
        if token in SEPARATORS:
            if segment:
                yield segment
            segment, skip = [], False
        elif token in {">", ">>", "<", "2>"}:
            skip = True
        elif not skip:
            segment.append(token)


def _commands() -> Iterator[Command]:
    for path in MANUALS:
        name = path.relative_to(ROOT).as_posix()
        for language, start, body in _blocks(path):
            if language in SHELL:
                env: dict[str, str] = {}
                lines = list(_shell_lines(language, body))
            elif language == "yaml":
                documents = list(yaml.safe_load_all(body))
                env = _yaml_env(documents)
                lines = [
                    (0, line.strip())
                    for text in _yaml_strings(documents)
                    for line in text.replace("\\\n", " ").splitlines()
                ]
            else:
                continue
            for offset, line in lines:
                for argv in _split(line):
                    if argv[0] == "export":
                        env.update(a.split("=", 1) for a in argv[1:] if "=" in a)
                        continue
                    local = dict(env)
                    while argv and re.fullmatch(VARIABLE + "=.*|[A-Z]+=.*", argv[0]):
                        key, value = argv.pop(0).split("=", 1)
                        local[key] = value
                    if argv:
                        yield Command(f"{name}:{start + offset}", argv, local)


COMMANDS = list(_commands())


def _program(command: Command) -> tuple[str, list[str]] | None:
    """("releasegate" | "manage.py" | "curl", its arguments), or None for anything else."""
    argv = command.argv
    base = os.path.basename(argv[0])
    if base == "releasegate" and len(argv) > 1:  # alone, a word in a YAML file (`aud:`)
        return "releasegate", argv[1:]
    if base in {"python", "python3"} and len(argv) > 1 and argv[1].endswith("manage.py"):
        return "manage.py", argv[2:]
    if base == "manage.py":
        return "bare manage.py", argv[1:]
    if base == "curl":
        return "curl", argv[1:]
    return None


def _of(program: str) -> list[Command]:
    return [c for c in COMMANDS if (p := _program(c)) is not None and p[0] == program]


def check_cli(command: Command, monkeypatch: pytest.MonkeyPatch, capsys) -> str | None:
    """None when the CLI's own parser takes the command as written, else its usage error."""
    for key in [k for k in os.environ if k.startswith("RELEASEGATE_")]:
        monkeypatch.delenv(key)
    for key, value in command.env.items():
        monkeypatch.setenv(key, value)
    argv = command.argv[1:]
    try:
        cli.parse_args(argv)
    except SystemExit as exit_:
        return f"{command}\n  exit {exit_.code}: {capsys.readouterr().err.strip()}"
    return None


def check_manage(argv: list[str]) -> str | None:
    """None when the management command exists and its parser takes the arguments."""
    if not argv:
        return "manage.py without a command"
    commands = get_commands()
    if argv[0] not in commands:
        return f"no management command {argv[0]!r}"
    command = load_command_class(commands[argv[0]], argv[0])
    try:
        command.create_parser("manage.py", argv[0]).parse_args(argv[1:])
    except CommandError as error:
        return f"manage.py {shlex.join(argv)}: {error}"
    return None


PLACEHOLDERS = {"slug": "support-assistant", "kind": "sbom", "environment": "production"}
PLACEHOLDERS |= {"env": "production", "check": "external_ci"}


def check_path(path: str, method: str | None) -> str | None:
    """None when `path` (placeholders filled) is an endpoint that answers `method`."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return PLACEHOLDERS.get(name, "1" if "id" in name else "x")

    concrete = re.sub(r"<([^>]+)>", fill, path)
    try:
        match = resolve(concrete)
    except Resolver404:
        return f"{path} resolves nowhere"
    if match.url_name == "api-unknown":
        return f"{path} is no endpoint (the JSON 404 catch-all answers it)"
    view = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    if method and view is not None and not hasattr(view, method.lower()):
        return f"{method} {path}: the endpoint does not answer {method}"
    return None


_PATH = r"/api/v1/[^\s`'\"()\[\]?#,|\\]*"


def _paths(text: str) -> Iterator[tuple[str | None, str]]:
    """(method or None, path) of every /api/v1/ path in a text."""
    for match in re.finditer(rf"(?:\b(GET|POST|PUT|DELETE|PATCH)[` ]+)?({_PATH})", text):
        path = match.group(2).rstrip(".:")
        if "…" in path or "..." in path or path == "/api/v1/":
            continue
        yield match.group(1), path


def _named_paths() -> list[tuple[str, str | None, str]]:
    found = []
    for path in MANUALS:
        name = path.relative_to(ROOT).as_posix()
        found += [(name, m, p) for m, p in _paths(path.read_text())]
    for command in _of("curl"):
        argv = command.argv
        method = argv[argv.index("-X") + 1] if "-X" in argv else None
        for token in argv:
            found += [(command.where, method, p) for _, p in _paths(token)]
    return sorted(set(found), key=str)


def _variables() -> set[tuple[str, str]]:
    """(manual, name) of every environment variable a manual sets, reads or names."""
    found: set[tuple[str, str]] = set()
    for command in COMMANDS:
        manual = command.where.split(":")[0]
        found |= {(manual, name) for name in command.env if re.fullmatch("[A-Z][A-Z0-9_]*", name)}
        for token in command.argv:
            found |= {(manual, n) for n in re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", token)}
    for path in MANUALS:
        manual = path.relative_to(ROOT).as_posix()
        found |= {(manual, n) for n in re.findall(rf"`({VARIABLE})(?:=[^`]*)?`", path.read_text())}
    return {(m, n) for m, n in found if not NOT_VARIABLES.fullmatch(n)}


def test_the_manuals_show_commands_of_every_kind():
    """The extraction finds what is there (a broken reader would make every test below vacuous)."""
    assert len(_of("releasegate")) >= 15
    assert len(_of("manage.py")) >= 25
    assert len(_of("curl")) >= 5
    assert len(_named_paths()) >= 50


@pytest.mark.parametrize("command", _of("releasegate"), ids=str)
def test_each_releasegate_command_parses_as_written(command, monkeypatch, capsys):
    assert check_cli(command, monkeypatch, capsys) is None


@pytest.mark.parametrize("command", _of("manage.py"), ids=str)
def test_each_management_command_exists_and_its_arguments_parse(command):
    program = _program(command)
    assert program is not None
    assert check_manage(program[1]) is None


def test_manage_py_is_run_with_the_checkouts_interpreter():
    """`manage.py x` alone runs nothing, nor does a `python` without Django: the manuals write
    `.venv/bin/python manage.py`, the interpreter `./bin/demo` and `./bin/test` install."""
    runs = [c for c in COMMANDS if any(a.endswith("manage.py") for a in c.argv[:2])]
    assert [str(c) for c in runs if c.argv[0] != ".venv/bin/python"] == []


def test_every_management_command_named_in_prose_exists():
    commands = get_commands()
    missing = [
        (path.name, name)
        for path in MANUALS
        for name in re.findall(r"manage\.py ([a-z_]+)", path.read_text())
        if name not in commands
    ]
    assert missing == []


def test_every_releasegate_subcommand_named_in_prose_exists():
    known = {"gate", "promote", "report-check", "attest", "verify"}
    named = {
        (path.name, name)
        for path in MANUALS
        for name in re.findall(r"`releasegate ([a-z][a-z-]*)", path.read_text())
    }
    assert {(m, n) for m, n in named if n not in known} == set()


@pytest.mark.parametrize("where,method,path", _named_paths(), ids=lambda v: str(v))
def test_every_api_path_named_resolves_to_an_endpoint(where, method, path):
    assert check_path(path, method) is None, where


def test_every_environment_variable_named_is_documented_in_the_operations_manual():
    operations = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(
        (manual, name)
        for manual, name in _variables()
        if not FOREIGN.fullmatch(name) and not re.search(rf"\b{name}\b", operations)
    )
    assert missing == [], "named in a manual, not in docs/operations.md"


WRONG = """
```sh
releasegate gate --url https://releasegate.example.com --project p --version 1 \\
    --environment prod --wiat 30m
.venv/bin/python manage.py create_token --user alice --expiry 30d
.venv/bin/python manage.py create_tokens --user alice
curl -X POST https://releasegate.example.com/api/v1/releases/7/promotion
```
"""


def test_a_wrong_flag_command_or_path_in_a_manual_is_caught(tmp_path, monkeypatch, capsys):
    """The checks above fail on what a manual could get wrong: a misspelt flag of the CLI or of
    a management command, a command that does not exist, a path that is no endpoint."""
    manual = tmp_path / "wrong.md"
    manual.write_text(WRONG)
    monkeypatch.setattr(f"{__name__}.MANUALS", [manual])
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    commands = list(_commands())
    gate = next(c for c in commands if _program(c) == ("releasegate", c.argv[1:]))
    assert "unrecognized arguments: --wiat" in (check_cli(gate, monkeypatch, capsys) or "")
    manage = [_program(c) for c in commands if c.argv[0].endswith("python")]
    assert "unrecognized arguments: --expiry" in (check_manage(manage[0][1]) or "")
    assert check_manage(manage[1][1]) == "no management command 'create_tokens'"
    assert "catch-all" in (check_path("/api/v1/releases/7/promotion", "POST") or "")
    assert check_path("/api/v1/releases/7/promote", "GET") is not None
    assert check_path("/api/v1/releases/7/promote", "POST") is None
