//! A Keystone mapping (what `openstack mapping show -f json` prints, or a
//! site hands to migrate-check) and an assertion: the parser and the
//! engine (rules, Python `str.format`, `literal_eval`, regex translation)
//! return a value or an error, never panic. The input is split at the
//! first NUL: mapping JSON, then `NAME=value` lines of the assertion.
#![no_main]
use libfuzzer_sys::fuzz_target;

use fedgate::internal::migrate::mapping;

fuzz_target!(|data: &[u8]| {
    let (m, a) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(text) = std::str::from_utf8(m) else {
        return;
    };
    let _ = mapping::py::literal_list(text);
    let _ = mapping::pyre::compile(text);
    let _ = mapping::py::format(text, &[mapping::py::Arg::Str("v".into()), mapping::py::Arg::List(vec!["a".into(), "b".into()])]);
    let Ok(parsed) = mapping::parse(text) else {
        return;
    };
    let assertion = mapping::assertion_from_environ(
        a.split(|&b| b == b'\n')
            .filter_map(|l| l.iter().position(|&b| b == b'=').map(|i| (&l[..i], &l[i + 1..]))),
    );
    let _ = parsed.evaluate(&assertion);
});
