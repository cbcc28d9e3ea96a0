//! The log writer: every line goes through [`mmnet_kafka::security::redact`] before it
//! reaches stderr, so a secret quoted by a dependency (librdkafka echoes property values in
//! some errors) is printed as `***`. Cheap: a scan per registered secret per line, and no
//! secret is registered unless one is configured.

use std::io::Write;

use mmnet_kafka::security::redact;
use tracing_subscriber::fmt::MakeWriter;

/// `MakeWriter` for `tracing_subscriber::fmt`: one buffer per event, redacted on drop.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

/// One event's text.
#[derive(Debug, Default)]
pub struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().lock().write_all(redact(&text).as_bytes());
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = EventBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        EventBuffer::default()
    }
}
