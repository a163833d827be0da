//! Opening the store with its secret key, and the first start: an
//! organization and an admin key, printed once and kept in a 0600 file.
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use switchyard_core::{keys, now_ms, ApiKey, ApiKeyId, Cipher, Org, OrgId, Scope};
use switchyard_store::Store;

use crate::config::Config;

pub const KEY_FILE: &str = "secret.key";
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// Writes `contents` to a new file readable only by its owner.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// The at-rest cipher: from `secret_key` if configured, else from the key
/// file in the data directory, generated (mode 0600) on first use.
fn cipher(config: &Config) -> anyhow::Result<Cipher> {
    if let Some(key) = &config.secret_key {
        return Ok(Cipher::from_base64(key)?);
    }
    let path = config.data_dir.join(KEY_FILE);
    if !path.exists() {
        write_private(&path, &Cipher::generate_key_base64())?;
        tracing::info!(path = %path.display(), "generated the secret key file");
    }
    let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the secret key file is readable by others; chmod 600 it");
    }
    let encoded = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Cipher::from_base64(&encoded).with_context(|| format!("{} does not hold a valid key", path.display()))
}

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    let url = config.database_url();
    switchyard_store::open(&url, cipher(config)?)
        .await
        .with_context(|| format!("cannot open the database {}", switchyard_store::redact_url(&url)))
}

/// A new key for `org`; returns the plaintext, which is not kept anywhere.
pub async fn create_key(store: &dyn Store, org: &OrgId, name: &str, scope: Scope) -> anyhow::Result<(ApiKey, String)> {
    let new = keys::generate_api_key();
    let key = ApiKey {
        id: ApiKeyId::new(),
        org_id: org.clone(),
        name: name.to_owned(),
        prefix: new.prefix,
        scope,
        created_at: now_ms(),
        revoked_at: None,
    };
    store.create_key(&key, &new.hash).await?;
    Ok((key, new.plaintext))
}

pub async fn create_org(store: &dyn Store, name: &str, custom: bool) -> anyhow::Result<(Org, String)> {
    let org = Org { id: OrgId::new(), name: name.to_owned(), custom_integrations: custom, created_at: now_ms() };
    store.create_org(&org).await?;
    let (_, plaintext) = create_key(store, &org.id, "admin", Scope::Write).await?;
    Ok((org, plaintext))
}

/// On the first start (no organization yet): creates one with an admin key,
/// prints the key once and stores it in `admin.key` (0600).
pub async fn first_start(store: &dyn Store, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    if !store.list_orgs().await?.is_empty() {
        return Ok(None);
    }
    let (org, plaintext) = create_org(store, "Default", false).await?;
    let path = data_dir.join(ADMIN_KEY_FILE);
    if path.exists() {
        fs::remove_file(&path)?;
    }
    write_private(&path, &format!("{plaintext}\n"))?;
    println!("Created organization {} (\"{}\").", org.id, org.name);
    println!("Admin API key (write scope), shown once: {plaintext}");
    println!("It is also stored in {} (mode 0600). Keep it safe; send it as the X-Api-Key header.", path.display());
    Ok(Some(path))
}
