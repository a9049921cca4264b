//! Any bytes as an Apache configuration, split into a main file and two
//! includable files (`a.conf`, `conf.d/b.conf`) at NUL bytes: parsing
//! (continuations, quotes, sections, Define, Include globs and cycles)
//! and the translation must return an error or a translation, never panic.
#![no_main]
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fedgate::internal::apache::{self, parse::Files};
use libfuzzer_sys::fuzz_target;

struct Mem(HashMap<PathBuf, String>);

impl Files for Mem {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        Ok(self
            .0
            .keys()
            .filter_map(|k| k.strip_prefix(dir).ok())
            .filter_map(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect())
    }
    fn is_dir(&self, path: &Path) -> bool {
        !self.0.contains_key(path) && self.0.keys().any(|k| k.starts_with(path))
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let mut files = HashMap::new();
    for name in ["/etc/apache2/main.conf", "/etc/apache2/a.conf", "/etc/apache2/conf.d/b.conf"] {
        files.insert(PathBuf::from(name), parts.next().unwrap_or_default().to_string());
    }
    let fs = Mem(files);
    let _ = apache::import_with(
        &fs,
        &[PathBuf::from("/etc/apache2/main.conf")],
        &apache::Options::default(),
    );
});
