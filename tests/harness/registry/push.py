"""Pushes one image file as an OCI artifact the way EGI publishes images
(oras, one layer, eu.egi.cloud.* annotations).

    push.py HOST:PORT USER PASSWORD REPO:TAG FILE ANNOTATIONS_JSON

ANNOTATIONS_JSON: {"$manifest": {...}, "$layer": {...}}. Prints the
manifest digest.
"""
import json
import os
import sys

import oras.client

host, user, password, ref, path, annots = sys.argv[1:7]
a = json.loads(annots)
os.chdir(os.path.dirname(os.path.abspath(path)))
name = os.path.basename(path)
af = name + ".annotations.json"
with open(af, "w") as f:
    json.dump({"$manifest": a.get("$manifest", {}), name: a.get("$layer", {})}, f)
c = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
c.auth.set_basic_auth(user, password)
r = c.push(target=f"{host}/{ref}", files=[name], annotation_file=af)
os.remove(af)
print(r.headers.get("Docker-Content-Digest", ""))
