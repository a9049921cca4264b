//! The seams between the accounting plugin's parts: what an extraction is
//! asked for ([`ExtractOptions`], [`Window`], [`ProjectRef`]), what it
//! yields ([`Usage`]), and how it learns the identity a user logged in
//! with through the gateway ([`IdentityLookup`]).
//!
//! They live apart from the extractor, the identity store and the plugin
//! so that each of those can change without the others.

use std::collections::{BTreeMap, BTreeSet};

use super::record::{AcceleratorRecord, CloudRecord, IpRecord, StorageRecord};
use crate::openstack::session::AuthOptions;

/// The extraction window, Unix seconds (UTC), both ends included as in
/// cASO (`lastrun` is written as `to + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub to: i64,
}

/// A project to account, with the VO its records carry as `FQAN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: String,
    pub name: String,
    /// `None` when neither the project property nor the mapping file names
    /// one: such a project yields no records, and the run says so.
    pub vo: Option<String>,
}

/// Which extractors run (caso's `extractor` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Extractor {
    /// Nova: cloud and accelerator records.
    Nova,
    /// Cinder: StAR storage records.
    Cinder,
    /// Neutron: public IP records.
    Neutron,
}

/// Flavor extra-spec keys (caso's `[benchmark]` and `[accelerator]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecKeys {
    pub benchmark_name: String,
    pub benchmark_value: String,
    pub accelerator_type: String,
    pub accelerator_vendor: String,
    pub accelerator_model: String,
    pub accelerator_number: String,
}

impl Default for SpecKeys {
    /// caso 5.2.2's code defaults (its docs name the benchmark key
    /// `..._name`, the code reads `accounting:benchmark_type`: A14 item 7).
    fn default() -> Self {
        SpecKeys {
            benchmark_name: "accounting:benchmark_type".into(),
            benchmark_value: "accounting:benchmark_value".into(),
            accelerator_type: "Accelerator:Type".into(),
            accelerator_vendor: "Accelerator:Vendor".into(),
            accelerator_model: "Accelerator:Model".into(),
            accelerator_number: "Accelerator:Number".into(),
        }
    }
}

/// Where `GlobalUserName` comes from when the gateway knows the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GlobalUserSource {
    /// The identity the gateway verified (DN, or `sub@issuer`); the
    /// Keystone user name when the gateway never saw the user.
    #[default]
    Gateway,
    /// Always the Keystone user name, as cASO does.
    KeystoneName,
}

/// Everything the extractor needs, built from `[plugins.accounting]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractOptions {
    pub auth: AuthOptions,
    /// GOCDB site name (`SiteName`, StAR `Site`).
    pub site_name: String,
    /// `CloudComputeService` (caso: defaults to the site name).
    pub service_name: String,
    /// `CloudType`; default `fedgate/<version> (OpenStack)`.
    pub cloud_type: String,
    /// Projects by id or name (caso `projects`).
    pub projects: Vec<String>,
    /// Keystone tag that adds projects (caso `caso_tag`, default `caso`).
    pub project_tag: Option<String>,
    /// Project property holding the VO (caso `vo_property`, default `VO`).
    pub vo_property: String,
    /// Project id or name → VO (caso's deprecated `voms.json`); the
    /// project property wins over it.
    pub vo_mapping: BTreeMap<String, String>,
    pub extractors: BTreeSet<Extractor>,
    pub spec_keys: SpecKeys,
    pub global_user: GlobalUserSource,
    /// Reproduce caso 5.2.2's output field for field, defects included
    /// (A14), for differential tests. Never for production.
    pub caso_compat: bool,
}

/// The records of one project and window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub cloud: Vec<CloudRecord>,
    pub ip: Vec<IpRecord>,
    pub accelerator: Vec<AcceleratorRecord>,
    pub storage: Vec<StorageRecord>,
}

impl Usage {
    pub fn len(&self) -> usize {
        self.cloud.len() + self.ip.len() + self.accelerator.len() + self.storage.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// The identity the gateway verified, and the lookup the identity store
// implements: defined beside the store, used here by the extractor.
pub use super::identities::model::{GatewayIdentity, IdentityLookup};

/// No gateway identities: every record falls back to cASO's behaviour.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIdentities;

impl IdentityLookup for NoIdentities {
    fn lookup(&self, _: &str) -> Option<GatewayIdentity> {
        None
    }
}
