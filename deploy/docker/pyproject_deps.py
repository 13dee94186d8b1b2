"""Print a pip requirements list read from pyproject.toml, for the image build.

The Dockerfile installs dependencies in a layer of their own, before the code
is copied, so that editing service/ or training/ does not re-download
scikit-learn and friends. pip cannot install "only the dependencies of ." on
its own, so this script reads them from pyproject.toml (stdlib only, it runs
in the bare base image) and the Dockerfile feeds the output to `pip install -r`.

    python pyproject_deps.py pyproject.toml                    # [project].dependencies
    python pyproject_deps.py pyproject.toml --extra accurate   # ... plus that extra
    python pyproject_deps.py pyproject.toml --build-system     # [build-system].requires

Self-references such as "sitrep[test]" inside an extra are expanded, so an
extra may build on another one. An extra that pyproject.toml does not define is
an error: asking for PROFILE=accurate and silently getting the fast image
would be worse than a failed build.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

# "name[extra1,extra2]" with an optional environment marker we do not need.
_SELF_REF = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*\[([^\]]*)\]\s*(;.*)?$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    project = pyproject["project"]
    own_name = _normalise(project["name"])
    optional = {_normalise(k): v for k, v in project.get("optional-dependencies", {}).items()}

    out: list[str] = []
    seen_extras: set[str] = set()

    def add(reqs: list[str]) -> None:
        for req in reqs:
            match = _SELF_REF.match(req)
            if match and _normalise(match.group(1)) == own_name:
                for extra in match.group(2).split(","):
                    add_extra(extra.strip())
            elif req not in out:
                out.append(req)

    def add_extra(extra: str) -> None:
        key = _normalise(extra)
        if key in seen_extras:
            return
        if key not in optional:
            defined = ", ".join(sorted(optional)) or "none"
            sys.exit(f"pyproject_deps: extra {extra!r} is not defined (defined: {defined})")
        seen_extras.add(key)
        add(optional[key])

    add(project.get("dependencies", []))
    for extra in extras:
        add_extra(extra)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extra", action="append", default=[], help="add this extra (repeatable)")
    parser.add_argument(
        "--build-system", action="store_true", help="print [build-system].requires instead"
    )
    args = parser.parse_args()

    data = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))
    if args.build_system:
        reqs = data.get("build-system", {}).get("requires", ["setuptools", "wheel"])
    else:
        reqs = requirements(data, [e for e in args.extra if e])
    print("\n".join(reqs))


if __name__ == "__main__":
    main()
