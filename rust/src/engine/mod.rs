//! Transfer engine: parallel ranged HTTP GETs into a preallocated file,
//! resume journal, retries, streaming digests, progress counters.
//!
//! Pipeline of one transfer (see `transfer`, which no part of it imports):
//! probe (`fetch`) → journal load (`journal`) → range planning (`plan`) →
//! workers fetching pieces into budgeted buffers (`buffers`, `retry`,
//! `adaptive`) → positional writes (`file`) → in-order digests on a thread
//! (`hasher`) and journal records → fsync + rename.

pub mod adaptive;
mod attempt;
pub mod buffers;
mod checks;
pub mod client;
pub mod fetch;
pub mod file;
pub mod hasher;
pub mod journal;
pub mod pace;
pub mod plan;
mod probed;
pub mod progress;
mod ranged;
pub mod retry;
pub mod runtime;
pub mod sign;
pub mod simple;
pub mod spec;
pub mod stream;
pub mod transfer;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use buffers::{SlabPool, SLAB};

/// Settings of an engine (see `Engine` in `_core.pyi`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub ca_bundle: Option<PathBuf>,
    pub max_connections: usize,
    pub max_in_flight_bytes: u64,
    pub connect_timeout: Duration,
    pub stall_timeout: Duration,
    /// low-speed limit (bytes/s, 0 = off) over `speed_time`: see `pace`
    pub speed_limit: u64,
    pub speed_time: Duration,
    pub max_retries: u32,
    pub user_agent: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            ca_bundle: None,
            max_connections: 64,
            max_in_flight_bytes: 128 << 20,
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            speed_limit: 1024,
            speed_time: Duration::from_secs(30),
            max_retries: 8,
            user_agent: None,
        }
    }
}

/// One HTTP client and the limits shared by all its transfers.
pub struct Engine {
    pub(crate) client: reqwest::Client,
    /// same settings, redirects not followed: signed requests follow them
    /// themselves (see `fetch::get`)
    pub(crate) client_manual: reqwest::Client,
    pub(crate) cfg: EngineConfig,
    /// one permit per request in progress, over all transfers
    pub(crate) conns: Arc<Semaphore>,
    /// one permit per slab of buffered bytes, over all transfers
    pub(crate) budget: Arc<Semaphore>,
    pub(crate) budget_slabs: usize,
    pub(crate) pool: Arc<SlabPool>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Result<Arc<Self>> {
        if cfg.max_connections == 0 {
            return Err(Error::InvalidInput(
                "max_connections must be at least 1".into(),
            ));
        }
        if cfg.max_in_flight_bytes < 2 * SLAB as u64 {
            return Err(Error::InvalidInput(format!(
                "max_in_flight_bytes must be at least {} (2 MiB)",
                2 * SLAB
            )));
        }
        if cfg.stall_timeout.is_zero() || cfg.connect_timeout.is_zero() || cfg.speed_time.is_zero()
        {
            return Err(Error::InvalidInput(
                "stall_timeout, connect_timeout and speed_time must be positive".into(),
            ));
        }
        let client_cfg = |follow_redirects| client::ClientConfig {
            ca_bundle: cfg.ca_bundle.as_deref(),
            connect_timeout: cfg.connect_timeout,
            user_agent: cfg.user_agent.as_deref(),
            max_connections: cfg.max_connections,
            follow_redirects,
        };
        let client = client::build(&client_cfg(true))?;
        let client_manual = client::build(&client_cfg(false))?;
        let budget_slabs = (cfg.max_in_flight_bytes / SLAB as u64) as usize;
        Ok(Arc::new(Self {
            client,
            client_manual,
            conns: Arc::new(Semaphore::new(cfg.max_connections)),
            budget: Arc::new(Semaphore::new(budget_slabs)),
            budget_slabs,
            pool: Arc::new(SlabPool::default()),
            cfg,
        }))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The time bounds of every exchange (see `pace`).
    pub fn limits(&self) -> pace::Limits {
        pace::Limits {
            stall: self.cfg.stall_timeout,
            speed_limit: self.cfg.speed_limit,
            speed_time: self.cfg.speed_time,
        }
    }
}
