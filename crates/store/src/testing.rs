//! For the store's unit tests: a fresh store on each engine, and a macro that runs a test
//! function once on SQLite and once on a throwaway PostgreSQL database.

use crate::Store;

pub(crate) async fn on_sqlite(test: impl AsyncFnOnce(&Store)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&Store::sqlite_url(dir.path()))
        .await
        .expect("open SQLite");
    test(&store).await;
    store.close().await;
}

pub(crate) async fn on_postgres(test: impl AsyncFnOnce(&Store)) {
    let db = bastion_test_pg::PgDatabase::create().await;
    let store = Store::open(&db.url).await.expect("open PostgreSQL");
    test(&store).await;
    store.close().await;
}

/// `on_both_engines!(a, b)`: a test module per function, with a `sqlite` and a `postgres`
/// test each.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    $crate::testing::on_sqlite(super::$name).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    $crate::testing::on_postgres(super::$name).await
                }
            }
        )*
    };
}
pub(crate) use on_both_engines;
