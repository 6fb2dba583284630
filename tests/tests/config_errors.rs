//! A node refuses a config it cannot run with, at start, with a message
//! that says what is wrong; the CLI refuses bad input the same way.

use std::process::Command;
use std::time::Duration;

use jobmesh_tests::bin::jobmesh_bin;
use jobmesh_tests::{within, Mesh, Pki};

const LIMIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configs_stop_the_node_at_start_with_a_reason() {
    within(Duration::from_secs(90), "config_errors", async {
        let ids = ["gz", "gz/a", "gz/b", "gz/c", "gz/d", "gz/e"];
        let mut mesh = Mesh::new_with(&ids, |c| match c.node_id.as_str() {
            // The certificate of another node.
            "gz/a" => {
                c.cert = "../../pki/gz_b.pem".into();
                c.key = "../../pki/gz_b.key".into();
            }
            // An unknown key.
            "gz/b" => c.extra.push("colour = \"red\"".into()),
            // A CA file that does not exist.
            "gz/c" => c.ca_cert = "../../pki/missing-ca.pem".into(),
            // An API address that is not an address.
            "gz/d" => c.api = "not-an-address".into(),
            // A certificate from another CA (written below).
            "gz/e" => {
                c.cert = "../../other-pki/gz_e.pem".into();
                c.key = "../../other-pki/gz_e.key".into();
            }
            _ => {}
        });
        let other = Pki::init(&mesh.root().join("other-pki"));
        other.issue("gz/e");

        let mut problems = Vec::new();
        let cases: [(&str, &[&str]); 5] = [
            ("gz/a", &["gz/a", "gz/b"]),
            ("gz/b", &["colour"]),
            ("gz/c", &["missing-ca.pem"]),
            ("gz/d", &["api"]),
            ("gz/e", &["CA"]),
        ];
        for (id, words) in cases {
            let (status, log) = mesh.start_expect_failure(id, LIMIT).await;
            let last = jobmesh_tests::bin::tail(&log, 8);
            println!("{id}: {status}: {last}");
            for w in words {
                if !log.contains(w) {
                    problems.push(format!("{id}: the refusal does not mention {w:?}:\n{last}"));
                }
            }
        }

        // The CLI itself.
        let bin = jobmesh_bin();
        let out = Command::new(bin)
            .args(["run", "--config"])
            .arg(mesh.root().join("no-such.toml"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        if out.status.success() || !text.contains("no-such.toml") {
            problems.push(format!("run with a missing config: {} {text}", out.status));
        }
        let out = Command::new(bin)
            .args(["ca", "issue", "--dir"])
            .arg(mesh.pki().dir())
            .args(["--node", "Gz/Bad"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        if out.status.success() || !text.contains("Gz") {
            problems.push(format!("ca issue --node Gz/Bad: {} {text}", out.status));
        }
        if mesh.pki().dir().join("Gz_Bad.pem").exists() {
            problems.push("ca issue --node Gz/Bad wrote a certificate".into());
        }

        // The one good config still runs.
        mesh.start_node("gz").await;
        assert!(problems.is_empty(), "config problems:\n{}", problems.join("\n"));
        mesh.finish().await;
    })
    .await;
}
