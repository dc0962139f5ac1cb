//! The crate-private query macros: `on_pool!` and `in_transaction!` expand one query body once
//! per backend (so a query is written once and type-checked against both), and `from_sqlx!`
//! lets `?` turn a `sqlx::Error` into a domain error's `Store` variant. They name `Backend` at
//! its home (`store::backend`) and `StoreError` at the crate root, so this module imports
//! nothing.

/// Runs `$body` with `$pool` bound to the backend's pool. The body is compiled once per backend,
/// so one query text serves both.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store.backend_checked()? {
            $crate::store::backend::Backend::Sqlite($pool) => $body,
            $crate::store::backend::Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` inside one write transaction bound to `$tx` and commits its value. A `?` inside
/// the body returns early and drops the transaction, which rolls it back; a value the body
/// returns (including a domain `Err` held as a value) is committed first.
///
/// SQLite transactions first take the store's in-process writer lock (FIFO, waiting at most the
/// pool's acquire timeout), then start with
/// `BEGIN IMMEDIATE`: taking SQLite's write lock up front means a read lock is never upgraded
/// (which fails instead of waiting), and other processes queue on the busy timeout. Never
/// nest `in_transaction!` on SQLite: the inner one would wait for the outer one's lock.
macro_rules! in_transaction {
    ($store:expr, |$tx:ident| $body:expr) => {
        match $store.backend_checked()? {
            $crate::store::backend::Backend::Sqlite(pool) => {
                let _writer = $store.sqlite_write_turn().await?;
                let mut $tx = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err($crate::StoreError::from)?;
                let value = $body;
                $tx.commit().await.map_err($crate::StoreError::from)?;
                value
            }
            $crate::store::backend::Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await.map_err($crate::StoreError::from)?;
                let value = $body;
                $tx.commit().await.map_err($crate::StoreError::from)?;
                value
            }
        }
    };
}

/// `impl From<sqlx::Error>` for a domain error with a `Store(StoreError)` variant, so `?`
/// works on queries inside its functions.
macro_rules! from_sqlx {
    ($($ty:ty),+ $(,)?) => {$(
        impl From<sqlx::Error> for $ty {
            fn from(e: sqlx::Error) -> Self {
                Self::Store($crate::StoreError::Database(e))
            }
        }
    )+};
}

pub(crate) use {from_sqlx, in_transaction, on_pool};
