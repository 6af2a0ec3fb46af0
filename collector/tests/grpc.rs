//! gRPC end to end over real sockets: stream with acks, unary push, rejected items, auth
//! failures, wrong-site tokens, request limits, health, reflection, TLS and mutual TLS, and
//! graceful shutdown.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{BACKENDS, Backend, TestDb, config, sample, start, telemetry};
use llmscope_collector::auth::generate_token;
use llmscope_proto::v1::{self, IngestRequest, ingest_service_client::IngestServiceClient};
use llmscope_store::Store;
use llmscope_store::tokens::Role;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};

async fn token(store: &Store, site: &str) -> String {
    let (t, rec) = generate_token(Role::Ingest, Some(site.into()), "test");
    store.insert_token(&rec, None).await.unwrap();
    t
}

async fn client(addr: std::net::SocketAddr) -> IngestServiceClient<Channel> {
    IngestServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn batch(seq: u64, n: usize, site: &str) -> IngestRequest {
    IngestRequest {
        batch_seq: seq,
        samples: (0..n)
            .map(|i| sample(site, "gpu-1", 700.0 + i as f64))
            .collect(),
        telemetry: vec![telemetry(site, "gpu-1", 2)],
    }
}

#[tokio::test]
async fn push_and_stream_are_acked_after_commit_and_stored_once() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let running = start(&config(db.url())).await;
        let store = running.store.clone();
        let tok = token(&store, "eu-west").await;
        let mut c = client(running.grpc_addr).await;

        let first = batch(1, 50, "eu-west");
        let ack = c
            .push(authed(first.clone(), &tok))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (ack.batch_seq, ack.accepted_samples, ack.accepted_telemetry),
            (1, 50, 1)
        );
        assert!(ack.rejected.is_empty());
        // the ack came after the commit: everything is readable now
        assert_eq!(store.count_samples().await.unwrap(), 50, "{backend:?}");
        assert_eq!(store.count_gpu_rows().await.unwrap(), 2);
        // a resend is acked again and stored once
        let again = c
            .push(authed(first.clone(), &tok))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again.accepted_samples, 50);
        assert_eq!(store.count_samples().await.unwrap(), 50);

        let batches: Vec<IngestRequest> = (10..30).map(|s| batch(s, 100, "")).collect();
        let ids: Vec<String> = batches
            .iter()
            .flat_map(|b| b.samples.iter().map(|s| s.id.clone()))
            .collect();
        let outbound = tokio_stream::iter(batches);
        let mut acks = c.stream(authed(outbound, &tok)).await.unwrap().into_inner();
        let mut seqs = Vec::new();
        while let Some(ack) = acks.message().await.unwrap() {
            assert_eq!(ack.accepted_samples, 100);
            assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);
            seqs.push(ack.batch_seq);
        }
        assert_eq!(
            seqs,
            (10..30).collect::<Vec<u64>>(),
            "one ack per batch, in order"
        );
        assert_eq!(store.count_samples().await.unwrap(), 50 + 2_000);
        let stored = store
            .get_sample(ids[0].parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.site, "eu-west", "empty site means the token's site");
        running.stop().await.unwrap();
        db.drop_db().await;
    }
}

#[tokio::test]
async fn bad_items_are_rejected_one_by_one_and_the_rest_is_stored() {
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&config(db.url())).await;
    let tok = token(&running.store, "eu-west").await;
    let mut c = client(running.grpc_addr).await;
    let mut req = batch(7, 5, "eu-west");
    req.samples[1].latency_ms = f64::NAN;
    req.samples[2].site = "us-east".into();
    req.samples[3].id = "42".into();
    req.telemetry[0].cpu_pct = -1.0;
    let ack = c.push(authed(req, &tok)).await.unwrap().into_inner();
    assert_eq!(ack.accepted_samples, 2);
    assert_eq!(ack.accepted_telemetry, 0);
    let got: Vec<(i32, u32, String)> = ack
        .rejected
        .iter()
        .map(|r| (r.kind, r.index, r.field.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (v1::ItemKind::Sample as i32, 1, "latency_ms".into()),
            (v1::ItemKind::Sample as i32, 2, "site".into()),
            (v1::ItemKind::Sample as i32, 3, "id".into()),
            (v1::ItemKind::Telemetry as i32, 0, "cpu_pct".into()),
        ]
    );
    assert!(
        ack.rejected[1]
            .reason
            .contains("may not be written with this token (it writes site `eu-west`)")
    );
    assert_eq!(running.store.count_samples().await.unwrap(), 2);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn names_that_would_make_series_keys_ambiguous_are_rejected() {
    // host `hc|p1` + provider `p2` and host `hc` + provider `p1|p2` would be one series
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&config(db.url())).await;
    let tok = token(&running.store, "eu-west").await;
    let mut c = client(running.grpc_addr).await;
    let mut req = batch(8, 5, "eu-west");
    req.telemetry.clear();
    req.samples[0].host = "hc|p1".into();
    req.samples[0].provider = "p2".into();
    req.samples[1].host = "hc".into();
    req.samples[1].provider = "p1|p2".into();
    req.samples[2].model = "llama\n3".into();
    req.samples[3].host = "hc".into();
    req.samples[3].provider = "p1".into();
    let ack = c.push(authed(req, &tok)).await.unwrap().into_inner();
    let got: Vec<(u32, String)> = ack
        .rejected
        .iter()
        .map(|r| (r.index, r.field.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "host".into()),
            (1, "provider".into()),
            (2, "model".into())
        ]
    );
    assert!(
        ack.rejected[0]
            .reason
            .contains("host must not contain `|` (it separates the parts of a series key)"),
        "{:?}",
        ack.rejected[0]
    );
    assert!(ack.rejected[2].reason.contains("control characters"));
    assert_eq!(ack.accepted_samples, 2, "the rest of the batch is stored");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_utf8_rejects_only_that_item() {
    use prost::Message;
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&config(db.url())).await;
    let tok = token(&running.store, "eu-west").await;
    // encode a request whose second sample has a model of invalid UTF-8, as a buggy client
    // would: field 6 (model) of sample 2, patched on the wire
    let mut req = batch(3, 2, "eu-west");
    req.samples[1].model = "\u{1}MODEL\u{1}".into();
    let mut bytes = req.encode_to_vec();
    let pos = bytes.windows(5).position(|w| w == b"MODEL").unwrap();
    bytes[pos] = 0xff;
    // send the raw bytes through a pass-through codec-free path: decode as the public type
    // fails, so use a raw HTTP/2 gRPC call via tonic's generic client
    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut r = Request::new(RawBytes(bytes));
    r.metadata_mut()
        .insert("authorization", format!("Bearer {tok}").parse().unwrap());
    let resp: tonic::Response<RawBytes> = grpc
        .unary(
            r,
            "/llmscope.v1.IngestService/Push".parse().unwrap(),
            RawCodec,
        )
        .await
        .unwrap();
    let ack = v1::IngestAck::decode(resp.into_inner().0.as_slice()).unwrap();
    assert_eq!(ack.accepted_samples, 1);
    assert_eq!(ack.rejected.len(), 1);
    assert_eq!(ack.rejected[0].index, 1);
    assert_eq!(ack.rejected[0].reason, "model is not valid UTF-8");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn authentication_failures_are_explicit() {
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&config(db.url())).await;
    let store = running.store.clone();
    let mut c = client(running.grpc_addr).await;

    let e = c.push(Request::new(batch(1, 1, "eu"))).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(
        e.message()
            .contains("missing `authorization: Bearer <token>`"),
        "{}",
        e.message()
    );

    let e = c
        .push(authed(batch(1, 1, "eu"), "llms_00000000_nope"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(e.message(), "unknown token");

    let (admin, rec) = generate_token(Role::Admin, None, "ops");
    store.insert_token(&rec, None).await.unwrap();
    let e = c.push(authed(batch(1, 1, "eu"), &admin)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    let (revoked, rec) = generate_token(Role::Ingest, Some("eu".into()), "old");
    store.insert_token(&rec, None).await.unwrap();
    store
        .revoke_token(&rec.id, llmscope_model::now_us(), None)
        .await
        .unwrap();
    let e = c
        .push(authed(batch(1, 1, "eu"), &revoked))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("revoked"));

    let e = c
        .stream(authed(tokio_stream::iter(vec![batch(1, 1, "eu")]), "bad"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(store.count_samples().await.unwrap(), 0);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn insecure_mode_accepts_any_site_but_needs_one() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = config(db.url());
    cfg.insecure_no_auth = true;
    let running = start(&cfg).await;
    let mut c = client(running.grpc_addr).await;
    let mut req = batch(1, 2, "anywhere");
    req.samples[1].site.clear();
    let ack = c.push(Request::new(req)).await.unwrap().into_inner();
    assert_eq!(ack.accepted_samples, 1);
    assert!(ack.rejected[0].reason.contains("site is empty"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn whole_request_limits_answer_with_a_status_naming_the_limit() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut cfg = config(db.url());
    cfg.ingest.max_items_per_batch = 10;
    cfg.ingest.max_message_bytes = 4096;
    let running = start(&cfg).await;
    let tok = token(&running.store, "eu").await;
    let mut c = client(running.grpc_addr).await;
    let e = c.push(authed(batch(1, 10, "eu"), &tok)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("has 11 items") && e.message().contains("the limit is 10"),
        "{}",
        e.message()
    );
    let mut big = batch(2, 1, "eu");
    big.samples[0].error = "x".repeat(1000);
    big.samples[0].labels = (0..15)
        .map(|i| (format!("k{i}"), "v".repeat(250)))
        .collect();
    let e = c.push(authed(big, &tok)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("4096"),
        "names the limit: {}",
        e.message()
    );
    // on a stream the limit ends the stream with the status
    let mut acks = c
        .stream(authed(
            tokio_stream::iter(vec![batch(1, 2, "eu"), batch(2, 20, "eu")]),
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acks.message().await.unwrap().unwrap().batch_seq, 1);
    let e = acks.message().await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert_eq!(running.store.count_samples().await.unwrap(), 2);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&config(db.url())).await;
    let channel = Channel::from_shared(format!("http://{}", running.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "llmscope.v1.IngestService".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, 1, "SERVING");
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"llmscope.v1.IngestService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_stop_acks_in_flight_batches_then_ends_streams() {
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&config(db.url())).await;
    let tok = token(&running.store, "eu").await;
    let store = running.store.clone();
    let mut c = client(running.grpc_addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut acks = c
        .stream(authed(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            &tok,
        ))
        .await
        .unwrap()
        .into_inner();
    tx.send(batch(1, 10, "eu")).await.unwrap();
    assert_eq!(acks.message().await.unwrap().unwrap().batch_seq, 1);
    let stopping = tokio::spawn(running.stop());
    let end = tokio::time::timeout(Duration::from_secs(10), acks.message())
        .await
        .unwrap();
    let e = end.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("shutting down"));
    stopping.await.unwrap().unwrap();
    assert_eq!(store.count_samples().await.unwrap(), 10);
}

mod certs {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    pub struct Pki {
        pub ca: String,
        pub server_cert: String,
        pub server_key: String,
        pub client_cert: String,
        pub client_key: String,
    }

    pub fn make() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["agent-1".to_string()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        Pki {
            ca: ca.pem(),
            server_cert: server.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client.pem(),
            client_key: client_key.serialize_pem(),
        }
    }
}

async fn https_get(
    addr: std::net::SocketAddr,
    ca: &str,
    client: Option<(&str, &str)>,
    path: &str,
) -> Result<String, String> {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    llmscope_collector::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let cfg = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                rustls_pemfile::certs(&mut cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect(),
                rustls_pemfile::private_key(&mut key.as_bytes())
                    .unwrap()
                    .unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    tls.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}

#[tokio::test]
async fn tls_and_mutual_tls_on_grpc_and_http() {
    let pki = certs::make();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (ca, cert, key) = (
        write("ca.pem", &pki.ca),
        write("server.pem", &pki.server_cert),
        write("server.key", &pki.server_key),
    );
    let db = TestDb::new(Backend::Sqlite).await;

    // server TLS only
    let mut cfg = config(db.url());
    cfg.tls.cert = Some(cert.clone());
    cfg.tls.key = Some(key.clone());
    let running = start(&cfg).await;
    let tok = token(&running.store, "eu").await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{}", running.grpc_addr))
        .unwrap()
        .tls_config(tls.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ack = IngestServiceClient::new(channel)
        .push(authed(batch(1, 3, "eu"), &tok))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.accepted_samples, 3);
    // a plaintext client cannot talk to it
    let plain = client_result(running.grpc_addr).await;
    assert!(plain.is_err(), "plaintext must fail against TLS");
    let page = https_get(running.http_addr, &pki.ca, None, "/healthz")
        .await
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    running.stop().await.unwrap();

    // mutual TLS
    cfg.tls.client_ca = Some(ca);
    let running = start(&cfg).await;
    let no_cert = Channel::from_shared(format!("https://{}", running.grpc_addr))
        .unwrap()
        .tls_config(tls.clone())
        .unwrap()
        .connect()
        .await;
    let refused = match no_cert {
        Err(_) => true,
        Ok(ch) => IngestServiceClient::new(ch)
            .push(authed(batch(2, 1, "eu"), &tok))
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate is refused");
    let with_cert = tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    let channel = Channel::from_shared(format!("https://{}", running.grpc_addr))
        .unwrap()
        .tls_config(with_cert)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ack = IngestServiceClient::new(channel)
        .push(authed(batch(3, 2, "eu"), &tok))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.accepted_samples, 2);
    assert!(
        https_get(running.http_addr, &pki.ca, None, "/healthz")
            .await
            .map(|p| !p.starts_with("HTTP/1.1 200"))
            .unwrap_or(true)
    );
    let page = https_get(
        running.http_addr,
        &pki.ca,
        Some((&pki.client_cert, &pki.client_key)),
        "/readyz",
    )
    .await
    .unwrap();
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("\"ready\""),
        "{page}"
    );
    assert_eq!(running.store.count_samples().await.unwrap(), 5);
    running.stop().await.unwrap();
}

async fn client_result(addr: std::net::SocketAddr) -> Result<v1::IngestAck, String> {
    let mut c = IngestServiceClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| e.to_string())?;
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        c.push(Request::new(batch(1, 1, "eu"))),
    )
    .await
    .map_err(|_| "timeout".to_string())?;
    r.map(|r| r.into_inner()).map_err(|e| e.to_string())
}

/// Raw bytes through tonic, to send what a buggy client would.
struct RawBytes(Vec<u8>);
#[derive(Clone, Copy)]
struct RawCodec;
struct RawEnc;
struct RawDec;

impl tonic::codec::Codec for RawCodec {
    type Encode = RawBytes;
    type Decode = RawBytes;
    type Encoder = RawEnc;
    type Decoder = RawDec;
    fn encoder(&mut self) -> RawEnc {
        RawEnc
    }
    fn decoder(&mut self) -> RawDec {
        RawDec
    }
}

impl tonic::codec::Encoder for RawEnc {
    type Item = RawBytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: RawBytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes_buf::BufMut;
        dst.put_slice(&item.0);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDec {
    type Item = RawBytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<RawBytes>, tonic::Status> {
        use bytes_buf::Buf;
        let mut v = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(RawBytes(v)))
    }
}

mod bytes_buf {
    pub use prost::bytes::{Buf, BufMut};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_database_holds_acks_until_the_commit_and_loses_nothing() {
    use sqlx::Connection;
    let db = TestDb::new(Backend::Postgres).await;
    let running = start(&config(db.url())).await;
    let tok = token(&running.store, "eu").await;
    // another session holds an exclusive lock on the samples table: commits block
    let mut locker = sqlx::postgres::PgConnection::connect(db.url())
        .await
        .unwrap();
    let mut tx = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE samples IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut pushes = Vec::new();
    for seq in 0..5u64 {
        let mut c = client(running.grpc_addr).await;
        let req = authed(batch(seq, 20, "eu"), &tok);
        pushes.push(tokio::spawn(async move {
            c.push(req).await.map(|r| r.into_inner())
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        pushes.iter().all(|p| !p.is_finished()),
        "no ack while the commit cannot happen"
    );
    tx.rollback().await.unwrap();
    for p in pushes {
        let ack = tokio::time::timeout(Duration::from_secs(20), p)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ack.accepted_samples, 20);
    }
    assert_eq!(
        running.store.count_samples().await.unwrap(),
        100,
        "every acked sample is stored"
    );
    running.stop().await.unwrap();
    db.drop_db().await;
}
