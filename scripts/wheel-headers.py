#!/usr/bin/env python3
"""Downloads wheels from the package registry and keeps only their C headers.

    wheel-headers.py DEST SPEC...    e.g. DEST=.deps/cuda-headers nvidia-nccl-cu13==2.28.9 ...

Each wheel's files under `*/include/` are extracted into DEST with their paths inside the wheel
(`nvidia/nccl/include/nccl.h`, `nvidia/cu13/include/cublas_v2.h`, ...); the libraries are not kept.
DEST is written as DEST.partial and renamed at the end, so an interrupted run is never used.
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    dest = pathlib.Path(sys.argv[1])
    specs = sys.argv[2:]
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="unas-wheels-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
             "--no-input", "--progress-bar", "off", "--only-binary", ":all:", "-d", tmp, *specs],
            check=True,
        )
        wheels = sorted(pathlib.Path(tmp).glob("*.whl"))
        if len(wheels) != len(specs):
            print(f"expected {len(specs)} wheels, pip left {len(wheels)} in {tmp}", file=sys.stderr)
            return 1
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as z:
                names = [n for n in z.namelist() if "/include/" in n and not n.endswith("/")]
                if not names:
                    print(f"{wheel.name} has no include/ folder", file=sys.stderr)
                    return 1
                z.extractall(partial, names)
                print(f"{wheel.name}: {len(names)} headers")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
