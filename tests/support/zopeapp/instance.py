"""The Zope instance of the Zope tests: its zope.conf, its site.zcml (Zope, mother.zope
and this test application, two ``<mother:database>`` directives), its Manager and the
tables each test starts from."""

#: the Manager the instance is made with (user name, password)
ADMIN = ("admin", "secret")

ZOPE_CONF = """\
%define INSTANCE {home}
instancehome $INSTANCE
<zodb_db main>
    <mappingstorage />
    mount-point /
</zodb_db>
max-conflict-retries 2
"""

SITE_ZCML = """\
<configure xmlns="http://namespaces.zope.org/zope"
           xmlns:five="http://namespaces.zope.org/five"
           xmlns:mother="http://namespaces.zope.org/mother">
  <include package="Zope2.App" />
  <include package="Products.Five" />
  <five:loadProducts file="meta.zcml" />
  <five:loadProducts />
  <include package="mother.zope" />
  <include package="tests.support.zopeapp" />
  <mother:database name="default" dsn="{pg}" pool_min="1" pool_max="5" twophase="on" />
  <mother:database name="lite" dsn="sqlite:///{lite}" pool_min="1" pool_max="2" />
</configure>
"""

PG_DDL = """
DROP TABLE IF EXISTS notes, counters, guarded, parents;
CREATE TABLE notes (id SERIAL PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE parents (id INTEGER PRIMARY KEY);
CREATE TABLE guarded (id SERIAL PRIMARY KEY, body TEXT,
    ref INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);
INSERT INTO counters VALUES (1, 0), (2, 0);
"""

LITE_DDL = """
DROP TABLE IF EXISTS notes;
CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
"""
