"""Add a "Mother Database Connection" at /mother_db (run with ``bin/zconsole run``).

``zconsole run ETC/zope.conf zope/add_connection.py`` gives this script ``app``. The
connection uses the DSN of ``<mother:database name="default">`` (change it in the ZMI).
"""

import transaction

from mother.zope import get_database
from mother.zope.connection import MotherConnection

app = globals()["app"]  # provided by zconsole
dsn = get_database("default").settings.dsn
if "mother_db" not in app.objectIds():
    app._setObject("mother_db", MotherConnection("mother_db", "Mother database", dsn))
    transaction.commit()
    print(f"added /mother_db ({dsn})")
else:
    print("/mother_db exists")
print(app.mother_db.test_connection())
