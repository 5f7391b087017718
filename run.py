#!/usr/bin/env python3
"""Bootstrap and run. Needs only Python 3.11+ on the machine.

    python3 run.py          run the whole system (web, worker, scheduler, listeners) with a demo lab
    python3 run.py test     run the test suite (extra arguments go to pytest)
    python3 run.py flask …  any flask command, e.g. `python3 run.py flask lis seed-demo`

It creates .venv/ and installs the pinned requirements the first time (and again when
requirements change). Without DATABASE_URL / REDIS_URL it uses embedded PostgreSQL and
Redis with their data under instance/.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"


def ensure_venv(requirements: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit("Python 3.11 or newer is needed.")
    req_files = [ROOT / "requirements.txt", ROOT / requirements]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in req_files)).hexdigest()[:16]
    stamp = VENV / f".installed-{requirements}-{digest}"
    if stamp.exists():
        return
    if not PY.exists():
        print("Creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"Installing {requirements} (first run only) …", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(ROOT / requirements)], check=True)
    for old in VENV.glob(f".installed-{requirements}-*"):
        old.unlink()
    stamp.touch()


def main(argv: list[str]) -> None:
    os.chdir(ROOT)
    command = argv[0] if argv else "up"
    if command == "test":
        ensure_venv("requirements-dev.txt")
        os.execv(str(PY), [str(PY), "-m", "pytest", *argv[1:]])
    ensure_venv("requirements.txt")
    if command == "up":
        os.execv(str(PY), [str(PY), "-m", "flask", "--app", "wsgi", "lis", "up", *argv[1:]])
    if command == "flask":
        os.execv(str(PY), [str(PY), "-m", "flask", "--app", "wsgi", *argv[1:]])
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
