//! Configuration problems, each naming the file and line to fix.
//!
//! A leaf: every subsystem validates its own configuration section and
//! reports here, so that `check-config` and a refused reload can point an
//! operator at the exact line, whichever module found the fault.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::Spanned;

/// One thing wrong with a configuration, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn at(file: &Path, line: usize, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_path_buf(),
            line: Some(line),
            message: message.into(),
        }
    }
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_path_buf(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// A list of problems; empty means the configuration is usable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn one(p: Problem) -> Self {
        Problems(vec![p])
    }
    pub fn push(&mut self, p: Problem) {
        self.0.push(p);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }
    pub fn into_result(self) -> Result<(), Problems> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Prints each problem on stderr as `error: file:line: message`, the
    /// form editors and humans read.
    pub fn report(&self) {
        for problem in &self.0 {
            eprintln!("error: {problem}");
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl std::error::Error for Problem {}

impl From<Problem> for Problems {
    fn from(p: Problem) -> Self {
        Problems::one(p)
    }
}

/// The file a configuration came from, kept to turn spans into lines.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// A problem located at a spanned value. Defaults (empty span) have no
    /// line of their own, so the problem names the file only.
    pub fn problem<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> Problem {
        let span = at.span();
        if span.is_empty() && span.start == 0 {
            Problem::file(&self.path, message)
        } else {
            Problem::at(&self.path, self.line_of(span.start), message)
        }
    }

    /// A problem about the file as a whole.
    pub fn file_problem(&self, message: impl Into<String>) -> Problem {
        Problem::file(&self.path, message)
    }
}
