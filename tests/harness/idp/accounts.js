// Test users of the harness IdPs. Issuer set "a" is EGI-like; set "b" is a
// second IdP whose users have other subjects and entitlements, so a token's
// issuer visibly changes the Keystone identity.

const egi = (vo, role) => `urn:mace:egi.eu:group:${vo}:role=${role}#aai.egi.eu`;

const daveEntitlements = [egi('fedcloud.egi.eu', 'vm_operator')];
for (let i = 1; i <= 100; i += 1) {
  daveEntitlements.push(egi(`bulk-vo-${String(i).padStart(3, '0')}.test`, 'member'));
}

export const accountSets = {
  a: {
    alice: {
      sub: 'a11ce0000000000000000000000000001@egi.test', name: 'Alice Operator', email: 'alice@example.org', email_verified: true,
      eduperson_entitlement: [egi('fedcloud.egi.eu', 'vm_operator'), egi('fedcloud.egi.eu', 'member'), egi('vo.access.egi.eu', 'member')],
    },
    bob: {
      sub: 'b0b000000000000000000000000000002@egi.test', name: 'Bob Member', email: 'bob@example.org', email_verified: true,
      eduperson_entitlement: [egi('fedcloud.egi.eu', 'member')],
    },
    carol: {
      sub: 'ca401000000000000000000000000003@egi.test', name: 'Carol NoGroups', email: 'carol@example.org', email_verified: false,
      eduperson_entitlement: [],
    },
    dave: {
      sub: 'da4e0000000000000000000000000004@egi.test', name: 'Dave ManyGroups', email: 'dave@example.org', email_verified: true,
      eduperson_entitlement: daveEntitlements,
    },
    // Control characters in a claim value (an IdP's data-entry accident):
    // NUL, SOH, VT, FF and DEL.
    erin: {
      sub: 'e41n0000000000000000000000000005@egi.test', name: 'Erin\u0000Null\u0001Soh\u000bVt\u000cFf\u007fDel', email: 'erin@example.org', email_verified: true,
      eduperson_entitlement: [egi('fedcloud.egi.eu', 'member')],
    },
  },
  b: {
    alice: {
      sub: 'idpb-alice-7d3f9c1e', name: 'Alice (IdP B)', email: 'alice@idp-b.example.org', email_verified: true,
      eduperson_entitlement: [egi('fedcloud.egi.eu', 'vm_operator'), 'urn:geant:idp-b.test:group:cloud-project-x:role=admin#idp-b.test'],
    },
    bob: {
      sub: 'idpb-bob-0a9e44b2', name: 'Bob (IdP B)', email: 'bob@idp-b.example.org', email_verified: true,
      eduperson_entitlement: [egi('fedcloud.egi.eu', 'member')],
    },
  },
};
// every user's password is "<user>-pw"
