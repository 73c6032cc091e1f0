//! The farm fixture for end-to-end tests and tools: real server processes
//! on their own loopback range, faults on demand, and a raw RTTP client.
//!
//! ```no_run
//! # async fn demo() {
//! use integration::{check_for, Farm, FarmSpec};
//! let farm = Farm::start(FarmSpec::default());
//! check_for(std::time::Duration::from_secs(5), "three servers UP", || async {
//!     farm.farm_info(0).await.is_some_and(|t| t.servers.len() == 3)
//! })
//! .await;
//! # }
//! ```

mod ask;
pub use ask::scrape;
pub mod certs;
mod claim;
mod farm;
mod process;
mod raw;
mod spec;
mod text;
mod wait;

pub use claim::{Range, Slot, MAX_FARMS};
pub use farm::{Farm, ServerProc};
pub use process::{bin, clean_env, die_with_parent, write_secret};
pub use raw::{Raw, WAIT};
pub use spec::{no_rate_limit_flags, FarmSpec, CLIENT_PORT, MESH_WAIT, METRICS_PORT, PEER_PORT, SERVICE, WEB_PORT};
pub use text::{first_record, parse_metric, short};
pub use wait::check_for;
