//! Values read back from the shared-state store (memcached, Redis) and
//! sealed cookies are untrusted: whatever bytes sit under a key, opening
//! them gives the plain value sealed for that key or an error, never a
//! panic; a value sealed for one name never opens under another, and what
//! was sealed opens back to itself.
#![no_main]
use fedgate::internal::kv::KeyRing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::from_raw(&[[7u8; 32], [9u8; 32]]);
    // Storage key, then 0xff, then the stored value.
    let mut it = data.splitn(2, |&b| b == 0xff);
    let key = String::from_utf8_lossy(it.next().unwrap_or_default()).into_owned();
    let value = it.next().unwrap_or_default();
    if let Ok(s) = std::str::from_utf8(value) {
        let _ = ring.open(&key, s);
    }
    if let Ok(sealed) = ring.seal(&key, value) {
        assert_eq!(ring.open(&key, &sealed).as_deref(), Ok(value));
        let other = format!("{key}x");
        assert!(ring.open(&other, &sealed).is_err());
    }
});
