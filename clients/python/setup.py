"""Builds the shoal.v1 modules from proto/shoal/v1 into the package as it is built.

The protos are found beside the package in Shoal's tree (../../proto), or in $SHOAL_PROTO_DIR.
protoc (Debian: protobuf-compiler) and grpc_python_plugin (protobuf-compiler-grpc, or
$GRPC_PYTHON_PLUGIN) make them, as generate.sh does; pyproject.toml holds everything else.
"""

import os
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTOS = ("shoal/v1/kv.proto", "shoal/v1/admin.proto")


class build_py_with_protos(build_py):
    def run(self):
        super().run()
        proto_dir = Path(os.environ.get("SHOAL_PROTO_DIR", HERE.parent.parent / "proto"))
        missing = [p for p in PROTOS if not (proto_dir / p).is_file()]
        if missing:
            raise SystemExit(f"shoal-client: {', '.join(missing)} not found under {proto_dir} "
                             "(build from Shoal's tree, or set SHOAL_PROTO_DIR)")
        plugin = os.environ.get("GRPC_PYTHON_PLUGIN", "/usr/bin/grpc_python_plugin")
        out = Path(self.build_lib)
        subprocess.run(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_out={out}",
                        f"--plugin=protoc-gen-grpc={plugin}", *PROTOS], check=True)


setup(cmdclass={"build_py": build_py_with_protos})
