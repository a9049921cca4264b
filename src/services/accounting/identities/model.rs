//! What is recorded about a federated login, and what accounting reads
//! back: the identity fedgate verified, reduced to the two values an APEL
//! record can carry (GlobalUserName, FQAN).

use crate::identity::{AuthMethod, Identity};

/// What accounting puts into a record for a Keystone user fedgate has
/// seen log in: GlobalUserName and FQAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayIdentity {
    /// The certificate DN (OpenSSL one-line form, as in `GRST_CRED_0`), or
    /// `sub@issuer` for an OIDC identity.
    pub global_user_name: String,
    /// The primary FQAN (the first FQAN of the first attribute
    /// certificate), or the VO derived from the entitlements; `None` when
    /// the login carried neither.
    pub fqan: Option<String>,
}

/// Answers "who was this Keystone user when they logged in through
/// fedgate". Implemented by the identities store; the accounting extractor
/// holds it as `Arc<dyn IdentityLookup>` and falls back to cASO's
/// behaviour on `None`.
pub trait IdentityLookup: Send + Sync {
    /// The most recently seen identity of `keystone_user_id`.
    fn lookup(&self, keystone_user_id: &str) -> Option<GatewayIdentity>;
}

/// The identity fedgate verified, in the form it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Federated {
    /// An X.509 login: the end-entity certificate's DN and the FQANs of
    /// the valid attribute certificates, in AC order (gridsite's
    /// `GRST_VOMS_FQANS` lists them reversed).
    X509 { dn: String, fqans: Vec<String> },
    /// A bearer or WebSSO login: the validated issuer, `sub`, and the
    /// `eduperson_entitlement` values handed to Keystone.
    Oidc {
        issuer: String,
        sub: String,
        entitlements: Vec<String>,
    },
}

/// The entitlement claim as the claims exporter names it
/// (`OIDCClaimPrefix` + claim name); multiple values are `;`-joined.
const ENTITLEMENT_VAR: &str = "OIDC-eduperson_entitlement";

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl Federated {
    /// Reads the identity back from the variables handed to Keystone, so
    /// that what is stored is exactly what Keystone mapped: the DN of
    /// `GRST_CRED_0` (`X509USER <nb> <na> <depth> <DN>`) and the FQANs of
    /// the `VOMS` credentials (raw, in AC order); or `HTTP_OIDC_ISS`, the
    /// subject and `OIDC-eduperson_entitlement`. `None` for an identity
    /// that lacks them.
    pub fn from_identity(id: &Identity) -> Option<Federated> {
        match id.method {
            AuthMethod::X509 => {
                let dn = id
                    .get("GRST_CRED_0")
                    .map(text)
                    .and_then(|c| {
                        let mut f = c.splitn(5, ' ');
                        if f.next() != Some("X509USER") {
                            return None;
                        }
                        f.nth(3).map(str::to_string)
                    })
                    .unwrap_or_else(|| id.principal.clone());
                if dn.is_empty() {
                    return None;
                }
                let mut fqans = Vec::new();
                for n in 1.. {
                    let Some(c) = id.get(&format!("GRST_CRED_{n}")) else {
                        break;
                    };
                    let c = text(c);
                    if let Some(rest) = c.strip_prefix("VOMS ")
                        && let Some(f) = rest.splitn(4, ' ').nth(3)
                    {
                        fqans.push(f.to_string());
                    }
                }
                Some(Federated::X509 { dn, fqans })
            }
            AuthMethod::Bearer | AuthMethod::OidcSession => {
                let issuer = text(id.get("HTTP_OIDC_ISS")?);
                let sub = id.principal.clone();
                if issuer.is_empty() || sub.is_empty() {
                    return None;
                }
                let entitlements = id
                    .get(ENTITLEMENT_VAR)
                    .map(text)
                    .map(|v| {
                        v.split(';')
                            .filter(|e| !e.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                Some(Federated::Oidc {
                    issuer,
                    sub,
                    entitlements,
                })
            }
        }
    }

    /// `x509` or `oidc`: bearer and WebSSO logins of one person are one
    /// OIDC identity.
    pub fn kind(&self) -> &'static str {
        match self {
            Federated::X509 { .. } => "x509",
            Federated::Oidc { .. } => "oidc",
        }
    }

    /// The FQANs, or the entitlements.
    pub fn attributes(&self) -> &[String] {
        match self {
            Federated::X509 { fqans, .. } => fqans,
            Federated::Oidc { entitlements, .. } => entitlements,
        }
    }

    /// GlobalUserName and FQAN as accounting publishes them.
    pub fn gateway_identity(&self) -> GatewayIdentity {
        match self {
            Federated::X509 { dn, fqans } => GatewayIdentity {
                global_user_name: dn.clone(),
                fqan: fqans.first().cloned(),
            },
            Federated::Oidc {
                issuer,
                sub,
                entitlements,
            } => GatewayIdentity {
                global_user_name: format!("{sub}@{issuer}"),
                fqan: vo_of_entitlements(entitlements),
            },
        }
    }
}

/// The VO a list of entitlements puts a user in, for the FQAN field.
///
/// Entitlements follow AARC-G002:
/// `<namespace>:group:<vo>[:<subgroup>...][:role=<role>][#<authority>]`,
/// e.g. `urn:mace:egi.eu:group:vo.example.org:role=member#aai.egi.eu`.
/// The VO is the segment right after `:group:`. The first entitlement
/// with `role=member` (membership of the VO itself, which EGI Check-in
/// always issues) decides; failing that, the first group entitlement of
/// any role. Entitlements that are not group entitlements are ignored, so
/// a user with none gets `None` and accounting falls back to the
/// project's VO.
pub fn vo_of_entitlements(entitlements: &[String]) -> Option<String> {
    let parsed: Vec<(&str, Option<&str>)> = entitlements
        .iter()
        .filter_map(|e| group_entitlement(e))
        .collect();
    parsed
        .iter()
        .find(|(_, role)| *role == Some("member"))
        .or_else(|| parsed.first())
        .map(|(vo, _)| vo.to_string())
}

/// `(vo, role)` of an AARC-G002 group entitlement.
fn group_entitlement(e: &str) -> Option<(&str, Option<&str>)> {
    let e = e.split_once('#').map_or(e, |(l, _)| l);
    if !e.get(..4)?.eq_ignore_ascii_case("urn:") {
        return None;
    }
    let (_, groups) = e.split_once(":group:")?;
    let mut segs = groups.split(':');
    let vo = segs
        .next()
        .filter(|v| !v.is_empty() && !v.starts_with("role="))?;
    let role = segs.find_map(|s| s.strip_prefix("role="));
    Some((vo, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn vo_from_egi_entitlements() {
        assert_eq!(
            vo_of_entitlements(&v(&[
                "urn:mace:egi.eu:aai.egi.eu:affiliation",
                "urn:mace:egi.eu:group:vo.access.egi.eu:role=vm_operator#aai.egi.eu",
                "urn:mace:egi.eu:group:vo.example.org:sub:role=member#aai.egi.eu",
                "urn:mace:egi.eu:group:vo.example.org:role=member#aai.egi.eu",
            ])),
            Some("vo.example.org".into()),
            "the first role=member wins over an earlier other role"
        );
        assert_eq!(
            vo_of_entitlements(&v(&[
                "urn:mace:egi.eu:group:fedcloud.egi.eu:role=vm_operator#aai.egi.eu"
            ])),
            Some("fedcloud.egi.eu".into()),
            "no member role: the first group entitlement"
        );
        assert_eq!(
            vo_of_entitlements(&v(&["URN:geant:example.org:group:vo1#x"])),
            Some("vo1".into())
        );
        for none in [
            &[][..],
            &["https://example.org/not-a-urn"][..],
            &["urn:mace:egi.eu:group::role=member"][..],
            &["urn:mace:egi.eu:group:role=member"][..],
            &["urn:mace:egi.eu:res:vo.x"][..],
        ] {
            assert_eq!(vo_of_entitlements(&v(none)), None, "{none:?}");
        }
    }

    fn x509() -> Identity {
        let mut id = Identity::new(AuthMethod::X509, "/DC=org/CN=principal");
        id.set("GRST_CONN_AURI_0", "dn:/DC=org/O=People/CN=Alice+Normal");
        id.set(
            "GRST_CRED_0",
            "X509USER 1 2 1 /DC=org/O=People/CN=Alice Normal",
        );
        id.set(
            "GRST_CRED_1",
            "GSIPROXY 1 2 1 /DC=org/O=People/CN=Alice Normal/CN=1",
        );
        id.set(
            "GRST_CRED_2",
            "VOMS 1 2 0 /fedcloud.egi.eu/Role=NULL/Capability=NULL",
        );
        id.set(
            "GRST_CRED_3",
            "VOMS 1 2 0 /fedcloud.egi.eu/g 1/Role=VMManager",
        );
        id.set(
            "GRST_VOMS_FQANS",
            "/fedcloud.egi.eu/g+1/Role=VMManager;/fedcloud.egi.eu/Role=NULL/Capability=NULL",
        );
        id
    }

    #[test]
    fn x509_identity_is_the_dn_and_the_first_fqan() {
        let f = Federated::from_identity(&x509()).unwrap();
        assert_eq!(
            f,
            Federated::X509 {
                dn: "/DC=org/O=People/CN=Alice Normal".into(),
                fqans: v(&[
                    "/fedcloud.egi.eu/Role=NULL/Capability=NULL",
                    "/fedcloud.egi.eu/g 1/Role=VMManager"
                ]),
            }
        );
        assert_eq!(
            f.gateway_identity(),
            GatewayIdentity {
                global_user_name: "/DC=org/O=People/CN=Alice Normal".into(),
                fqan: Some("/fedcloud.egi.eu/Role=NULL/Capability=NULL".into()),
            }
        );
        // A plain certificate: no FQAN.
        let mut id = Identity::new(AuthMethod::X509, "/CN=bob");
        id.set("GRST_CRED_0", "X509USER 1 2 0 /CN=bob");
        assert_eq!(
            Federated::from_identity(&id).unwrap().gateway_identity(),
            GatewayIdentity {
                global_user_name: "/CN=bob".into(),
                fqan: None
            }
        );
    }

    #[test]
    fn oidc_identity_is_sub_at_issuer_and_the_vo() {
        for method in [AuthMethod::Bearer, AuthMethod::OidcSession] {
            let mut id = Identity::new(method, "abc123@egi.eu");
            id.set("HTTP_OIDC_ISS", "https://aai.egi.eu/auth/realms/egi");
            id.set("HTTP_OIDC_SUB", "abc123@egi.eu");
            id.set(
                "OIDC-eduperson_entitlement",
                "urn:mace:egi.eu:group:vo.example.org:role=vm_operator#aai.egi.eu;urn:mace:egi.eu:group:vo.example.org:role=member#aai.egi.eu",
            );
            let f = Federated::from_identity(&id).unwrap();
            assert_eq!(f.kind(), "oidc");
            assert_eq!(f.attributes().len(), 2);
            assert_eq!(
                f.gateway_identity(),
                GatewayIdentity {
                    global_user_name: "abc123@egi.eu@https://aai.egi.eu/auth/realms/egi".into(),
                    fqan: Some("vo.example.org".into()),
                }
            );
        }
        // Without a validated issuer there is nothing to record.
        let id = Identity::new(AuthMethod::Bearer, "x");
        assert_eq!(Federated::from_identity(&id), None);
    }
}
