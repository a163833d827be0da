//! Persistence. The `Store` trait is the seam every other crate uses; it is
//! built from one sub-trait per area so each file stays small. `SqlStore`
//! implements it once, in SQL that runs on both backends (SQLite, the
//! embedded default, and PostgreSQL); backend-specific code (connecting,
//! pragmas, locking) lives in `sqlite.rs` and `postgres.rs`.
//!
//! Tenant scoping lives here: every method on tenant data takes the
//! organization, and every query filters by it, so a handler cannot forget.
use std::sync::Arc;

use async_trait::async_trait;
use switchyard_core::{
    Action, ActionId, ApiKey, ApiKeyId, CipherError, Delivery, DeliveryId, DeliveryStatus, Device, DeviceId, Direction,
    Integration, IntegrationId, MappingId, Org, OrgId, Place, PlaceId, Recipient, RecipientId, Record, RecordId,
    ResourceEntry, ResourceMapping, ResourcePath, Trigger, TriggerId,
};

mod actions;
mod db;
mod deliveries;
mod integrations;
mod leases;
mod messages;
mod migrate;
mod orgs;
mod outbox;
mod places;
mod postgres;
mod recipients;
mod sqlite;
mod sqlite_round;
mod statements;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod triggers;

pub use leases::{Fence, Lease, LeaseStore};
pub use messages::IngressStore;
pub use outbox::{
    Batch, Claimed, Completion, DeliveryFilter, IngestOutcome, LoggedDelivery, MessageFilter, NewDelivery, NewMessage,
    NewRecord, PendingSummary, RecordFilter, StoredRecord,
};
pub use switchyard_core::Cipher;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique rule was broken (a duplicate external id, say).
    #[error("{0}")]
    Conflict(String),
    /// The row is referenced by others and cannot be deleted.
    #[error("{0}")]
    InUse(String),
    /// The change is well-formed but not allowed by the data (a place moved under itself).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

impl StoreError {
    fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
    fn is_foreign_key_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_foreign_key_violation())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `limit` rows after the cursor (the last id of the previous page).
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub integration: Option<IntegrationId>,
    pub kind: Option<String>,
    /// Only actions in these states (any when empty).
    pub statuses: Vec<switchyard_core::ActionStatus>,
}

#[derive(Debug, Clone, Default)]
pub struct IntegrationFilter {
    pub direction: Option<Direction>,
    pub type_key: Option<String>,
    pub enabled: Option<bool>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
}

#[async_trait]
pub trait OrgStore: Send + Sync {
    async fn create_org(&self, org: &Org) -> Result<()>;
    async fn list_orgs(&self) -> Result<Vec<Org>>;
    async fn get_org(&self, id: &OrgId) -> Result<Option<Org>>;
    async fn set_custom_integrations(&self, id: &OrgId, enabled: bool) -> Result<bool>;
    async fn create_key(&self, key: &ApiKey, hash: &str) -> Result<()>;
    async fn list_keys(&self, org: &OrgId) -> Result<Vec<ApiKey>>;
    async fn revoke_key(&self, org: &OrgId, id: &ApiKeyId) -> Result<bool>;
    /// The organization's globals, secret ones decrypted.
    async fn get_globals(&self, org: &OrgId) -> Result<switchyard_core::Globals>;
    /// Replaces them (secret ones encrypted).
    async fn set_globals(&self, org: &OrgId, globals: &switchyard_core::Globals) -> Result<()>;
    /// When each organization's globals last changed (ms; 0 if never).
    async fn globals_versions(&self) -> Result<Vec<(OrgId, i64)>>;
    /// The live key with this hash, and its organization.
    async fn authenticate(&self, key_hash: &str) -> Result<Option<(ApiKey, Org)>>;
}

#[async_trait]
pub trait PlaceStore: Send + Sync {
    async fn create_place(&self, org: &OrgId, place: &Place) -> Result<()>;
    async fn get_place(&self, org: &OrgId, id: &PlaceId) -> Result<Option<Place>>;
    /// `parent`: `None` lists every place; `Some(None)` the roots; `Some(Some(p))` p's children.
    async fn list_places(
        &self,
        org: &OrgId,
        parent: Option<Option<&PlaceId>>,
        page: &PageRequest,
    ) -> Result<Page<Place>>;
    async fn update_place(&self, org: &OrgId, place: &Place) -> Result<bool>;
    /// Refused (`InUse`) while the place has children, devices or mappings.
    async fn delete_place(&self, org: &OrgId, id: &PlaceId) -> Result<bool>;
    async fn create_device(&self, org: &OrgId, device: &Device) -> Result<()>;
    async fn get_device(&self, org: &OrgId, id: &DeviceId) -> Result<Option<Device>>;
    async fn list_devices(&self, org: &OrgId, place: Option<&PlaceId>, page: &PageRequest) -> Result<Page<Device>>;
    async fn update_device(&self, org: &OrgId, device: &Device) -> Result<bool>;
    /// Refused (`InUse`) while mappings point at the device.
    async fn delete_device(&self, org: &OrgId, id: &DeviceId) -> Result<bool>;
    /// The resource a path names, if it exists in the organization.
    async fn resolve(&self, org: &OrgId, path: &ResourcePath) -> Result<Option<ResourceEntry>>;
    /// The places and devices directly under a path (`/` lists root places).
    async fn children(&self, org: &OrgId, path: &ResourcePath, page: &PageRequest) -> Result<Page<ResourceEntry>>;
}

#[async_trait]
pub trait IntegrationStore: Send + Sync {
    async fn create_integration(&self, integration: &Integration) -> Result<()>;
    async fn get_integration(&self, org: &OrgId, id: &IntegrationId) -> Result<Option<Integration>>;
    async fn list_integrations(
        &self,
        org: &OrgId,
        filter: &IntegrationFilter,
        page: &PageRequest,
    ) -> Result<Page<Integration>>;
    /// Writes name, enabled, properties, secrets, metadata and resource paths.
    async fn update_integration(&self, integration: &Integration) -> Result<bool>;
    /// Turns an integration on or off (410 Gone turns it off).
    async fn set_integration_enabled(&self, org: &OrgId, id: &IntegrationId, enabled: bool) -> Result<bool>;
    /// Deletes the integration and its mappings, atomically.
    async fn delete_integration(&self, org: &OrgId, id: &IntegrationId) -> Result<bool>;
    /// `Conflict` when the integration already maps the external id.
    async fn create_mapping(&self, org: &OrgId, mapping: &ResourceMapping) -> Result<()>;
    async fn get_mapping(&self, org: &OrgId, id: &MappingId) -> Result<Option<ResourceMapping>>;
    /// The mapping of an external id within an integration.
    async fn find_mapping(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        external_id: &str,
    ) -> Result<Option<ResourceMapping>>;
    async fn list_mappings(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        page: &PageRequest,
    ) -> Result<Page<ResourceMapping>>;
    async fn delete_mapping(&self, org: &OrgId, id: &MappingId) -> Result<bool>;
}

#[async_trait]
pub trait RecipientStore: Send + Sync {
    /// `Conflict` when the integration already has the address.
    async fn create_recipient(&self, org: &OrgId, recipient: &Recipient) -> Result<()>;
    async fn get_recipient(&self, org: &OrgId, id: &RecipientId) -> Result<Option<Recipient>>;
    async fn find_recipient(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        address: &str,
    ) -> Result<Option<Recipient>>;
    async fn list_recipients(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        page: &PageRequest,
    ) -> Result<Page<Recipient>>;
    /// Those that receive notifications (not pending), oldest first.
    async fn active_recipients(&self, org: &OrgId, integration: &IntegrationId) -> Result<Vec<Recipient>>;
    /// Writes name, status and verification.
    async fn update_recipient(&self, org: &OrgId, recipient: &Recipient) -> Result<bool>;
    async fn delete_recipient(&self, org: &OrgId, recipient: &Recipient, now: i64) -> Result<bool>;
}

#[async_trait]
pub trait TriggerStore: Send + Sync {
    async fn create_trigger(&self, org: &OrgId, trigger: &Trigger) -> Result<()>;
    async fn get_trigger(&self, org: &OrgId, id: &TriggerId) -> Result<Option<Trigger>>;
    async fn list_triggers(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        page: &PageRequest,
    ) -> Result<Page<Trigger>>;
    async fn update_trigger(&self, org: &OrgId, trigger: &Trigger) -> Result<bool>;
    async fn delete_trigger(&self, org: &OrgId, id: &TriggerId) -> Result<bool>;
    /// The active triggers of the organization's enabled egress integrations.
    async fn routing_triggers(&self, org: &OrgId) -> Result<Vec<Trigger>>;
    /// The Places above a device, nearest first (its own Place first).
    async fn device_places(&self, org: &OrgId, device: &DeviceId) -> Result<Vec<PlaceId>>;
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Stores the records and one pending delivery per target, for several
    /// organizations' batches in one transaction (a group commit): on return
    /// all are durable. Records whose sender id was seen before are skipped
    /// with their fan-out. One outcome per batch, in order.
    async fn ingest(&self, batches: &[Batch], now: i64) -> Result<Vec<IngestOutcome>> {
        self.write(batches, &[], now).await
    }
    /// One round of the writer: stores the batches as `ingest` does and
    /// records the completions as `complete` does, in one transaction, synced
    /// to disk before it returns when it holds records.
    async fn write(&self, batches: &[Batch], completions: &[Completion], now: i64) -> Result<Vec<IngestOutcome>>;
    /// Leases up to `limit` due deliveries (oldest due first), skipping the
    /// integrations in `exclude`. A leased delivery (claimed, or handed over
    /// at ingest) is due again when its lease ends (`next_attempt_at` moves
    /// with `lease_until`), so the search for due deliveries stops at the
    /// first one not due instead of passing over every one in flight.
    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
        exclude: &[IntegrationId],
    ) -> Result<Vec<Claimed>>;
    /// Records attempts and new states, in one transaction.
    async fn complete(&self, results: &[Completion]) -> Result<()> {
        self.write(&[], results, 0).await.map(drop)
    }
    /// Extends leases still held, each given with the lease its holder got,
    /// to `until`; returns the ids renewed. A delivery whose lease ran out
    /// and was claimed again (or finished) is not renewed: it is not the
    /// caller's to send any more.
    async fn renew_leases(&self, leases: &[(DeliveryId, i64)], until: i64) -> Result<Vec<DeliveryId>>;
    /// Puts claimed deliveries back, due at `until`, without an attempt (a circuit is open).
    async fn postpone(&self, ids: &[DeliveryId], until: i64) -> Result<()>;
    /// Per integration: deliveries waiting (pending or retrying) and the oldest one's creation time.
    async fn pending_summary(&self) -> Result<Vec<PendingSummary>>;
    /// Deletes up to `limit` finished deliveries (with their attempts) completed before
    /// `before`, then up to `limit` records stored before it that no delivery needs.
    async fn purge(&self, before: i64, limit: usize) -> Result<(u64, u64)>;
    /// Ends every lease (a single node starting after a crash).
    async fn release_leases(&self) -> Result<u64>;
    async fn list_deliveries(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>>;
    /// A delivery, its record and its attempts (oldest first).
    async fn get_delivery(&self, org: &OrgId, id: &DeliveryId) -> Result<Option<LoggedDelivery>>;
    /// Schedules a finished delivery again, now, keeping its id.
    async fn resend(&self, org: &OrgId, id: &DeliveryId, now: i64) -> Result<bool>;
}

#[async_trait]
pub trait ActionStore: Send + Sync {
    async fn create_action(&self, org: &OrgId, action: &Action) -> Result<()>;
    async fn get_action(&self, org: &OrgId, id: &ActionId) -> Result<Option<Action>>;
    /// Writes status, progress, result, error and times, unless the action
    /// was cancelled meanwhile: then nothing is written and it returns false.
    async fn update_action(&self, org: &OrgId, action: &Action) -> Result<bool>;
    /// Cancels a queued or running action; `None` when there is no such
    /// action, else it as it is now (unchanged if it had finished).
    async fn cancel_action(&self, org: &OrgId, id: &ActionId, now: i64) -> Result<Option<Action>>;
    /// Actions, newest first.
    async fn list_actions(&self, org: &OrgId, filter: &ActionFilter, page: &PageRequest) -> Result<Page<Action>>;
    /// How many of the action's deliveries are in each state.
    async fn action_deliveries(&self, org: &OrgId, id: &ActionId) -> Result<Vec<(DeliveryStatus, u64)>>;
    /// Stored records sampled in [from, to), oldest first, without test-send
    /// samples; `after` is the (timestamp, id) of the previous page's last.
    async fn records_between(
        &self,
        org: &OrgId,
        from: i64,
        to: i64,
        after: Option<(i64, RecordId)>,
        limit: usize,
    ) -> Result<Vec<(RecordId, Record)>>;
    /// One pending delivery per record to the integration, created by the action.
    async fn enqueue(
        &self,
        org: &OrgId,
        integration: &IntegrationId,
        records: &[RecordId],
        action: &ActionId,
        now: i64,
    ) -> Result<usize>;
    /// A test-send: its sample record and its one delivery, already attempted.
    async fn record_test_send(
        &self,
        org: &OrgId,
        record: &NewRecord,
        integration: &IntegrationId,
        action: &ActionId,
        completion: &Completion,
    ) -> Result<()>;
    /// Fails actions still running but untouched since `stale_before` (their
    /// node stopped), but for polled sources' backfills, which their
    /// integration's receiver resumes.
    async fn fail_stale_actions(&self, stale_before: i64, now: i64) -> Result<u64>;
}

/// Everything Switchyard persists.
#[async_trait]
pub trait Store:
    OrgStore
    + PlaceStore
    + IntegrationStore
    + TriggerStore
    + DeliveryStore
    + ActionStore
    + RecipientStore
    + IngressStore
    + LeaseStore
{
    fn backend(&self) -> Backend;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;
}

/// The SQL implementation of [`Store`], on either backend.
pub struct SqlStore {
    pool: db::Pool,
    cipher: Cipher,
}

/// Opens (creating if needed) the database at `url` and brings its schema up
/// to date. `sqlite://PATH` or `postgres://…`.
pub async fn open(url: &str, cipher: Cipher) -> Result<Arc<dyn Store>> {
    let pool = if url.starts_with("sqlite:") {
        sqlite::connect(url).await?
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        postgres::connect(url).await?
    } else {
        return Err(StoreError::UnsupportedUrl(redact_url(url)));
    };
    migrate::run(&pool).await?;
    Ok(Arc::new(SqlStore { pool, cipher }))
}

/// A URL with its password replaced, fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        match self.pool {
            db::Pool::Sqlite { .. } => Backend::Sqlite,
            db::Pool::Pg(_) => Backend::Postgres,
        }
    }

    async fn ping(&self) -> Result<()> {
        self.pool.fetch_optional(db::q("SELECT 1")).await.map(drop)
    }
}

/// Shared paging: asks for one row more than the limit to know if there is a next page.
fn paged<T>(mut items: Vec<T>, page: &PageRequest, id: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if items.len() > page.limit {
        items.truncate(page.limit);
        items.last().map(id)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// Appends `AND id > $n ORDER BY id LIMIT $m` for cursor paging.
fn page_clause(q: &mut db::Q, column: &str, page: &PageRequest) {
    if let Some(after) = &page.after {
        let p = q.arg(after.as_str());
        q.push_sql(&format!(" AND {column} > {p}"));
    }
    let limit = q.arg(page.limit as i64 + 1);
    q.push_sql(&format!(" ORDER BY {column} LIMIT {limit}"));
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("in-memory values serialise to JSON")
}

fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_redacted() {
        assert_eq!(super::redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(super::redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }
}
