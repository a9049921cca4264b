//! Any text given as a configuration file: parse and validate must return
//! problems, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = fedgate::Config::parse(std::path::Path::new("fuzz.toml"), text.to_string()) {
        let _ = cfg.validate();
        let _ = fedgate::internal::RouteTable::build(&cfg.routes, &cfg.source);
    }
});
