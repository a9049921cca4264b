//! What can go wrong in an extraction, naming the extractor, the project
//! and the cause.

use super::super::source::Extractor as Kind;
use crate::openstack::session::OpenStackError;

/// Why an extraction failed. A failed extractor fails the whole project:
/// the caller gets no partial [`Usage`](super::super::source::Usage).
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("accounting: cannot authenticate to Keystone: {0}")]
    Connect(#[source] OpenStackError),
    #[error("accounting: cannot list the projects to account: {0}")]
    Projects(#[source] OpenStackError),
    #[error("accounting: project {0:?} does not exist in Keystone")]
    UnknownProject(String),
    #[error(
        "accounting: project {project} has no VO (neither the project property nor the mapping names one): no records"
    )]
    NoVo { project: String },
    #[error("accounting: cannot get a token for project {project}: {cause}")]
    Scope {
        project: String,
        #[source]
        cause: OpenStackError,
    },
    #[error("accounting: {} extractor, project {project}: {cause}", kind_name(*extractor))]
    Extract {
        extractor: Kind,
        project: String,
        #[source]
        cause: Cause,
    },
}

/// The cause of one extractor's failure.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error(transparent)]
    Api(#[from] OpenStackError),
    /// The service answered something the record cannot be built from.
    #[error("{0}")]
    Data(String),
}

/// The extractor's name as cASO's `extractor` option spells it.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Nova => "nova",
        Kind::Cinder => "cinder",
        Kind::Neutron => "neutron",
    }
}
