//! Embedding spaces. A space is one (model, output dimensions, model digest); its vectors live in `chunk_vectors`
//! with a partial HNSW index of their own. Exactly one space is `active` (searched). Configuring another model makes
//! its space `building`: every document is re-embedded into it in the background while search stays on the active
//! space, and when nothing is left to embed, one transaction makes it active.

use serde::Serialize;
use sqlx::{FromRow, PgPool, Postgres, Transaction};

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct Space {
    pub id: i64,
    pub model_id: String,
    pub dims: i32,
    pub digest: String,
    pub model_dir: String,
    pub state: String,
}

impl From<&Space> for hearth_api::status::EmbeddingSpace {
    fn from(space: &Space) -> Self {
        Self {
            id: space.id,
            model_id: space.model_id.clone(),
            dims: space.dims,
            digest: space.digest.clone(),
            model_dir: space.model_dir.clone(),
            state: space.state.clone(),
        }
    }
}

/// The model a hearthd is configured with, as a space key.
#[derive(Debug, Clone)]
pub struct SpaceKey {
    pub model_id: String,
    pub dims: i32,
    pub digest: String,
    pub model_dir: String,
}

/// The active space (searched) and the configured one (embedded into). They are the same unless a switch is
/// under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spaces {
    pub active: Space,
    pub target: Space,
}

impl Spaces {
    pub fn switching(&self) -> bool {
        self.active.id != self.target.id
    }
}

macro_rules! space_columns {
    () => {
        "id, model_id, dims, digest, model_dir, state"
    };
}

/// Makes sure the configured model has a space (and an index), activates it when there is no active space, and
/// otherwise queues the re-embedding of every document into it. A switch to some other model that never completed
/// is abandoned: its space retired, its jobs and partial vectors removed.
pub async fn ensure(pool: &PgPool, key: &SpaceKey) -> Result<Spaces, StoreError> {
    let mut tx = pool.begin().await?;
    // Two hearthd starting at once must not both create spaces or queue the same work.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hearth.embedding_spaces'))")
        .execute(&mut *tx)
        .await?;
    let mut target = upsert_with_index(&mut tx, key).await?;
    let active: Option<Space> = sqlx::query_as(concat!(
        "SELECT ",
        space_columns!(),
        " FROM embedding_spaces WHERE state = 'active'"
    ))
    .fetch_optional(&mut *tx)
    .await?;
    let active = match active {
        Some(active) => active,
        None => {
            target = sqlx::query_as(concat!(
                "UPDATE embedding_spaces SET state = 'active', activated_at = now() WHERE id = $1 \
                 RETURNING ",
                space_columns!()
            ))
            .bind(target.id)
            .fetch_one(&mut *tx)
            .await?;
            target.clone()
        }
    };
    abandon_other_switches(&mut tx, target.id).await?;
    if active.id != target.id {
        queue_switch(&mut tx, &mut target).await?;
    }
    tx.commit().await?;
    Ok(Spaces { active, target })
}

/// The configured model's space, created if new, with its partial HNSW index.
async fn upsert_with_index(tx: &mut Transaction<'_, Postgres>, key: &SpaceKey) -> Result<Space, StoreError> {
    sqlx::query(
        "INSERT INTO embedding_spaces (model_id, dims, digest, model_dir, state) VALUES ($1, $2, $3, $4, 'building') \
         ON CONFLICT (model_id, dims, digest) DO UPDATE SET model_dir = EXCLUDED.model_dir",
    )
    .bind(&key.model_id)
    .bind(key.dims)
    .bind(&key.digest)
    .bind(&key.model_dir)
    .execute(&mut **tx)
    .await?;
    let target: Space = sqlx::query_as(concat!(
        "SELECT ",
        space_columns!(),
        " FROM embedding_spaces WHERE model_id = $1 AND dims = $2 AND digest = $3"
    ))
    .bind(&key.model_id)
    .bind(key.dims)
    .bind(&key.digest)
    .fetch_one(&mut **tx)
    .await?;
    // The dimension is an integer from our own table, so formatting it into DDL is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE INDEX IF NOT EXISTS chunk_vectors_hnsw_space_{id} ON chunk_vectors \
         USING hnsw ((embedding::halfvec({dims})) halfvec_cosine_ops) WHERE space_id = {id}",
        id = target.id,
        dims = target.dims
    )))
    .execute(&mut **tx)
    .await?;
    Ok(target)
}

/// A switch to another model that never completed (the configuration went back, or on to a third model): its
/// queued work and partial vectors go, so no worker embeds for a model no longer configured.
async fn abandon_other_switches(tx: &mut Transaction<'_, Postgres>, target: i64) -> Result<(), StoreError> {
    let abandoned: Vec<i64> = sqlx::query_scalar(
        "UPDATE embedding_spaces SET state = 'retired' WHERE state = 'building' AND id <> $1 RETURNING id",
    )
    .bind(target)
    .fetch_all(&mut **tx)
    .await?;
    for id in abandoned {
        sqlx::query("DELETE FROM jobs WHERE space_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        drop_vectors(tx, id).await?;
    }
    Ok(())
}

/// Starts (or resumes) the switch to `target`: building again if it had been retired, and an embed job for every
/// ready document not yet in it.
async fn queue_switch(tx: &mut Transaction<'_, Postgres>, target: &mut Space) -> Result<(), StoreError> {
    if target.state == "retired" {
        sqlx::query("UPDATE embedding_spaces SET state = 'building' WHERE id = $1")
            .bind(target.id)
            .execute(&mut **tx)
            .await?;
        target.state = "building".into();
    }
    sqlx::query(
        "INSERT INTO jobs (kind, document_id, space_id) \
         SELECT 'embed', d.id, $1 FROM documents d \
         WHERE d.status = 'ready' \
           AND NOT EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.document_id = d.id AND v.space_id = $1) \
         ON CONFLICT DO NOTHING",
    )
    .bind(target.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// When `target` is building and no document still waits to be embedded into it, makes it the active space and
/// drops the old space's vectors. Returns whether it switched.
pub async fn activate_if_complete(pool: &PgPool, target: &Space) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hearth.embedding_spaces'))")
        .execute(&mut *tx)
        .await?;
    let pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE space_id = $1) \
             OR EXISTS (SELECT 1 FROM embedding_spaces WHERE id = $1 AND state <> 'building')",
    )
    .bind(target.id)
    .fetch_one(&mut *tx)
    .await?;
    if pending {
        return Ok(false);
    }
    let retired: Vec<i64> = sqlx::query_scalar(
        "UPDATE embedding_spaces SET state = 'retired' WHERE state = 'active' RETURNING id",
    )
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("UPDATE embedding_spaces SET state = 'active', activated_at = now() WHERE id = $1")
        .bind(target.id)
        .execute(&mut *tx)
        .await?;
    for id in retired {
        drop_vectors(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Removes a retired space's vectors (chunks' and concept names') and its index.
async fn drop_vectors(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, id: i64) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM chunk_vectors WHERE space_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM concept_vectors WHERE space_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    // The id is an integer from our own table, so formatting it into DDL is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP INDEX IF EXISTS chunk_vectors_hnsw_space_{id}"
    )))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn active(pool: &PgPool) -> Result<Option<Space>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        space_columns!(),
        " FROM embedding_spaces WHERE state = 'active'"
    ))
    .fetch_optional(pool)
    .await?)
}
