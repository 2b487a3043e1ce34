"""The package's public names: ``mother.__all__`` and the legacy ``mother.mothers``."""

from __future__ import annotations

import types

import mother
import mother.mothers


def test_all_lists_every_public_name_of_the_package_and_nothing_else() -> None:
    public = {name for name, value in vars(mother).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert sorted(mother.__all__) == sorted(public)
    assert len(set(mother.__all__)) == len(mother.__all__)


def test_the_legacy_module_exports_the_same_names() -> None:
    assert {name: getattr(mother.mothers, name) for name in mother.__all__} == {
        name: getattr(mother, name) for name in mother.__all__}
