//! What libpq takes from the environment when the URL leaves it out
//! (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`, the password
//! file, `PGOPTIONS`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`), filled in here for
//! the library's connections, which the `postgres` crate makes without
//! libpq. The job store connects through psycopg, that is through libpq:
//! without this, one URL could take a library's entries to one server and
//! its jobs to another (`PGPORT` set, the URL without a port), and a
//! password kept in `~/.pgpass` served the jobs but not the entries.

use std::time::Duration;

use postgres::config::Host;
use postgres::Config;

/// `url` with `PGPORT` after its host when it names one host and no port:
/// the URL parser gives such a host port 5432 at once, where libpq takes
/// the port from the environment. (Several hosts without ports get 5432
/// each from libpq too.) Anything else unchanged.
pub(super) fn url_with_port(url: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let Some(port) = env("PGPORT").filter(|p| p.parse::<u16>().is_ok()) else {
        return url.to_owned();
    };
    let Some(rest) = ["postgresql://", "postgres://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
    else {
        return url.to_owned(); // key=value form: no port means none
    };
    let scheme = &url[..url.len() - rest.len()];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    let has_port = |host: &str| match host.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => host.contains(':'),
    };
    let query = tail.split_once('?').map_or("", |(_, q)| q);
    if hosts.is_empty()
        || hosts.contains(',')
        || has_port(hosts)
        || query.split('&').any(|pair| pair.starts_with("port="))
    {
        return url.to_owned();
    }
    format!("{scheme}{userinfo}{hosts}:{port}{tail}")
}

/// Fill what `config` (parsed from the URL) leaves out from `env` (a
/// variable's value by name), as libpq would; `home` is where the default
/// password file lives.
pub(super) fn fill(config: &mut Config, env: &dyn Fn(&str) -> Option<String>, home: Option<&str>) {
    if config.get_hosts().is_empty() {
        if let Some(hosts) = env("PGHOST") {
            for host in hosts.split(',').filter(|h| !h.is_empty()) {
                if host.starts_with('/') {
                    config.host_path(host);
                } else {
                    config.host(host);
                }
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env("PGPORT").and_then(|p| p.parse::<u16>().ok()) {
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = env("PGUSER").or_else(|| env("USER")) {
            config.user(&user);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(dbname) = env("PGDATABASE") {
            config.dbname(&dbname);
        }
    }
    if config.get_options().is_none() {
        if let Some(options) = env("PGOPTIONS") {
            config.options(&options);
        }
    }
    if config.get_application_name().is_none() {
        if let Some(name) = env("PGAPPNAME") {
            config.application_name(&name);
        }
    }
    if config.get_connect_timeout().is_none() {
        if let Some(seconds) = env("PGCONNECT_TIMEOUT").and_then(|s| s.parse::<u64>().ok()) {
            config.connect_timeout(Duration::from_secs(seconds.max(2)));
        }
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD").filter(|p| !p.is_empty()) {
            config.password(password);
        } else if let Some(password) = from_password_file(config, env, home) {
            config.password(password);
        }
    }
}

/// Where libpq's builds look for the server's socket by default: Debian's,
/// and PostgreSQL's own.
const DEFAULT_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

/// A transport security the environment demands, which the library's
/// connections (made without TLS) cannot give: its variable and value.
/// Connecting anyway would send a password in the clear where the jobs'
/// connections (libpq) refuse.
/// A setting the URL gives itself is the URL's (as in libpq).
pub(super) fn demanded_security(
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, String)> {
    let demands: [(&str, &str, &[&str]); 3] = [
        (
            "PGSSLMODE",
            "sslmode=",
            &["require", "verify-ca", "verify-full"],
        ),
        ("PGGSSENCMODE", "gssencmode=", &["require"]),
        ("PGCHANNELBINDING", "channel_binding=", &["require"]),
    ];
    demands.iter().find_map(|(name, key, refused)| {
        env(name)
            .filter(|value| refused.contains(&value.as_str()) && !url.contains(key))
            .map(|value| ((*name).to_owned(), value))
    })
}

/// The password for `config`'s first host from the password file
/// (`PGPASSFILE`, else `~/.pgpass`), as libpq reads it: the first line
/// `host:port:database:user:password` whose fields match (`*` matches
/// anything; `\` escapes `:` and itself). Like libpq, a file others may
/// read is ignored.
fn from_password_file(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&str>,
) -> Option<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;

    let path = env("PGPASSFILE").or_else(|| home.map(|h| format!("{h}/.pgpass")))?;
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        // libpq's name for a connection through its default socket
        // directory; another directory goes by its path.
        Some(Host::Unix(dir)) if !DEFAULT_SOCKET_DIRS.iter().any(|d| dir.as_os_str() == *d) => {
            dir.to_string_lossy().into_owned()
        }
        Some(Host::Unix(_)) | None => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or("");
    let dbname = config.get_dbname().unwrap_or(user);
    let wanted = [host.as_str(), port.as_str(), dbname, user];
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let fields = split_fields(line);
            // libpq takes the password up to the next unescaped `:`.
            let [h, p, d, u, password, ..] = fields.as_slice() else {
                return None;
            };
            let matches = [h, p, d, u]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field.as_str() == "*" || field.as_str() == want);
            matches.then(|| password.clone().into_bytes())
        })
}

/// A password file line's fields: `:` separates, `\` escapes the next
/// character.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => fields.push(String::new()),
            other => {
                let c = if other == '\\' {
                    chars.next()
                } else {
                    Some(other)
                };
                if let (Some(c), Some(field)) = (c, fields.last_mut()) {
                    field.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;
    use std::str::FromStr;

    use super::*;

    fn filled(url: &str, vars: &[(&str, &str)], home: Option<&str>) -> Config {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut config = Config::from_str(url).unwrap();
        fill(&mut config, &|name| vars.get(name).cloned(), home);
        config
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let vars = [
            ("PGHOST", "db.lan"),
            ("PGPORT", "5433"),
            ("PGUSER", "pk"),
            ("PGDATABASE", "photos"),
            ("PGPASSWORD", "secret"),
            ("PGAPPNAME", "mine"),
        ];
        let config = filled("postgresql://", &vars, None);
        assert_eq!(config.get_hosts(), &[Host::Tcp("db.lan".into())]);
        assert_eq!(config.get_ports(), &[5433]);
        assert_eq!(config.get_user(), Some("pk"));
        assert_eq!(config.get_dbname(), Some("photos"));
        assert_eq!(config.get_password(), Some(&b"secret"[..]));
        assert_eq!(config.get_application_name(), Some("mine"));
        // What the URL says stands.
        let config = filled("postgresql://me:pw@h:6000/lib", &vars, None);
        assert_eq!(config.get_hosts(), &[Host::Tcp("h".into())]);
        assert_eq!(config.get_ports(), &[6000]);
        assert_eq!(config.get_user(), Some("me"));
        assert_eq!(config.get_dbname(), Some("lib"));
        assert_eq!(config.get_password(), Some(&b"pw"[..]));
        let config = filled("postgresql:///lib", &[("PGHOST", "/run/pg")], None);
        assert_eq!(config.get_hosts(), &[Host::Unix("/run/pg".into())]);
    }

    #[test]
    fn an_empty_pgpassword_is_unset_and_demanded_tls_is_seen() {
        let config = filled("postgresql://u@h/db", &[("PGPASSWORD", "")], None);
        assert_eq!(config.get_password(), None);
        let env = |name: &str| (name == "PGSSLMODE").then(|| "require".to_owned());
        assert_eq!(
            demanded_security("postgresql://h/db", &env),
            Some(("PGSSLMODE".into(), "require".into()))
        );
        assert_eq!(
            demanded_security("postgresql://h/db?sslmode=disable", &env),
            None
        );
        let env = |name: &str| (name == "PGSSLMODE").then(|| "prefer".to_owned());
        assert_eq!(demanded_security("postgresql://h/db", &env), None);
    }

    #[test]
    fn a_host_without_a_port_takes_pgport() {
        let env = |name: &str| (name == "PGPORT").then(|| "5433".to_owned());
        let none = |_: &str| None;
        let cases = [
            ("postgresql://u@h/db", "postgresql://u@h:5433/db"),
            ("postgres://h", "postgres://h:5433"),
            ("postgresql://u:p@a,b/db?x=1", "postgresql://u:p@a,b/db?x=1"),
            ("postgresql://u@[::1]/db", "postgresql://u@[::1]:5433/db"),
            ("postgresql://u@h:6000/db", "postgresql://u@h:6000/db"),
            (
                "postgresql://u@[::1]:6000/db",
                "postgresql://u@[::1]:6000/db",
            ),
            (
                "postgresql://u@h/db?port=6000",
                "postgresql://u@h/db?port=6000",
            ),
            ("postgresql:///db", "postgresql:///db"),
            ("host=h dbname=db", "host=h dbname=db"),
        ];
        for (url, expected) in cases {
            assert_eq!(url_with_port(url, &env), expected, "{url}");
            assert_eq!(url_with_port(url, &none), url);
        }
    }

    #[test]
    fn a_password_comes_from_the_password_file_libpq_would_read() {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join(".pgpass");
        std::fs::write(
            &file,
            "# comment\nother:*:*:*:no\nh:5432:lib:me:first\nh:*:*:me:second\n\
             *:*:*:esc:a\\:b\\\\c\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let home = home.path().to_str();
        let password = |url: &str| filled(url, &[], home).get_password().map(<[u8]>::to_vec);
        assert_eq!(password("postgresql://me@h/lib"), Some(b"first".to_vec()));
        assert_eq!(
            password("postgresql://me@h:5433/x"),
            Some(b"second".to_vec())
        );
        assert_eq!(password("postgresql://esc@h/x"), Some(b"a:b\\c".to_vec()));
        assert_eq!(password("postgresql://you@h/lib"), None);
        // A socket in another directory goes by its path; the default one
        // by `localhost`. An extra field ends the password.
        std::fs::write(
            &file,
            "/run/pg:*:*:*:by-path\nlocalhost:*:*:*:local:extra\n",
        )
        .unwrap();
        assert_eq!(password("host=/run/pg user=me"), Some(b"by-path".to_vec()));
        assert_eq!(
            password("host=/var/run/postgresql user=me"),
            Some(b"local".to_vec())
        );
        // Readable by others: ignored, as libpq does.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(password("postgresql://me@h/lib"), None);
    }
}
