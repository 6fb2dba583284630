//! The watcher: reloads the node's TLS files on SIGHUP and when their
//! contents change (polled every [`POLL`]), without a restart.

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
        let certs = certs.clone();
        // File reads and certificate checks are blocking work.
        let _ = tokio::task::spawn_blocking(move || certs.reload(trigger)).await;
    }
}
