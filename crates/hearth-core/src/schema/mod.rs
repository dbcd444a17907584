//! The schema's compatibility rule and the decision hearthd makes at start: migrate (after a backup), run on a
//! newer schema that declared itself readable by this release, or refuse one that did not.
//!
//! Every migration declares, in its first line, whether the release before it can still run on the schema it
//! leaves: `-- hearth-compat: expand` (it only adds: the previous release's queries still work) or
//! `-- hearth-compat: breaking` (it renames, drops or reshapes). The declarations are recorded in the database as
//! migrations are applied (`hearth_schema_compat`), so that an older hearthd meeting a newer schema, as after a
//! rollback, can tell which of the two it is without knowing the migration. `crates/hearth-core/tests/schema.rs`
//! holds each declaration to account: the previous release's statements must still prepare on an `expand`.

pub mod backup;

use sqlx::migrate::Migration;

/// Whether the release before a migration can still run on the schema it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    /// Only additions: the previous release's queries still prepare and mean what they meant.
    Expand,
    /// The previous release cannot run on it: rolling back needs the backup taken before it.
    Breaking,
}

/// The header every migration from [`FIRST_DECLARED`] on starts with.
pub const HEADER: &str = "-- hearth-compat: ";

/// The first migration written under the rule. Those before it were released without a header (and cannot get one
/// now: sqlx checksums applied migrations), so their declarations are kept here, as the compatibility test found
/// them.
pub const FIRST_DECLARED: i64 = 8;

const BEFORE_THE_RULE: &[(i64, Compat)] = &[
    (1, Compat::Breaking),
    (2, Compat::Expand),
    (3, Compat::Expand),
    (4, Compat::Expand),
    (5, Compat::Expand),
    (6, Compat::Expand),
    (7, Compat::Expand),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompatError {
    #[error(
        "migration {version} ({description}) does not start with `{HEADER}expand` or `{HEADER}breaking`: say \
         whether the previous release can still run on the schema it leaves"
    )]
    Undeclared { version: i64, description: String },
}

/// A migration's declaration: its header, or for the migrations released before the rule, the table above.
pub fn declared(migration: &Migration) -> Result<Compat, CompatError> {
    if let Some((_, compat)) = BEFORE_THE_RULE.iter().find(|(v, _)| *v == migration.version) {
        return Ok(*compat);
    }
    let first = migration.sql.as_str().lines().next().unwrap_or_default().trim();
    match first.strip_prefix(HEADER).map(str::trim) {
        Some("expand") => Ok(Compat::Expand),
        Some("breaking") => Ok(Compat::Breaking),
        _ => Err(CompatError::Undeclared {
            version: migration.version,
            description: migration.description.to_string(),
        }),
    }
}

/// The newest migration this binary carries.
pub fn newest_known() -> i64 {
    crate::store::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Every migration this binary carries, with its declaration.
pub fn declarations() -> Result<Vec<(i64, String, Compat)>, CompatError> {
    crate::store::MIGRATOR
        .iter()
        .map(|migration| {
            Ok((
                migration.version,
                migration.description.to_string(),
                declared(migration)?,
            ))
        })
        .collect()
}

/// A migration the database has that this binary does not know, as the newer release recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewerMigration {
    pub version: i64,
    pub description: String,
    /// `None`: applied by a release from before the rule, which recorded nothing; treated as breaking.
    pub breaking: Option<bool>,
}

/// What the database's schema is, next to what this binary knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaPlan {
    /// Nothing applied yet: migrate, no backup needed.
    Fresh,
    /// Every migration this binary knows is applied.
    Current { version: i64 },
    /// Migrations to apply, from `from` (applied) to `to` (the newest known): back up first.
    Pending { from: i64, to: i64 },
    /// The database is newer than this binary: `newer` are the migrations it does not know.
    Newer {
        version: i64,
        known: i64,
        newer: Vec<NewerMigration>,
    },
}

impl SchemaPlan {
    /// The plan from the newest applied migration and the newer ones the database holds.
    pub fn decide(applied: Option<i64>, known: i64, newer: Vec<NewerMigration>) -> Self {
        match applied {
            None => SchemaPlan::Fresh,
            Some(version) if version == known => SchemaPlan::Current { version },
            Some(from) if from < known => SchemaPlan::Pending { from, to: known },
            Some(version) => SchemaPlan::Newer {
                version,
                known,
                newer,
            },
        }
    }

    /// For a newer schema: the migrations that keep this release from running on it (breaking, or recorded by
    /// nobody).
    pub fn blocking(&self) -> Vec<&NewerMigration> {
        match self {
            SchemaPlan::Newer { newer, .. } => newer.iter().filter(|m| m.breaking != Some(false)).collect(),
            _ => Vec::new(),
        }
    }
}

/// The oldest schema version whose hearthd can run on a database with `applied` migrations (each with its
/// declaration): the newest breaking migration's version, or the first migration's.
pub fn oldest_compatible(applied: &[(i64, bool)]) -> i64 {
    applied
        .iter()
        .filter(|(_, breaking)| *breaking)
        .map(|(version, _)| *version)
        .max()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_this_binary_carries_is_declared() {
        let declarations = declarations().expect("every migration declared");
        assert_eq!(declarations.len(), crate::store::MIGRATOR.iter().count());
        assert!(
            declarations
                .iter()
                .any(|(version, _, _)| *version >= FIRST_DECLARED),
            "the rule's first migration carries a header"
        );
    }

    #[test]
    fn a_newer_schema_blocks_only_on_breaking_or_unrecorded_migrations() {
        let newer = |version, breaking| NewerMigration {
            version,
            description: format!("m{version}"),
            breaking,
        };
        let plan = SchemaPlan::decide(Some(10), 8, vec![newer(9, Some(false)), newer(10, Some(false))]);
        assert!(plan.blocking().is_empty(), "{plan:?}");
        let plan = SchemaPlan::decide(Some(10), 8, vec![newer(9, Some(false)), newer(10, Some(true))]);
        assert_eq!(plan.blocking().len(), 1);
        let plan = SchemaPlan::decide(Some(9), 8, vec![newer(9, None)]);
        assert_eq!(
            plan.blocking().len(),
            1,
            "an unrecorded migration is taken as breaking"
        );
        assert_eq!(SchemaPlan::decide(None, 8, vec![]), SchemaPlan::Fresh);
        assert_eq!(
            SchemaPlan::decide(Some(7), 8, vec![]),
            SchemaPlan::Pending { from: 7, to: 8 }
        );
        assert_eq!(
            oldest_compatible(&[(1, true), (2, false), (9, true), (10, false)]),
            9
        );
    }
}
