//! A private CA made with the binary's own CLI (`jobmesh ca init` /
//! `jobmesh ca issue`), exactly as an operator would.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bin::jobmesh_bin;

/// One CA folder: `ca.pem`, `ca.key`, and `<id with / as _>.pem|.key` per
/// issued node.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

/// Certificate and key files of one node.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Run `jobmesh ARGS`, which must succeed; returns its stdout.
pub fn run(args: &[&str]) -> String {
    let bin = jobmesh_bin();
    let out = Command::new(bin).args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "`jobmesh {}` failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" "),
        out.status
    );
    stdout
}

impl Pki {
    /// `jobmesh ca init --dir DIR` (DIR must not exist yet: the command
    /// creates it).
    pub fn init(dir: &Path) -> Pki {
        run(&["ca", "init", "--dir", &dir.to_string_lossy()]);
        let pki = Pki { dir: dir.to_path_buf() };
        for f in [pki.ca_cert(), dir.join("ca.key")] {
            assert!(f.is_file(), "`jobmesh ca init` did not write {}", f.display());
        }
        pki
    }

    /// A CA folder made earlier (by `jobmesh ca init`).
    pub fn at(dir: &Path) -> Pki {
        Pki { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.pem`.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The file names the contract gives a node's certificate and key.
    pub fn files_of(&self, node: &str) -> Issued {
        let stem = node.replace('/', "_");
        Issued { cert: self.dir.join(format!("{stem}.pem")), key: self.dir.join(format!("{stem}.key")) }
    }

    /// `jobmesh ca issue --dir DIR --node ID`; checks the files exist under
    /// their contract names and that the command printed both paths.
    pub fn issue(&self, node: &str) -> Issued {
        let stdout = run(&["ca", "issue", "--dir", &self.dir.to_string_lossy(), "--node", node]);
        let issued = self.files_of(node);
        for f in [&issued.cert, &issued.key] {
            assert!(
                f.is_file(),
                "`jobmesh ca issue --node {node}` did not write {}; it printed:\n{stdout}",
                f.display()
            );
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            assert!(
                stdout.contains(&name),
                "`jobmesh ca issue --node {node}` should print the path of {name}; it printed:\n{stdout}"
            );
        }
        issued
    }

    /// `jobmesh ca issue --renew` with `extra` arguments: a new key and
    /// certificate under the same names.
    pub fn renew(&self, node: &str, extra: &[&str]) -> Issued {
        let dir = self.dir.to_string_lossy().into_owned();
        let mut args = vec!["ca", "issue", "--dir", &dir, "--node", node, "--renew"];
        args.extend_from_slice(extra);
        run(&args);
        self.files_of(node)
    }

    /// The serial number (lowercase hex) of the certificate in `path`.
    pub fn serial_of(path: &Path) -> String {
        let pem = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let der = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .unwrap_or_else(|| panic!("{}: no certificate", path.display()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version,
        // serialNumber INTEGER, ... } }: walk the DER headers to the serial.
        let d = der.as_ref();
        let mut i = skip_header(d, 0); // into Certificate
        i = skip_header(d, i); // into tbsCertificate
        if d[i] == 0xa0 {
            let (len, hdr) = der_len(d, i);
            i += hdr + len; // past [0] version
        }
        assert_eq!(d[i], 0x02, "serial is not an INTEGER");
        let (len, hdr) = der_len(d, i);
        d[i + hdr..i + hdr + len].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Position just inside the TLV at `i`.
fn skip_header(d: &[u8], i: usize) -> usize {
    let (_, hdr) = der_len(d, i);
    i + hdr
}

/// The length of the TLV at `i` and the size of its header.
fn der_len(d: &[u8], i: usize) -> (usize, usize) {
    let first = d[i + 1] as usize;
    if first < 0x80 {
        return (first, 2);
    }
    let n = first & 0x7f;
    let len = d[i + 2..i + 2 + n].iter().fold(0usize, |acc, b| acc << 8 | *b as usize);
    (len, 2 + n)
}
