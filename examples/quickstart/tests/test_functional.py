"""The application as ``pserve`` serves it, over HTTP: each request is a
transaction that commits when the view returns and rolls back when it fails."""

import http.client
import urllib.parse


def request(server, method, path, form=None):
    connection = http.client.HTTPConnection(server, timeout=30)
    body = urllib.parse.urlencode(form) if form is not None else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
    connection.request(method, path, body, headers)
    response = connection.getresponse()
    return response.status, response.getheader("Location"), response.read().decode()


def test_a_star_added_over_http_is_committed(server):
    status, location, _ = request(server, "POST", "/stars", {"name": "Sirius",
                                                             "planets": "b"})
    assert status == 303 and location.startswith(f"http://{server}/stars/")
    status, _, page = request(server, "GET", urllib.parse.urlsplit(location).path)
    assert status == 200 and "<h1>Sirius</h1>" in page and "<li>b</li>" in page
    status, _, home = request(server, "GET", "/")
    assert status == 200 and "Sirius</a>\n      (1 planets)" in home


def test_a_refused_request_stores_nothing(server):
    status, _, _ = request(server, "POST", "/stars", {"name": "", "planets": "lost"})
    assert status == 400
    assert "lost" not in request(server, "GET", "/")[2]


def test_an_unknown_star_is_404(server):
    assert request(server, "GET", "/stars/987654")[0] == 404
