"""Puts the layer, the handlers' folders and the repository root on the dev venv's path (a .pth
file), as Lambda puts the layer and the function's code on its path: tests, the local server and
mypy import `jobs_core` and each handler module by name, without sys.path edits."""

import sysconfig
from pathlib import Path

root = Path(__file__).resolve().parent.parent
folders = [root, root / "layers" / "jobs_core", *sorted(p for p in (root / "functions").iterdir() if p.is_dir())]
pth = Path(sysconfig.get_paths()["purelib"]) / "iot_jobs_dev.pth"
pth.write_text("".join(f"{folder}\n" for folder in folders))
