//! Per-store state that a domain module keeps next to one [`Store`](super::Store) without the
//! store knowing its type.
//!
//! Some state belongs to one database rather than to the process: the ledger's queue of SQLite
//! admissions waiting for the writer lock is shared by every clone of one store and must not
//! be shared with another store. The store carries a small type-keyed set of such values; each
//! domain module asks for its own type and gets the one instance of this store (created on
//! first use), so `store` depends on no domain module.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

/// One value per type, created on first use; shared by every clone of a store.
#[derive(Default)]
pub(crate) struct Extensions {
    /// Few entries (one per domain module that needs one), so a scan beats a map.
    slots: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

// === impl Extensions ===

impl Extensions {
    /// This store's value of type `T`, created with `T::default()` the first time.
    pub(crate) fn get_or_default<T: Any + Default + Send + Sync>(&self) -> Arc<T> {
        let mut slots = self.lock();
        if let Some(found) = slots
            .iter()
            .find_map(|s| Arc::clone(s).downcast::<T>().ok())
        {
            return found;
        }
        let value = Arc::new(T::default());
        slots.push(value.clone());
        value
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<dyn Any + Send + Sync>>> {
        // A panic while holding this lock can only happen in `Vec::push` (out of memory); the
        // vector is still valid, so keep using it.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions")
            .field("slots", &self.lock().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicU32);

    #[derive(Default)]
    struct Other(u8);

    #[test]
    fn one_value_per_type_shared_by_every_caller() {
        let ext = Extensions::default();
        let a = ext.get_or_default::<Counter>();
        a.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let b = ext.get_or_default::<Counter>();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(ext.get_or_default::<Other>().0, 0);
        assert_eq!(ext.lock().len(), 2);
        // Another store's extensions are its own.
        let fresh = Extensions::default().get_or_default::<Counter>();
        assert!(!Arc::ptr_eq(&a, &fresh));
    }
}
