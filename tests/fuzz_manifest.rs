//! Every fuzz target under fuzz/fuzz_targets is declared, once, in
//! fuzz/Cargo.toml (a bad merge once left two targets unbuildable and
//! nothing noticed: the fuzz crate is outside the workspace).

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn every_fuzz_target_is_declared_once() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).expect("fuzz/Cargo.toml must parse");
    let bins = manifest["bin"].as_array().expect("[[bin]] entries");
    let mut declared = BTreeSet::new();
    for b in bins {
        let name = b["name"].as_str().unwrap();
        let path = b["path"].as_str().unwrap();
        assert_eq!(path, format!("fuzz_targets/{name}.rs"), "{name}");
        assert!(declared.insert(name.to_string()), "{name} declared twice");
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(root.join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(declared, on_disk);
    assert!(on_disk.len() >= 9);
}
