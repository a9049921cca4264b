"""Evaluate a Keystone mapping with Keystone's own RuleProcessor.

Runs in the Keystone venv (~/.cache/fedgate/keystone-venv). Reads one JSON
document on stdin:
    {"mapping": <`openstack mapping show -f json` object or a rules list>,
     "assertions": [{"NAME": "value", ...}, ...]}
and prints one JSON document: {"results": [...]}, one entry per assertion,
either {"ok": {"user", "group_ids" (sorted), "group_names", "projects"}} or
{"error": <exception class>, "status": <HTTP status Keystone answers>,
"message": <text>}. Schema errors of the mapping itself are printed as
{"schema_error": <jsonschema messages>}.

The reference for tests/migrate_check.rs: fedgate's Rust engine
(src/migrate/mapping) must give the same answers.
"""

import json
import sys
import warnings

warnings.simplefilter("ignore")

import keystone.conf
from keystone import exception
from keystone.federation import utils

CONF = keystone.conf.CONF


def main():
    # The minimal oslo.config set-up: register keystone's options (the
    # schema check reads [federation]; exception messages read
    # insecure_debug) and parse an empty command line with no files.
    keystone.conf.configure()
    CONF([], project='keystone', default_config_files=[])
    doc = json.load(sys.stdin)
    mapping = doc['mapping']
    if isinstance(mapping, list):
        mapping = {'rules': mapping}
    version = mapping.get('schema_version') or utils.DEFAULT_SCHEMA_VERSION
    ref = {'rules': mapping['rules']}
    if 'schema_version' in mapping and mapping['schema_version'] is not None:
        ref['schema_version'] = mapping['schema_version']
    try:
        utils.validate_mapping_structure(ref)
    except exception.ValidationError as e:
        print(json.dumps({'schema_error': str(e)}))
        return
    processor_cls = utils.IDP_ATTRIBUTE_MAPPING_SCHEMAS[version]['processor']
    results = []
    for assertion in doc['assertions']:
        processor = processor_cls('mapping-under-test', json.loads(json.dumps(mapping['rules'])))
        try:
            r = processor.process(dict(assertion))
        except exception.ValidationError as e:
            # The mapped plugin turns a ValidationError into 401.
            results.append({'error': type(e).__name__, 'status': 401, 'message': str(e)})
            continue
        except exception.Error as e:
            results.append({'error': type(e).__name__, 'status': e.code, 'message': str(e)})
            continue
        except Exception as e:  # noqa: BLE001 - Keystone answers 500
            results.append({'error': type(e).__name__, 'status': 500, 'message': str(e)})
            continue
        results.append({'ok': {
            'user': r['user'],
            'group_ids': sorted(r['group_ids'], key=lambda v: json.dumps(v)),
            'group_names': r['group_names'],
            'projects': r['projects'],
        }})
    print(json.dumps({'results': results}))


if __name__ == '__main__':
    main()
