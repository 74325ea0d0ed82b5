//! Opening a PostgreSQL library: the connection, the schema brought up to
//! date, and the statements a connection keeps prepared.

use std::cell::{RefCell, RefMut};
use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use super::environment;
use super::errors::{cannot_connect, explain, going_away};
use super::ids::IdPool;
use super::neighbour::NeighbourSchema;
use super::schema;
use super::statements::Statements;
use crate::error::{Error, Result};

/// A library in a PostgreSQL database: the PostgreSQL implementation of
/// [`crate::library::LibraryStore`], for workers on several hosts sharing one
/// library.
///
/// The client needs `&mut` for every call, reads included, while the
/// trait's reads take `&self`: the connection sits in a `RefCell`. A store
/// is used by one thread at a time (it is `Send`, not `Sync`, like a SQLite
/// connection); a read that calls back into the store from its callback
/// gets an error, not a panic.
pub struct PostgresStore {
    pub(super) conn: RefCell<Conn>,
    /// How to connect again: for a second session working beside the
    /// first (`content::link_identities`).
    pub(super) config: Config,
    /// The database as `postgresql://user@host:port/dbname`, without a
    /// password: what errors name.
    pub(super) target: String,
}

/// The connection and its prepared statements.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) statements: Statements,
    /// Entry ids this connection holds (see `ids.rs`).
    pub(super) ids: IdPool,
    /// Which session of the store this is (0, then one more each time
    /// [`revive`] replaces it): scan steps committed without waiting for
    /// the disk are flushed on the session that wrote them, or not at all.
    pub(super) session: u64,
}

impl PostgresStore {
    /// Open (creating and migrating as needed) the library in the database
    /// named by `url` (`postgresql://user[:password]@host[:port]/dbname`, or
    /// the `key=value` form; plain TCP or a Unix socket, no TLS).
    ///
    /// Several processes may open one new database at once (workers starting
    /// together): the schema is created under an advisory lock, once.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_beside(url, None)
    }

    /// [`PostgresStore::open`], then `neighbour`'s migrations on the same
    /// connection (see `neighbour.rs`): done if they can be, else left to
    /// their owner, who runs them again and reports what fails.
    pub fn open_beside(url: &str, neighbour: Option<&NeighbourSchema>) -> Result<Self> {
        let env = |name: &str| std::env::var(name).ok();
        if let Some((name, value)) = environment::demanded_security(url, &env) {
            return Err(Error::InvalidArgument(format!(
                "{name}={value} asks for a secure connection, and the library's connections \
                 to PostgreSQL are made without TLS: unset it, or reach the server over a \
                 network you trust (a Unix socket, loopback, a VPN)"
            )));
        }
        let url = environment::url_with_port(url, &env);
        let mut config = Config::from_str(&url).map_err(|err| {
            Error::InvalidArgument(format!("not a PostgreSQL connection URL ({err})"))
        })?;
        let home = std::env::var("HOME").ok();
        environment::fill(&mut config, &env, home.as_deref());
        let target = describe(&config);
        if config.get_application_name().is_none() {
            config.application_name("phasekit library");
        }
        notice_cut_links(&mut config);
        let mut client = config
            .clone()
            .connect(NoTls)
            .map_err(|err| cannot_connect(&target, &err))?;
        schema::migrate(&mut client).map_err(|err| explain(&target, err))?;
        // Neither is needed to work: the pages' room (a role that may not
        // alter the table, or a lock not had, leaves it as it is) and the
        // neighbour's tables (its owner migrates and reports itself). Only
        // a connection lost meanwhile is this store's error.
        let optional = [
            schema::keep_room(&mut client),
            neighbour.map_or(Ok(()), |n| n.migrate(&mut client)),
        ];
        for err in optional.into_iter().filter_map(Result::err) {
            if client.is_closed() {
                return Err(explain(&target, err));
            }
        }
        Ok(PostgresStore {
            conn: RefCell::new(Conn {
                client,
                statements: Statements::default(),
                ids: IdPool::default(),
                session: 0,
            }),
            config,
            target,
        })
    }

    /// The connection, for a read (`&self`); a new one if the server ended
    /// the last (see [`revive`]). A read's callback that calls the store
    /// again finds it busy: an error, never a panic.
    pub(super) fn conn(&self) -> Result<RefMut<'_, Conn>> {
        let mut conn = self.conn.try_borrow_mut().map_err(|_| {
            Error::database(
                "the PostgreSQL library store is already in a call (a callback used the \
                 store it was called from)",
            )
        })?;
        revive(&self.config, &self.target, &mut conn)?;
        Ok(conn)
    }

    /// The connection, for a write (`&mut self`); a new one if the server
    /// ended the last.
    pub(super) fn conn_mut(&mut self) -> Result<&mut Conn> {
        let conn = self.conn.get_mut();
        revive(&self.config, &self.target, conn)?;
        Ok(conn)
    }

    /// The database this store is connected to, as errors name it: a
    /// `postgresql://` URL without its password.
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// The server's side of TCP keepalives, as the job store's sessions have it
/// (`SESSION_SETTINGS` in `python/phasekit/jobs/postgres/_connect.py`).
const SERVER_KEEPALIVES: [(&str, &str); 4] = [
    ("tcp_keepalives_idle", "5"),
    ("tcp_keepalives_interval", "2"),
    ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "10000"),
];

/// Keepalives and a TCP user timeout on both ends, unless the URL sets
/// them, as the job store's connections have (`DEFAULT_OPTIONS` there): a
/// host whose link was cut inside a write holds the location's row lock in
/// the server until the server learns the connection is gone, by default
/// after its kernel's two hours of keepalive time; the worker that took
/// the job over would wait as long for that lock. With these, about 11 s.
fn notice_cut_links(config: &mut Config) {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(10));
    }
    if config.get_keepalives_idle() == Config::new().get_keepalives_idle() {
        config.keepalives_idle(Duration::from_secs(5));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(2));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(3);
    }
    let given = config.get_options().unwrap_or("").to_owned();
    let mut options = given.clone();
    for (name, value) in SERVER_KEEPALIVES {
        if !given.contains(name) {
            options.push_str(&format!(" -c {name}={value}"));
        }
    }
    config.options(options.trim_start());
}

/// How long a call waits for a server that ended its connection to take
/// new ones (a restart), as long as the job store waits for it
/// (`RECONNECT_S` in `python/phasekit/jobs/postgres/_connect.py`).
const RECONNECT_WAIT: Duration = Duration::from_secs(30);

/// A new session in place of one that is closed (the server restarted or
/// ended it, the link broke: the call that met it failed with
/// [`Error::Unavailable`]), waiting up to [`RECONNECT_WAIT`] for a server
/// that is starting. Its prepared statements go with the old session; so
/// do the ids left in its blocks, which no session is ever given again
/// (`ids.rs`). A server that refuses the connection for good (a database
/// dropped, a password changed) is an error at once.
fn revive(config: &Config, target: &str, conn: &mut Conn) -> Result<()> {
    if !conn.client.is_closed() {
        return Ok(());
    }
    let deadline = Instant::now() + RECONNECT_WAIT;
    let mut pause = Duration::from_millis(50);
    loop {
        match config.connect(NoTls) {
            Ok(client) => {
                *conn = Conn {
                    client,
                    statements: Statements::default(),
                    ids: IdPool::default(),
                    session: conn.session + 1,
                };
                return Ok(());
            }
            Err(err) if for_now(&err) && Instant::now() + pause < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(err) if for_now(&err) => {
                return Err(Error::Unavailable(format!(
                    "the PostgreSQL server at {target} is still away after {} s: {err}; an \
                     interrupted job resumes from its last checkpoint once it is back",
                    RECONNECT_WAIT.as_secs()
                )))
            }
            Err(err) => return Err(cannot_connect(target, &err)),
        }
    }
}

/// A connection refused for now: no server listening (yet), or one that
/// is starting or shutting down.
fn for_now(err: &postgres::Error) -> bool {
    err.as_db_error().is_none_or(|db| going_away(db.code()))
}

/// `postgresql://user@host:port/dbname` of a configuration, without its
/// password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(dir)) => dir.to_string_lossy().into_owned(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let at = if user.is_empty() { "" } else { "@" };
    let dbname = config.get_dbname().unwrap_or(user);
    format!("postgresql://{user}{at}{host}:{port}/{dbname}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_link_is_noticed_in_seconds_unless_the_url_says_otherwise() {
        let mut config = Config::from_str("postgresql://u@h/lib").unwrap();
        notice_cut_links(&mut config);
        assert_eq!(
            config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(10))
        );
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(5));
        assert_eq!(config.get_keepalives_retries(), Some(3));
        let options = config.get_options().unwrap();
        assert!(
            options.starts_with("-c tcp_keepalives_idle=5 "),
            "{options}"
        );
        assert!(options.contains("-c tcp_user_timeout=10000"), "{options}");
        let mut config = Config::from_str(
            "postgresql://u@h/lib?keepalives_idle=30&connect_timeout=3\
             &options=-c%20tcp_keepalives_idle%3D60",
        )
        .unwrap();
        notice_cut_links(&mut config);
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        let options = config.get_options().unwrap();
        assert!(
            options.starts_with("-c tcp_keepalives_idle=60 "),
            "{options}"
        );
        assert!(!options.contains("=5 "), "{options}");
        assert!(options.contains("-c tcp_keepalives_count=3"), "{options}");
    }

    #[test]
    fn the_target_leaves_the_password_out() {
        let config = Config::from_str("postgresql://u:secret@h:5433/lib").unwrap();
        assert_eq!(describe(&config), "postgresql://u@h:5433/lib");
        let config = Config::from_str("host=/run/pg user=me").unwrap();
        assert_eq!(describe(&config), "postgresql://me@/run/pg:5432/me");
    }
}
