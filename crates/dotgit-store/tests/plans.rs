//! Query plans the performance depends on. Statements that run on a timer over whole tables use
//! an index, so their cost does not grow with the number of keys (a scan of 1M keys every 5 s
//! held SQLite's write lock for 0.3 s); the API-key probe on the request path reads one index
//! and no page of the key table (one leaf page per probe instead of two). The OAuth purge, on the
//! same timer, finds ended grants through an index and ended tokens by walking the token table
//! from a `seq`, not by reading every token. The
//! audit filters read the index they need, and the tables every refresh writes carry no index
//! that no statement reads (each would be one more page a row).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dotgit_store::{
    audit_rows_sql, AuditFilter, Store, EXPIRY_DUE, KEY_PROBE, PURGE_GRANTS, PURGE_TOKENS,
    PURGE_WALK, TOKEN_LOOKUP,
};
use sqlx::Row;

/// A pool on a freshly migrated database (in the returned directory).
async fn migrated() -> (tempfile::TempDir, sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dotgit.db");
    let store = Store::open(&db).await.unwrap();
    store.close().await;
    // one connection, with the activity file attached as the store attaches it
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("ATTACH DATABASE $1 AS activity")
        .bind(
            dotgit_store::activity_path(&db)
                .to_str()
                .unwrap()
                .to_owned(),
        )
        .execute(&pool)
        .await
        .unwrap();
    (dir, pool)
}

/// The query plan of `sql` (one `detail` line per step) on a freshly migrated database. The
/// parameters stay unbound: SQLite's plan does not depend on their values.
async fn plan_of(sql: &str) -> Vec<String> {
    let (_dir, pool) = migrated().await;
    sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect()
}

#[tokio::test]
async fn the_key_probe_reads_the_covering_index_and_not_the_key_table() {
    let plan = plan_of(KEY_PROBE).await;
    assert!(
        plan.iter()
            .any(|d| d == "SEARCH k USING COVERING INDEX api_keys_verify (secret_hash=?)"),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
}

#[tokio::test]
async fn the_expiry_recorder_searches_an_index_instead_of_scanning_the_keys() {
    let plan = plan_of(&format!(
        "UPDATE api_keys SET expiry_audited = 1 WHERE {EXPIRY_DUE} RETURNING id"
    ))
    .await;
    assert!(
        plan.iter()
            .any(|d| d.contains("USING INDEX api_keys_expiry_due")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
}

/// An OAuth token is read by rowid (the map in memory found it, ADR 0022), and whether it was
/// rotated through the successor index; nothing is scanned.
#[tokio::test]
async fn a_token_is_read_by_rowid_and_its_successor_through_an_index() {
    let plan = plan_of(TOKEN_LOOKUP).await;
    assert!(
        plan.iter()
            .any(|d| d.starts_with("SEARCH t USING INTEGER PRIMARY KEY (rowid=?)")),
        "{plan:?}"
    );
    assert!(
        plan.iter().any(
            |d| d.contains("USING COVERING INDEX oauth_tokens_successor (replaces=?)")
                || d.contains("USING INDEX oauth_tokens_successor (replaces=?)")
        ),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
}

#[tokio::test]
async fn the_oauth_purge_finds_ended_grants_through_an_index_and_tokens_from_a_seq() {
    // the tokens: a walk of the table's b-tree from a `seq`, in order, and a delete of a range
    // of `seq`s; neither sorts, and neither reads an index
    for sql in [PURGE_WALK, PURGE_TOKENS] {
        let plan = plan_of(sql).await;
        assert!(
            plan.iter()
                .any(|d| d.starts_with("SEARCH oauth_tokens USING INTEGER PRIMARY KEY (rowid>?")),
            "{sql}: {plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN")
                || d.contains("TEMP B-TREE")
                || d.contains(" INDEX ")),
            "{sql}: {plan:?}"
        );
    }
    let plan = plan_of(PURGE_GRANTS).await;
    assert!(
        plan.iter()
            .any(|d| d.contains("oauth_grants_refresh_expiry")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
}

/// Every filter on a credential the audit API can build, with the index it must read: the
/// account's when it names an account, the rare types' when it names a rare type, else none
/// (an operator's search over every account walks the table newest first). None needs a
/// credential index: a credential filter also matches packs of successes, whose rows name no
/// single credential, so migration 0013 dropped the one no plan used (and that cost every rare event a random page).
#[tokio::test]
async fn audit_filters_on_a_credential_read_the_account_or_type_index() {
    let f = |account: bool, event_type: Option<&str>, paged: bool| AuditFilter {
        account_id: account.then(|| "acct_x".to_owned()),
        credential_id: Some("key_x".to_owned()),
        event_type: event_type.map(str::to_owned),
        since: paged.then_some(1),
        until: paged.then_some(2),
        before: paged.then_some((5, 0)),
        ..Default::default()
    };
    const ACCOUNT: &[&str] = &["audit_by_account"];
    const TYPE: &[&str] = &["audit_rare_by_type"];
    const EITHER: &[&str] = &["audit_by_account", "audit_rare_by_type"];
    for paged in [false, true] {
        for (filter, indexes) in [
            (f(true, None, paged), ACCOUNT),
            (f(true, Some("auth.succeeded"), paged), ACCOUNT),
            (f(true, Some("auth.failed"), paged), EITHER),
            (f(true, Some("anomaly."), paged), EITHER),
            (f(false, Some("auth.failed"), paged), TYPE),
            (f(false, Some("oauth.token_refreshed"), paged), TYPE),
            (f(false, Some("anomaly."), paged), TYPE),
            (f(false, None, paged), &[]),
        ] {
            let sql = audit_rows_sql(&filter);
            let plan = plan_of(&sql).await;
            // one read of each file's table that may hold a match: the activity file holds
            // successes only (ADR 0020), so a filter on a rare type leaves it out
            let reads: Vec<&String> = plan
                .iter()
                .filter(|d| d.starts_with("SEARCH") || d.starts_with("SCAN"))
                .collect();
            let successes = filter
                .event_type
                .as_deref()
                .is_none_or(|t| "auth.succeeded".starts_with(t));
            let files: &[&str] = if successes {
                &["main", "activity"]
            } else {
                &["main"]
            };
            assert_eq!(reads.len(), files.len(), "{sql}: {plan:?}");
            for (read, file) in reads.iter().zip(files) {
                let table = format!("{file}.audit_events");
                if indexes.is_empty() {
                    // newest first along the table itself (from the cursor when paged)
                    assert!(
                        **read == format!("SCAN {table}")
                            || read
                                .starts_with(&format!("SEARCH {table} USING INTEGER PRIMARY KEY")),
                        "{sql}: {plan:?}"
                    );
                } else {
                    assert!(
                        read.starts_with(&format!("SEARCH {table} USING INDEX"))
                            && indexes.iter().any(|i| read.contains(i)),
                        "{sql}: {plan:?}"
                    );
                }
            }
            // the two files' rows are merged in order, newest first, never sorted
            assert!(
                !successes || !plan.iter().any(|d| d.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|d| d.contains("credential")),
                "{sql}: {plan:?}"
            );
        }
    }
}

/// The indexes (declared ones; a key's own are left out) of the tables every refresh writes,
/// which must be exactly those a statement reads: each one more is a page every row of its kind
/// writes, and an entry that lands by grant or by credential lands on a random page.
#[tokio::test]
async fn the_tables_a_refresh_writes_have_no_index_without_a_reader() {
    let (_dir, pool) = migrated().await;
    for (table, expected) in [
        (
            "audit_events",
            &["audit_by_account", "audit_rare_by_type"][..],
        ),
        (
            "oauth_tokens",
            // the successor index `TOKEN_LOOKUP` reads (its entries arrive in about the order
            // tokens were issued); the purge walks the table itself (migration 0016)
            &["oauth_tokens_successor"][..],
        ),
    ] {
        let mut names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1
             AND sql IS NOT NULL",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        names.sort();
        assert_eq!(names, expected, "{table}");
    }
}
