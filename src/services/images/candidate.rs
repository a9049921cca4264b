//! One image offered by a source, in a form shared by both sources: a
//! HEPiX list entry ([`Candidate::from_list`]) and an OCI artifact of the
//! EGI registry (`registry::Registry::candidates`).
//!
//! Plain data: the Glance sync decides from it what to create, update or
//! retire, and hands it to `download::Stager::stage` to get the bytes. The
//! fields carry what both sources publish; what only one source has
//! stays in [`Candidate::attributes`] (the raw list entry or the artifact's
//! annotations), which the sync stores as `APPLIANCE_ATTRIBUTES`.

use std::collections::BTreeMap;

use super::list::{Image, ImageList};

/// Where the bytes of a candidate come from, with what they must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A HEPiX `hv:uri`: a plain HTTPS download (no authentication).
    Http {
        url: String,
        /// Lower-case hex SHA-512 of the file as downloaded.
        sha512: String,
        /// Bytes, as published (`hv:size`).
        size: u64,
    },
    /// A blob of an OCI registry, fetched by digest.
    Oci {
        /// Base URL of the registry, e.g. `https://registry.egi.eu`.
        registry: String,
        /// Repository, e.g. `egi_vm_images/ubuntu`.
        repository: String,
        /// The layer's digest, `sha256:<64 hex>` (or `sha512:<128 hex>`).
        digest: String,
        /// Bytes, from the manifest's layer descriptor.
        size: u64,
        /// The layer's media type.
        media_type: String,
    },
}

impl Location {
    /// The declared size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Location::Http { size, .. } | Location::Oci { size, .. } => *size,
        }
    }

    /// The checksum a Glance property records: `sha512:<hex>` for lists,
    /// the OCI digest (`sha256:<hex>`) for artifacts.
    pub fn checksum(&self) -> String {
        match self {
            Location::Http { sha512, .. } => format!("sha512:{sha512}"),
            Location::Oci { digest, .. } => digest.clone(),
        }
    }
}

/// Which kind of source offered a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A signed HEPiX image list.
    HepixList,
    /// An OCI registry (the EGI Artefact Registry).
    Registry,
}

/// An image a source offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Stable identity: the list's `dc:identifier` of the image, or
    /// `<registry host>/<repository>:<tag>-<manifest digest>` for OCI.
    pub identifier: String,
    pub kind: SourceKind,
    /// `dc:title`, or `eu.egi.cloud.image.title` (else `<repository>:<tag>`).
    pub title: String,
    pub description: Option<String>,
    /// `hv:version`, or `org.opencontainers.image.version`, else
    /// `eu.egi.cloud.tag`, else the OCI tag.
    pub version: String,
    /// The VO whose projects get the image: the list's `ad:vo`, or the
    /// `eu.egi.cloud.vo` annotation (unset otherwise; the sync maps by
    /// source then).
    pub vo: Option<String>,
    /// The format as published (`hv:format`,
    /// `org.openstack.glance.disk_format`). Never trusted: staging
    /// detects the real one.
    pub declared_format: Option<String>,
    /// AppDB marketplace URI (lists only): the accounting ImageId.
    pub mpuri: Option<String>,
    pub arch: Option<String>,
    pub os_distro: Option<String>,
    pub os_version: Option<String>,
    /// Per-image expiry, Unix seconds (lists only).
    pub expires: Option<i64>,
    /// `dc:identifier` of the list, or `<registry host>/<repository>`.
    pub list_identifier: String,
    /// Every raw attribute: the list entry's fields, or the merged
    /// manifest and layer annotations.
    pub attributes: BTreeMap<String, String>,
    pub location: Location,
}

fn put(m: &mut BTreeMap<String, String>, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v.clone());
    }
}

impl Candidate {
    /// The candidate of one image of an accepted list.
    pub fn from_list(list: &ImageList, i: &Image) -> Candidate {
        let mut a = BTreeMap::new();
        a.insert("dc:identifier".into(), i.identifier.clone());
        a.insert("hv:uri".into(), i.uri.clone());
        a.insert("sl:checksum:sha512".into(), i.sha512.clone());
        a.insert("hv:size".into(), i.size.to_string());
        a.insert("hv:version".into(), i.version.clone());
        put(&mut a, "dc:title", &i.title);
        put(&mut a, "dc:description", &i.description);
        put(&mut a, "hv:format", &i.format);
        put(&mut a, "hv:hypervisor", &i.hypervisor);
        put(&mut a, "sl:os", &i.os);
        put(&mut a, "sl:osname", &i.os_name);
        put(&mut a, "sl:osversion", &i.os_version);
        put(&mut a, "sl:arch", &i.arch);
        put(&mut a, "sl:comments", &i.comments);
        put(&mut a, "ad:mpuri", &i.mpuri);
        put(&mut a, "ad:base_mpuri", &i.base_mpuri);
        put(&mut a, "ad:appid", &i.appid);
        put(&mut a, "ad:group", &i.group);
        for (k, v) in [
            ("hv:ram_minimum", i.ram_minimum),
            ("ad:ram_recommended", i.ram_recommended),
            ("hv:core_minimum", i.core_minimum),
            ("ad:core_recommended", i.core_recommended),
        ] {
            if let Some(v) = v {
                a.insert(k.into(), v.to_string());
            }
        }
        Candidate {
            identifier: i.identifier.clone(),
            kind: SourceKind::HepixList,
            title: i.title.clone().unwrap_or_else(|| i.identifier.clone()),
            description: i.description.clone(),
            version: i.version.clone(),
            vo: list.vo.clone(),
            declared_format: i.format.clone(),
            mpuri: i.mpuri.clone(),
            arch: i.arch.clone(),
            os_distro: i.os_name.clone(),
            os_version: i.os_version.clone(),
            expires: i.expires,
            list_identifier: list.identifier.clone(),
            attributes: a,
            location: Location::Http {
                url: i.uri.clone(),
                sha512: i.sha512.to_ascii_lowercase(),
                size: i.size,
            },
        }
    }
}
