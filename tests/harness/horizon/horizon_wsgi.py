"""WSGI entry of the harness Horizon (test tooling).

A packaged Horizon runs under Apache with `WSGIScriptAlias /dashboard` and
`Alias /dashboard/static`; gunicorn has neither, so this module does both:
  /dashboard/static/<file>  a file from STATIC_ROOT (collectstatic + compress)
  /dashboard/...            Django, with SCRIPT_NAME=/dashboard
  anything else             302 to /dashboard/
Django's own static handler cannot be used: it compares STATIC_URL with the
path after the prefix has been moved to SCRIPT_NAME.
"""
import mimetypes
import os

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'openstack_dashboard.settings')

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

DJANGO = get_wsgi_application()
MOUNT = settings.WEBROOT.rstrip('/')
STATIC = MOUNT + '/static/'
STATIC_ROOT = os.path.realpath(settings.STATIC_ROOT)


def static_file(path, start_response):
    full = os.path.realpath(os.path.join(STATIC_ROOT, path[len(STATIC):]))
    if not full.startswith(STATIC_ROOT + os.sep) or not os.path.isfile(full):
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'not found\n']
    with open(full, 'rb') as f:
        body = f.read()
    start_response('200 OK', [
        ('Content-Type', mimetypes.guess_type(full)[0] or 'application/octet-stream'),
        ('Content-Length', str(len(body))), ('Cache-Control', 'max-age=3600')])
    return [body]


def application(environ, start_response):
    path = environ.get('PATH_INFO') or '/'
    if path.startswith(STATIC):
        return static_file(path, start_response)
    if not path.startswith(MOUNT + '/'):
        start_response('302 Found', [('Location', MOUNT + '/'), ('Content-Length', '0')])
        return [b'']
    environ['SCRIPT_NAME'] = environ.get('SCRIPT_NAME', '') + MOUNT
    environ['PATH_INFO'] = path[len(MOUNT):]
    return DJANGO(environ, start_response)
