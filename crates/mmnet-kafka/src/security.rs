//! Secured clusters: the `[security]` section (TLS, SASL), secrets read from files or the
//! environment, and the redaction that keeps them out of logs, errors and metrics.
//!
//! Why a section of its own rather than raw `[librdkafka]` properties: a password in a
//! properties map is one `{:?}` away from a log line, and on the command line (`-X`) it is
//! visible to every user of the host in `ps`. Here a password is a [`Secret`] (its `Debug`
//! prints `***`), it comes from `${VAR}` in the TOML or from a file (`secret_files`,
//! `--secret-file`), `-X` refuses password-like keys, and every secret value is registered
//! with [`register_secrets`] so that [`redact`] removes it from anything printed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::error::{OperatorError, Result};

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read from a file or the environment.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value, for the one place that needs it: the client configuration.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// No TLS, no authentication (a local or fully trusted network only).
    #[default]
    #[serde(alias = "PLAINTEXT")]
    Plaintext,
    /// TLS, no SASL (or client certificates: `certificate_location` + `key_location`).
    #[serde(alias = "SSL")]
    Ssl,
    /// SASL without TLS: the password crosses the network in the clear with PLAIN.
    #[serde(alias = "SASL_PLAINTEXT")]
    SaslPlaintext,
    /// SASL over TLS: what managed Kafka services expect.
    #[serde(alias = "SASL_SSL")]
    SaslSsl,
}

impl Protocol {
    /// librdkafka's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }

    fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// SASL mechanisms that work with a username and password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    /// The password itself is sent: use with `sasl_ssl` only.
    #[serde(rename = "PLAIN", alias = "plain")]
    Plain,
    /// Salted challenge-response; the password never crosses the network.
    #[serde(rename = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    /// As SCRAM-SHA-256 with SHA-512.
    #[serde(rename = "SCRAM-SHA-512", alias = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's `sasl.mechanisms` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `[security]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: Protocol,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL protocols; default SCRAM-SHA-512).
    pub sasl_mechanism: Option<SaslMechanism>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password: `"${ENV_VAR}"`, or leave it out and use `secret_files`.
    pub sasl_password: Option<Secret>,
    /// CA bundle (PEM) the brokers' certificates are checked against. Default: the system's
    /// CA store (librdkafka's `probe`), which is what public managed clusters need.
    pub ca_location: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub certificate_location: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    pub key_location: Option<PathBuf>,
    /// Password of `key_location`: `"${ENV_VAR}"` or `secret_files`.
    pub key_password: Option<Secret>,
    /// Check that a broker's certificate names the host connected to (default true; turning
    /// it off accepts any certificate the CA signed, for any host).
    pub verify_hostname: bool,
    /// librdkafka properties whose values are read from files at startup, e.g.
    /// `"sasl.password" = "/run/secrets/kafka-password"` (one trailing newline is dropped).
    pub secret_files: BTreeMap<String, PathBuf>,
}

impl Default for SecuritySection {
    fn default() -> Self {
        Self {
            protocol: Protocol::Plaintext,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ca_location: None,
            certificate_location: None,
            key_location: None,
            key_password: None,
            verify_hostname: true,
            secret_files: BTreeMap::new(),
        }
    }
}

fn config_error(what: &str, reason: impl Into<String>) -> OperatorError {
    OperatorError::Config {
        what: what.into(),
        reason: reason.into(),
    }
}

impl SecuritySection {
    /// Checks that the settings agree with each other (before anything connects).
    pub fn validate(&self) -> Result<()> {
        let sasl_given = self.sasl_mechanism.is_some()
            || self.sasl_username.is_some()
            || self.sasl_password.is_some();
        if sasl_given && !self.protocol.sasl() {
            return Err(config_error(
                "security.protocol",
                format!(
                    "SASL settings are given but the protocol is \"{}\"; use \"sasl_ssl\" (or \"sasl_plaintext\")",
                    self.protocol.as_str()
                ),
            ));
        }
        if self.protocol.sasl() {
            if self.sasl_username.as_deref().unwrap_or("").is_empty() {
                return Err(config_error(
                    "security.sasl_username",
                    "required with a SASL protocol",
                ));
            }
            if self.sasl_password.is_none() && !self.secret_files.contains_key("sasl.password") {
                return Err(config_error(
                    "security.sasl_password",
                    "required with a SASL protocol: sasl_password = \"${ENV_VAR}\", or a file (--secret-file PATH, or secret_files.\"sasl.password\")",
                ));
            }
        }
        let tls_given = self.ca_location.is_some()
            || self.certificate_location.is_some()
            || self.key_location.is_some();
        if tls_given && !self.protocol.tls() {
            return Err(config_error(
                "security.protocol",
                format!(
                    "TLS files are given but the protocol is \"{}\"; use \"ssl\" or \"sasl_ssl\"",
                    self.protocol.as_str()
                ),
            ));
        }
        if self.certificate_location.is_some() != self.key_location.is_some() {
            return Err(config_error(
                "security.certificate_location",
                "a client certificate needs its key (key_location), and a key its certificate",
            ));
        }
        for (k, v) in [
            ("security.ca_location", &self.ca_location),
            ("security.certificate_location", &self.certificate_location),
            ("security.key_location", &self.key_location),
        ] {
            if let Some(p) = v
                && !p.is_file()
            {
                return Err(config_error(
                    k,
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
        Ok(())
    }

    /// The librdkafka properties this section stands for, secrets read from their files.
    /// Every secret value is registered for redaction before it is returned.
    pub fn client_properties(&self) -> Result<Vec<(String, String)>> {
        let mut p: Vec<(String, String)> = vec![(
            "security.protocol".into(),
            self.protocol.as_str().to_string(),
        )];
        if self.protocol.sasl() {
            let m = self.sasl_mechanism.unwrap_or(SaslMechanism::ScramSha512);
            p.push(("sasl.mechanisms".into(), m.as_str().into()));
            if let Some(u) = &self.sasl_username {
                p.push(("sasl.username".into(), u.clone()));
            }
            if let Some(s) = &self.sasl_password {
                register_secrets([s.expose()]);
                p.push(("sasl.password".into(), s.expose().into()));
            }
        }
        if self.protocol.tls() {
            let ca = self
                .ca_location
                .as_ref()
                .map_or_else(|| "probe".to_string(), |c| c.display().to_string());
            p.push(("ssl.ca.location".into(), ca));
            if let (Some(c), Some(k)) = (&self.certificate_location, &self.key_location) {
                p.push(("ssl.certificate.location".into(), c.display().to_string()));
                p.push(("ssl.key.location".into(), k.display().to_string()));
            }
            if let Some(s) = &self.key_password {
                register_secrets([s.expose()]);
                p.push(("ssl.key.password".into(), s.expose().into()));
            }
            let algo = if self.verify_hostname {
                "https"
            } else {
                "none"
            };
            p.push(("ssl.endpoint.identification.algorithm".into(), algo.into()));
        }
        for (key, path) in &self.secret_files {
            let what = format!("security.secret_files.\"{key}\"");
            let mut v = std::fs::read_to_string(path)
                .map_err(|e| config_error(&what, format!("cannot read {}: {e}", path.display())))?;
            if v.ends_with('\n') {
                v.pop();
                if v.ends_with('\r') {
                    v.pop();
                }
            }
            if v.is_empty() {
                return Err(config_error(&what, format!("{} is empty", path.display())));
            }
            register_secrets([v.as_str()]);
            p.retain(|(k, _)| k != key);
            p.push((key.clone(), v));
        }
        Ok(p)
    }
}

/// Whether a librdkafka property holds a secret (its value is redacted and `-X` refuses it).
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.ends_with(".pem") || k.contains("token")
}

/// Refuses a password-like property on the command line: anyone on the host sees it in
/// `ps`. The error names the ways that do not leak.
pub fn refuse_secret_on_command_line(key: &str) -> Result<()> {
    if is_secret_property(key) {
        return Err(config_error(
            &format!("-X {key}"),
            "secrets on the command line are visible to every user of the host (ps, /proc); \
             use --secret-file [PROPERTY=]PATH, or \"${ENV_VAR}\" in the config file",
        ));
    }
    Ok(())
}

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds values that [`redact`] must remove wherever they appear. Empty values are ignored.
pub fn register_secrets<'a>(values: impl IntoIterator<Item = &'a str>) {
    let Ok(mut s) = SECRETS.write() else { return };
    for v in values {
        if !v.is_empty() && !s.iter().any(|x| x == v) {
            s.push(v.to_string());
        }
    }
    // Longest first: a secret containing another is replaced whole.
    s.sort_by_key(|x| std::cmp::Reverse(x.len()));
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let Ok(s) = SECRETS.read() else {
        return Cow::Borrowed(text);
    };
    let mut out = Cow::Borrowed(text);
    for secret in s.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), "***"));
        }
    }
    out
}

/// Replaces `${NAME}` in every string of a parsed TOML document with the environment
/// variable NAME (`$${` stands for a literal `${`). Done on parsed values, not on the text,
/// so a value can never change the document's structure. Values taken from the environment
/// under a secret-looking key are registered for redaction.
pub fn expand_env(doc: &mut toml::Table) -> Result<()> {
    fn walk(v: &mut toml::Value, path: &str) -> Result<()> {
        match v {
            toml::Value::String(s) if s.contains('$') => {
                let expanded = expand_str(s, path)?;
                let leaf = path.rsplit('.').next().unwrap_or(path);
                if is_secret_property(leaf) || is_secret_property(path) {
                    register_secrets([expanded.as_str()]);
                }
                *s = expanded;
            }
            toml::Value::Array(a) => {
                for (i, x) in a.iter_mut().enumerate() {
                    walk(x, &format!("{path}[{i}]"))?;
                }
            }
            toml::Value::Table(t) => {
                for (k, x) in t.iter_mut() {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(x, &p)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
    for (k, v) in doc.iter_mut() {
        walk(v, k)?;
    }
    Ok(())
}

fn expand_str(s: &str, path: &str) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = t;
        } else if let Some(t) = tail.strip_prefix("${") {
            let end = t.find('}').ok_or_else(|| {
                config_error(path, "unterminated ${...} (write $${ for a literal ${)")
            })?;
            let name = &t[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(config_error(
                    path,
                    format!("`${{{name}}}` is not an environment variable name"),
                ));
            }
            let value = std::env::var(name).map_err(|_| {
                config_error(
                    path,
                    format!("environment variable {name} is not set (or not UTF-8)"),
                )
            })?;
            out.push_str(&value);
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_stars() {
        let s = Secret::new("hunter2-debug");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        let sec = SecuritySection {
            sasl_password: Some(s),
            ..Default::default()
        };
        assert!(!format!("{sec:?}").contains("hunter2-debug"));
    }

    #[test]
    fn env_expansion_replaces_escapes_and_names_what_is_missing() {
        // PATH is set in every test environment (setting variables needs `unsafe`, which
        // the workspace forbids); the CLI tests set their own through the child's env.
        let path = std::env::var("PATH").unwrap();
        let mut t: toml::Table = toml::from_str(
            "[kafka]\nbrokers = \"${PATH},b2:9092\"\n\
             [security]\nsasl_password = \"x${PATH}y\"\n\
             [librdkafka]\n\"x\" = \"$${LITERAL} and $5\"\n",
        )
        .unwrap();
        expand_env(&mut t).unwrap();
        assert_eq!(
            t["kafka"]["brokers"].as_str(),
            Some(format!("{path},b2:9092").as_str())
        );
        assert_eq!(
            t["security"]["sasl_password"].as_str(),
            Some(format!("x{path}y").as_str())
        );
        assert_eq!(t["librdkafka"]["x"].as_str(), Some("${LITERAL} and $5"));
        // Taken from the environment under a password key: registered for redaction.
        assert_eq!(redact(&format!("pw=x{path}y!")), "pw=***!");

        let mut t: toml::Table =
            toml::from_str("[kafka]\nbrokers = \"${MMNET_TEST_UNSET_VAR}\"\n").unwrap();
        let e = expand_env(&mut t).unwrap_err().to_string();
        assert!(
            e.contains("kafka.brokers") && e.contains("MMNET_TEST_UNSET_VAR"),
            "{e}"
        );
        let mut t: toml::Table = toml::from_str("a = \"${OPEN\"\n").unwrap();
        assert!(
            expand_env(&mut t)
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
    }

    #[test]
    fn validation_names_the_inconsistency() {
        let mut s = SecuritySection {
            sasl_username: Some("u".into()),
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("sasl_ssl"));
        s.protocol = Protocol::SaslSsl;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("sasl_password")
        );
        s.secret_files
            .insert("sasl.password".into(), "/nonexistent/pw".into());
        s.validate().unwrap();
        let e = s.client_properties().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/pw"), "{e}");
        s.ca_location = Some("/nonexistent/ca.pem".into());
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("ca_location")
        );
    }

    #[test]
    fn properties_read_secret_files_and_default_to_the_system_cas() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "from-a-file-77\n").unwrap();
        let s = SecuritySection {
            protocol: Protocol::SaslSsl,
            sasl_mechanism: Some(SaslMechanism::ScramSha256),
            sasl_username: Some("mmnet".into()),
            secret_files: [("sasl.password".to_string(), pw)].into(),
            ..Default::default()
        };
        s.validate().unwrap();
        let p: BTreeMap<_, _> = s.client_properties().unwrap().into_iter().collect();
        assert_eq!(p["security.protocol"], "sasl_ssl");
        assert_eq!(p["sasl.mechanisms"], "SCRAM-SHA-256");
        assert_eq!(p["sasl.password"], "from-a-file-77");
        assert_eq!(p["ssl.ca.location"], "probe");
        assert_eq!(p["ssl.endpoint.identification.algorithm"], "https");
        assert_eq!(redact("x from-a-file-77 y"), "x *** y");
    }

    #[test]
    fn command_line_refuses_secrets() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
        ] {
            let e = refuse_secret_on_command_line(k).unwrap_err().to_string();
            assert!(e.contains("--secret-file"), "{e}");
        }
        refuse_secret_on_command_line("sasl.username").unwrap();
        refuse_secret_on_command_line("linger.ms").unwrap();
    }
}
