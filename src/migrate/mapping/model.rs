//! The typed rules, the engine's result and its errors.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// `schema_version` of the mapping: 2.0 adds a default `domain` for users
/// and projects (`RuleProcessorToHonorDomainOption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SchemaVersion {
    V1,
    V2,
}

/// A parsed mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub version: SchemaVersion,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub local: Vec<Local>,
    pub remote: Vec<Remote>,
}

/// One `remote` requirement.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The assertion attribute (`type`), e.g. `GRST_VOMS_FQANS`.
    pub attr: String,
    pub test: Test,
    pub regex: bool,
}

/// What a requirement asks of its attribute. The values are kept as JSON:
/// Keystone's schema lets them be anything, and non-strings behave as in
/// Python (never equal to a string; an object or array is unhashable).
#[derive(Debug, Clone)]
pub enum Test {
    Present,
    AnyOneOf(Vec<Value>),
    NotAnyOf(Vec<Value>),
    Blacklist(Vec<Value>),
    Whitelist(Vec<Value>),
}

/// One `local` entry; strings are `str.format` templates.
#[derive(Debug, Clone, Default)]
pub struct Local {
    pub user: Option<UserTpl>,
    pub group: Option<GroupTpl>,
    pub groups: Option<String>,
    pub group_ids: Option<String>,
    pub domain: Option<Domain>,
    pub projects: Option<Vec<ProjectTpl>>,
}

#[derive(Debug, Clone, Default)]
pub struct UserTpl {
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub domain: Option<Domain>,
    pub type_: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Domain {
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub enum GroupTpl {
    ById(String),
    ByName { name: String, domain: Domain },
}

#[derive(Debug, Clone)]
pub struct ProjectTpl {
    pub name: String,
    pub roles: Vec<String>,
    pub domain: Option<Domain>,
}

/// A mapping that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Schema { path: String, message: String },
}

/// What `RuleProcessor.process` returns, as JSON values so that Python's
/// shapes (a `None` domain, a non-string group name from `literal_eval`)
/// survive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mapped {
    pub user: Map<String, Value>,
    /// A set in Keystone: sorted, without repeats.
    pub group_ids: Vec<Value>,
    pub group_names: Vec<Value>,
    pub projects: Vec<Value>,
}

/// Why Keystone would refuse, or why this engine cannot tell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// `ValidationError("Could not map any federated user properties")`,
    /// which the mapped plugin answers with 401.
    #[error(
        "no rule matched (Keystone: 401 Could not map any federated user properties to identity values)"
    )]
    NoRuleMatched,
    /// Another `ValidationError` of the engine (401).
    #[error("{0} (Keystone: 401)")]
    Invalid(String),
    /// `DirectMappingError`: a `{N}` with no N-th direct map (500).
    #[error("{0} (Keystone: 500 DirectMappingError)")]
    DirectMapping(String),
    /// A Python exception Keystone does not catch (500).
    #[error("{0} (Keystone: 500)")]
    Python(String),
    /// Valid for Keystone, beyond this engine (e.g. a look-ahead regex).
    #[error("cannot evaluate: {0}")]
    Unsupported(String),
}

impl EvalError {
    /// The HTTP status Keystone answers with; `None` when unknown.
    pub fn status(&self) -> Option<u16> {
        match self {
            EvalError::NoRuleMatched | EvalError::Invalid(_) => Some(401),
            EvalError::DirectMapping(_) | EvalError::Python(_) => Some(500),
            EvalError::Unsupported(_) => None,
        }
    }
}

/// An assertion as Keystone builds it from the WSGI environ: name → value.
pub type Assertion = BTreeMap<String, String>;

/// Keystone's `get_assertion_params_from_env`: environ values are bytes
/// seen as latin-1 strings, re-read as UTF-8 when they are valid UTF-8.
/// Names are latin-1.
pub fn assertion_from_environ<'a>(
    env: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> Assertion {
    let latin1 = |b: &[u8]| b.iter().map(|&c| c as char).collect::<String>();
    env.into_iter()
        .map(|(k, v)| {
            let value = match std::str::from_utf8(v) {
                Ok(s) => s.to_string(),
                Err(_) => latin1(v),
            };
            (latin1(k), value)
        })
        .collect()
}
