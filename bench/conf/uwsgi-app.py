"""The upstream of bench/uwsgi.sh: Keystone's GET /v3 document as a fixed
WSGI answer, so that the run measures the front ends and the uwsgi protocol,
not Keystone. Content-Length is set, as Keystone (webob) sets it."""

BODY = (
    b'{"version": {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z", '
    b'"links": [{"rel": "self", "href": "https://localhost/v3/"}], "media-types": '
    b'[{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}}\n'
)
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY))), ("Vary", "X-Auth-Token")]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
