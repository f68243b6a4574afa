//! ldirectord's `service = https` negotiate check: as `http`, over TLS (rustls, see
//! `health::tls`). The certificate is verified only when `verify_certificate` asks;
//! `virtualhost` is also the name sent (SNI), the server's address without one.

use super::http::Http;
use super::{BuildError, Endpoint, Failure, Outcome, Probe};
use crate::config::Check;
use crate::health::tls;

/// An HTTP check over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Https {
    http: Http,
    /// Verify the server's certificate against the system's roots.
    verify: bool,
}

impl Https {
    /// # Errors
    /// A `receive` that is not a regular expression.
    pub fn build(settings: &Check) -> Result<Https, BuildError> {
        Ok(Https {
            http: Http::build(settings)?,
            verify: settings.verify_certificate == Some(true),
        })
    }
}

impl Probe for Https {
    async fn run(&self, at: &Endpoint) -> Outcome {
        let config = tls::client_config(self.verify).map_err(Failure::Garbled)?;
        // Each URL on a connection of its own, as keepalived's SSL_GET asks them.
        for page in self.http.pages() {
            let result = super::each_bounded(self.http.each, async {
                let tcp = self.http.bind.connect(at.dest).await?;
                let name = server_name(page.virtualhost.as_deref(), at);
                let mut stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Failure::Garbled(format!("TLS: {e}")))?;
                self.http.exchange(at, page, &mut stream).await
            })
            .await;
            result.map_err(|f| self.http.of_page(page, f))?;
        }
        Ok(None)
    }

    fn connections(&self) -> u32 {
        self.http.connections()
    }
}

/// The name the TLS handshake gives: the virtual host where it is a host name (a port
/// after it left off), else the server's address, which sends no SNI. The virtual
/// host is the Host header's first; keepalived's SSL_GET sends it in no SNI at all
/// without `enable_sni`, so one that is no host name ("10.0.0.1:8443", "a b") must
/// not fail the check.
fn server_name(virtualhost: Option<&str>, at: &Endpoint) -> rustls::pki_types::ServerName<'static> {
    let host = virtualhost.map(|v| match v.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => v,
    });
    host.and_then(|h| rustls::pki_types::ServerName::try_from(h.to_string()).ok())
        .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(at.dest.ip().into()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::testing::{build_and_probe, built_from_everything, negotiate};
    use super::*;

    #[test]
    fn a_virtualhost_that_is_no_host_name_gives_the_address_and_fails_nothing() {
        use rustls::pki_types::ServerName;
        let at = super::super::testing::endpoint("127.0.0.1:443".parse().unwrap(), Protocol::Tcp);
        let name = |v: Option<&str>| match server_name(v, &at) {
            ServerName::DnsName(d) => d.as_ref().to_string(),
            ServerName::IpAddress(_) => "the address".to_string(),
            _ => "other".to_string(),
        };
        assert_eq!(name(Some("www.example.org")), "www.example.org");
        assert_eq!(name(Some("www.example.org:20151")), "www.example.org");
        assert_eq!(name(Some("a b")), "the address");
        assert_eq!(name(Some("[::1]:443")), "the address");
        assert_eq!(name(None), "the address");
    }
    use crate::config::NegotiateService;
    use crate::table::Protocol;

    #[test]
    fn keeps_only_its_own_settings() {
        assert_eq!(
            built_from_everything(NegotiateService::Https, Https::build),
            Https {
                http: built_from_everything(NegotiateService::Https, Http::build),
                verify: true,
            }
        );
    }

    /// A TLS acceptor with a self-signed certificate for backend.test.
    fn acceptor() -> tokio_rustls::TlsAcceptor {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let cert = rcgen::generate_simple_self_signed(vec!["backend.test".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    #[tokio::test]
    async fn https_checks_trust_any_certificate_unless_asked_to_verify() {
        let acceptor = acceptor();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..2 {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        let check = Check {
            receive: Some("^secure$".into()),
            virtualhost: Some("backend.test".into()),
            ..negotiate(NegotiateService::Https)
        };
        assert_eq!(build_and_probe(addr, Protocol::Tcp, &check).await, Ok(None));
        let verifying = Check {
            verify_certificate: Some(true),
            ..check
        };
        assert!(
            matches!(
                build_and_probe(addr, Protocol::Tcp, &verifying).await,
                Err(Failure::Garbled(e)) if e.starts_with("TLS: ")
            ),
            "a self-signed certificate fails verification"
        );
    }

    #[tokio::test]
    async fn every_url_is_asked_over_a_tls_connection_of_its_own() {
        let acceptor = acceptor();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..4 {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = [0u8; 1024];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let answer: &[u8] = if request.starts_with("GET /b ") {
                    b"HTTP/1.0 200 OK\r\n\r\nhealthy\n"
                } else {
                    b"HTTP/1.0 200 OK\r\n\r\nsecure"
                };
                let _ = tls.write_all(answer).await;
                let _ = tls.shutdown().await;
            }
        });
        let urls = |digest: &str| {
            Some(vec![
                crate::config::Url {
                    path: "/a".into(),
                    receive: Some("^secure$".into()),
                    ..crate::config::Url::default()
                },
                crate::config::Url {
                    path: "/b".into(),
                    digest: Some(digest.into()),
                    ..crate::config::Url::default()
                },
            ])
        };
        let check = Check {
            urls: urls("3b1fb749c971d7a2c6a517b37f735df2"),
            ..negotiate(NegotiateService::Https)
        };
        assert_eq!(build_and_probe(addr, Protocol::Tcp, &check).await, Ok(None));
        let wrong = Check {
            urls: urls("00000000000000000000000000000000"),
            ..check
        };
        assert_eq!(
            build_and_probe(addr, Protocol::Tcp, &wrong)
                .await
                .unwrap_err()
                .to_string(),
            "url /b: MD5 digest 3b1fb749c971d7a2c6a517b37f735df2 of the body, not the expected 00000000000000000000000000000000"
        );
    }
}
