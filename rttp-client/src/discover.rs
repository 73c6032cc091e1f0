//! Finding the farm: DNS through hickory-resolver (a given server or the
//! system's), SRV `_rttp._tcp.<zone>` first when asked, then A/AAAA with the
//! given port; or a direct bootstrap list, skipping DNS.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

use crate::error::{Error, Result};

/// Where the first server comes from.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// Ask DNS for `name`.
    Dns {
        /// The service name, e.g. `chat.farm.test`.
        name: String,
        /// The port of the A/AAAA answers.
        port: u16,
        /// A DNS server to ask instead of the system's.
        server: Option<SocketAddr>,
        /// Try SRV `_rttp._tcp.<zone>` first.
        srv: bool,
    },
    /// Skip DNS: these addresses, in order.
    Direct(Vec<SocketAddr>),
}

impl Discovery {
    /// The addresses to try, in order.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>> {
        match self {
            Discovery::Direct(v) if v.is_empty() => Err(Error::Invalid("no bootstrap address".into())),
            Discovery::Direct(v) => Ok(v.clone()),
            Discovery::Dns { name, port, server, srv } => {
                let resolver = resolver(*server)?;
                let fail = |reason: String| Error::Resolve { name: name.clone(), reason };
                let fqdn = if name.ends_with('.') { name.clone() } else { format!("{name}.") };
                if *srv {
                    if let Some(zone) = fqdn.split_once('.').map(|(_, z)| z) {
                        if let Ok(found) = srv_addrs(&resolver, &format!("_rttp._tcp.{zone}")).await {
                            if !found.is_empty() {
                                return Ok(found);
                            }
                        }
                    }
                }
                let ips = resolver.lookup_ip(fqdn.as_str()).await.map_err(|e| {
                    let text = e.to_string();
                    if text.contains("no records found") {
                        fail("no such name, or it has no address".into())
                    } else {
                        fail(text)
                    }
                })?;
                let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(ip, *port)).collect();
                if addrs.is_empty() {
                    return Err(fail("no address".into()));
                }
                Ok(addrs)
            }
        }
    }
}

fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver> {
    let builder = match server {
        Some(s) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = s.port();
            let mut ns = NameServerConfig::udp_and_tcp(s.ip());
            ns.connections = vec![udp, tcp];
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| Error::Resolve { name: "system".into(), reason: e.to_string() })?,
    };
    let mut builder = builder;
    let opts = builder.options_mut();
    // The farm's answers change by the second: never serve them from a cache.
    opts.cache_size = 0;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    builder.build().map_err(|e| Error::Resolve { name: "resolver".into(), reason: e.to_string() })
}

async fn srv_addrs(resolver: &TokioResolver, name: &str) -> Result<Vec<SocketAddr>> {
    let srv =
        resolver.srv_lookup(name).await.map_err(|e| Error::Resolve { name: name.into(), reason: e.to_string() })?;
    let mut out = Vec::new();
    for r in srv.answers() {
        if let hickory_resolver::proto::rr::RData::SRV(s) = &r.data {
            if let Ok(ips) = resolver.lookup_ip(s.target.clone()).await {
                out.extend(ips.iter().map(|ip| SocketAddr::new(ip, s.port)));
            }
        }
    }
    Ok(out)
}
