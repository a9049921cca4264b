//! The few Python behaviours Keystone's mapping engine leans on, written
//! for Rust: `str.format` with the direct maps as positional arguments,
//! `repr` of strings and lists (a multi-valued `{0}` becomes the text of a
//! Python list), and the subset of `ast.literal_eval` that reads such a
//! text back (`groups`, `group_ids`).
//!
//! Only what the engine can reach is covered; anything else is reported
//! as [`FormatError::Unsupported`] rather than guessed.

use serde_json::Value;

/// One positional argument of `str.format`: `DirectMaps.__getitem__` hands
/// a one-element match over as its element, any other as the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Str(String),
    List(Vec<String>),
}

/// Why `str.format` failed, as Keystone would experience it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// `IndexError`: a `{N}` beyond the direct maps (Keystone turns it into
    /// `DirectMappingError`, a 500).
    #[error("{0}")]
    Index(String),
    /// Any other Python exception (`ValueError`, `KeyError`, ...): not
    /// caught by Keystone, a 500.
    #[error("{0}")]
    Python(String),
    /// Valid Python this implementation does not evaluate (format specs,
    /// attribute access).
    #[error("{0}")]
    Unsupported(String),
}

/// Python's `str(x)` of an argument.
fn to_str(a: &Arg) -> String {
    match a {
        Arg::Str(s) => s.clone(),
        Arg::List(l) => list_repr(l),
    }
}

/// `str(list_of_str)`: `['a', "b'c"]`.
pub fn list_repr(l: &[String]) -> String {
    let items: Vec<String> = l.iter().map(|s| repr(s)).collect();
    format!("[{}]", items.join(", "))
}

/// Whether Python's `str.isprintable` holds for a non-ASCII character,
/// approximated by the Unicode ranges of categories Cc, Cf, Zs, Zl, Zp, Co
/// and the noncharacters that occur in practice.
fn printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !matches!(u,
        0x80..=0xa0 | 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x1680 | 0x180e
        | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x206f | 0x3000 | 0xd800..=0xf8ff
        | 0xfeff | 0xfff9..=0xfffb | 0xfffe | 0xffff | 0x110bd | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a | 0xe0001..=0xe007f | 0xf0000..)
}

/// Python's `repr(str)`.
pub fn repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// Python's `ascii(str)`: `repr` with every non-ASCII character escaped.
fn ascii(s: &str) -> String {
    repr(s)
        .chars()
        .map(|c| match c as u32 {
            u if u < 0x80 => c.to_string(),
            u if u < 0x100 => format!("\\x{u:02x}"),
            u if u < 0x10000 => format!("\\u{u:04x}"),
            u => format!("\\U{u:08x}"),
        })
        .collect()
}

/// `template.format(*args)`.
pub fn format(template: &str, args: &[Arg]) -> Result<String, FormatError> {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    // None: not decided; Some(true): automatic numbering; Some(false): manual.
    let mut auto: Option<bool> = None;
    let mut next_auto = 0usize;
    while i < chars.len() {
        let c = chars[i];
        if c == '}' {
            if chars.get(i + 1) == Some(&'}') {
                out.push('}');
                i += 2;
                continue;
            }
            return Err(FormatError::Python(
                "ValueError: Single '}' encountered in format string".into(),
            ));
        }
        if c != '{' {
            out.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'{') {
            out.push('{');
            i += 2;
            continue;
        }
        // A replacement field: up to the matching '}' (nested braces only
        // in the format spec).
        let start = i + 1;
        let mut depth = 1;
        let mut j = start;
        while j < chars.len() {
            match chars[j] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        if j >= chars.len() {
            return Err(FormatError::Python(
                "ValueError: expected '}' before end of string".into(),
            ));
        }
        let field: String = chars[start..j].iter().collect();
        i = j + 1;
        // field_name [! conversion] [: spec]
        let (name_conv, spec) = match field.find(':') {
            Some(p) if !field[..p].contains('[') || field[..p].contains(']') => {
                (&field[..p], Some(&field[p + 1..]))
            }
            _ => (field.as_str(), None),
        };
        let (name, conv) = match name_conv.rfind('!') {
            Some(p) if !name_conv[p..].contains(']') => {
                (&name_conv[..p], Some(&name_conv[p + 1..]))
            }
            _ => (name_conv, None),
        };
        if name.contains('{') {
            return Err(FormatError::Python(
                "ValueError: unexpected '{' in field name".into(),
            ));
        }
        let first_end = name.find(['.', '[']).unwrap_or(name.len());
        let (arg_name, mut rest) = name.split_at(first_end);
        let idx = if arg_name.is_empty() {
            if auto == Some(false) {
                return Err(FormatError::Python(
                    "ValueError: cannot switch from manual field specification to automatic field numbering".into(),
                ));
            }
            auto = Some(true);
            next_auto += 1;
            next_auto - 1
        } else if arg_name.bytes().all(|b| b.is_ascii_digit()) {
            if auto == Some(true) {
                return Err(FormatError::Python(
                    "ValueError: cannot switch from automatic field numbering to manual field specification".into(),
                ));
            }
            auto = Some(false);
            arg_name.parse::<usize>().map_err(|_| {
                FormatError::Python("ValueError: Too many decimal digits in format string".into())
            })?
        } else {
            return Err(FormatError::Python(format!("KeyError: '{arg_name}'")));
        };
        let Some(arg) = args.get(idx) else {
            return Err(FormatError::Index(format!(
                "IndexError: Replacement index {idx} out of range for positional args tuple"
            )));
        };
        let mut value = arg.clone();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let Some(end) = r.find(']') else {
                    return Err(FormatError::Python(
                        "ValueError: Missing ']' in format string".into(),
                    ));
                };
                let key = &r[..end];
                rest = &r[end + 1..];
                let Ok(k) = key.parse::<usize>() else {
                    return Err(FormatError::Python(format!(
                        "TypeError: indices must be integers, not str ('{key}')"
                    )));
                };
                value = match &value {
                    Arg::List(l) => Arg::Str(
                        l.get(k)
                            .ok_or_else(|| {
                                FormatError::Index("IndexError: list index out of range".into())
                            })?
                            .clone(),
                    ),
                    Arg::Str(s) => Arg::Str(
                        s.chars()
                            .nth(k)
                            .ok_or_else(|| {
                                FormatError::Index("IndexError: string index out of range".into())
                            })?
                            .to_string(),
                    ),
                };
                if !rest.is_empty() && !rest.starts_with(['.', '[']) {
                    return Err(FormatError::Python(
                        "ValueError: Only '.' or '[' may follow ']' in format field specifier"
                            .into(),
                    ));
                }
            } else {
                return Err(FormatError::Unsupported(format!(
                    "attribute access in the format field {{{field}}}"
                )));
            }
        }
        let text = match conv {
            None | Some("s") => to_str(&value),
            Some("r") => match &value {
                Arg::Str(s) => repr(s),
                Arg::List(l) => list_repr(l),
            },
            Some("a") => match &value {
                Arg::Str(s) => ascii(s),
                Arg::List(l) => {
                    let items: Vec<String> = l.iter().map(|s| ascii(s)).collect();
                    format!("[{}]", items.join(", "))
                }
            },
            Some(other) => {
                return Err(FormatError::Python(format!(
                    "ValueError: Unknown conversion specifier {other}"
                )));
            }
        };
        match spec {
            None | Some("") => out.push_str(&text),
            Some(s) => {
                return Err(FormatError::Unsupported(format!(
                    "the format spec ':{s}' in {{{field}}}"
                )));
            }
        }
    }
    Ok(out)
}

/// `RuleProcessor._ast_literal_eval`: the list a text denotes as a Python
/// literal, or the text itself as the only element.
pub fn literal_list(text: &str) -> Vec<Value> {
    let t = text.trim_start_matches([' ', '\t']);
    let mut p = Lit {
        s: t.as_bytes(),
        i: 0,
        depth: 0,
    };
    match p.expr() {
        Some(Value::Array(items)) if p.at_end() => items,
        _ => vec![Value::String(text.to_string())],
    }
}

/// A recursive-descent reader of Python literals (strings, numbers,
/// True/False/None, lists, tuples, dicts, sets), JSON-valued.
struct Lit<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Lit<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len()
            && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
        {
            self.i += 1;
        }
    }
    fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.s.len()
    }
    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expr(&mut self) -> Option<Value> {
        self.depth += 1;
        if self.depth > 64 {
            return None;
        }
        self.ws();
        let c = *self.s.get(self.i)?;
        let v = match c {
            b'[' => {
                self.i += 1;
                Value::Array(self.items(b']')?)
            }
            b'(' => {
                self.i += 1;
                // A parenthesised single value without a comma is not a tuple.
                let save = self.i;
                if let Some(v) = self.expr() {
                    if self.eat(b')') {
                        self.depth -= 1;
                        return Some(v);
                    }
                }
                self.i = save;
                Value::Array(self.items(b')')?)
            }
            b'{' => {
                self.i += 1;
                self.dict_or_set()?
            }
            b'\'' | b'"' => {
                let mut s = self.string()?;
                // Adjacent literals concatenate.
                loop {
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b'\'' | b'"') => s.push_str(&self.string()?),
                        _ => break,
                    }
                }
                Value::String(s)
            }
            b'-' | b'+' | b'0'..=b'9' | b'.' => self.number()?,
            _ => {
                let start = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_')
                {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Value::Bool(true),
                    b"False" => Value::Bool(false),
                    b"None" => Value::Null,
                    _ => return None,
                }
            }
        };
        self.depth -= 1;
        Some(v)
    }
    fn items(&mut self, close: u8) -> Option<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Some(out);
            }
            out.push(self.expr()?);
            if !self.eat(b',') {
                return self.eat(close).then_some(out);
            }
        }
    }
    fn dict_or_set(&mut self) -> Option<Value> {
        if self.eat(b'}') {
            return Some(Value::Object(Default::default()));
        }
        let first = self.expr()?;
        if self.eat(b':') {
            let mut m = serde_json::Map::new();
            let v = self.expr()?;
            m.insert(key_text(&first)?, v);
            loop {
                if !self.eat(b',') {
                    return self.eat(b'}').then_some(Value::Object(m));
                }
                if self.eat(b'}') {
                    return Some(Value::Object(m));
                }
                let k = self.expr()?;
                if !self.eat(b':') {
                    return None;
                }
                let v = self.expr()?;
                m.insert(key_text(&k)?, v);
            }
        }
        let mut out = vec![first];
        loop {
            if !self.eat(b',') {
                return self.eat(b'}').then_some(Value::Array(out));
            }
            if self.eat(b'}') {
                return Some(Value::Array(out));
            }
            out.push(self.expr()?);
        }
    }
    fn number(&mut self) -> Option<Value> {
        let start = self.i;
        if matches!(self.s.get(self.i), Some(b'-' | b'+')) {
            self.i += 1;
            self.ws();
        }
        let digits = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'.' | b'_'))
        {
            self.i += 1;
        }
        let text: String = String::from_utf8_lossy(&self.s[digits..self.i]).replace('_', "");
        let neg = self.s[start] == b'-';
        if let Ok(n) = text.parse::<i64>() {
            if text.len() > 1 && text.starts_with('0') {
                return None; // leading zeros are a SyntaxError in Python 3
            }
            return Some(Value::from(if neg { -n } else { n }));
        }
        let f: f64 = text.parse().ok()?;
        serde_json::Number::from_f64(if neg { -f } else { f }).map(Value::Number)
    }
    fn string(&mut self) -> Option<String> {
        let q = self.s[self.i];
        let triple = self.s[self.i..].starts_with(&[q, q, q]);
        self.i += if triple { 3 } else { 1 };
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.s.get(self.i)?;
            if triple && self.s[self.i..].starts_with(&[q, q, q]) {
                self.i += 3;
                break;
            }
            if !triple && c == q {
                self.i += 1;
                break;
            }
            if !triple && c == b'\n' {
                return None;
            }
            if c != b'\\' {
                out.push(c);
                self.i += 1;
                continue;
            }
            let e = *self.s.get(self.i + 1)?;
            self.i += 2;
            let mut push = |ch: char| {
                let mut b = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
            };
            match e {
                b'\n' => {}
                b'\\' => push('\\'),
                b'\'' => push('\''),
                b'"' => push('"'),
                b'a' => push('\x07'),
                b'b' => push('\x08'),
                b'f' => push('\x0c'),
                b'n' => push('\n'),
                b'r' => push('\r'),
                b't' => push('\t'),
                b'v' => push('\x0b'),
                b'x' | b'u' | b'U' => {
                    let n = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let hex = std::str::from_utf8(self.s.get(self.i..self.i + n)?).ok()?;
                    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                    self.i += n;
                    push(char::from_u32(u32::from_str_radix(hex, 16).ok()?)?);
                }
                b'0'..=b'7' => {
                    let mut v = u32::from(e - b'0');
                    for _ in 0..2 {
                        match self.s.get(self.i) {
                            Some(d @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(d - b'0');
                                self.i += 1;
                            }
                            _ => break,
                        }
                    }
                    push(char::from_u32(v)?);
                }
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
        }
        String::from_utf8(out).ok()
    }
}

fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.into()),
        Value::Null => Some("None".into()),
        _ => None, // unhashable key: TypeError, not caught; treated as "not a list"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(x: &str) -> Arg {
        Arg::Str(x.into())
    }

    #[test]
    fn format_like_python() {
        let l = Arg::List(vec!["a".into(), "b'c".into()]);
        assert_eq!(format("{0}-{1}", &[s("x"), s("y")]).unwrap(), "x-y");
        assert_eq!(format("{}{}", &[s("x"), s("y")]).unwrap(), "xy");
        assert_eq!(format("{{{0}}}", &[s("x")]).unwrap(), "{x}");
        assert_eq!(
            format("{0}", std::slice::from_ref(&l)).unwrap(),
            r#"['a', "b'c"]"#
        );
        assert_eq!(format("{0[1]}", &[l]).unwrap(), "b'c");
        assert_eq!(format("{0!r}", &[s("x")]).unwrap(), "'x'");
        assert!(matches!(
            format("{1}", &[s("x")]),
            Err(FormatError::Index(_))
        ));
        assert!(matches!(format("{", &[]), Err(FormatError::Python(_))));
        assert!(matches!(format("a}b", &[]), Err(FormatError::Python(_))));
        assert!(matches!(format("{x}", &[]), Err(FormatError::Python(_))));
        assert!(matches!(
            format("{}{0}", &[s("a")]),
            Err(FormatError::Python(_))
        ));
        assert_eq!(format("plain", &[]).unwrap(), "plain");
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(repr("a"), "'a'");
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("'\""), "'\\'\"'");
        assert_eq!(repr("é\u{85}\n"), "'é\\x85\\n'");
    }

    #[test]
    fn literal_lists() {
        assert_eq!(literal_list("['a', \"b\"]"), vec![json!("a"), json!("b")]);
        assert_eq!(literal_list("a"), vec![json!("a")]);
        assert_eq!(literal_list("1"), vec![json!("1")]);
        assert_eq!(literal_list("[1, 'x\\'y']"), vec![json!(1), json!("x'y")]);
        assert_eq!(literal_list("  [ ]"), Vec::<Value>::new());
        assert_eq!(literal_list("[a]"), vec![json!("[a]")]);
        assert_eq!(literal_list("['a' 'b']"), vec![json!("ab")]);
    }
}
