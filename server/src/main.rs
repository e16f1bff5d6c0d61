//! `wajah-server`: start the service (see `--help`; every flag has a `WAJAH_*` variable).

use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use wajah_server::{AppState, Config, serve, shutdown_signal};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("WAJAH_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .json()
        .init();
    let config = Config::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let state = AppState::new(&config)?;
        let listener = TcpListener::bind(config.listen).await?;
        tracing::info!(listen = %listener.local_addr()?, workers = config.workers, "wajah-server ready");
        serve(listener, state, shutdown_signal()).await?;
        Ok(())
    })
}
