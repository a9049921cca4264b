//! A minimal DER reader for the few structures x509-parser leaves opaque
//! (ProxyCertInfo, raw RDN sets). Small enough to audit and fuzz; it
//! accepts single-byte tags and definite lengths only, as DER requires.

/// One element: its tag byte, content, and the full encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// Reads one element from the front of `input`; returns it and the rest.
pub fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | b as usize;
        }
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let tlv = Tlv {
        tag,
        content: &rest[..len],
        raw: &input[..header + len],
    };
    Some((tlv, &rest[len..]))
}

/// All elements of a constructed value's content, or `None` if malformed.
pub fn children(mut content: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (t, rest) = read(content)?;
        out.push(t);
        content = rest;
    }
    Some(out)
}

/// A non-negative INTEGER that fits in u32 (path length constraints).
pub fn small_uint(content: &[u8]) -> Option<u32> {
    if content.is_empty() || content.len() > 5 || content[0] & 0x80 != 0 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in content {
        v = (v << 8) | b as u64;
    }
    u32::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let (t, rest) = read(&[0x30, 0x02, 0x05, 0x00, 0xff]).unwrap();
        assert_eq!(
            (t.tag, t.content, rest),
            (0x30, &[5u8, 0][..], &[0xffu8][..])
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(7u8, 0x80));
        let (t, rest) = read(&long).unwrap();
        assert_eq!((t.content.len(), rest.len()), (0x80, 0));
        assert!(read(&[0x30, 0x05, 0x00]).is_none());
        assert!(read(&[0x1f, 0x01, 0x00]).is_none());
    }

    #[test]
    fn integers() {
        assert_eq!(small_uint(&[0x00]), Some(0));
        assert_eq!(small_uint(&[0x01, 0x00]), Some(256));
        assert_eq!(small_uint(&[0x80]), None);
    }
}
