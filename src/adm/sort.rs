//! The order of ipvsadm's sorted listings. ipvsadm sorts with glibc's `qsort`, which is a
//! top-down merge sort, and with libipvs's comparators, which subtract unsigned fields
//! into an `int`. Those comparators are not transitive when values differ by 2^31 or
//! more (fwmark 3000000000 sorts before the address services), so the result depends on
//! the algorithm and on the input order; both are reproduced here.

use std::net::IpAddr;

use crate::table::{ServerEntry, ServiceEntry, ServiceKey};

/// glibc's `msort_with_tmp`: split at n/2, sort both halves, merge taking from the left
/// while `cmp(left, right) <= 0`.
pub fn merge_sort<T: Clone>(items: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    let n = items.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    merge_sort(&mut items[..n1], cmp);
    merge_sort(&mut items[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&items[i], &items[j]) <= 0 {
            merged.push(items[i].clone());
            i += 1;
        } else {
            merged.push(items[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&items[i..n1]);
    merged.extend_from_slice(&items[j..n]);
    items.clone_from_slice(&merged);
}

/// The address as the four big-endian words of `union nf_inet_addr` (IPv4 in the first).
fn words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(*a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

fn compare_addresses(ipv6: bool, a: &IpAddr, b: &IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    let used = if ipv6 { 4 } else { 1 };
    (0..used)
        .map(|i| wa[i].wrapping_sub(wb[i]) as i32)
        .find(|r| *r != 0)
        .unwrap_or(0)
}

/// The fields of `ipvs_service_entry` the comparator reads. fwmark services carry
/// protocol 0 and a zero address, as libipvs leaves them.
fn service_fields(key: &ServiceKey) -> (u32, u16, u16, IpAddr, u16) {
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => (0, key.family().number(), protocol.number(), *addr, *port),
        ServiceKey::Fwmark { mark, family } => (
            *mark,
            family.number(),
            0,
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            0,
        ),
    }
}

/// libipvs `ipvs_cmp_services`.
pub fn compare_services(a: &ServiceEntry, b: &ServiceEntry) -> i32 {
    compare_service_keys(&a.key, &b.key)
}

/// libipvs `ipvs_cmp_services` on the keys alone (all it reads), for listings of
/// other shapes: `uvs status`, the status page.
pub fn compare_service_keys(a: &ServiceKey, b: &ServiceKey) -> i32 {
    let (fa, afa, pa, aa, porta) = service_fields(a);
    let (fb, afb, pb, ab, portb) = service_fields(b);
    let r = fa.wrapping_sub(fb) as i32;
    if r != 0 {
        return r;
    }
    let r = i32::from(afa) - i32::from(afb);
    if r != 0 {
        return r;
    }
    let r = i32::from(pa) - i32::from(pb);
    if r != 0 {
        return r;
    }
    let r = compare_addresses(afa == 10, &aa, &ab);
    if r != 0 {
        return r;
    }
    i32::from(porta) - i32::from(portb)
}

/// libipvs `ipvs_cmp_dests` (the family of the first decides how much address is read).
pub fn compare_servers(a: &ServerEntry, b: &ServerEntry) -> i32 {
    let r = compare_addresses(a.addr.is_ipv6(), &a.addr, &b.addr);
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sort_is_stable_and_sorts() {
        let mut v = vec![(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')];
        merge_sort(&mut v, &|x: &(i32, char), y: &(i32, char)| x.0 - y.0);
        assert_eq!(v, vec![(1, 'b'), (1, 'e'), (2, 'd'), (3, 'a'), (3, 'c')]);
    }

    #[test]
    fn non_transitive_comparison_depends_on_input_order() {
        // With wrapped subtraction, 0 < 2^31 - 1 < 2^31 < 0: a cycle. The merge sort's
        // answer for this input is what glibc gives.
        let cmp = |x: &u32, y: &u32| x.wrapping_sub(*y) as i32;
        let mut v = vec![0x8000_0000u32, 0, 0x7fff_ffff];
        merge_sort(&mut v, &cmp);
        assert_eq!(v, vec![0x8000_0000, 0, 0x7fff_ffff]);
    }
}
