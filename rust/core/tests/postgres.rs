//! What only the PostgreSQL store has to keep: several processes opening a
//! new database at once, workers writing several locations of one library
//! at the same time, a connection lost, text PostgreSQL cannot hold, a
//! newer schema. (What it shares with SQLite is tested on both stores, and
//! compared answer by answer in `store_contract.rs`.)

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use phasekit_core::content::Want;
use phasekit_core::library::{
    IndexMode, LibraryStore, NeighbourSchema, PostgresStore, ScanWriter, POSTGRES_SCHEMA_VERSION,
};
use phasekit_core::walk::{WalkOptions, Walker};
use phasekit_core::{CancelToken, Error};

#[allow(unused_macros)]
mod common;
use common::{Libraries, Postgres};

fn index(db: &mut PostgresStore, root: &Path) -> i64 {
    let loc = scan(db, root, 16);
    db.link_identities(loc, false).unwrap();
    loc
}

/// A fresh content scan of `root` as a new location, in batches of
/// `batch`, its cas_ids left for a link pass.
fn scan(db: &mut PostgresStore, root: &Path, batch: usize) -> i64 {
    let loc = db
        .add_location(root.as_os_str().as_bytes(), IndexMode::Content, true)
        .unwrap();
    let opts = WalkOptions {
        batch_size: batch,
        threads: 1,
        hash: Want {
            cas_id: true,
            checksum: false,
        },
        ..WalkOptions::default()
    };
    let mut walker = Walker::new(
        &[root.as_os_str().as_bytes().to_vec()],
        opts,
        CancelToken::new(),
    )
    .unwrap();
    let mut writer = ScanWriter::new(db, loc.id, true).unwrap();
    while let Some(batch) = walker.next_batch().unwrap() {
        assert!(writer.write_batch(db, &batch).unwrap().is_empty());
    }
    writer.sweep(db).unwrap();
    writer.aggregate(db).unwrap();
    loc.id
}

/// `files` files in folders of 10, their contents repeating every 7 (so
/// identities are shared within and across trees).
fn tree(root: &Path, files: usize) {
    for i in 0..files {
        let dir = root.join(format!("d{}", i / 10));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{i}")), format!("content {}", i % 7)).unwrap();
    }
}

/// The server ends every session of database `name` (as a restart does).
fn end_sessions(server: &mut Postgres, name: &str) {
    server
        .admin()
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
}

fn query_i64(db_url: &str, sql: &str) -> i64 {
    let mut client = postgres::Client::connect(db_url, postgres::NoTls).unwrap();
    client.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn processes_opening_a_new_database_at_once_create_it_once() {
    let mut server = Postgres::server();
    drop(server.open());
    // A database with nothing in it: the stores race to create the schema.
    let url = server.last_url();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .unwrap();
    let opened: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::open(&url).map(|db| db.schema_version()))
        })
        .collect();
    for handle in opened {
        let version = handle.join().unwrap().unwrap().unwrap();
        assert_eq!(version, POSTGRES_SCHEMA_VERSION);
    }
    assert_eq!(
        query_i64(&url, "SELECT COUNT(*) FROM phasekit_library_schema"),
        POSTGRES_SCHEMA_VERSION
    );
}

#[test]
fn workers_writing_several_locations_at_once_keep_the_library_whole() {
    let mut server = Postgres::server();
    drop(server.open());
    let url = server.last_url();
    let work = tempfile::tempdir().unwrap();
    let roots: Vec<_> = (0..3)
        .map(|i| {
            let root = work.path().join(format!("tree{i}"));
            tree(&root, 400);
            root
        })
        .collect();
    let workers: Vec<_> = roots
        .iter()
        .cloned()
        .map(|root| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut db = PostgresStore::open(&url).unwrap();
                let loc = index(&mut db, &root);
                let rows = db.entries(loc, 0, usize::MAX).unwrap();
                assert_eq!(rows.len(), 440);
                (loc, db.entry_count(loc).unwrap())
            })
        })
        .collect();
    for worker in workers {
        assert_eq!(worker.join().unwrap().1, 440);
    }
    let check = |sql: &str| query_i64(&url, sql);
    // Every cas_id linked, every link to an identity, nothing left over.
    assert_eq!(
        check("SELECT COUNT(*) FROM entries WHERE cas_id IS NOT NULL"),
        1200
    );
    assert_eq!(check("SELECT COUNT(*) FROM entry_content"), 1200);
    assert_eq!(check("SELECT COUNT(*) FROM content_identities"), 7);
    assert_eq!(
        check(
            "SELECT COUNT(*) FROM entry_content ec WHERE NOT EXISTS \
             (SELECT 1 FROM content_identities ci WHERE ci.cas_id = ec.cas_id)"
        ),
        0
    );
    // Two workers remove two locations while a third re-links its own.
    let mut db = PostgresStore::open(&url).unwrap();
    let locations = db.locations().unwrap();
    let removers: Vec<_> = locations[..2]
        .iter()
        .map(|l| {
            let (url, id) = (url.clone(), l.id);
            std::thread::spawn(move || PostgresStore::open(&url).unwrap().remove_location(id))
        })
        .collect();
    db.link_identities(locations[2].id, true).unwrap();
    for remover in removers {
        assert_eq!(remover.join().unwrap().unwrap(), 440);
    }
    db.link_identities(locations[2].id, false).unwrap();
    assert_eq!(check("SELECT COUNT(*) FROM entry_content"), 400);
    assert_eq!(check("SELECT COUNT(*) FROM content_identities"), 7);
    db.remove_location(locations[2].id).unwrap();
    assert_eq!(check("SELECT COUNT(*) FROM content_identities"), 0);
    assert_eq!(check("SELECT COUNT(*) FROM lost_links"), 0);
}

/// A location with more hashed entries than a link pass inserts alone
/// (20,000): its lookups go in through a second session while the first
/// creates the identities, as another worker indexes and links a small
/// location at the same time. Every cas_id linked once, every link to an
/// identity, both locations marked linked.
#[test]
fn a_large_link_pass_in_two_sessions_links_every_entry_once() {
    let mut server = Postgres::server();
    drop(server.open());
    let url = server.last_url();
    let work = tempfile::tempdir().unwrap();
    let (large, small) = (work.path().join("large"), work.path().join("small"));
    tree(&large, 20_500);
    tree(&small, 300);
    let other = {
        let (url, small) = (url.clone(), small.clone());
        std::thread::spawn(move || index(&mut PostgresStore::open(&url).unwrap(), &small))
    };
    let mut db = PostgresStore::open(&url).unwrap();
    index(&mut db, &large);
    other.join().unwrap();
    let check = |sql: &str| query_i64(&url, sql);
    assert_eq!(
        check("SELECT COUNT(*) FROM entries WHERE cas_id IS NOT NULL"),
        20_800
    );
    assert_eq!(check("SELECT COUNT(*) FROM entry_content"), 20_800);
    assert_eq!(
        check(
            "SELECT COUNT(*) FROM entries e WHERE e.cas_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM entry_content ec WHERE ec.entry_id = e.id AND ec.cas_id = e.cas_id)"
        ),
        0
    );
    assert_eq!(check("SELECT COUNT(*) FROM content_identities"), 7);
    assert_eq!(
        check(
            "SELECT COUNT(*) FROM entry_content ec WHERE NOT EXISTS \
             (SELECT 1 FROM content_identities ci WHERE ci.cas_id = ec.cas_id)"
        ),
        0
    );
    assert_eq!(
        check("SELECT COUNT(*) FROM locations WHERE content_linked != 1"),
        0
    );
}

/// (links, identities, links without an identity) in the database at `url`.
fn link_counts(url: &str) -> (i64, i64, i64) {
    (
        query_i64(url, "SELECT COUNT(*) FROM entry_content"),
        query_i64(url, "SELECT COUNT(*) FROM content_identities"),
        query_i64(
            url,
            "SELECT COUNT(*) FROM entry_content ec WHERE NOT EXISTS \
             (SELECT 1 FROM content_identities ci WHERE ci.cas_id = ec.cas_id)",
        ),
    )
}

/// A database whose transactions default to REPEATABLE READ: a large link
/// pass (two sessions) still keeps every identity, whether it prunes
/// afterwards or finds identities noted lost by a removed location (with one
/// snapshot for its whole transaction, the first session did not see the
/// second's lookups and dropped every identity: 0 left of 7).
#[test]
fn a_large_link_pass_keeps_its_identities_under_repeatable_read() {
    let mut server = Postgres::server();
    drop(server.open());
    let url = server.last_url();
    let name = server.last_database().to_owned();
    server
        .admin()
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'"
        ))
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let (small, large, other) = (
        work.path().join("small"),
        work.path().join("large"),
        work.path().join("other"),
    );
    tree(&small, 7);
    tree(&large, 20_500);
    tree(&other, 20_100);
    let mut db = PostgresStore::open(&url).unwrap();
    // Identities noted lost (a removed location's) while a large location
    // waits for its pass.
    let first = index(&mut db, &small);
    let loc = scan(&mut db, &large, 1000);
    assert_eq!(db.remove_location(first).unwrap(), 8);
    db.link_identities(loc, false).unwrap();
    assert_eq!(link_counts(&url), (20_500, 7, 0));
    // A large pass that prunes.
    let loc = scan(&mut db, &other, 1000);
    db.link_identities(loc, true).unwrap();
    assert_eq!(link_counts(&url), (40_600, 7, 0));
}

/// A link pass's second session waiting behind a lock request queued
/// after the first session's (DDL asking for `entries` whole, here LOCK
/// TABLE): the first waits for the second where the server cannot see it.
/// The second gives up after a moment and the first does its work; the
/// pass completes and then the lock is granted (without the limit both
/// waited until the lock request's own 60 s timeout).
#[test]
fn a_lock_request_between_the_two_sessions_of_a_link_pass_does_not_hang_it() {
    let mut server = Postgres::server();
    drop(server.open());
    let url = server.last_url();
    let work = tempfile::tempdir().unwrap();
    tree(work.path(), 20_500);
    let mut db = PostgresStore::open(&url).unwrap();
    let loc = scan(&mut db, work.path(), 1000);
    // The window (the first session reading `entries`, the second not yet
    // connected) is a few milliseconds: try until the lock request falls in it.
    for _attempt in 0..20 {
        let watcher = {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_secs(20) {
                    let window: bool = c
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class r \
                             ON r.oid = l.relation WHERE r.relname = 'entries' \
                             AND l.mode = 'AccessShareLock' AND l.granted AND l.pid IN \
                             (SELECT pid FROM pg_locks WHERE locktype = 'advisory' \
                             AND mode = 'ExclusiveLock' AND granted)) \
                             AND (SELECT count(*) FROM pg_stat_activity \
                             WHERE application_name = 'phasekit library' \
                             AND datname = current_database()) = 1",
                            &[],
                        )
                        .unwrap()
                        .get(0);
                    if window {
                        let mut tx = c.transaction().unwrap();
                        let locked = tx.batch_execute(
                            "SET LOCAL statement_timeout = '60s'; \
                             LOCK TABLE entries IN ACCESS EXCLUSIVE MODE",
                        );
                        return Some(locked.map_err(|e| format!("{e:?}")));
                    }
                }
                None
            })
        };
        db.link_identities(loc, false).unwrap();
        let hit = watcher.join().unwrap();
        assert_eq!(link_counts(&url), (20_500, 7, 0));
        if let Some(locked) = hit {
            assert_eq!(locked, Ok(()), "the lock request waited out its timeout");
            return;
        }
        // Missed: link the location again from nothing.
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin
            .batch_execute(
                "DELETE FROM entry_content; DELETE FROM content_identities; \
                 UPDATE locations SET content_linked = 0",
            )
            .unwrap();
    }
    panic!("no lock request fell between the two sessions in 20 passes");
}

#[test]
fn a_session_the_server_ended_is_replaced_at_the_next_call() {
    let mut server = Postgres::server();
    let mut db = server.open();
    let name = server.last_database().to_string();
    let end_sessions = |server: &mut Postgres| end_sessions(server, &name);
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 30);
    let first = index(&mut db, dir.path());
    end_sessions(&mut server);
    // A read meets the ended session and runs again on a new one.
    assert_eq!(db.locations().unwrap().len(), 1);
    assert_eq!(db.entry_count(first).unwrap(), 33);
    end_sessions(&mut server);
    // A write is not run again: it fails, saying so, as unavailable for
    // now (a job's run is interrupted by it, not failed), never a panic.
    let err = db
        .add_location(b"/somewhere", IndexMode::Shallow, true)
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(db.explain(err).to_string().contains("connection"));
    // The next call has a new session: writes go on, ids stay unique.
    let other = tempfile::tempdir().unwrap();
    tree(other.path(), 30);
    let second = index(&mut db, other.path());
    assert_eq!(db.entry_count(second).unwrap(), 33);
    let url = server.last_url();
    assert_eq!(
        query_i64(&url, "SELECT count(DISTINCT id) FROM entries"),
        66
    );
}

#[test]
fn steps_not_waiting_for_the_disk_are_refused_past_a_lost_session() {
    // A scan whose steps do not wait for the disk must not go on, nor have
    // its steps flushed, on a session other than the one that wrote them:
    // the server ended that one (a restart) and may have lost them.
    let mut server = Postgres::server();
    let mut db = server.open();
    let name = server.last_database().to_string();
    let end_sessions = |server: &mut Postgres| end_sessions(server, &name);
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), 60);
    let loc = db
        .add_location(dir.path().as_os_str().as_bytes(), IndexMode::Shallow, true)
        .unwrap();
    let opts = WalkOptions {
        batch_size: 7,
        threads: 1,
        ..WalkOptions::default()
    };
    let root = dir.path().as_os_str().as_bytes().to_vec();
    let mut walker = Walker::new(&[root], opts, CancelToken::new()).unwrap();
    let mut writer = ScanWriter::new(&db, loc.id, true).unwrap();
    writer.set_durable_steps(false);
    let mut next = || walker.next_batch().unwrap().unwrap();
    writer.write_batch(&mut db, &next()).unwrap();
    writer.flush_steps(&mut db).unwrap();
    // Flushed, then the session ends: the next step meets the ending, the
    // one after goes on on a new session (nothing unflushed was lost).
    end_sessions(&mut server);
    let lost = writer.write_batch(&mut db, &next()).unwrap_err();
    assert!(matches!(lost, Error::Unavailable(_)), "{lost:?}");
    let mut writer = ScanWriter::new(&db, loc.id, false).unwrap();
    writer.set_durable_steps(false);
    writer.write_batch(&mut db, &next()).unwrap();
    // Not flushed, then the session ends: neither a step nor a flush on
    // the new session is taken for the old one's.
    end_sessions(&mut server);
    assert!(matches!(
        writer.write_batch(&mut db, &next()),
        Err(Error::Unavailable(_))
    ));
    let refused = writer.write_batch(&mut db, &next()).unwrap_err();
    assert!(refused.to_string().contains("may be lost"), "{refused}");
    let refused = writer.flush_steps(&mut db).unwrap_err();
    assert!(matches!(refused, Error::Unavailable(_)), "{refused:?}");
    // A scan that waits for the disk goes on whatever the session.
    let mut durable = ScanWriter::new(&db, loc.id, false).unwrap();
    durable.write_batch(&mut db, &next()).unwrap();
    end_sessions(&mut server);
    assert!(durable.write_batch(&mut db, &next()).is_err());
    durable.write_batch(&mut db, &next()).unwrap();
    durable.flush_steps(&mut db).unwrap();
}

#[test]
fn a_session_ended_for_idling_is_replaced_too() {
    // Any FATAL ends the session: an idle session's timeout (57P05) as
    // well as a restart's 57P01.
    let mut server = Postgres::server();
    drop(server.open());
    let name = server.last_database().to_string();
    server
        .admin()
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" SET idle_session_timeout = '300ms'"
        ))
        .unwrap();
    let mut db = PostgresStore::open(&server.last_url()).unwrap();
    let idle = || std::thread::sleep(std::time::Duration::from_millis(700));
    idle();
    assert!(db.locations().unwrap().is_empty()); // the read ran again
    idle();
    let err = db
        .add_location(b"/somewhere", IndexMode::Shallow, true)
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    db.add_location(b"/somewhere", IndexMode::Shallow, true)
        .unwrap();
}

#[test]
fn text_postgresql_cannot_hold_is_refused_and_bytes_are_not_text() {
    let mut server = Postgres::server();
    let mut db = server.open();
    let err = db.set_setting("bad\0key", Some("1")).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    // The store is still usable after the refused write.
    db.set_setting("key", Some("[1]")).unwrap();
    assert_eq!(db.setting("key").unwrap().as_deref(), Some("[1]"));
    // A location's root is any bytes, newlines and non-UTF-8 included, and
    // may be longer than a B-tree entry holds.
    let odd = b"/tmp/caf\xe9\nroot".to_vec();
    let long = [b"/".as_slice(), &vec![b'x'; 5000]].concat();
    for path in [&odd, &long] {
        let loc = db.add_location(path, IndexMode::Shallow, true).unwrap();
        assert_eq!(&loc.path, path);
        assert_eq!(
            db.location_by_path(path).unwrap().map(|l| l.id),
            Some(loc.id)
        );
        assert!(db.add_location(path, IndexMode::Shallow, true).is_err());
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let mut server = Postgres::server();
    drop(server.open());
    let url = server.last_url();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .execute(
            "INSERT INTO phasekit_library_schema (version, applied_at) VALUES ($1, 0)",
            &[&(POSTGRES_SCHEMA_VERSION + 1)],
        )
        .unwrap();
    let err = PostgresStore::open(&url).err().expect("refused");
    assert!(
        err.to_string().contains("newer than this phasekit"),
        "{err}"
    );
}

/// A schema of another owner, as the job store hands its own over.
fn neighbour(sql: &str) -> NeighbourSchema {
    NeighbourSchema {
        lock: (0x7000, 9),
        table: "neighbour_schema".into(),
        migrations: vec![
            (1, sql.into()),
            (2, "CREATE TABLE neighbour_b (b INT)".into()),
        ],
    }
}

/// Advisory locks held in the library's database, by anyone.
fn advisory_locks(url: &str) -> i64 {
    query_i64(
        url,
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND database = \
         (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
}

#[test]
fn a_library_opening_makes_its_neighbours_tables_once_and_survives_their_failure() {
    let mut server = Postgres::server();
    drop(server.open());
    let url = server.last_url();
    // Made, at its last version, its lock released.
    drop(
        PostgresStore::open_beside(&url, Some(&neighbour("CREATE TABLE neighbour_a (a INT)")))
            .unwrap(),
    );
    assert_eq!(
        query_i64(&url, "SELECT version::bigint FROM neighbour_schema"),
        2
    );
    assert_eq!(query_i64(&url, "SELECT COUNT(*) FROM neighbour_b"), 0);
    assert_eq!(advisory_locks(&url), 0);
    // Current: nothing run again (a second run would fail: the tables exist).
    let xmin = query_i64(&url, "SELECT xmin::text::bigint FROM neighbour_schema");
    drop(
        PostgresStore::open_beside(&url, Some(&neighbour("CREATE TABLE neighbour_a (a INT)")))
            .unwrap(),
    );
    assert_eq!(
        query_i64(&url, "SELECT xmin::text::bigint FROM neighbour_schema"),
        xmin
    );

    // A migration that fails (its table is there already, at version 0):
    // the library still opens and works, its session idle, no lock held,
    // the neighbour's version untouched, for its owner to report.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute("DROP TABLE neighbour_schema, neighbour_b; CREATE TABLE neighbour_c (c INT)")
        .unwrap();
    let mut db =
        PostgresStore::open_beside(&url, Some(&neighbour("CREATE TABLE neighbour_c (c INT)")))
            .unwrap();
    assert_eq!(advisory_locks(&url), 0);
    assert_eq!(query_i64(&url, "SELECT COUNT(*) FROM neighbour_schema"), 0);
    let root = tempfile::tempdir().unwrap();
    db.add_location(root.path().as_os_str().as_bytes(), IndexMode::Shallow, true)
        .unwrap();
}

#[test]
fn the_entries_pages_keep_room_without_a_new_schema_version() {
    let mut server = Postgres::server();
    drop(server.open());
    let url = server.last_url();
    let room = |url: &str| {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let options: Option<Vec<String>> = client
            .query_one(
                "SELECT reloptions FROM pg_class WHERE oid = 'entries'::regclass",
                &[],
            )
            .unwrap()
            .get(0);
        options
    };
    assert_eq!(room(&url), Some(vec!["fillfactor=95".to_string()]));
    // A database made before the setting: set as it opens, same version.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute("ALTER TABLE entries RESET (fillfactor)")
        .unwrap();
    assert_eq!(room(&url), None);
    drop(PostgresStore::open(&url).unwrap());
    assert_eq!(room(&url), Some(vec!["fillfactor=95".to_string()]));
    assert_eq!(
        query_i64(&url, "SELECT MAX(version) FROM phasekit_library_schema"),
        POSTGRES_SCHEMA_VERSION
    );
}

#[test]
fn a_bad_url_or_an_absent_server_is_a_clear_error() {
    let err = PostgresStore::open("postgresql://u@h:notaport/x")
        .err()
        .expect("refused");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    // A port nothing listens on (1 is privileged and unused here).
    let err = PostgresStore::open("postgresql://u@127.0.0.1:1/x")
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("cannot connect to postgresql://u@127.0.0.1:1/x"),
        "{err}"
    );
}

#[test]
fn writing_cas_ids_while_locations_are_removed_and_linked_never_deadlocks() {
    use phasekit_core::library::HashedContent;
    let mut server = Postgres::server();
    drop(server.open());
    let url = server.last_url();
    let work = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut db = PostgresStore::open(&url).unwrap();
        let roots: Vec<_> = (0..2)
            .map(|i| {
                let root = work.path().join(format!("r{round}-{i}"));
                tree(&root, 300);
                root
            })
            .collect();
        let (doomed, kept) = (index(&mut db, &roots[0]), index(&mut db, &roots[1]));
        // New cas_ids for every file of both locations, a page at a time,
        // while one location is removed and the other linked again.
        let writers: Vec<_> = [doomed, kept]
            .into_iter()
            .map(|loc| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let mut db = PostgresStore::open(&url).unwrap();
                    let rows = db.entries(loc, 0, usize::MAX).unwrap();
                    for (n, page) in rows.chunks(50).enumerate() {
                        let hashed: Vec<_> = page
                            .iter()
                            .filter(|e| e.kind == 0)
                            .map(|e| HashedContent {
                                id: e.id,
                                cas_id: Some(format!("{:016x}", (e.id + n as i64) % 13)),
                                checksum: None,
                            })
                            .collect();
                        db.store_content(&hashed).unwrap();
                    }
                })
            })
            .collect();
        let remover = {
            let url = url.clone();
            std::thread::spawn(move || PostgresStore::open(&url).unwrap().remove_location(doomed))
        };
        for _ in 0..5 {
            db.link_identities(kept, true).unwrap();
        }
        for writer in writers {
            writer.join().unwrap();
        }
        assert!(remover.join().unwrap().unwrap() > 0);
        db.link_identities(kept, true).unwrap();
        // Every link has its identity, every cas_id of `kept` its link.
        let orphans = query_i64(
            &url,
            "SELECT COUNT(*) FROM entry_content ec WHERE NOT EXISTS \
             (SELECT 1 FROM content_identities ci WHERE ci.cas_id = ec.cas_id)",
        );
        assert_eq!(orphans, 0);
        let unlinked = query_i64(
            &url,
            "SELECT COUNT(*) FROM entries e WHERE cas_id IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM entry_content ec WHERE ec.cas_id = e.cas_id AND ec.entry_id = e.id)",
        );
        assert_eq!(unlinked, 0);
        db.remove_location(kept).unwrap();
        assert_eq!(
            query_i64(&url, "SELECT COUNT(*) FROM content_identities"),
            0
        );
    }
}
