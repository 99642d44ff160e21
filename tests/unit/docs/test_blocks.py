"""Every block of the READMEs is of a kind the suite executes (tests/integration/docs)."""

from __future__ import annotations

import pytest

from tests.docblocks import blocks

READMES = ["README.md", "connectors/README.md"]

#: The blocks deliberately not executed, and the test that covers them instead.
NOT_RUN = {
    "README.md": ["make up"],  # tests/integration/up: test_up.py and the init → up walk-through
}


@pytest.mark.parametrize("name", READMES)
def test_every_block_is_of_a_kind_the_suite_runs(name: str) -> None:
    found = blocks(name)
    assert found, f"{name} has no code blocks"
    unknown = [str(block) for block in found if block.kind == "unknown"]
    assert not unknown, f"blocks the suite would not run: {unknown}"


@pytest.mark.parametrize("name", READMES)
def test_only_the_listed_blocks_are_not_run(name: str) -> None:
    skipped = [block for block in blocks(name) if block.kind == "no-run"]
    expected = NOT_RUN.get(name, [])
    assert len(skipped) == len(expected), [str(block) for block in skipped]
    for block, start in zip(skipped, expected, strict=True):
        assert block.text.startswith(start), str(block)


def test_file_blocks_name_their_path_and_snippets_do_not() -> None:
    kinds = {(block.language, block.kind, block.path) for block in blocks("connectors/README.md")}
    assert ("toml", "file", "connectors/orders-in.toml") in kinds
    assert ("python", "file", "myapp/connectors.py") in kinds
    assert ("sh", "shell", None) in kinds
