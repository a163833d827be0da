//! The store conformance suite: every case runs against SQLite and PostgreSQL.
use std::sync::Arc;

use switchyard_store::{Cipher, Store};

mod cases;

pub struct Harness {
    pub store: Arc<dyn Store>,
    /// Where the SQLite file lives (kept alive for the test); `None` on PostgreSQL.
    pub dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    Harness { store: switchyard_store::open(&url, cipher()).await.unwrap(), dir: Some(dir) }
}

pub async fn postgres() -> Harness {
    let url = switchyard_store::testing::fresh_postgres_url().await;
    Harness { store: switchyard_store::open(&url, cipher()).await.unwrap(), dir: None }
}

pub fn cipher() -> Cipher {
    Cipher::new(&[7u8; 32])
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test] async fn $case() { crate::cases::$case(crate::sqlite().await).await })*
        }
        mod on_postgres {
            $(#[tokio::test] async fn $case() { crate::cases::$case(crate::postgres().await).await })*
        }
    };
}

conformance!(
    migrations_are_idempotent,
    orgs_and_keys,
    tenants_are_isolated,
    place_tree,
    devices_and_moves,
    integrations_round_trip_with_secrets,
    integration_filters_and_paging,
    mappings,
    resources_under_paths,
    secrets_are_encrypted_at_rest,
    writer_rounds,
    leases_renew_only_for_their_holder,
    every_attempt_is_kept_in_order,
    released_leases_are_due_at_once,
    the_message_log_deduplicates_by_source_id,
    a_lease_has_one_holder_and_a_takeover_fences_the_old_one,
    progress_is_kept_with_its_messages,
);
