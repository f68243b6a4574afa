//! Keeping the first few of what may be very many: a file read for its problems
//! (`reader`) or imported (`import`) can have one per line, tens of millions in a file
//! of junk within the size limit. Only the first [`SHOWN`] in the file's order are kept,
//! and all are counted, so what a read holds stays small whatever the file. They may
//! come in any order (the schema reports unknown keys after the known ones, the
//! ldirectord importer a service's problems once its block is read), so they are kept by
//! their place in the file, ties in the order they came: the first [`SHOWN`] of a stable
//! sort, at a cost of O(log SHOWN) each.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// How many problems (or lines not taken) a read keeps and shows.
pub const SHOWN: usize = 100;

/// The `limit` items of smallest key seen so far, and how many were seen in all.
#[derive(Debug)]
pub struct Capped<K, T> {
    limit: usize,
    /// A max-heap: its top is the first to give way to a smaller key.
    kept: BinaryHeap<Entry<K, T>>,
    total: usize,
}

#[derive(Debug)]
struct Entry<K, T> {
    key: K,
    /// The order it came in, so that equal keys keep it.
    seq: usize,
    item: T,
}

impl<K: Ord, T> Entry<K, T> {
    fn rank(&self) -> (&K, usize) {
        (&self.key, self.seq)
    }
}

impl<K: Ord, T> PartialEq for Entry<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl<K: Ord, T> Eq for Entry<K, T> {}

impl<K: Ord, T> PartialOrd for Entry<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord, T> Ord for Entry<K, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl<K: Ord, T> Default for Capped<K, T> {
    fn default() -> Self {
        Capped::new(SHOWN)
    }
}

impl<K: Ord, T> Capped<K, T> {
    /// Keeps at most `limit` items.
    pub fn new(limit: usize) -> Capped<K, T> {
        Capped {
            limit,
            kept: BinaryHeap::new(),
            total: 0,
        }
    }

    /// Whether an item at `key` coming now would be kept (for the time being): lets a
    /// caller skip making one that would be dropped at once.
    pub fn admits(&self, key: &K) -> bool {
        if self.kept.len() < self.limit {
            return true;
        }
        // A newcomer comes after every kept item of the same key.
        self.kept.peek().is_some_and(|top| *key < top.key)
    }

    /// Counts an item at `key`, made only if it is kept.
    pub fn push_with(&mut self, key: K, item: impl FnOnce() -> T) {
        let seq = self.total;
        self.total += 1;
        if !self.admits(&key) {
            return;
        }
        let entry = Entry {
            key,
            seq,
            item: item(),
        };
        if self.kept.len() < self.limit {
            self.kept.push(entry);
        } else if let Some(mut top) = self.kept.peek_mut() {
            // Full: the newcomer takes the place of the last kept (the heap is put
            // right when `top` goes).
            *top = entry;
        }
    }

    /// Counts `item` at `key`.
    pub fn push(&mut self, key: K, item: T) {
        self.push_with(key, || item);
    }

    /// How many were counted, kept or not.
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The kept items in order of key (ties in the order they came), and how many
    /// were counted in all.
    pub fn into_sorted(self) -> (Vec<(K, T)>, usize) {
        let kept = self
            .kept
            .into_sorted_vec()
            .into_iter()
            .map(|e| (e.key, e.item))
            .collect();
        (kept, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_smallest_keys_ties_in_arrival_order_and_counts_all() {
        let mut c = Capped::new(3);
        for (key, item) in [(5, "a"), (1, "b"), (5, "c"), (0, "d"), (1, "e"), (9, "f")] {
            c.push(key, item);
        }
        assert_eq!(c.total(), 6);
        assert_eq!(c.into_sorted(), (vec![(0, "d"), (1, "b"), (1, "e")], 6));
    }

    #[test]
    fn what_a_stable_sort_would_put_first() {
        // Keys out of order with many ties, against sort-then-truncate.
        let keys: Vec<u32> = (0..1000u32).map(|i| (i * 7919) % 37).collect();
        let mut c = Capped::new(SHOWN);
        for (i, k) in keys.iter().enumerate() {
            c.push(*k, i);
        }
        let mut sorted: Vec<(u32, usize)> = keys.iter().copied().zip(0..).collect();
        sorted.sort_by_key(|(k, _)| *k);
        sorted.truncate(SHOWN);
        assert_eq!(c.into_sorted(), (sorted, 1000));
    }

    #[test]
    fn an_item_that_would_not_be_kept_is_not_made() {
        let mut c = Capped::new(1);
        c.push(1, "kept".to_string());
        assert!(!c.admits(&1), "after the kept one of the same key");
        c.push_with(2, || panic!("not kept, so not made"));
        assert!(c.admits(&0));
        c.push_with(0, || "first".to_string());
        assert_eq!(c.into_sorted(), (vec![(0, "first".to_string())], 3));
    }

    #[test]
    fn a_limit_of_none_only_counts() {
        let mut c = Capped::new(0);
        c.push_with(1, || panic!("nothing is kept"));
        assert!(!c.is_empty());
        assert_eq!(c.into_sorted(), (Vec::<(i32, ())>::new(), 1));
    }
}
