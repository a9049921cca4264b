//! Which new connections are served: at most `server.max_connections` at
//! once, and at most `server.max_connections_per_ip` from one client
//! address, so that one host cannot take every slot. IPv6 clients are
//! counted per /64, the block one host is normally given (RFC 4291 §2.5.4
//! interface identifiers are 64 bits), so cycling through its addresses
//! does not help. Trusted proxies are not limited per address: every
//! client behind them shares it.
//!
//! The limits are read from the running configuration at every accept, so
//! a reload that changes them applies to the next connection (a lower
//! limit closes nothing; it refuses new connections until enough have
//! ended).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} connections are open, the server.max_connections limit")]
    Total(usize),
    #[error(
        "{0} connections from this address (its /64 for IPv6) are open, the server.max_connections_per_ip limit"
    )]
    PerIp(usize),
}

impl Refusal {
    /// Label for the `fedgate_connections_refused_total` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Total(_) => "max_connections",
            Refusal::PerIp(_) => "max_connections_per_ip",
        }
    }
}

/// What one client is counted as: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl ClientKey {
    fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    ClientKey::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    per_client: HashMap<ClientKey, usize>,
}

/// Open connections, counted against the limits.
#[derive(Debug, Default)]
pub struct Admission {
    counts: Mutex<Counts>,
}

/// One admitted connection; its slot is given back on drop.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    client: ClientKey,
}

impl Admission {
    /// Admits a connection from `ip` if fewer than `max_total` are open
    /// and, unless `max_per_ip` is `None` (a trusted proxy), fewer than
    /// `max_per_ip` from that client.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: Option<usize>,
    ) -> Result<Slot, Refusal> {
        let client = ClientKey::of(ip);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.open >= max_total {
            return Err(Refusal::Total(c.open));
        }
        let mine = c.per_client.get(&client).copied().unwrap_or(0);
        if let Some(max) = max_per_ip
            && mine >= max
        {
            return Err(Refusal::PerIp(mine));
        }
        c.open += 1;
        c.per_client.insert(client, mine + 1);
        Ok(Slot {
            admission: self.clone(),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).open
    }
}

impl Slot {
    /// Counts this connection as `ip`'s from now on, if fewer than
    /// `max_per_ip` (`None`: no limit) are open from it: with the PROXY
    /// protocol, a connection is admitted at accept as the balancer's
    /// (which is exempt), and its real client is known only once the header
    /// is read. Refused, the slot is given back when it is dropped.
    pub fn rekey(&mut self, ip: IpAddr, max_per_ip: Option<usize>) -> Result<(), Refusal> {
        let client = ClientKey::of(ip);
        if client == self.client {
            return Ok(());
        }
        let mut c = self
            .admission
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mine = c.per_client.get(&client).copied().unwrap_or(0);
        if let Some(max) = max_per_ip
            && mine >= max
        {
            return Err(Refusal::PerIp(mine));
        }
        c.per_client.insert(client, mine + 1);
        if let Some(n) = c.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&self.client);
            }
        }
        self.client = client;
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self
            .admission
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        c.open = c.open.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &str = "192.0.2.1";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_limit_is_the_one_given_at_each_admission() {
        let a = Arc::new(Admission::default());
        let s1 = a.admit(ip(IP), 2, None).unwrap();
        let _s2 = a.admit(ip(IP), 2, None).unwrap();
        assert_eq!(a.admit(ip(IP), 2, None).unwrap_err(), Refusal::Total(2));
        // A reload raised the limit: admitted at once.
        let _s3 = a.admit(ip(IP), 3, None).unwrap();
        // Lowered below what is open: nothing closes, nothing new until
        // enough have ended.
        assert!(a.admit(ip(IP), 1, None).is_err());
        drop(s1);
        assert_eq!(a.open(), 2);
        assert!(a.admit(ip(IP), 1, None).is_err());
        assert!(a.admit(ip(IP), 3, None).is_ok());
    }

    #[test]
    fn one_client_cannot_take_every_slot() {
        let a = Arc::new(Admission::default());
        let mine: Vec<_> = (0..2)
            .map(|_| a.admit(ip(IP), 10, Some(2)).unwrap())
            .collect();
        assert_eq!(a.admit(ip(IP), 10, Some(2)).unwrap_err(), Refusal::PerIp(2));
        assert_eq!(
            a.admit(ip("::ffff:192.0.2.1"), 10, Some(2)).unwrap_err(),
            Refusal::PerIp(2),
            "the mapped form is the same client"
        );
        let _other = a.admit(ip("192.0.2.2"), 10, Some(2)).unwrap();
        // A trusted proxy is not limited per address.
        let _proxied = a.admit(ip(IP), 10, None).unwrap();
        drop(mine);
        assert!(a.admit(ip(IP), 10, Some(2)).is_ok());
    }

    fn open_from(a: &Admission, ip: IpAddr) -> usize {
        let c = a.counts.lock().unwrap();
        c.per_client.get(&ClientKey::of(ip)).copied().unwrap_or(0)
    }

    #[test]
    fn a_proxied_connection_counts_against_its_real_client() {
        let a = Arc::new(Admission::default());
        let lb = ip("10.0.0.5");
        // Admitted as the balancer's, exempt; then the header names the
        // client, which is held to its own limit.
        let mut s1 = a.admit(lb, 10, None).unwrap();
        s1.rekey(ip(IP), Some(1)).unwrap();
        let mut s2 = a.admit(lb, 10, None).unwrap();
        assert_eq!(s2.rekey(ip(IP), Some(1)).unwrap_err(), Refusal::PerIp(1));
        assert_eq!(open_from(&a, lb), 1, "s2 is still the balancer's");
        drop(s2);
        assert_eq!(
            (a.open(), open_from(&a, lb), open_from(&a, ip(IP))),
            (1, 0, 1)
        );
        drop(s1);
        assert_eq!((a.open(), open_from(&a, ip(IP))), (0, 0));
        // A health check (LOCAL) stays the balancer's.
        let mut hc = a.admit(lb, 10, None).unwrap();
        hc.rekey(lb, None).unwrap();
        assert_eq!(open_from(&a, lb), 1);
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let a = Arc::new(Admission::default());
        let _s = a.admit(ip("2001:db8:1:2::1"), 10, Some(1)).unwrap();
        assert!(a.admit(ip("2001:db8:1:2:ffff::9"), 10, Some(1)).is_err());
        assert!(a.admit(ip("2001:db8:1:3::1"), 10, Some(1)).is_ok());
    }
}
