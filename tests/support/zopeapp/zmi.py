"""Adding objects the way a Zope user adds them: through the ZMI forms (WebTest clients)."""

from __future__ import annotations

from typing import Any

import webtest

CONNECTION_ADD = "/manage_addProduct/mother.zope/manage_addMotherConnection"


def connection_form(dsn: str, id: str, **extra: Any) -> dict[str, str]:
    """The add form of a Mother Database Connection, filled in."""
    return {"id": id, "title": "My database", "dsn": dsn, "pool_min": "1", "pool_max": "3",
            "pool_timeout": "5", "pool_type": "limited", "twophase": "auto", **extra}


def dsn_of(kind: str, instance: dict[str, Any]) -> str:
    return instance["pg"] if kind == "postgresql" else instance["lite"]


def add_zsql(client: webtest.TestApp, id: str, connection_id: str, arguments: str,
             template: str, folder: str = "") -> None:
    """Add a Z SQL Method through its ZMI add form."""
    response = client.post(f"{folder}/manage_addProduct/ZSQLMethods/manage_addZSQLMethod", {
        "id": id, "title": "", "connection_id": connection_id, "arguments": arguments,
        "template": template, "submit": " Add "})
    assert response.status_int == 302, response.text


def add_script(client: webtest.TestApp, id: str, text: str, folder: str = "") -> None:
    """Add a Script (Python) through its ZMI add form."""
    response = client.post(f"{folder}/manage_addProduct/PythonScripts/manage_addPythonScript",
                           {"id": id, "file": text})
    assert response.status_int == 302, response.text


def delete(client: webtest.TestApp, *ids: str, folder: str = "") -> None:
    client.post(f"{folder}/manage_delObjects", {"ids:list": list(ids)})
