//! The `switchyard` binary as an operator meets it: `check` and `run` on
//! broken configs, admin commands that must work whatever state the config
//! file is in, time-outs, completions and JSON logs. No broker is needed:
//! the admin socket is a fake one, and `run`'s clusters are unreachable.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// The ports and socket of a valid config: two clusters nobody listens
/// on, virtual broker ports below the ephemeral ports the listeners get.
struct Setup {
    listen: u16,
    metrics: u16,
    broker_port_base: u16,
    /// `None`: no admin_socket key (the default).
    admin_socket: Option<PathBuf>,
}

impl Setup {
    fn new(dir: &Path) -> Setup {
        Setup {
            listen: free_port(),
            metrics: free_port(),
            broker_port_base: 20_000 + free_port() % 9_000,
            admin_socket: Some(dir.join("admin.sock")),
        }
    }

    fn text(&self) -> String {
        let socket = self
            .admin_socket
            .as_ref()
            .map(|s| format!("admin_socket = \"{}\"\n", s.display()))
            .unwrap_or_default();
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{}\"\nadvertised_host = \"127.0.0.1\"\n\
             broker_port_base = {}\ncluster_id = \"cli-test\"\n{socket}\
             state_file = \"state.json\"\nmetrics_listen = \"127.0.0.1:{}\"\n\
             metadata_refresh_ms = 500\n\n\
             [clusters.old]\nbootstrap = [\"127.0.0.1:1\"]\nnode_id_base = 0\n\n\
             [clusters.new]\nbootstrap = [\"127.0.0.1:2\"]\nnode_id_base = 1000\n\n\
             [routes]\ndefault = \"old\"\n",
            self.listen, self.broker_port_base, self.metrics,
        )
    }
}

fn good_config(dir: &Path) -> String {
    Setup::new(dir).text()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).expect("write proxy.toml");
    path
}

fn switchyard(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SWITCHYARD_SOCKET")
        .env_remove("SWITCHYARD_CLI_TEST_UNSET_PW")
        .stdin(Stdio::null())
        .output()
        .expect("run switchyard")
}

fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Replaces the `[clusters.new]` table's `node_id_base = 1000` line.
fn with_new_base(config: &str, base: i64) -> String {
    config.replace("node_id_base = 1000", &format!("node_id_base = {base}"))
}

#[test]
fn check_accepts_a_good_config_and_resolves_the_state_file_beside_it() {
    let dir = scratch("good");
    let path = write_config(&dir, &good_config(&dir));
    let out = switchyard(&["check", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(text_of(&out).starts_with("config ok:"), "{}", text_of(&out));

    let out = switchyard(&["check", "--json", "-c", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text_of(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["ok"], true);
    assert_eq!(report["problems"], serde_json::json!([]));
    assert_eq!(
        report["state_file"].as_str(),
        Some(dir.join("state.json").to_str().unwrap())
    );
    // Name order: "new" first.
    assert_eq!(report["clusters"][0]["name"], "new");
    assert_eq!(
        report["clusters"][0]["virtual_node_ids"],
        serde_json::json!([1000, 1999])
    );
}

/// Each broken config `check` and `run` refuse with exit code 2, naming
/// the key at fault.
#[test]
fn check_and_run_refuse_each_broken_config_naming_its_key() {
    let dir = scratch("broken");
    let setup = Setup::new(&dir);
    let good = setup.text();
    let bpb = i64::from(setup.broker_port_base);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "node-id ranges overlap",
            with_new_base(&good, 500),
            "clusters.old.node_id_base",
        ),
        (
            "virtual broker ports past 65535",
            with_new_base(&good, 65_000),
            "clusters.new.node_id_base",
        ),
        (
            "a virtual broker port is the bootstrap port",
            with_new_base(&good, i64::from(setup.listen) - bpb - 5),
            "proxy.listen",
        ),
        (
            "a virtual broker port is the metrics port",
            Setup {
                metrics: setup.broker_port_base + 111,
                admin_socket: setup.admin_socket.clone(),
                ..setup
            }
            .text(),
            "proxy.metrics_listen",
        ),
        (
            "a client TLS certificate that does not exist",
            good.replace(
                "\n[clusters.old]",
                "\n[proxy.tls]\ncert = \"/nonexistent/proxy.pem\"\nkey = \"/nonexistent/proxy-key.pem\"\n\n[clusters.old]",
            ),
            "proxy.tls.cert",
        ),
        (
            "an upstream CA that does not exist",
            format!("{good}\n[clusters.new.tls]\nca = \"/nonexistent/new-ca.pem\"\n"),
            "clusters.new.tls.ca",
        ),
        (
            "an unset password variable",
            format!(
                "{good}\n[clusters.new.sasl]\nmechanism = \"PLAIN\"\nusername = \"sy\"\n\
                 password_env = \"SWITCHYARD_CLI_TEST_UNSET_PW\"\n"
            ),
            "clusters.new.sasl.password_env",
        ),
        (
            "an unreadable password file",
            format!(
                "{good}\n[clusters.old.sasl]\nmechanism = \"PLAIN\"\nusername = \"sy\"\n\
                 password_file = \"/nonexistent/old.password\"\n"
            ),
            "clusters.old.sasl.password_file",
        ),
    ];
    for (what, text, key) in cases {
        let path = write_config(&dir, &text);
        let out = switchyard(&["check", "-c", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text_of(&out));
        assert!(
            text_of(&out).contains(&format!("error: {key}: ")),
            "{what}: no {key} in {}",
            text_of(&out)
        );
        let out = switchyard(&["check", "--json", "-c", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{what}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(report["ok"], false, "{what}");
        let keys: Vec<&str> = report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter_map(|p| p["key"].as_str())
            .collect();
        assert!(keys.contains(&key), "{what}: {keys:?}");

        let out = switchyard(&["run", "-c", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "run, {what}: {}", text_of(&out));
        assert!(
            text_of(&out).contains(key),
            "run, {what}: {}",
            text_of(&out)
        );
    }
}

#[test]
fn a_key_that_does_not_fit_its_certificate_is_caught_before_run_starts() {
    let dir = scratch("mismatch");
    let one = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.join("proxy.pem"), one.cert.pem()).unwrap();
    std::fs::write(dir.join("proxy-key.pem"), other.signing_key.serialize_pem()).unwrap();
    let text = good_config(&dir).replace(
        "\n[clusters.old]",
        &format!(
            "\n[proxy.tls]\ncert = \"{0}/proxy.pem\"\nkey = \"{0}/proxy-key.pem\"\n\n[clusters.old]",
            dir.display()
        ),
    );
    let path = write_config(&dir, &text);
    for command in ["check", "run"] {
        let out = switchyard(&[command, "-c", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", text_of(&out));
        assert!(
            text_of(&out).contains("error: proxy.tls.key: does not fit proxy.tls.cert"),
            "{command}: {}",
            text_of(&out)
        );
    }
}

#[test]
fn check_lists_every_problem_not_only_the_first() {
    let dir = scratch("many");
    let text = with_new_base(&good_config(&dir), 500)
        .replace("cluster_id = \"cli-test\"", "cluster_id = \"\"")
        .replace("default = \"old\"", "default = \"mars\"")
        + "\n[clusters.new.sasl]\nmechanism = \"PLAIN\"\nusername = \"sy\"\n\
           password_env = \"SWITCHYARD_CLI_TEST_UNSET_PW\"\n";
    let path = write_config(&dir, &text);
    let out = switchyard(&["check", "--json", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let keys: Vec<&str> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "proxy.cluster_id",
            "clusters.old.node_id_base",
            "routes.default",
            "clusters.new.sasl.password_env"
        ]
    );
}

#[test]
fn run_on_a_config_that_is_not_toml_exits_2() {
    let dir = scratch("not-toml");
    let path = write_config(&dir, "[proxy\nlisten = \"127.0.0.1:9092\"\n");
    let out = switchyard(&["run", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("not valid TOML: line 1"),
        "{}",
        text_of(&out)
    );
}

/// A fake admin socket: answers each connection's first line with
/// `answer` (or with nothing, holding the connection, when `answer` is
/// `None`), and hands back the request lines it read.
fn fake_admin(path: &Path, answer: Option<&'static str>) -> std::sync::mpsc::Receiver<String> {
    let listener = UnixListener::bind(path).expect("bind fake admin socket");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let _ = tx.send(line);
            match answer {
                Some(a) => {
                    let _ = stream.write_all(format!("{a}\n").as_bytes());
                }
                // Hold the connection open, answering nothing.
                None => {
                    let _ = stream.read(&mut [0u8; 1]);
                }
            }
        }
    });
    rx
}

#[test]
fn an_admin_command_with_socket_works_whatever_the_config_file_holds() {
    let dir = scratch("socket");
    let socket = dir.join("fake.sock");
    let requests = fake_admin(
        &socket,
        Some(
            r#"{"ok":true,"result":{"default":"old","routes":[{"pattern":"orders","produce":"new","fetch":"old","source":"runtime"}],"groups":[]}}"#,
        ),
    );
    // Half edited: not TOML at all, and naming no socket.
    let broken = write_config(&dir, "[proxy\nlisten = \"127.0.0.1:9092\n[clusters.old\n");
    let out = switchyard(&[
        "routes",
        "--socket",
        socket.to_str().unwrap(),
        "-c",
        broken.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text_of(&out));
    let request = requests
        .recv_timeout(Duration::from_secs(5))
        .expect("a request");
    assert_eq!(request, "{\"cmd\":\"routes\"}\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("default: old\n"), "{stdout}");
    assert!(
        stdout.contains("orders") && stdout.contains("produce=new"),
        "{stdout}"
    );

    // SWITCHYARD_SOCKET does the same, and a missing config file is fine.
    let out = Command::new(BIN)
        .args(["routes", "--json", "-c", "/nonexistent/proxy.toml"])
        .env("SWITCHYARD_SOCKET", &socket)
        .output()
        .expect("run switchyard");
    assert!(out.status.success(), "{}", text_of(&out));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(answer["result"]["default"], "old");
    assert_eq!(
        requests
            .recv_timeout(Duration::from_secs(5))
            .expect("a request"),
        "{\"cmd\":\"routes\"}\n"
    );
}

#[test]
fn an_admin_command_finds_the_socket_in_a_config_that_is_not_toml() {
    let dir = scratch("scan");
    let socket = dir.join("fake.sock");
    let requests = fake_admin(
        &socket,
        Some(r#"{"ok":true,"result":{"topic":"orders","changed":false}}"#),
    );
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:9092\nadmin_socket = \"{}\"\n[clusters.old\n",
        socket.display()
    );
    let path = write_config(&dir, &text);
    let out = switchyard(&[
        "flip",
        "orders",
        "--to",
        "new",
        "-c",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text_of(&out));
    let request: serde_json::Value = serde_json::from_str(
        &requests
            .recv_timeout(Duration::from_secs(5))
            .expect("a request"),
    )
    .expect("JSON request");
    assert_eq!(request["cmd"], "flip");
    assert_eq!(request["topic"], "orders");
    assert_eq!(request["to"], "new");

    // No socket to be found anywhere: the error says what to pass.
    let hopeless = write_config(&dir, "[proxy\nlisten = 1\n");
    let out = switchyard(&["status", "-c", hopeless.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text_of(&out));
    assert!(text_of(&out).contains("--socket PATH"), "{}", text_of(&out));
}

#[test]
fn an_admin_socket_that_never_answers_times_out_with_exit_3() {
    let dir = scratch("timeout");
    let socket = dir.join("silent.sock");
    let _requests = fake_admin(&socket, None);
    let started = Instant::now();
    let out = switchyard(&[
        "flip",
        "orders",
        "--to",
        "new",
        "--socket",
        socket.to_str().unwrap(),
        "--timeout",
        "1",
    ]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", text_of(&out));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("within 1 s (--timeout)"), "{stderr}");
    assert!(stderr.contains("may still complete"), "{stderr}");

    // Nothing at the path at all: exit 3 too, saying so.
    let out = switchyard(&[
        "status",
        "--socket",
        dir.join("none.sock").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("no such socket"),
        "{}",
        text_of(&out)
    );
}

#[test]
fn completions_print_a_script() {
    for shell in ["bash", "zsh", "fish"] {
        let out = switchyard(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text_of(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("switchyard") && script.contains("socket"),
            "{shell}"
        );
    }
}

/// A `switchyard run` child, killed when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_run(config: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Running {
    let mut command = Command::new(BIN);
    command
        .arg("run")
        .arg("-c")
        .arg(config)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    Running(command.spawn().expect("spawn switchyard run"))
}

/// What a running proxy printed on stderr within `wait`; the proxy is
/// then killed.
fn stderr_for(mut proxy: Running, wait: Duration) -> String {
    let mut stderr = proxy.0.stderr.take().expect("piped stderr");
    std::thread::sleep(wait);
    let _ = proxy.0.kill();
    let _ = proxy.0.wait();
    let mut text = String::new();
    stderr.read_to_string(&mut text).expect("read stderr");
    text
}

#[test]
fn json_logs_are_one_json_object_a_line() {
    let dir = scratch("json-logs");
    let path = write_config(&dir, &good_config(&dir));
    let proxy = spawn_run(&path, &["--log-format", "json"], &[]);
    let log = stderr_for(proxy, Duration::from_secs(3));
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.len() >= 2,
        "a start line and a cluster warning at least: {log}"
    );
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nwhole log:\n{log}"));
        assert!(
            event["level"].is_string() && event["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(log.contains("switchyard listening"), "{log}");
}

#[test]
fn log_format_in_the_config_applies_and_text_logs_have_no_colour_codes() {
    let dir = scratch("log-format");
    let json = good_config(&dir).replace(
        "metadata_refresh_ms = 500",
        "metadata_refresh_ms = 500\nlog_format = \"json\"",
    );
    let path = write_config(&dir, &json);
    let log = stderr_for(spawn_run(&path, &[], &[]), Duration::from_secs(2));
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{log}"
    );
    // The flag wins; stderr is a pipe, so no ANSI escapes.
    let log = stderr_for(
        spawn_run(&path, &["--log-format", "text"], &[]),
        Duration::from_secs(2),
    );
    assert!(log.contains("switchyard listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}

#[test]
fn the_default_admin_socket_is_in_a_private_directory_and_a_live_one_is_never_taken() {
    let dir = scratch("default-socket");
    let runtime = dir.join("xdg");
    std::fs::create_dir_all(&runtime).unwrap();
    let setup = Setup {
        admin_socket: None,
        ..Setup::new(&dir)
    };
    let path = write_config(&dir, &setup.text());
    let env = [("XDG_RUNTIME_DIR", runtime.as_path())];
    let first = spawn_run(&path, &[], &env);
    let socket = runtime.join("switchyard/switchyard.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "no socket at {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(runtime.join("switchyard"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);

    // The admin commands find it the same way.
    let out = Command::new(BIN)
        .args([
            "routes",
            "--json",
            "--timeout",
            "10",
            "-c",
            path.to_str().unwrap(),
        ])
        .env("XDG_RUNTIME_DIR", &runtime)
        .env_remove("SWITCHYARD_SOCKET")
        .output()
        .expect("run switchyard routes");
    assert!(out.status.success(), "{}", text_of(&out));

    // A second proxy on other ports with the same socket is refused and
    // leaves the first one's socket alone.
    let second_config = dir.join("second.toml");
    let second = Setup {
        listen: free_port(),
        metrics: free_port(),
        admin_socket: None,
        ..setup
    };
    std::fs::write(&second_config, second.text()).unwrap();
    let mut second = spawn_run(&second_config, &[], &env);
    let status = second.0.wait().expect("second proxy exits");
    let mut stderr = String::new();
    second
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "another proxy is listening on {}",
            socket.display()
        )),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .args(["status", "--json", "--socket", socket.to_str().unwrap()])
        .output()
        .expect("run switchyard status");
    assert!(
        out.status.success(),
        "the first proxy still answers: {}",
        text_of(&out)
    );
    drop(first);
}
