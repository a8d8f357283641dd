"""The host-side PowerShell templates: shipped as package files, parameters only, a handler on
the simulated host for each, and valid PowerShell by a real grammar (tree-sitter-powershell)."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from hyperv_sim.handlers import HANDLERS

from pytest_psdirect.hypervisors.hyperv import templates
from pytest_psdirect.powershell import files
from pytest_psdirect.transports.powershell import RUN_NATIVE


def test_every_template_is_a_package_file_with_a_marker_and_a_param_block() -> None:
    shipped = sorted(p.name for p in (resources.files(templates.__package__) / "templates")
                     .iterdir() if p.name.endswith(".ps1"))
    assert shipped == sorted(f"{n}.ps1" for n in templates.NAMES)
    for name in templates.NAMES:
        text = templates.load(name)
        assert text.startswith(f"# psdirect:{name}\n")
        assert re.search(r"^param\(", text, re.MULTILINE), name


def test_the_simulated_host_answers_every_template() -> None:
    for name in templates.NAMES:
        assert f"# psdirect:{name}" in HANDLERS, name


def _errors(node, found):  # type: ignore[no-untyped-def]
    if node.type == "ERROR" or node.is_missing:
        found.append(f"{node.type} at {node.start_point}: {node.text[:60]!r}")
    for child in node.children:
        _errors(child, found)
    return found


@pytest.fixture(scope="module")
def parser():  # type: ignore[no-untyped-def]
    tree_sitter = pytest.importorskip("tree_sitter")
    grammar = pytest.importorskip("tree_sitter_powershell")
    return tree_sitter.Parser(tree_sitter.Language(grammar.language()))


SCRIPTS = {**{name: templates.load(name) for name in templates.NAMES},
           "put-chunk": files.PUT_CHUNK, "put-finish": files.PUT_FINISH,
           "put-abort": files.PUT_ABORT, "get-stat": files.GET_STAT,
           "get-chunk": files.GET_CHUNK, "run-native": RUN_NATIVE}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_parse_as_powershell(parser, name: str) -> None:  # type: ignore[no-untyped-def]
    tree = parser.parse(SCRIPTS[name].encode())
    assert _errors(tree.root_node, []) == [] and not tree.root_node.has_error


def test_the_grammar_catches_a_broken_script(parser) -> None:  # type: ignore[no-untyped-def]
    broken = templates.load("vm-invoke").replace("-ScriptBlock {", "-ScriptBlock (")
    assert parser.parse(broken.encode()).root_node.has_error
