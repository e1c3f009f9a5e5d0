//! The in-process tier: the real proxy (planner, admission, pool, retries, breakers,
//! mirroring, error mapping, recording) serving in-memory connections, against in-memory
//! hyper servers standing in for endpoints. No kernel, no sockets, no root: a request costs
//! microseconds, and time can be paused. The kernel's part (capture, the caller's identity)
//! is what the sandbox tier tests; here the caller is given.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use graylane::{
    datapath::Names,
    policy::Registry,
    proxy::{
        BoxIo, ConnContext, Dial, Dialing, EdgeLimits, Origin, PodNetns, Proxy, ProxyConfig, ProxyState,
        SharedState,
    },
    telemetry::{ConnTelemetry, Telemetry, flows::Flows, trace::Tracer},
    vocab::{ClientAddr, OrigDstAddr, UpstreamAddr},
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// What an in-memory endpoint does with a request.
pub type Handler =
    Arc<dyn Fn(Request<Bytes>) -> Pin<Box<dyn Future<Output = Response<Bytes>> + Send>> + Send + Sync>;

/// How an endpoint behaves.
#[derive(Clone)]
pub enum Backend {
    Serve(Handler),
    /// Connects fail (connection refused).
    Refuse,
    /// Accepts, reads the request, then drops the connection without an answer.
    Reset,
    /// Answers one request (200, its name as the body, no `Connection: close`), then
    /// closes the connection after `linger`: a server's keep-alive timeout.
    Once(&'static str, Duration),
}

/// In-memory endpoints by address; also the proxy's dialer.
#[derive(Default)]
pub struct Endpoints {
    backends: Mutex<HashMap<SocketAddr, Backend>>,
    pub dials: AtomicUsize,
    /// The origin ([`Origin::key`]) of each dial, in order.
    pub origins: Mutex<Vec<u64>>,
}

impl Endpoints {
    pub fn set(&self, addr: &str, backend: Backend) {
        let addr: SocketAddr = addr.parse().expect("endpoint address");
        self.backends.lock().expect("lock").insert(addr, backend);
    }
}

impl Dial for Endpoints {
    fn dial(&self, from: &Origin, to: UpstreamAddr) -> Dialing {
        self.dials.fetch_add(1, Ordering::Relaxed);
        self.origins.lock().expect("lock").push(from.key());
        let backend = self.backends.lock().expect("lock").get(&to.0).cloned();
        Box::pin(async move {
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let handler = match backend {
                None | Some(Backend::Refuse) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
                }
                Some(Backend::Reset) => None,
                Some(Backend::Serve(h)) => Some(h),
                Some(Backend::Once(name, linger)) => {
                    tokio::spawn(answer_once(theirs, name, linger));
                    return Ok(Box::new(ours) as BoxIo);
                }
            };
            tokio::spawn(async move {
                let Some(handler) = handler else {
                    let mut theirs = theirs;
                    let mut buf = [0u8; 1024];
                    let _ = tokio::io::AsyncReadExt::read(&mut theirs, &mut buf).await;
                    return; // dropped: the connection resets
                };
                let svc = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                        let resp = handler(Request::from_parts(parts, body)).await;
                        Ok::<_, Infallible>(resp.map(Full::new))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(theirs), svc)
                    .await;
            });
            Ok(Box::new(ours) as BoxIo)
        })
    }
}

async fn answer_once(mut io: tokio::io::DuplexStream, name: &'static str, linger: Duration) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{name}", name.len());
    let _ = io.write_all(answer.as_bytes()).await;
    tokio::time::sleep(linger).await;
}

/// An endpoint answering 200 with its name, and the request it saw as headers `seen-*`.
pub fn named(name: &'static str) -> Backend {
    handler(move |req| async move {
        let mut resp = Response::new(Bytes::from(name));
        for (k, v) in req.headers() {
            if let Ok(n) = http::HeaderName::from_bytes(format!("seen-{k}").as_bytes()) {
                resp.headers_mut().append(n, v.clone());
            }
        }
        if let Ok(v) = http::HeaderValue::from_str(&req.uri().to_string()) {
            resp.headers_mut().insert("seen-uri", v);
        }
        resp
    })
}

pub fn handler<F, Fut>(f: F) -> Backend
where
    F: Fn(Request<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Bytes>> + Send + 'static,
{
    Backend::Serve(Arc::new(move |req| Box::pin(f(req))))
}

/// An endpoint answering `status` after `delay`.
pub fn slow(name: &'static str, delay: Duration, status: StatusCode) -> Backend {
    handler(move |_| async move {
        tokio::time::sleep(delay).await;
        let mut r = Response::new(Bytes::from(name));
        *r.status_mut() = status;
        r
    })
}

pub struct Mesh {
    pub proxy: Arc<Proxy>,
    pub state: SharedState,
    pub endpoints: Arc<Endpoints>,
    pub flows: Arc<Flows>,
    registry: Registry,
}

pub fn limits() -> EdgeLimits {
    EdgeLimits {
        header_read_timeout: Duration::from_secs(10),
        max_headers: 100,
        max_header_bytes: 32 * 1024,
        body_idle_timeout: Duration::from_secs(60),
        h2_max_streams: 100,
        h2_max_pending_resets: 20,
        h2_max_error_resets: 100,
        max_per_pod: 1000,
        max_total: 1000,
        data_buffer_per_pod: 64 << 20,
        data_buffer_total: 256 << 20,
    }
}

impl Mesh {
    /// A proxy over `inventory` (Kubernetes YAML), its endpoints in memory.
    pub fn new(inventory: &str) -> Self {
        Self::on(inventory, &graylane::inventory::NodeFacts::default())
    }

    /// [`Mesh::new`] on a node with `node`'s facts (how its agent reads rules).
    pub fn on(inventory: &str, node: &graylane::inventory::NodeFacts) -> Self {
        let snapshot = Arc::new(graylane::inventory::load_str_on(inventory, node).expect("inventory"));
        let registry = Registry::default();
        let state: SharedState =
            Arc::new(arc_swap::ArcSwap::from_pointee(ProxyState::new(snapshot, Names::default(), &registry)));
        let endpoints = Arc::new(Endpoints::default());
        let flows = Arc::new(Flows::new(256));
        let cfg = ProxyConfig {
            bypass_mark: 0,
            connect_timeout: Duration::from_secs(1),
            detect_timeout: Duration::from_millis(100),
            iptables_fallback: false,
            limits: limits(),
            upstream_idle: 64,
            upstream_idle_timeout: Duration::from_secs(30),
            continuity: Default::default(),
        };
        let telemetry = Telemetry {
            tracer: Tracer::new(None, 0.0),
            access_log: None,
            record: graylane::telemetry::Recording::ALL,
        };
        let proxy = Proxy::new(
            cfg,
            state.clone(),
            flows.clone(),
            telemetry,
            endpoints.clone(),
            None,
            Default::default(),
        );
        Self { proxy, state, endpoints, flows, registry }
    }

    /// Replaces the inventory (as a reload would).
    pub fn reload(&self, inventory: &str) {
        let snapshot = Arc::new(graylane::inventory::load_str(inventory).expect("inventory"));
        self.state.store(Arc::new(ProxyState::new(snapshot, Names::default(), &self.registry)));
    }

    /// A caller: connections from pod `pod` (`namespace/name`, or `None`: outside the mesh).
    pub fn caller(&self, pod: Option<&str>) -> Caller<'_> {
        Caller { mesh: self, pod: pod.map(Arc::from), origin: Origin::Node }
    }
}

/// A pod's network namespace as the proxy would hold it: any namespace file will do here
/// (the in-memory dialer does not enter it); `inode` tells origins apart.
pub fn pod_origin(pod: &str, inode: u64) -> Origin {
    let open = || std::fs::File::open("/proc/self/ns/net").expect("own netns");
    Origin::Pod(Arc::new(PodNetns::new(Arc::from(pod), inode, open(), Arc::new(open()))))
}

pub struct Caller<'a> {
    mesh: &'a Mesh,
    pod: Option<Arc<str>>,
    origin: Origin,
}

/// A response, whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl Caller<'_> {
    /// Upstream connections for this caller leave from `origin`.
    pub fn from(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// A captured connection to `dst`, served by the proxy.
    fn connect(&self, dst: &str) -> tokio::io::DuplexStream {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let state = self.mesh.state.load();
        let client_addr = ClientAddr("10.244.0.10:40000".parse().expect("addr"));
        let orig_dst = OrigDstAddr(dst.parse().expect("destination"));
        let pod = self.pod.as_deref().and_then(|p| state.snapshot.pod_by_name(p)).cloned();
        let flow = self.mesh.flows.open(
            graylane::telemetry::flows::FlowStart {
                client: client_addr,
                orig_dst,
                src_pod: self.pod.as_deref().map(str::to_owned),
                src_cgroup: 0,
                tag: pod.as_ref().and_then(|p| p.tag.clone()),
                tenant: pod.as_ref().and_then(|p| p.tenant.clone()),
                source_ip: Some("node"),
                source_fallback: Some("configured"),
            },
            "tcp",
        );
        let workload = state.labels.workload(self.pod.as_deref());
        let conn = ConnContext {
            client: client_addr,
            orig_dst,
            src_pod: self.pod.clone(),
            record_tag: pod.as_ref().and_then(|p| p.tag.clone()),
            record_tenant: pod.as_ref().and_then(|p| p.tenant.clone()),
            telemetry: ConnTelemetry::new(flow, workload, client_addr.0, self.pod.clone()),
            origin: self.origin.clone(),
        };
        tokio::spawn(self.mesh.proxy.clone().serve_connection(conn, server));
        client
    }

    /// One HTTP/1.1 request on a new connection.
    pub async fn get(&self, dst: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(dst, false, request("GET", path, headers, Bytes::new())).await
    }

    /// One request (HTTP/2 with prior knowledge when `h2`) on a new connection.
    pub async fn send(&self, dst: &str, h2: bool, req: Request<Full<Bytes>>) -> Answer {
        let io = TokioIo::new(self.connect(dst));
        let resp = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.expect("h2 handshake");
            tokio::spawn(conn);
            sender.send_request(req).await.expect("response")
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.expect("handshake");
            tokio::spawn(conn);
            sender.send_request(req).await.expect("response")
        };
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// `n` HTTP/1.1 requests over one keep-alive connection.
    pub async fn keep_alive(&self, dst: &str, path: &str, n: usize) -> Vec<Answer> {
        self.keep_alive_paced(dst, path, n, Duration::ZERO).await
    }

    /// `n` HTTP/1.1 requests over one keep-alive connection, `pause` between them.
    pub async fn keep_alive_paced(&self, dst: &str, path: &str, n: usize, pause: Duration) -> Vec<Answer> {
        let io = TokioIo::new(self.connect(dst));
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.expect("handshake");
        tokio::spawn(conn);
        let mut out = Vec::new();
        for i in 0..n {
            if i > 0 && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let resp = sender.send_request(request("GET", path, &[], Bytes::new())).await.expect("response");
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            out.push(Answer {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        out
    }
}

pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Bytes) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path).header("host", "app.default");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body)).expect("request")
}

/// Service `app` (10.96.0.20:80 → 8080) with pods base (10.244.0.20), gray (.21), the
/// callers client (.10) and gray-client (.11), and `extra` documents.
pub fn app(extra: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: default, labels: {{app: client}}}}
status: {{podIP: 10.244.0.10}}
---
apiVersion: v1
kind: Pod
metadata: {{name: gray-client, namespace: default, labels: {{app: client}}, annotations: {{graylane.io/tag: gray}}}}
status: {{podIP: 10.244.0.11}}
---
apiVersion: v1
kind: Pod
metadata: {{name: app-base, namespace: default, labels: {{app: app}}}}
status: {{podIP: 10.244.0.20}}
---
apiVersion: v1
kind: Pod
metadata: {{name: app-gray, namespace: default, labels: {{app: app}}, annotations: {{graylane.io/tag: gray}}}}
status: {{podIP: 10.244.0.21}}
---
apiVersion: v1
kind: Service
metadata: {{name: app, namespace: default}}
spec:
  clusterIP: 10.96.0.20
  selector: {{app: app}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
{extra}"#
    )
}

pub const APP: &str = "10.96.0.20:80";
