//! Host and authority parsing: any Host header and request target give a
//! validated authority or an error, never a panic; an accepted authority
//! holds nothing but a host and a port, prints back to itself, and is
//! allowed by a public-name list made of it.
#![no_main]
use fedgate::internal::http::host::{Authority, PublicNames, request_authority};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: HTTP version; then Host header bytes and an authority
    // for the target, separated by 0xff.
    let Some((&v, rest)) = data.split_first() else {
        return;
    };
    let mut it = rest.splitn(2, |&b| b == 0xff);
    let host = it.next().unwrap_or_default();
    let target = it.next();
    if let Ok(s) = std::str::from_utf8(host) {
        if let Ok(a) = Authority::parse(s) {
            let printed = a.to_string();
            assert!(
                !printed
                    .bytes()
                    .any(|b| b"/?#@,% \t\r\n\\".contains(&b) || !b.is_ascii_graphic()),
                "{s:?} -> {printed:?}"
            );
            assert_eq!(Authority::parse(&printed).as_ref(), Ok(&a), "{s:?}");
            let names = PublicNames::parse([printed.as_str()]).expect("its own name parses");
            assert!(names.allows(&a), "{s:?}");
            assert!(names.base_url().unwrap().starts_with("https://"));
        }
    }
    let version = match v % 3 {
        0 => http::Version::HTTP_10,
        1 => http::Version::HTTP_11,
        _ => http::Version::HTTP_2,
    };
    let mut b = http::Request::get("/").version(version);
    if let Some(t) = target {
        let Ok(t) = std::str::from_utf8(t) else { return };
        b = b.uri(format!("https://{t}/v3"));
    }
    if let Ok(h) = http::HeaderValue::from_bytes(host) {
        b = b.header(http::header::HOST, h);
    }
    let Ok(req) = b.body(()) else { return };
    let (parts, ()) = req.into_parts();
    if let Ok(Some(a)) = request_authority(&parts) {
        assert_eq!(Authority::parse(&a.to_string()).as_ref(), Ok(&a));
    }
});
