//! RESP over TLS (`--tls-listen`, `--tls-cert-file`, `--tls-key-file`): rustls with the
//! `ring` provider, TLS 1.2 and 1.3, behind the same [`NetStream`] seam as plain sockets, so
//! the connection code is the one every other client runs through.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::stream::{reserve, NetStream};

/// A client gets this long to finish its handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificates from {path}: {reason}")]
    Certs { path: String, reason: String },
    #[error("cannot read a TLS private key from {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS certificate and key do not make a server configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Loads the certificate chain and key and builds the acceptor.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certs {
            path: cert_file.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certs {
            path: cert_file.display().to_string(),
            reason: "no CERTIFICATE block in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.display().to_string(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub(crate) struct TlsNetStream(pub TlsStream<tokio::net::TcpStream>);

impl NetStream for TlsNetStream {
    async fn read_more(&mut self, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        reserve(&mut buf);
        let r = self.0.read_buf(&mut buf).await;
        (r, buf)
    }

    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        // rustls buffers the records: flush so the reply leaves now.
        let r = match self.0.write_all(&buf).await {
            Ok(()) => self.0.flush().await,
            Err(e) => Err(e),
        };
        (r, buf)
    }

    /// Sends close_notify, bounded in time: a peer that stopped reading cannot hold it up.
    async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.0.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let missing = dir.path().join("missing.pem");
        let e = acceptor(&missing, &empty).err().unwrap().to_string();
        assert!(e.contains("missing.pem"), "{e}");
        let e = acceptor(&empty, &empty).err().unwrap().to_string();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        let e = acceptor(&cert, &empty).err().unwrap().to_string();
        assert!(e.contains("private key") && e.contains("empty.pem"), "{e}");
        let key = dir.path().join("key.pem");
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        assert!(acceptor(&cert, &key).is_ok());
    }
}
