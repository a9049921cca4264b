#!/usr/bin/env python3
"""Idempotent cloud objects of fedgate's Nova harness (openstacksdk, one process).

phase 'identity' (Keystone only, OS_* admin credentials): project 'service'
with the service users nova, placement, glance, neutron, cinder (password
SERVICE_PASSWORD, roles admin + service); services and public/internal/admin
endpoints for compute, placement, image, network, volumev3 and block-storage;
projects acct-a / acct-b (property VO = vo.a.test / vo.b.test: cASO's
vo_property) with users user-a / user-b (member + reader); user 'accounting'
(reader on both projects + system-scope reader: what cASO and fedgate's
extractor run as).
phase 'cloud' (Glance and Nova up): flavors m1.tiny, m1.small (benchmark
extra specs), g1.gpu (accelerator extra specs); public images tiny-raw and
tiny-appdb (with vmcatcher_event_ad_mpuri, the property accounting maps to
ImageId).

Usage: bootstrap.py identity | bootstrap.py cloud IMAGE_FILE
Prints a JSON summary (ids) on stdout.
"""
import json
import os
import sys

import openstack

HOST = "http://127.0.0.1"
P = {k: int(os.environ[k]) for k in ("PLACEMENT_PORT", "GLANCE_PORT", "NOVA_PORT",
                                       "NEUTRON_PORT", "CINDER_PORT")}
SERVICES = [  # (user, service type, endpoint URL)
    ("nova", "compute", f"{HOST}:{P['NOVA_PORT']}/v2.1"),
    ("placement", "placement", f"{HOST}:{P['PLACEMENT_PORT']}"),
    ("glance", "image", f"{HOST}:{P['GLANCE_PORT']}"),
    ("neutron", "network", f"{HOST}:{P['NEUTRON_PORT']}"),
    ("cinder", "volumev3", f"{HOST}:{P['CINDER_PORT']}/v3/%(project_id)s"),
    ("cinder", "block-storage", f"{HOST}:{P['CINDER_PORT']}/v3/%(project_id)s"),
]
TENANTS = [("acct-a", "user-a", "vo.a.test"), ("acct-b", "user-b", "vo.b.test")]
USER_PW = os.environ.get("TENANT_PASSWORD", "user-pw")
SERVICE_PW = os.environ.get("SERVICE_PASSWORD", "service-pw")
ACCOUNTING_PW = os.environ.get("ACCOUNTING_PASSWORD", "accounting-pw")
REGION = os.environ.get("OS_REGION_NAME", "RegionOne")


def conn():
    return openstack.connect(
        auth_url=os.environ["OS_AUTH_URL"], username=os.environ["OS_USERNAME"],
        password=os.environ["OS_PASSWORD"], project_name=os.environ.get("OS_PROJECT_NAME", "admin"),
        user_domain_id=os.environ.get("OS_USER_DOMAIN_ID", "default"),
        project_domain_id=os.environ.get("OS_PROJECT_DOMAIN_ID", "default"),
        region_name=REGION, identity_api_version="3")


def role(c, name):
    return c.identity.find_role(name) or c.identity.create_role(name=name)


def project(c, name, desc):
    return (c.identity.find_project(name, domain_id="default")
            or c.identity.create_project(name=name, domain_id="default", description=desc))


def user(c, name, pw, proj):
    u = c.identity.find_user(name, domain_id="default")
    if u is None:
        u = c.identity.create_user(name=name, password=pw, domain_id="default",
                                   default_project_id=proj.id)
    # an existing user keeps its password: each bcrypt hash costs ~0.5 s on
    # a loaded box, and re-runs must stay cheap
    return u


def grant(c, u, proj, *roles):
    for r in roles:
        c.identity.assign_project_role_to_user(proj, u, role(c, r))


def identity():
    c = conn()
    out = {"projects": {}, "users": {}}
    service = project(c, "service", "service users")
    done_users = set()
    for name, stype, url in SERVICES:
        if name not in done_users:
            u = user(c, name, SERVICE_PW, service)
            grant(c, u, service, "admin", "service")
            done_users.add(name)
        svc = next((s for s in c.identity.services() if s.type == stype), None)
        if svc is None:
            svc = c.identity.create_service(name=name, type=stype, enabled=True)
        have = {e.interface: e for e in c.identity.endpoints(service_id=svc.id)}
        for iface in ("public", "internal", "admin"):
            if iface in have and have[iface].url != url:
                c.identity.update_endpoint(have[iface], url=url)
            elif iface not in have:
                c.identity.create_endpoint(service_id=svc.id, interface=iface, url=url,
                                           region_id=REGION)
    acc_home = None
    for pname, uname, vo in TENANTS:
        pr = project(c, pname, f"accounting test project {pname}")
        # cASO maps project -> VO through this project property (vo_property = VO)
        c.identity.patch(f"/projects/{pr.id}", json={"project": {"VO": vo}})
        u = user(c, uname, USER_PW, pr)
        grant(c, u, pr, "member", "reader")
        out["projects"][pname] = pr.id
        out["users"][uname] = u.id
        acc_home = acc_home or pr
    acc = user(c, "accounting", ACCOUNTING_PW, acc_home)
    for pname, _, _ in TENANTS:
        grant(c, acc, c.identity.find_project(pname, domain_id="default"), "reader")
    # cASO reads projects and other users with a system-scoped token
    c.identity.assign_system_role_to_user(user=acc, role=role(c, "reader"), system="all")
    out["users"]["accounting"] = acc.id
    out["vos"] = {p: vo for p, _, vo in TENANTS}
    return out


FLAVORS = [
    # name, vcpus, ram MB, disk GB, extra specs
    ("m1.tiny", 1, 512, 1, {}),
    ("m1.small", 2, 2048, 10, {"accounting:benchmark_type": "HEPscore23",
                               "accounting:benchmark_value": "12.5"}),
    # GPU-like by the extra specs accounting reads; the fake driver has no
    # PCI devices, so no pci_passthrough:alias (it would never schedule)
    ("g1.gpu", 4, 8192, 20, {"Accelerator:Vendor": "NVIDIA", "Accelerator:Model": "A100",
                             "Accelerator:Number": "1", "Accelerator:Type": "GPU"}),
]
MPURI = "https://appdb.egi.eu/store/vo/image/fedgate-tiny:1/"


def image(c, name, filename, props):
    img = c.image.find_image(name)
    if img is None:
        img = c.image.create_image(name=name, filename=filename, disk_format="raw",
                                   container_format="bare", visibility="public",
                                   wait=True, allow_duplicates=True)
    if props:
        # On a re-run the properties are already there, and Glance answers
        # the SDK's "add" patch with 409: that is the state we want.
        try:
            c.image.update_image(img, **props)
        except openstack.exceptions.ConflictException:
            pass
    return img.id


def cloud(image_file):
    c = conn()
    out = {"flavors": {}, "images": {}, "mpuri": MPURI}
    for name, vcpus, ram, disk, specs in FLAVORS:
        f = c.compute.find_flavor(name)
        if f is None:
            f = c.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk,
                                        is_public=True)
        if specs:
            c.compute.create_flavor_extra_specs(f, specs)
        out["flavors"][name] = f.id
    out["images"]["tiny-raw"] = image(c, "tiny-raw", image_file, {})
    out["images"]["tiny-appdb"] = image(c, "tiny-appdb", image_file,
                                        {"vmcatcher_event_ad_mpuri": MPURI})
    return out


if __name__ == "__main__":
    openstack.enable_logging(debug=False)
    if len(sys.argv) >= 2 and sys.argv[1] == "identity":
        print(json.dumps(identity(), indent=1))
    elif len(sys.argv) >= 3 and sys.argv[1] == "cloud":
        print(json.dumps(cloud(sys.argv[2]), indent=1))
    else:
        sys.exit(__doc__)
