//! An Apache httpd configuration parser: enough of `server/config.c` and
//! `util.c` to read the vhosts sites run in front of Keystone, with the
//! file and line of every directive kept for the report.
//!
//! What it does as Apache does: `\` line continuations, `#` comment lines,
//! arguments split on white space with `"`/`'` quoting (a backslash escapes
//! the quote inside), case-insensitive directive names, `<Section args>`
//! blocks that must close in the file that opened them, `Define` and
//! `${NAME}` substitution, and `Include`/`IncludeOptional` with wildcards
//! (a relative path is taken from `ServerRoot` when one was set, else from
//! the including file's directory). It reads files only through
//! [`Files`], so that the fuzz target can feed it memory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a directive was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub file: Arc<PathBuf>,
    pub line: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One directive, or a section with the directives inside it.
#[derive(Debug, Clone)]
pub struct Directive {
    /// As written (`SSLCertificateFile`, `VirtualHost`); compare with [`Directive::is`].
    pub name: String,
    /// Arguments with quotes removed and `${NAME}` substituted.
    pub args: Vec<String>,
    pub at: At,
    /// `Some` for a `<Section>`, holding its contents.
    pub children: Option<Vec<Directive>>,
}

impl Directive {
    /// Directive names are case-insensitive in Apache.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }
    /// Arguments joined by one space, for messages.
    pub fn args_line(&self) -> String {
        self.args.join(" ")
    }
    pub fn children(&self) -> &[Directive] {
        self.children.as_deref().unwrap_or(&[])
    }
}

/// A syntax error or an unreadable file, with the place to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
pub struct ParseError {
    /// `None` for a file named on the command line that cannot be read.
    pub at: Option<At>,
    pub message: String,
}

fn err(at: &At, message: impl Into<String>) -> ParseError {
    ParseError {
        at: Some(at.clone()),
        message: message.into(),
    }
}

/// The file system as the parser sees it.
pub trait Files {
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// Names of the entries of a directory (not sorted).
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>>;
    fn is_dir(&self, path: &Path) -> bool;
    /// A stable name for cycle detection (the real one resolves symlinks).
    fn canonical(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}

/// The real file system.
pub struct RealFiles;

impl Files for RealFiles {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let bytes = std::fs::read(path)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        Ok(std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn canonical(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The parsed configuration: top-level directives (includes expanded in
/// place), plus what the parser noticed but did not refuse.
#[derive(Debug, Default)]
pub struct Parsed {
    pub directives: Vec<Directive>,
    /// `Define`d names, as `<IfDefine>` needs them.
    pub defines: BTreeMap<String, String>,
    /// Things Apache would warn about (an undefined `${NAME}`, an
    /// `IncludeOptional` that matched nothing), with their place.
    pub warnings: Vec<(At, String)>,
}

/// Includes nested deeper than this are refused (Apache: 128).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    files: &'a dyn Files,
    server_root: Option<PathBuf>,
    defines: BTreeMap<String, String>,
    warnings: Vec<(At, String)>,
    /// Canonical names of the files being read, outermost first.
    stack: Vec<PathBuf>,
}

/// Parses the files named on the command line, in order, as one
/// configuration (as Apache reads its main file and what it includes).
pub fn parse_files(files: &dyn Files, paths: &[PathBuf]) -> Result<Parsed, ParseError> {
    let mut p = Parser {
        files,
        server_root: None,
        defines: BTreeMap::new(),
        warnings: Vec::new(),
        stack: Vec::new(),
    };
    let mut out = Vec::new();
    for path in paths {
        let text = files.read(path).map_err(|e| ParseError {
            at: None,
            message: format!("{}: cannot read: {e}", path.display()),
        })?;
        p.parse_file(path, &text, &mut out)?;
    }
    Ok(Parsed {
        directives: out,
        defines: p.defines,
        warnings: p.warnings,
    })
}

/// One logical line: continuations joined, with the line it started on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (start, mut acc) = cur.take().unwrap_or((i + 1, String::new()));
        // Apache joins a line ending in a backslash with the next one,
        // dropping the backslash and the newline.
        if let Some(body) = raw.strip_suffix('\\') {
            acc.push_str(body);
            cur = Some((start, acc));
        } else {
            acc.push_str(raw);
            out.push((start, acc));
        }
    }
    if let Some(last) = cur {
        out.push(last);
    }
    out
}

/// Splits arguments as `ap_getword_conf` does: white space separates,
/// `"..."` or `'...'` quote (a backslash before the quote character
/// escapes it), and a quote must close.
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut word = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(d) = chars.next() {
                if d == '\\' && chars.peek() == Some(&c) {
                    word.push(c);
                    chars.next();
                } else if d == c {
                    closed = true;
                    break;
                } else {
                    word.push(d);
                }
            }
            if !closed {
                return Err(format!("unterminated {c}-quoted argument"));
            }
        } else {
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() {
                    break;
                }
                word.push(d);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

/// Matches one path component against an fnmatch pattern (`*`, `?`,
/// `[...]`), as Apache's wildcard includes do.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(1).position(|&c| c == ']').map(|e| e + 1) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let set = &p[1..end];
                let (neg, set) = match set.first() {
                    Some('!') | Some('^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Bounded: a pathological pattern must not hang the fuzzer.
    if p.iter().filter(|&&c| c == '*').count() > 8 {
        return false;
    }
    go(&p, &n)
}

/// `.` and `..` resolved without touching the file system, so that
/// messages name files the way an operator would.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Parser<'_> {
    fn substitute(&mut self, s: &str, at: &At) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            match after.find('}') {
                Some(j) => {
                    let name = &after[..j];
                    match self.defines.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            self.warnings.push((
                                at.clone(),
                                format!("${{{name}}} is not defined here (left as written)"),
                            ));
                            out.push_str(&rest[i..i + 3 + j]);
                        }
                    }
                    rest = &after[j + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn parse_file(
        &mut self,
        path: &Path,
        text: &str,
        out: &mut Vec<Directive>,
    ) -> Result<(), ParseError> {
        let canon = self.files.canonical(path);
        self.stack.push(canon);
        let file = Arc::new(path.to_path_buf());
        // Open sections: (name, args, at, directives collected so far).
        let mut open: Vec<(String, Vec<String>, At, Vec<Directive>)> = Vec::new();
        let mut top = Vec::new();
        for (line, content) in logical_lines(text) {
            let at = At {
                file: file.clone(),
                line,
            };
            let t = content.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let target = match open.last_mut() {
                Some(o) => &mut o.3,
                None => &mut top,
            };
            if let Some(close) = t.strip_prefix("</") {
                let name = close.trim_end_matches('>').trim();
                if !close.ends_with('>') {
                    return Err(err(&at, format!("</{name} is missing its closing >")));
                }
                let Some((oname, oargs, oat, children)) = open.pop() else {
                    return Err(err(
                        &at,
                        format!("</{name}> without matching <{name}> section"),
                    ));
                };
                if !oname.eq_ignore_ascii_case(name) {
                    return Err(err(
                        &at,
                        format!("</{name}> closes <{oname}>, opened at {oat}"),
                    ));
                }
                let d = Directive {
                    name: oname,
                    args: oargs,
                    at: oat,
                    children: Some(children),
                };
                match open.last_mut() {
                    Some(o) => o.3.push(d),
                    None => top.push(d),
                }
                continue;
            }
            if let Some(inner) = t.strip_prefix('<') {
                let Some(inner) = inner.strip_suffix('>') else {
                    return Err(err(
                        &at,
                        format!("<{inner}: section tag is missing its closing >"),
                    ));
                };
                let (name, rest) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
                if name.is_empty() {
                    return Err(err(&at, "empty section tag"));
                }
                let rest = self.substitute(rest, &at);
                let args = split_args(&rest).map_err(|m| err(&at, format!("<{name}>: {m}")))?;
                open.push((name.to_string(), args, at, Vec::new()));
                continue;
            }
            let (name, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            let rest = self.substitute(rest, &at);
            let args = split_args(&rest).map_err(|m| err(&at, format!("{name}: {m}")))?;
            if name.eq_ignore_ascii_case("Define") {
                match args.as_slice() {
                    [n] => {
                        self.defines.insert(n.clone(), String::new());
                    }
                    [n, v] => {
                        self.defines.insert(n.clone(), v.clone());
                    }
                    _ => return Err(err(&at, "Define takes a name and an optional value")),
                }
            }
            if name.eq_ignore_ascii_case("UnDefine")
                && let Some(n) = args.first()
            {
                self.defines.remove(n);
            }
            if name.eq_ignore_ascii_case("ServerRoot")
                && let Some(r) = args.first()
            {
                self.server_root = Some(PathBuf::from(r));
            }
            if name.eq_ignore_ascii_case("Include") || name.eq_ignore_ascii_case("IncludeOptional")
            {
                let optional = name.eq_ignore_ascii_case("IncludeOptional");
                let [arg] = args.as_slice() else {
                    return Err(err(&at, format!("{name} takes one file name or pattern")));
                };
                self.include(arg, optional, &at, target)?;
                continue;
            }
            target.push(Directive {
                name: name.to_string(),
                args,
                at,
                children: None,
            });
        }
        if let Some((name, _, at, _)) = open.pop() {
            return Err(err(
                &at,
                format!("<{name}> is not closed before the end of the file"),
            ));
        }
        out.extend(top);
        self.stack.pop();
        Ok(())
    }

    /// Resolves an include argument as Apache does: absolute, or relative
    /// to `ServerRoot` (the including file's directory without one).
    fn resolve(&self, arg: &str, at: &At) -> PathBuf {
        let p = Path::new(arg);
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            match &self.server_root {
                Some(r) => r.join(p),
                None => at.file.parent().unwrap_or(Path::new(".")).join(p),
            }
        };
        normalize(&joined)
    }

    /// Expands wildcards component by component; a directory argument
    /// includes every file below it, in name order.
    fn expand(&self, path: &Path, at: &At) -> Result<Vec<PathBuf>, ParseError> {
        let mut found = vec![PathBuf::new()];
        for comp in path.components() {
            let s = comp.as_os_str().to_string_lossy();
            let mut next = Vec::new();
            for base in &found {
                if has_wildcard(&s) {
                    let dir = if base.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        base.clone()
                    };
                    let mut names = match self.files.list(&dir) {
                        Ok(n) => n,
                        Err(_) => continue,
                    };
                    names.sort();
                    for n in names {
                        // Apache's wildcards skip dot files.
                        if !n.starts_with('.') && fnmatch(&s, &n) {
                            next.push(base.join(&n));
                        }
                    }
                } else {
                    next.push(base.join(comp.as_os_str()));
                }
            }
            found = next;
            if found.len() > 4096 {
                return Err(err(at, "include pattern matches too many files"));
            }
        }
        let mut files = Vec::new();
        for f in found {
            if self.files.is_dir(&f) {
                let mut names = self.files.list(&f).unwrap_or_default();
                names.sort();
                for n in names {
                    let child = f.join(n);
                    if !self.files.is_dir(&child) {
                        files.push(child);
                    }
                }
            } else {
                files.push(f);
            }
        }
        Ok(files)
    }

    fn include(
        &mut self,
        arg: &str,
        optional: bool,
        at: &At,
        out: &mut Vec<Directive>,
    ) -> Result<(), ParseError> {
        let path = self.resolve(arg, at);
        let wild = has_wildcard(arg);
        let files = if wild || self.files.is_dir(&path) {
            self.expand(&path, at)?
        } else {
            vec![path.clone()]
        };
        if files.is_empty() {
            if optional {
                self.warnings.push((
                    at.clone(),
                    format!("IncludeOptional {arg}: matches no file"),
                ));
                return Ok(());
            }
            return Err(err(
                at,
                format!(
                    "Include {arg}: pattern matches no file ({})",
                    path.display()
                ),
            ));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(err(
                at,
                format!("Include {arg}: includes nested too deeply"),
            ));
        }
        for f in files {
            let canon = self.files.canonical(&f);
            if self.stack.contains(&canon) {
                return Err(err(
                    at,
                    format!(
                        "Include {arg}: {} is already being read (include cycle)",
                        f.display()
                    ),
                ));
            }
            let text = match self.files.read(&f) {
                Ok(t) => t,
                Err(_) if optional && !wild => {
                    self.warnings
                        .push((at.clone(), format!("IncludeOptional {arg}: no such file")));
                    continue;
                }
                Err(e) => {
                    return Err(err(
                        at,
                        format!("Include {}: cannot read: {e}", f.display()),
                    ));
                }
            };
            self.parse_file(&f, &text, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Files in memory: path -> content; directories are implied.
    struct Mem(HashMap<PathBuf, String>);

    impl Files for Mem {
        fn read(&self, path: &Path) -> std::io::Result<String> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
        fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
            let mut v: Vec<String> = self
                .0
                .keys()
                .filter_map(|k| k.strip_prefix(dir).ok())
                .filter_map(|r| r.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v.dedup();
            Ok(v)
        }
        fn is_dir(&self, path: &Path) -> bool {
            !self.0.contains_key(path) && self.0.keys().any(|k| k.starts_with(path))
        }
    }

    fn mem(files: &[(&str, &str)]) -> Mem {
        Mem(files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect())
    }

    fn parse(files: &[(&str, &str)]) -> Result<Parsed, ParseError> {
        parse_files(&mem(files), &[PathBuf::from(files[0].0)])
    }

    #[test]
    fn continuations_quotes_comments_and_case() {
        let p = parse(&[(
            "/etc/a.conf",
            "# comment\n  sslcertificatefile \"/x y/cert.pem\"\nOIDCScope 'openid \\'x\\'' \\\n   email\n\nRequire claim \"eduperson_entitlement~^urn:x\"\n",
        )])
        .unwrap();
        let d = &p.directives;
        assert_eq!(d.len(), 3);
        assert!(d[0].is("SSLCertificateFile"));
        assert_eq!(d[0].args, ["/x y/cert.pem"]);
        assert_eq!(d[0].at.line, 2);
        assert_eq!(d[1].args, ["openid 'x'", "email"]);
        assert_eq!(d[1].at.line, 3);
        assert_eq!(d[2].at.line, 6);
        assert_eq!(d[2].args, ["claim", "eduperson_entitlement~^urn:x"]);
    }

    #[test]
    fn sections_nest_and_keep_lines() {
        let p = parse(&[(
            "/a.conf",
            "<VirtualHost *:5000>\n  <IfModule mod_ssl.c>\n    SSLEngine on\n  </IfModule>\n  <Location ~ \"/v3/x\">\n    AuthType oauth20\n  </location>\n</VirtualHost>\n",
        )])
        .unwrap();
        let vh = &p.directives[0];
        assert!(vh.is("virtualhost"));
        assert_eq!(vh.args, ["*:5000"]);
        assert_eq!(vh.children()[1].args, ["~", "/v3/x"]);
        assert_eq!(vh.children()[1].children()[0].at.line, 6);
        assert_eq!(vh.children()[0].children()[0].at.line, 3);
    }

    #[test]
    fn nesting_errors_name_file_and_line() {
        let e = parse(&[(
            "/a.conf",
            "<VirtualHost *:5000>\n<Location /x>\n</VirtualHost>\n",
        )])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/a.conf:3: </VirtualHost> closes <Location>, opened at /a.conf:2"
        );
        let e = parse(&[("/a.conf", "\n<VirtualHost *:5000>\nSSLEngine on\n")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/a.conf:2: <VirtualHost> is not closed before the end of the file"
        );
        let e = parse(&[("/a.conf", "x\n</Location>\n")]).unwrap_err();
        assert!(
            e.to_string().starts_with("/a.conf:2: </Location> without"),
            "{e}"
        );
        let e = parse(&[("/a.conf", "OIDCScope \"openid\n")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/a.conf:1: OIDCScope: unterminated \"-quoted argument"
        );
        // A section cannot close in another file.
        let e = parse(&[
            ("/a.conf", "<VirtualHost *:1>\nInclude b.conf\n"),
            ("/b.conf", "</VirtualHost>\n"),
        ])
        .unwrap_err();
        assert!(e.to_string().starts_with("/b.conf:1:"), "{e}");
    }

    #[test]
    fn includes_globs_relative_paths_and_server_root() {
        let p = parse(&[
            (
                "/etc/httpd/main.conf",
                "Include conf.d/*.conf\nIncludeOptional nothing/*.conf\nServerRoot /srv\nInclude sub/x.conf\n",
            ),
            ("/etc/httpd/conf.d/b.conf", "B 1\n"),
            ("/etc/httpd/conf.d/a.conf", "A 1\nInclude ../inc/c.conf\n"),
            ("/etc/httpd/conf.d/skip.txt", "X 1\n"),
            ("/etc/httpd/inc/c.conf", "C 1\n"),
            ("/srv/sub/x.conf", "D 1\n"),
        ])
        .unwrap();
        let names: Vec<_> = p.directives.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["A", "C", "B", "ServerRoot", "D"]);
        assert_eq!(p.directives[1].at.to_string(), "/etc/httpd/inc/c.conf:1");
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        let e = parse(&[("/a.conf", "\nInclude none/*.conf\n")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/a.conf:2: Include none/*.conf: pattern matches no file"),
            "{e}"
        );
    }

    #[test]
    fn include_cycles_are_refused() {
        let e = parse(&[
            ("/a.conf", "Include /b.conf\n"),
            ("/b.conf", "X 1\n\nInclude /a.conf\n"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/b.conf:3: Include /a.conf: /a.conf is already being read (include cycle)"
        );
        let e = parse(&[("/a.conf", "Include /a.conf\n")]).unwrap_err();
        assert!(e.to_string().contains("include cycle"), "{e}");
    }

    #[test]
    fn defines_substitute_and_ifdefine_names_are_kept() {
        let p = parse(&[(
            "/a.conf",
            "Define P 5000\nDefine AUTH /v3/auth\nListen ${P}\n<Location ${AUTH}>\n</Location>\nX ${NOPE}\n",
        )])
        .unwrap();
        assert_eq!(p.directives[2].args, ["5000"]);
        assert_eq!(p.directives[3].args, ["/v3/auth"]);
        assert_eq!(p.directives[4].args, ["${NOPE}"]);
        assert_eq!(p.warnings[0].0.line, 6);
        assert_eq!(p.defines.get("P").map(String::as_str), Some("5000"));
    }

    #[test]
    fn fnmatch_basics() {
        assert!(fnmatch("*.conf", "a.conf"));
        assert!(!fnmatch("*.conf", "a.conf~"));
        assert!(fnmatch("[a-c]?.c*", "b1.conf"));
        assert!(!fnmatch("[!a]*", "abc"));
    }
}
