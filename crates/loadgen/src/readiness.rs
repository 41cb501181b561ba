//! `wait-serving`: polls until auth-svc's health check answers SERVING (or the gateway's
//! `/healthz` answers 200), then prints the wall-clock time of that answer in Unix
//! nanoseconds. The caller notes the time just before it started the server; the difference
//! is the start-up time (this process's own start overlaps the server's, so it adds nothing).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;

use crate::{
    grpc::{self, HealthCheck},
    rest::{Gateway, Get},
};

/// Delay between attempts: the resolution of the measurement.
const POLL_EVERY: Duration = Duration::from_millis(1);

pub enum Probe {
    /// `grpc.health.v1.Health/Check` for this service name.
    Grpc { addr: String, service: String },
    /// `GET /healthz` on the gateway.
    Http { url: String },
}

/// Polls until the probe succeeds and returns the Unix time of the answer in nanoseconds.
pub async fn wait_serving(probe: &Probe, timeout: Duration) -> anyhow::Result<u128> {
    let deadline = Instant::now() + timeout;
    loop {
        let Err(error) = attempt(probe).await else {
            return Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos());
        };
        if Instant::now() >= deadline {
            bail!("not serving after {timeout:?}: {error}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn attempt(probe: &Probe) -> Result<(), String> {
    match probe {
        Probe::Grpc { addr, service } => {
            let endpoint = grpc::endpoint(addr).map_err(|e| e.to_string())?;
            let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
            match HealthCheck::new(channel).is_serving(service).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("{service:?} is not SERVING")),
                Err(status) => Err(status.to_string()),
            }
        }
        Probe::Http { url } => {
            let gateway = Gateway::parse(url).map_err(|e| e.to_string())?;
            let mut get = Get::new(gateway, "/healthz", None).map_err(|e| e.to_string())?;
            get.get().await.map(drop)
        }
    }
}
