"""Print pip constraints pinning each ``>=X`` of pyproject's [project.dependencies] to ``==X``."""

import re
import sys
import tomllib

with open(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml", "rb") as fh:
    dependencies = tomllib.load(fh)["project"]["dependencies"]
for requirement in dependencies:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([^,;\s]+)\s*", requirement)
    if not match:
        sys.exit(f"cannot pin {requirement!r}: write it as NAME>=VERSION")
    print(f"{match[1]}=={match[2]}")
