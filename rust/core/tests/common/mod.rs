//! The library stores the integration tests run against: SQLite (files in a
//! temporary folder, or memory) and PostgreSQL (a fresh database per library
//! on the server named by `$PHASEKIT_TEST_PG`, a `postgresql://` URL of a
//! server where the tests may CREATE DATABASE). Without that variable the
//! PostgreSQL tests fail and say so: they never pass by skipping.
//!
//! A test body is generic over [`Libraries`] and opens as many libraries
//! as it needs; [`on_both_stores!`] makes one test per store of it.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use phasekit_core::library::{LibraryStore, PostgresStore, SqliteStore};

/// Where a test's libraries come from.
pub trait Libraries {
    type Store: LibraryStore + Send;

    /// A new, empty library.
    fn open(&mut self) -> Self::Store;
}

/// SQLite libraries: library.db files in a temporary folder, or in memory.
pub struct Sqlite {
    dir: Option<tempfile::TempDir>,
    made: Cell<usize>,
}

impl Sqlite {
    pub fn files() -> Self {
        Sqlite {
            dir: Some(tempfile::tempdir().expect("tempdir")),
            made: Cell::new(0),
        }
    }

    pub fn memory() -> Self {
        Sqlite {
            dir: None,
            made: Cell::new(0),
        }
    }
}

impl Libraries for Sqlite {
    type Store = SqliteStore;

    fn open(&mut self) -> SqliteStore {
        let n = self.made.get();
        self.made.set(n + 1);
        match &self.dir {
            Some(dir) => SqliteStore::open(&dir.path().join(format!("library-{n}.db")))
                .expect("open library.db"),
            None => SqliteStore::in_memory().expect("open a library in memory"),
        }
    }
}

/// The variable naming the PostgreSQL server of the tests.
pub const PG_VARIABLE: &str = "PHASEKIT_TEST_PG";

static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// PostgreSQL libraries: each one a database of its own, created on the
/// server of `$PHASEKIT_TEST_PG` and dropped when this is.
pub struct Postgres {
    /// A connection to the server's maintenance database, for CREATE and DROP.
    admin: postgres::Client,
    url: String,
    made: Vec<String>,
}

impl Postgres {
    /// The server of `$PHASEKIT_TEST_PG`; panics (fails the test) with what
    /// to do when it is unset or cannot be reached.
    pub fn server() -> Self {
        let url = match std::env::var(PG_VARIABLE) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => panic!(
                "{PG_VARIABLE} is not set: the PostgreSQL variants of the library tests need \
                 the postgresql:// URL of a server where they may CREATE DATABASE, e.g. \
                 {PG_VARIABLE}=postgresql://phasekit@127.0.0.1:55440/postgres (.ci/run starts \
                 one with tests/pg_server.py)"
            ),
        };
        let admin = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to {PG_VARIABLE}={url}: {e:?}"));
        Postgres {
            admin,
            url,
            made: Vec::new(),
        }
    }
}

impl Postgres {
    /// The URL of the database the last [`Libraries::open`] made.
    pub fn last_url(&self) -> String {
        with_database(&self.url, self.made.last().expect("a library was opened"))
    }

    /// The name of that database.
    pub fn last_database(&self) -> &str {
        self.made.last().expect("a library was opened")
    }

    /// The connection to the server's maintenance database.
    pub fn admin(&mut self) -> &mut postgres::Client {
        &mut self.admin
    }
}

impl Libraries for Postgres {
    type Store = PostgresStore;

    fn open(&mut self) -> PostgresStore {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        let name = format!("phasekit_library_test_{}_{n}", std::process::id());
        // Two statements: a multi-statement query runs as one transaction,
        // where neither may run.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name} TEMPLATE template0"),
        ] {
            self.admin
                .batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql} on {}: {e:?}", self.url));
        }
        self.made.push(name.clone());
        PostgresStore::open(&with_database(&self.url, &name)).expect("open the PostgreSQL library")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        for name in &self.made {
            // FORCE: a store a failed test left open must not keep it.
            let _ = self
                .admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// `url` naming the database `name` instead of its own (a URL's path, or
/// a `dbname=` appended to the key=value form).
pub fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let after = scheme_end + 3;
    let query = url[after..].find('?').map_or(url.len(), |q| after + q);
    let path = url[after..query].find('/').map_or(query, |p| after + p);
    format!("{}/{name}{}", &url[..path], &url[query..])
}

/// One test per store of each generic test body `name(&mut impl
/// Libraries)`: `sqlite::name` with the SQLite libraries `$sqlite` makes,
/// `postgres::name` with PostgreSQL ones.
macro_rules! on_both_stores {
    ($sqlite:expr; $($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&mut $sqlite);
                }
            )+
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(&mut super::common::Postgres::server());
                }
            )+
        }
    };
}

#[test]
fn urls_name_another_database() {
    assert_eq!(
        with_database("postgresql://u@h:1/postgres", "x"),
        "postgresql://u@h:1/x"
    );
    assert_eq!(
        with_database("postgres://u@h?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("host=h user=u", "x"),
        "host=h user=u dbname=x"
    );
}
