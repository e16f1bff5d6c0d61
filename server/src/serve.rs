//! Connections: HTTP/1.1 with a deadline for request headers, a cap on open connections below the
//! process's file limit, and graceful shutdown.
//!
//! A client that opens connections and sends half a request line holds a file descriptor each;
//! without a header deadline and a cap, a few hundred of them starve `accept` and every other
//! client. Here a connection that has not sent its headers within `header_timeout` is closed, and
//! past `max_connections` new connections wait in the kernel's backlog until one closes.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::state::AppState;

/// File descriptors kept free for the store, models, logs and the listener itself.
const RESERVED_FILES: usize = 64;

/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// The soft limit on open files of this process (`/proc/self/limits`), if known.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Connections served at once: the configured cap, kept below the open-file limit.
pub fn connection_cap(configured: usize) -> usize {
    let by_files = open_file_limit().map_or(usize::MAX, |n| n.saturating_sub(RESERVED_FILES));
    configured.min(by_files).max(1)
}

/// Serves `state` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (for at most 30 s).
///
/// # Errors
/// When the listener fails for good.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = TowerToHyperService::new(crate::app(state.clone()));
    let slots = Arc::new(Semaphore::new(connection_cap(state.max_connections)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.header_timeout)
        .max_headers(crate::limits::HYPER_MAX_HEADERS)
        .max_buf_size(crate::limits::HYPER_MAX_BUF);
    let graceful = GracefulShutdown::new();
    let pruning = tokio::spawn(prune_audit(state.clone()));
    let following = Arc::new(std::sync::atomic::AtomicBool::new(state.gallery.follows_changes()));
    if state.gallery.follows_changes() {
        let (state, on) = (state.clone(), following.clone());
        std::thread::spawn(move || follow(&state, &on));
    }
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            let _ = connection.await; // a client that goes away is not an error of ours
            drop(slot);
        });
    }
    pruning.abort();
    following.store(false, std::sync::atomic::Ordering::Relaxed);
    state.set_not_ready();
    tracing::info!("shutting down: finishing requests in flight");
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after the drain time; closing");
    }
    Ok(())
}

/// Every hour, removes audit records past their retention.
async fn prune_audit(state: AppState) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        let (audit, keep) = (state.clone(), state.audit_retention.as_millis() as i64);
        match tokio::task::spawn_blocking(move || audit.audit.prune(keep)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(pruned = n, "audit records past retention removed"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "pruning the audit trail failed"),
            Err(e) => tracing::error!(error = %e, "pruning the audit trail failed"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Brings the search index up to date with the other servers' changes to a shared store: woken by
/// the database's notifications, and at least every half second from the feed position, so a
/// missed notification or a reconnect costs at most that.
fn follow(state: &AppState, on: &std::sync::atomic::AtomicBool) {
    let mut down = false;
    while on.load(std::sync::atomic::Ordering::Relaxed) {
        let waited = state.gallery.wait_for_change(Duration::from_millis(500));
        let result = waited.and_then(|()| state.gallery.catch_up());
        match result {
            Ok(applied) => {
                if down {
                    tracing::info!("template store reachable again");
                }
                down = false;
                if applied > 0 {
                    tracing::debug!(applied, "changes from other servers applied");
                }
            }
            Err(e) => {
                if !down {
                    tracing::warn!(error = %e, "following the template store's changes");
                }
                down = true;
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}
