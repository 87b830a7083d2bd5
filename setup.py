"""Builds the C extension `labelwise.engines._kernel` (see its source); everything else is in pyproject.toml."""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# -ffp-contract=off: no fused multiply-adds, so scores are the same with and without AVX2 (see sum_rows).
GCC_FLAGS = ["-O3", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]


class BuildExt(build_ext):
    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "unix":  # gcc or clang
            for extension in self.extensions:
                extension.extra_compile_args = [*GCC_FLAGS, *extension.extra_compile_args]
        super().build_extensions()


setup(
    ext_modules=[Extension("labelwise.engines._kernel", sources=["src/labelwise/engines/_kernel.c"])],
    cmdclass={"build_ext": BuildExt},
)
