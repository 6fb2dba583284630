//! This node's health report ([`jobmesh_protocol::health`]): the facts the
//! node knows (its release, its certificate, its clock offset from its
//! parent) kept in one place, handed to the engine whenever one changes.
//! The engine decides whether that is news worth a version.
//!
//! Facts change from several places: the certificate watcher on a reload,
//! the transport when it measures the clock offset on the link up. Each
//! calls [`HealthReporter::update`]; the publication runs on the engine
//! thread, in order, so the last facts always win.

use std::sync::{Arc, Mutex};

use jobmesh_protocol::health::HealthFacts;
use tracing::warn;

use crate::state::{now_ms, NodeState};
use crate::tls::NodeTls;

/// The facts this node reports about itself, and the way to publish them.
pub struct HealthReporter {
    facts: Mutex<HealthFacts>,
    state: Arc<NodeState>,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for HealthReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthReporter").field("facts", &self.facts()).finish_non_exhaustive()
    }
}

impl HealthReporter {
    /// The reporter of a node presenting `tls`; call from within the
    /// node's runtime. Nothing is published until [`HealthReporter::publish`].
    pub fn new(state: Arc<NodeState>, tls: &NodeTls) -> Arc<HealthReporter> {
        let mut facts = HealthFacts { software: env!("CARGO_PKG_VERSION").to_owned(), ..HealthFacts::default() };
        set_cert(&mut facts, tls);
        Arc::new(HealthReporter { facts: Mutex::new(facts), state, runtime: tokio::runtime::Handle::current() })
    }

    /// The facts as they stand.
    pub fn facts(&self) -> HealthFacts {
        self.facts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Change the facts with `f` and publish them.
    pub fn update(&self, f: impl FnOnce(&mut HealthFacts)) {
        {
            let mut facts = self.facts.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut facts);
        }
        self.publish();
    }

    /// The certificate now presented (after a reload).
    pub fn certificate_changed(&self, tls: &NodeTls) {
        self.update(|f| set_cert(f, tls));
    }

    /// Hand the current facts to the engine (a new version only if they
    /// changed). Returns at once; the engine thread does the write.
    pub fn publish(&self) {
        let state = self.state.clone();
        let facts = self.facts();
        self.runtime.spawn(async move {
            match state.call(move |e| e.set_health(&facts, now_ms())).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) | Err(e) => warn!("cannot publish this node's health report: {e}"),
            }
        });
    }
}

fn set_cert(f: &mut HealthFacts, tls: &NodeTls) {
    let serial = tls.serial();
    f.cert_serial = (!serial.is_empty()).then_some(serial);
    f.cert_not_after = tls.cert_not_after();
}
