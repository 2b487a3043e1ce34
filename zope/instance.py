"""Make or update the buildout's Zope instance without ever removing it (``[instance]`` part).

    python zope/instance.py --home var/instance --mkwsgiinstance bin/mkwsgiinstance \
        --user admin:admin [--dsn DSN]

* The instance (``etc/zope.conf``, ``var/Data.fs``, ``Extensions/``, ``inituser``) is
  made once by ``mkwsgiinstance``; later runs never touch it.
* ``etc/package-includes/mother-configure.zcml`` configures the database ``default``:
  with ``--dsn`` it is written with that DSN (XML-escaped, so ``&`` and quotes are
  fine); without it an existing file is kept as it is (a plain re-run of buildout
  does not change the database), and a new instance gets SQLite in its ``var/``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "mother-configure.zcml.in"


def zcml(dsn: str) -> str:
    """The package-include for ``dsn``."""
    return TEMPLATE.read_text().replace('"@DSN@"', quoteattr(dsn))


def ensure(home: Path, mkwsgiinstance: str, user: str, dsn: str | None) -> str:
    """Make the instance if missing and configure its database; what was done, as text."""
    done = []
    if not (home / "etc" / "zope.conf").exists():
        subprocess.run([mkwsgiinstance, "-d", str(home), "-u", user], check=True)
        done.append(f"made the instance {home}")
    (home / "Extensions").mkdir(exist_ok=True)
    includes = home / "etc" / "package-includes"
    includes.mkdir(parents=True, exist_ok=True)
    target = includes / "mother-configure.zcml"
    if dsn:
        target.write_text(zcml(dsn))
        done.append(f"database 'default': {dsn}")
    elif target.exists():
        done.append(f"kept the database of {target} (pass instance:dsn=... to change it)")
    else:
        default = f"sqlite:///{home / 'var' / 'mother.db'}"
        target.write_text(zcml(default))
        done.append(f"database 'default': {default}")
    return "; ".join(done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--mkwsgiinstance", required=True)
    parser.add_argument("--user", default="admin:admin")
    parser.add_argument("--dsn", default="")
    args = parser.parse_args(argv)
    print(ensure(args.home.resolve(), args.mkwsgiinstance, args.user, args.dsn or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
