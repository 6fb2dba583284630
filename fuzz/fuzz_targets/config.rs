//! `node.toml` parsing, as `jobmesh run --config` does it. The config's
//! folder holds a small topology and a token file, so that inputs naming
//! `offices.tsv` or `token` reach the side-file readers too.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use jobmesh::config::Config;
use libfuzzer_sys::fuzz_target;

fn config_file() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("offices.tsv"),
            "id\tparent\ttier\tname\tname_zh\ngz\t\tprovince\tGuizhou\t贵州\ngz/a\tgz\tcity\tA\tA\n",
        )
        .expect("topology");
        std::fs::write(dir.path().join("token"), "s3cret\n").expect("token");
        let file = dir.path().join("node.toml");
        (dir, file)
    })
    .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text, config_file()) {
        Ok(c) => {
            assert!(c.stale_after_s >= 1);
            if !c.api.ip().is_loopback() {
                assert!(c.api_token.is_some(), "a non-loopback API needs a token");
            }
            assert_eq!(c.parent.as_ref().map(|p| p.node_id.clone()), c.node_id.parent());
        }
        Err(e) => {
            // Every error names the file and a key.
            let shown = e.to_string();
            assert!(shown.contains("node.toml"), "{shown}");
        }
    }
});
