"""An import-linter contract type: the source modules import nothing outside Python's standard
library (`sys.stdlib_module_names`), directly or through other modules.

    type = stdlib_only
    source_modules = ...     (as for `forbidden`; ignore_imports too)

It is import-linter's own `forbidden` contract with the forbidden set filled in from the graph:
every external package it saw that is not in the standard library. (The PyPI package that does
this, import-linter-forbid-external-packages 0.1.0, fails with import-linter 2.17: it sets a
field to a plain tuple.) Needs `include_external_packages = true`, Python >= 3.10.
"""

from __future__ import annotations

import sys

from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.domain import fields
from importlinter.domain.imports import ModuleExpression


class StdlibOnlyContract(ForbiddenContract):
    type_name = "stdlib_only"

    forbidden_modules = fields.SetField(subfield=fields.ModuleExpressionField(), required=False)

    def check(self, graph, verbose):
        roots = {name.split(".")[0] for name in self.session_options["root_packages"]}
        outside = sorted(
            name for name in graph.modules
            if "." not in name and name not in roots and name not in sys.stdlib_module_names
        )
        self.forbidden_modules = {ModuleExpression(name) for name in outside}
        return super().check(graph, verbose)
