"""The build step that puts the generated protobuf modules into the wheel and the sdist.

Everything else about the package is declared in ``pyproject.toml``; this file only adds
commands. The modules are compiled from ``proto/`` by ``proto_gen.generate`` (grpcio-tools is a
build requirement, not a runtime one), so they are never committed and never written into
site-packages at import time:

- ``build_py`` (wheels, and installs from an sdist or a checkout): into the built package;
  in an editable install, in place into ``proto_gen/`` of the source tree.
- ``sdist``: into the release tree, so the sdist carries them next to ``proto/`` (from which
  the wheel build compiles them again, with the pinned grpcio-tools).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py
from setuptools.command.sdist import sdist as _sdist

ROOT = Path(__file__).resolve().parent
PROTO_SRC = ROOT / "proto"
PACKAGE = "proto_gen"


def _generator() -> ModuleType:
    """``proto_gen/__init__.py`` of this source tree, loaded by path (it imports only stdlib)."""
    spec = importlib.util.spec_from_file_location("_proto_gen_build", ROOT / PACKAGE / "__init__.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the protobuf generator from {ROOT / PACKAGE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class build_py(_build_py):
    """Also compile ``proto/`` into ``proto_gen`` (in place when the install is editable)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the source tree is what gets imported: generate there (stamped)
            _generator().generate(PROTO_SRC, ROOT / PACKAGE, package=PACKAGE)
        else:  # always fresh: build/lib may hold output of an earlier build or another grpcio-tools
            _generator().generate(PROTO_SRC, self._generated_dir(), package=PACKAGE, force=True)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not self.editable_mode:
            out = self._generated_dir()
            outputs += [str(out / rel) for rel in _generator().output_files(PROTO_SRC)]
        return outputs

    def _generated_dir(self) -> Path:
        return Path(self.build_lib) / PACKAGE


class sdist(_sdist):
    """Also put freshly generated modules into the sdist (``proto/`` is in it too: MANIFEST.in)."""

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        _generator().generate(Path(base_dir) / "proto", Path(base_dir) / PACKAGE, package=PACKAGE, force=True)


setup(cmdclass={"build_py": build_py, "sdist": sdist})
