//! Security flags shared by `mmnet kafka` and `mmnet produce`: the command-line side of the
//! `[security]` section. There is deliberately no password flag: a secret on the command
//! line is visible to every user of the host (`ps`, `/proc/PID/cmdline`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mmnet_kafka::security::{Protocol, SaslMechanism, SecuritySection};

/// `--security-protocol`, `--sasl-*`, `--ssl-*`, `--secret-file`.
#[derive(Debug, Args, Default)]
pub struct SecurityArgs {
    /// Kafka security protocol ([security] protocol).
    #[arg(long, value_enum)]
    pub security_protocol: Option<ProtocolArg>,
    /// SASL mechanism ([security] sasl_mechanism; default SCRAM-SHA-512).
    #[arg(long, value_enum)]
    pub sasl_mechanism: Option<MechanismArg>,
    /// SASL user name ([security] sasl_username).
    #[arg(long)]
    pub sasl_username: Option<String>,
    /// Read a secret from a file: PATH alone is the SASL password; PROPERTY=PATH sets any
    /// librdkafka property (e.g. ssl.key.password=/run/secrets/key-pw). Repeatable.
    #[arg(long, value_name = "[PROPERTY=]PATH")]
    pub secret_file: Vec<String>,
    /// CA bundle (PEM) for the brokers' certificates ([security] ca_location).
    #[arg(long, value_name = "PEM")]
    pub ssl_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS ([security] certificate_location).
    #[arg(long, value_name = "PEM")]
    pub ssl_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS ([security] key_location).
    #[arg(long, value_name = "PEM")]
    pub ssl_key: Option<PathBuf>,
}

/// `--security-protocol`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProtocolArg {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

/// `--sasl-mechanism`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MechanismArg {
    /// PLAIN (TLS only: the password is sent).
    #[value(alias = "PLAIN")]
    Plain,
    /// SCRAM-SHA-256.
    #[value(name = "scram-sha-256", alias = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM-SHA-512.
    #[value(name = "scram-sha-512", alias = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SecurityArgs {
    /// Overrides `s` with the flags given.
    pub fn apply(&self, s: &mut SecuritySection) -> Result<()> {
        if let Some(p) = self.security_protocol {
            s.protocol = match p {
                ProtocolArg::Plaintext => Protocol::Plaintext,
                ProtocolArg::Ssl => Protocol::Ssl,
                ProtocolArg::SaslPlaintext => Protocol::SaslPlaintext,
                ProtocolArg::SaslSsl => Protocol::SaslSsl,
            };
        }
        if let Some(m) = self.sasl_mechanism {
            s.sasl_mechanism = Some(match m {
                MechanismArg::Plain => SaslMechanism::Plain,
                MechanismArg::ScramSha256 => SaslMechanism::ScramSha256,
                MechanismArg::ScramSha512 => SaslMechanism::ScramSha512,
            });
        }
        if let Some(u) = &self.sasl_username {
            s.sasl_username = Some(u.clone());
        }
        for (flag, v, slot) in [
            ("--ssl-ca", &self.ssl_ca, &mut s.ca_location),
            ("--ssl-cert", &self.ssl_cert, &mut s.certificate_location),
            ("--ssl-key", &self.ssl_key, &mut s.key_location),
        ] {
            if let Some(p) = v {
                if !p.is_file() {
                    bail!("{flag} {}: not a readable file", p.display());
                }
                *slot = Some(p.clone());
            }
        }
        for spec in &self.secret_file {
            let (prop, path) = match spec.split_once('=') {
                Some((k, p)) => (k.trim().to_string(), PathBuf::from(p.trim())),
                None => ("sasl.password".to_string(), PathBuf::from(spec)),
            };
            std::fs::metadata(&path)
                .with_context(|| format!("--secret-file {}", path.display()))?;
            s.secret_files.insert(prop, path);
        }
        Ok(())
    }
}
