"""``celeriac multi``'s node names and per-node options, against ``celery multi``'s documented
examples (celery/bin/multi.py) and its expansion rules (celery/apps/multi.py)."""

from __future__ import annotations

import io
import signal
import sys

import pytest
from celery.bin.multi import MultiTool  # type: ignore[import-untyped]
from click.testing import CliRunner

from celeriac.cli.main import celeriac
from celeriac.worker.multi import find_signal
from celeriac.worker.nodes import Node, nodes_from_args, parse_args


def _nodes(*args: str) -> list[Node]:
    return nodes_from_args(list(args), hostname=lambda: "myhost")[1]


def _commands(*args: str) -> list[str]:
    """Each node as Celery's docstring shows it: ``worker -n <name> <options>``."""
    out = []
    for node in _nodes(*args):
        options = {k: v for k, v in node.options.items() if k not in ("-n", "--executable")}
        options = {k: v for k, v in options.items() if k not in ("--pidfile", "--logfile")}
        text = " ".join(f"{k} {v}" if v else k for k, v in options.items())
        out.append(f"worker -n {node.name} {text}".strip())
    return out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("3", "-c", "3"), [f"worker -n celery{i}@myhost -c 3" for i in (1, 2, 3)]),
        (
            ("3", "--range-prefix=worker", "-c", "3"),
            [f"worker -n worker{i}@myhost -c 3" for i in (1, 2, 3)],
        ),
        (
            ("image", "video", "data", "-c", "3"),
            [f"worker -n {n}@myhost -c 3" for n in ("image", "video", "data")],
        ),
        (
            ("2", "--hostname=worker.example.com", "-c", "3"),
            [f"worker -n celery{i}@worker.example.com -c 3" for i in (1, 2)],
        ),
        (
            ("3", "-c", "3", "-c:1", "10"),
            ["worker -n celery1@myhost -c 10"]
            + [f"worker -n celery{i}@myhost -c 3" for i in (2, 3)],
        ),
        (
            ("image", "video", "data", "-c", "3", "-c:image", "10"),
            [
                "worker -n image@myhost -c 10",
                "worker -n video@myhost -c 3",
                "worker -n data@myhost -c 3",
            ],
        ),
        (
            ("5", "-c", "3", "-c:1-3", "10"),
            [f"worker -n celery{i}@myhost -c 10" for i in (1, 2, 3)]
            + [f"worker -n celery{i}@myhost -c 3" for i in (4, 5)],
        ),
        (
            ("foo", "bar", "baz", "xuzzy", "-c", "3", "-c:foo,bar,baz", "10"),
            [f"worker -n {n}@myhost -c 10" for n in ("foo", "bar", "baz")]
            + ["worker -n xuzzy@myhost -c 3"],
        ),
        (
            ("w1", "w2", "-Q", "default", "-Q:w2", "low", "-c:1", "4"),
            ["worker -n w1@myhost -Q default -c 4", "worker -n w2@myhost -Q low"],
        ),
    ],
)
def test_node_names_and_options_as_celery_documents(
    args: tuple[str, ...], expected: list[str]
) -> None:
    assert _commands(*args) == expected


def test_full_node_names_and_the_hostname_template() -> None:
    names = [node.name for node in _nodes("foo@worker.example.com", "bar@%h")]
    assert names[0] == "foo@worker.example.com"
    assert names[1].startswith("bar@") and "%h" not in names[1]


def test_percent_expansion_in_multi_leaves_the_process_index_to_the_worker() -> None:
    (node,) = _nodes("w1", "--pidfile=/run/%n.pid", "--logfile=/log/%n%I.log", "-Q", "q-%h")
    argv = node.argv
    assert "--pidfile=/run/w1.pid" in argv
    assert "--logfile=/log/w1%I.log" in argv  # the worker expands %I (empty in its main process)
    assert argv[argv.index("-Q") + 1] == "q-w1@myhost"  # %h is the full node name in multi
    assert node.expand("%n|%h|%d|%N|%p|%i|%I") == "w1|w1@myhost|myhost|w1|w1@myhost|%i|%I"
    assert node.pidfile == "/run/w1.pid" and node.logfile == "/log/w1.log"
    with pytest.raises(ValueError, match="Unknown format %Y"):
        node.expand("%Y")


def test_argv_puts_global_options_before_worker_and_detaches() -> None:
    (node,) = nodes_from_args(
        ["w1", "-A", "proj", "-c", "2", "--", "extra"],
        global_options={"--broker": "redis://x"},
        hostname=lambda: "h",
    )[1]
    assert node.argv[:5] == ["-m", "celeriac", "--broker=redis://x", "-A", "proj"]
    assert node.argv[5:7] == ["worker", "--detach"]
    assert node.argv[-2:] == ["--", "extra"]
    assert f"--executable={sys.executable}" in node.argv
    assert node.command[0] == sys.executable


def test_celery_defaults_for_pid_and_log_files() -> None:
    (node,) = _nodes("w1")
    assert node.pidfile == "/var/run/celery/w1.pid"
    assert node.logfile == "/var/log/celery/w1.log"


def test_bad_indexes_are_errors() -> None:
    with pytest.raises(ValueError, match="No node at index '5'"):
        _nodes("3", "-c:5", "2")
    with pytest.raises(ValueError, match="Indexes start at 1"):
        _nodes("a", "b", "-c:0", "2")


def test_parse_args_splits_values_options_namespaces_and_passthrough() -> None:
    parsed = parse_args(["start", "w1", "-c", "3", "--pidfile=x", "-E", "-c:w1", "5", "--", "a"])
    assert parsed.values == ["start", "w1"]
    assert parsed.options == {"-c": "3", "--pidfile": "x", "-E": None}
    assert parsed.namespaces == {"w1": {"-c": "5"}}
    assert parsed.passthrough == ["--", "a"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["w1"], signal.SIGTERM),
        (["w1", "-9"], 9),
        (["w1", "-KILL"], signal.SIGKILL),
        (["w1", "-SIGINT"], signal.SIGINT),
        (["w1", "--pidfile=x", "-QUIT"], signal.SIGQUIT),
    ],
)
def test_stop_signal_argument(args: list[str], expected: int) -> None:
    assert find_signal(args, ["w1"]) == expected


# -- the command line: names, expand, show, get (no worker started) --------------------------


def _celery_multi(*args: str) -> list[str]:
    """What real ``celery multi`` prints for ``args``."""
    out = io.StringIO()
    MultiTool(stdout=out, stderr=out).execute_from_commandline(["multi", *args])
    return out.getvalue().splitlines()


def _celeriac_multi(*args: str) -> list[str]:
    done = CliRunner().invoke(celeriac, ["multi", *args])
    assert done.exit_code == 0, done.output
    return done.output.splitlines()


@pytest.mark.parametrize(
    "args",
    [
        ("names", "3", "--range-prefix=w", "--hostname=h.example.com"),
        ("names", "image", "video@other.org", "-c", "3", "--hostname=h.example.com"),
        ("expand", "log/%n%I-%h-%d.log", "w1", "w2@other.org", "--hostname=h.example.com"),
        ("expand", "run/%N.pid", "2", "--hostname=h.example.com"),
    ],
)
def test_names_and_expand_print_what_celery_multi_prints(args: tuple[str, ...]) -> None:
    assert _celeriac_multi(*args) == _celery_multi(*args)


def test_show_prints_each_nodes_command_and_get_one_nodes_arguments() -> None:
    common = ("-c", "3", "-c:w2", "5", "--hostname=h.example.com", "--pidfile=run/%n.pid")
    shown = _celeriac_multi("show", "w1", "w2", *common)
    assert len(shown) == 2
    first = shown[0].split()
    assert first[:5] == [sys.executable, "-m", "celeriac", "worker", "--detach"]
    assert "-n" in first and first[first.index("-n") + 1] == "w1@h.example.com"
    assert first[first.index("-c") + 1] == "3" and "--pidfile=run/w1.pid" in first
    assert shown[1].split()[shown[1].split().index("-c") + 1] == "5"
    (got,) = _celeriac_multi("get", "w2", "w1", "w2", *common)
    assert got == shown[1].removeprefix(sys.executable + " ")
    assert _celeriac_multi("get", "w2@h.example.com", "w1", "w2", *common) == [got]
    missing = CliRunner().invoke(celeriac, ["multi", "get", "w9", "w1", "w2", *common])
    assert missing.exit_code == 1 and "no node 'w9' among w1@h.example.com" in missing.output
    bad = CliRunner().invoke(celeriac, ["multi", "frobnicate", "w1"])
    assert bad.exit_code == 2 and "Invalid command: frobnicate" in bad.output
