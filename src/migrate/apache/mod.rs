//! `fedgate import-apache`: the Apache vhost that serves Keystone today
//! (mod_ssl, mod_auth_openidc, gridsite, mod_wsgi or mod_proxy_uwsgi),
//! read with its includes and translated to fedgate's TOML, with every
//! directive that could not be translated (or changes behaviour) listed
//! with its file and line.
//!
//! [`parse`] is the configuration parser (pure: files come through
//! [`parse::Files`], so it can be fuzzed); `translate` maps directives to
//! fedgate's keys.

pub mod parse;
mod translate;

use std::path::PathBuf;

pub use translate::{Note, Options, TranslateError, Translation};

/// Why nothing was printed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An unreadable file or a syntax error, with its file and line.
    #[error(transparent)]
    Parse(#[from] parse::ParseError),
    /// The files hold no vhost that serves Keystone.
    #[error(transparent)]
    Translate(#[from] TranslateError),
}

impl ImportError {
    /// The command's exit code: 2 for files it cannot read or parse, 1
    /// when they hold nothing usable.
    pub fn exit_code(&self) -> u8 {
        match self {
            ImportError::Parse(_) => 2,
            ImportError::Translate(_) => 1,
        }
    }
}

/// Reads `files` (in order, as one configuration) from `fs` and
/// translates them.
pub fn import_with(
    fs: &dyn parse::Files,
    files: &[PathBuf],
    opts: &Options,
) -> Result<Translation, ImportError> {
    let parsed = parse::parse_files(fs, files)?;
    Ok(translate::translate(&parsed, files, opts)?)
}

/// [`import_with`] on the real file system.
pub fn import(files: &[PathBuf], opts: &Options) -> Result<Translation, ImportError> {
    import_with(&parse::RealFiles, files, opts)
}
