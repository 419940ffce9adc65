//! Who may hold a connection of a listener: at most `max_per_address` from one address, at most `max_connections`
//! in all; and while the cap is reached, a newcomer takes the place of the oldest connection that has not yet
//! been admitted — one whose request never arrived whole, or never passed the token check — so that clients
//! dribbling headers (slowloris) or knocking without a token cannot keep `/health` and authenticated clients out.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// Why a connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its address holds `max_per_address` connections already.
    Address,
    /// Every connection is admitted, and there are `max_connections` of them.
    Full,
}

pub struct Admission {
    max: usize,
    per_address: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    open: usize,
    addresses: HashMap<IpAddr, usize>,
    /// Connections not yet admitted, oldest first; each with the token that closes it.
    waiting: VecDeque<(u64, CancellationToken)>,
    next: u64,
}

/// One open connection's place; given back when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    address: IpAddr,
    /// Cancelled when a newcomer takes this connection's place (it was not admitted yet).
    pub evicted: CancellationToken,
    /// Admitted already: the next requests of a kept-alive connection take no lock.
    admitted: std::sync::atomic::AtomicBool,
}

impl Admission {
    pub fn new(max: usize, per_address: usize) -> Arc<Self> {
        Arc::new(Self { max, per_address, inner: Mutex::default() })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection from `address`, if it may have one. Returns also whether an older connection
    /// that was not admitted was closed to make room.
    pub fn enter(self: &Arc<Self>, address: IpAddr) -> Result<(Ticket, bool), Refused> {
        let address = canonical(address);
        let mut inner = self.inner();
        if inner.addresses.get(&address).copied().unwrap_or(0) >= self.per_address {
            return Err(Refused::Address);
        }
        let mut evicted = false;
        if inner.open >= self.max {
            // Its place is given back when its task ends, a moment from now.
            let Some((_, oldest)) = inner.waiting.pop_front() else { return Err(Refused::Full) };
            oldest.cancel();
            evicted = true;
        }
        inner.open += 1;
        *inner.addresses.entry(address).or_default() += 1;
        let id = inner.next;
        inner.next += 1;
        let token = CancellationToken::new();
        inner.waiting.push_back((id, token.clone()));
        let ticket = Ticket { admission: Arc::clone(self), id, address, evicted: token, admitted: Default::default() };
        Ok((ticket, evicted))
    }
}

impl Ticket {
    /// The connection made a request that passed the gate: it keeps its place.
    pub fn admit(&self) {
        if self.admitted.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut inner = self.admission.inner();
        if let Some(at) = inner.waiting.iter().position(|(id, _)| *id == self.id) {
            inner.waiting.remove(at);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.admission.inner();
        inner.open -= 1;
        if let Some(n) = inner.addresses.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                inner.addresses.remove(&self.address);
            }
        }
        if !self.admitted.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(at) = inner.waiting.iter().position(|(id, _)| *id == self.id)
        {
            inner.waiting.remove(at);
        }
    }
}

/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_has_its_share_and_newcomers_take_the_places_of_the_unadmitted() {
        let admission = Admission::new(4, 3);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let slow: Vec<Ticket> = (0..3).map(|_| admission.enter(a).unwrap().0).collect();
        assert_eq!(admission.enter(a).err(), Some(Refused::Address));
        let (good, evicted) = admission.enter(b).unwrap();
        assert!(!evicted);
        good.admit();
        // Full: the next newcomer closes the oldest unadmitted connection, never an admitted one.
        let (next, evicted) = admission.enter(b).unwrap();
        assert!(evicted && slow[0].evicted.is_cancelled() && !good.evicted.is_cancelled());
        next.admit();
        drop(slow);
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let again: Vec<Ticket> = (0..2).map(|_| admission.enter(mapped).unwrap().0).collect();
        assert_eq!(admission.enter(a).map(|_| ()).err(), None, "the places came back");
        drop(again);
        // All admitted and full: refused.
        let c: IpAddr = "127.0.0.3".parse().unwrap();
        let all: Vec<Ticket> = (0..2).map(|_| admission.enter(c).unwrap().0).collect();
        all.iter().for_each(Ticket::admit);
        assert_eq!(admission.enter(c).map(|_| ()).err(), Some(Refused::Full));
    }
}
