//! The watcher: reloads the node's TLS files on SIGHUP and when their
//! contents change (polled every [`POLL`]), without a restart, and reads the
//! revocation list the config's `revocations` names when it changes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{CertState, Trigger};

/// How often the files are looked at. Reading three small files every two
/// seconds costs nothing, works on every filesystem (no inotify on NFS
/// shares some counties use) and is well within "picks it up on its own".
pub const POLL: Duration = Duration::from_secs(2);

/// Run until `shutdown`: reload on SIGHUP and on a change of the files.
pub async fn run(certs: Arc<CertState>, shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("cannot listen for SIGHUP ({e}); certificate files are still reloaded when they change");
            None
        }
    };
    let mut expiry = ExpiryWarnings::default();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => Trigger::FileChange,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                info!("SIGHUP received: reloading the certificate, key and CA files");
                Trigger::Signal
            }
        };
        expiry.check(&certs, crate::state::now_ms() / 1000);
        let certs = certs.clone();
        // File reads and certificate checks are blocking work.
        let _ = tokio::task::spawn_blocking(move || {
            certs.reload(trigger);
            if let Some(published) = certs.revocations.source_changed() {
                certs.offer_list(published, "config revocations");
            }
        })
        .await;
    }
}

/// Warn from this many days before the certificate expires.
pub const WARN_BEFORE_DAYS: i64 = 30;
/// Repeat the warning this often (seconds): once a day.
const WARN_EVERY_S: u64 = 86_400;

/// Logs a warning once a day while this node's certificate expires within
/// [`WARN_BEFORE_DAYS`] (or has expired), and again at once when a reload
/// brings another certificate that is also close to expiry.
#[derive(Default)]
struct ExpiryWarnings {
    last: Option<(String, u64)>,
}

impl ExpiryWarnings {
    fn check(&mut self, certs: &CertState, now_s: u64) {
        let tls = certs.current();
        let Some(not_after) = tls.cert_not_after() else { return };
        let left_s = not_after - now_s as i64;
        if left_s > WARN_BEFORE_DAYS * 86_400 {
            self.last = None;
            return;
        }
        let serial = tls.serial();
        if let Some((s, at)) = &self.last {
            if *s == serial && now_s < at + WARN_EVERY_S {
                return;
            }
        }
        let when = super::iso_seconds(not_after);
        if left_s <= 0 {
            warn!(%serial, not_after = %when, "this node's certificate expired at {when}; peers refuse its links: renew it (jobmesh ca issue --renew) and install it");
        } else {
            warn!(%serial, not_after = %when, days_left = left_s / 86_400, "this node's certificate expires at {when}: renew it (jobmesh ca issue --renew) and install it");
        }
        self.last = Some((serial, now_s));
    }
}
