//! A value that a reload replaces whole while its readers keep going.
//!
//! [`Shared`] is a cheap handle to an `Arc<T>` behind a lock: a reader
//! [`load`](Shared::load)s the current `Arc` (the lock is held only for the
//! clone, never across an `.await`) and works with that snapshot for as long
//! as it needs; a reload [`store`](Shared::store)s a new one, which the
//! *next* load sees. Clones of the handle share the value.

use std::sync::{Arc, PoisonError, RwLock};

/// A swappable `Arc<T>`, shared by every clone of the handle.
pub struct Shared<T: ?Sized>(Arc<RwLock<Arc<T>>>);

impl<T: ?Sized> Clone for Shared<T> {
    fn clone(&self) -> Shared<T> {
        Shared(self.0.clone())
    }
}

impl<T> Shared<T> {
    /// A cell holding `value`.
    pub fn new(value: T) -> Shared<T> {
        Shared::from(Arc::new(value))
    }
}

impl<T: ?Sized> Shared<T> {
    /// The current value: a snapshot that a later [`Shared::store`] does not
    /// change.
    pub fn load(&self) -> Arc<T> {
        // Nothing panics while holding the lock (it only clones or swaps an
        // `Arc`), so a poisoned lock still holds a whole value.
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `value` the current value for every later load; returns the
    /// previous one.
    pub fn store(&self, value: Arc<T>) -> Arc<T> {
        let mut slot = self.0.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, value)
    }
}

impl<T: ?Sized> From<Arc<T>> for Shared<T> {
    fn from(value: Arc<T>) -> Shared<T> {
        Shared(Arc::new(RwLock::new(value)))
    }
}

impl<T: ?Sized + std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Shared").field(&self.load()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_seen_by_every_clone_and_leaves_loaded_snapshots_alone() {
        let a = Shared::new(1);
        let b = a.clone();
        let before = b.load();
        assert_eq!(*a.store(Arc::new(2)), 1);
        assert_eq!(*before, 1, "a snapshot keeps its value");
        assert_eq!(*b.load(), 2);
        assert_eq!(*a.load(), 2);
    }

    #[test]
    fn loads_from_other_threads_see_the_new_value() {
        let cell = Shared::new(String::from("old"));
        let reader = cell.clone();
        cell.store(Arc::new("new".into()));
        let seen = std::thread::spawn(move || reader.load().to_string())
            .join()
            .expect("thread");
        assert_eq!(seen, "new");
    }
}
