//! Locking a `Mutex` whose holder may have panicked. Every mutex in uvs guards state
//! that stays consistent between statements (maps and counters updated in one call,
//! never half-written across an `await` or a fallible step), so a panic in one holder
//! leaves nothing to repair, and the daemon must go on serving rather than fail every
//! later caller. [`Locked::locked`] is that one decision, made here instead of at each
//! call site. Used by every module that holds a mutex.

use std::sync::{Mutex, MutexGuard};

/// A mutex that is locked whether or not an earlier holder panicked.
pub trait Locked<T: ?Sized> {
    /// The guard, taken even from a poisoned mutex.
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_mutex_is_still_locked_with_its_value() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let held = std::sync::Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let mut g = held.lock().unwrap();
            *g = 2;
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*m.locked(), 2);
    }
}
