//! The schema's own bookkeeping: which migrations are applied and what they declared, and what a restore needs
//! from the catalog (the objects to drop, who else is connected).

use sqlx::PgPool;

use super::{MIGRATOR, StoreError};
use crate::schema::NewerMigration;

/// Applies every migration this binary knows that the database lacks. With `newer_allowed`, migrations the
/// database has and this binary does not (a newer release's, declared readable) are left alone instead of
/// refused.
pub async fn migrate(pool: &PgPool, newer_allowed: bool) -> Result<(), StoreError> {
    if newer_allowed {
        let mut migrator = sqlx::migrate::Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
        migrator.set_ignore_missing(true);
        migrator.run(pool).await?;
    } else {
        MIGRATOR.run(pool).await?;
    }
    Ok(())
}

/// Records each applied migration's declaration (`version`, `description`, `breaking`); a row once written is
/// kept, so the release that applied a migration is the one whose word stands.
pub async fn record_compat(pool: &PgPool, declarations: &[(i64, String, bool)]) -> Result<(), StoreError> {
    let versions: Vec<i64> = declarations.iter().map(|d| d.0).collect();
    let descriptions: Vec<String> = declarations.iter().map(|d| d.1.clone()).collect();
    let breaking: Vec<bool> = declarations.iter().map(|d| d.2).collect();
    sqlx::query(
        "INSERT INTO hearth_schema_compat (version, description, breaking) \
         SELECT d.version, d.description, d.breaking \
         FROM unnest($1::bigint[], $2::text[], $3::bool[]) AS d(version, description, breaking) \
         WHERE d.version IN (SELECT version FROM _sqlx_migrations WHERE success) \
         ON CONFLICT (version) DO NOTHING",
    )
    .bind(versions)
    .bind(descriptions)
    .bind(breaking)
    .execute(pool)
    .await?;
    Ok(())
}

/// The applied migrations newer than `known`, with what their release declared (`None` where it recorded
/// nothing).
pub async fn newer_than(pool: &PgPool, known: i64) -> Result<Vec<NewerMigration>, StoreError> {
    let rows: Vec<(i64, String, Option<bool>)> = match sqlx::query_as(
        "SELECT m.version, m.description, c.breaking FROM _sqlx_migrations m \
         LEFT JOIN hearth_schema_compat c ON c.version = m.version \
         WHERE m.success AND m.version > $1 ORDER BY m.version",
    )
    .bind(known)
    .fetch_all(pool)
    .await
    {
        Ok(rows) => rows,
        // A database from before the rule has no record: nothing newer is declared.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P01") => {
            sqlx::query_as(
                "SELECT version, description, NULL::bool FROM _sqlx_migrations \
                 WHERE success AND version > $1 ORDER BY version",
            )
            .bind(known)
            .fetch_all(pool)
            .await?
        }
        Err(error) => return Err(error.into()),
    };
    Ok(rows
        .into_iter()
        .map(|(version, description, breaking)| NewerMigration {
            version,
            description,
            breaking,
        })
        .collect())
}

/// Each applied migration's version and whether it was declared breaking (unrecorded ones count as breaking).
pub async fn applied_compat(pool: &PgPool) -> Result<Vec<(i64, bool)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT m.version, COALESCE(c.breaking, true) FROM _sqlx_migrations m \
         LEFT JOIN hearth_schema_compat c ON c.version = m.version WHERE m.success ORDER BY m.version",
    )
    .fetch_all(pool)
    .await?)
}

/// The database's size on disk: what a dump is estimated against.
pub async fn database_bytes(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(pool)
        .await?)
}

/// Other sessions on this database: (pid, application name, role). A restore refuses while there are any.
pub async fn other_sessions(pool: &PgPool) -> Result<Vec<(i32, String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT pid, COALESCE(application_name, ''), COALESCE(usename::text, '') FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
         ORDER BY pid",
    )
    .fetch_all(pool)
    .await?)
}

/// `DROP` statements for everything in the `public` schema that is not an extension's (pgvector stays, as a
/// superuser created it): run in the restore's transaction before the dump's own statements.
pub async fn drop_statements(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "WITH owned_by_extension AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e') \
         SELECT statement FROM ( \
           SELECT 1 AS step, format('DROP %s IF EXISTS %I.%I CASCADE;', \
                    CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' \
                                   WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, \
                    n.nspname, c.relname) AS statement \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
             AND (c.relkind <> 'S' OR NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid \
                                                  AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))) \
             AND NOT EXISTS (SELECT 1 FROM owned_by_extension e \
                             WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid) \
           UNION ALL \
           SELECT 2, format('DROP ROUTINE IF EXISTS %I.%I(%s) CASCADE;', n.nspname, p.proname, \
                            pg_get_function_identity_arguments(p.oid)) \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
           WHERE n.nspname = 'public' \
             AND NOT EXISTS (SELECT 1 FROM owned_by_extension e \
                             WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid) \
           UNION ALL \
           SELECT 3, format('DROP %s IF EXISTS %I.%I CASCADE;', \
                            CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname) \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
           WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r', 'c') \
             AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') \
             AND NOT EXISTS (SELECT 1 FROM owned_by_extension e \
                             WHERE e.classid = 'pg_type'::regclass AND e.objid = t.oid) \
         ) AS statements ORDER BY step, statement",
    )
    .fetch_all(pool)
    .await?)
}
