//! `fedgate import-apache FILE... > fedgate.toml`: prints the translation
//! on stdout and every directive it could not translate on stderr.

use std::path::PathBuf;

use crate::migrate::apache::{self, Options};

/// Runs the command; returns its exit code (0 translated, even with notes;
/// 1 nothing usable; 2 unreadable files or syntax errors).
pub fn run(files: &[PathBuf], opts: &Options) -> u8 {
    match apache::import(files, opts) {
        Ok(t) => {
            print!("{}", t.toml);
            for n in &t.notes {
                eprintln!("{n}");
            }
            if !t.notes.is_empty() {
                eprintln!(
                    "import-apache: {} directive(s) not translated or translated with a change (above)",
                    t.notes.len()
                );
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
